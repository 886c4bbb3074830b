#include "tools/netem-tun/delay_line.hpp"

#include <algorithm>
#include <stdexcept>

namespace speed::netem {

delay_line::delay_line(std::size_t capacity_packets, std::size_t max_packet_bytes)
    : slot_bytes_(max_packet_bytes),
      storage_(std::make_unique_for_overwrite<std::byte[]>(capacity_packets * max_packet_bytes)),
      releases_(capacity_packets),
      lengths_(capacity_packets) {
    if (capacity_packets == 0 || max_packet_bytes == 0) {
        throw std::invalid_argument("a delay line needs room for at least one packet");
    }
}

std::span<std::byte> delay_line::tail_buffer() {
    const std::size_t tail = (head_ + count_) % capacity();
    return {storage_.get() + tail * slot_bytes_, slot_bytes_};
}

void delay_line::commit(std::size_t length, std::int64_t release_ns) {
    if (full() || length > slot_bytes_) {
        throw std::logic_error("delay_line::commit on a full line or with an oversized packet");
    }
    const std::size_t tail = (head_ + count_) % capacity();
    last_release_ns_ = empty() ? release_ns : std::max(release_ns, last_release_ns_);
    releases_[tail] = last_release_ns_;
    lengths_[tail] = length;
    ++count_;
}

std::optional<std::int64_t> delay_line::next_release_ns() const {
    if (empty()) {
        return std::nullopt;
    }
    return releases_[head_];
}

std::span<const std::byte> delay_line::front() const {
    return {storage_.get() + head_ * slot_bytes_, lengths_[head_]};
}

void delay_line::pop() {
    if (empty()) {
        throw std::logic_error("delay_line::pop on an empty line");
    }
    head_ = (head_ + 1) % capacity();
    --count_;
}

}  // namespace speed::netem
