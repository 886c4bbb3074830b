#include "tools/netem-tun/delay_line.hpp"

#include <algorithm>
#include <stdexcept>

namespace speed::netem {

delay_line::delay_line(std::size_t capacity_packets, std::size_t max_packet_bytes)
    : slot_bytes_(max_packet_bytes),
      slot_count_(capacity_packets),
      storage_(std::make_unique_for_overwrite<std::byte[]>(capacity_packets * max_packet_bytes)) {
    if (capacity_packets == 0 || max_packet_bytes == 0) {
        throw std::invalid_argument("a delay line needs room for at least one packet");
    }
    free_slots_.reserve(capacity_packets);
    for (std::size_t slot = capacity_packets; slot > 0; --slot) {
        free_slots_.push_back(slot - 1);  // slot 0 on top: the pool is used from its start
    }
    heap_.reserve(capacity_packets);
}

std::span<std::byte> delay_line::free_buffer() {
    if (full()) {
        throw std::logic_error("delay_line::free_buffer on a full line");
    }
    return {storage_.get() + free_slots_.back() * slot_bytes_, slot_bytes_};
}

void delay_line::commit(std::size_t length, std::int64_t release_ns, std::uint64_t arrival_index) {
    if (full() || length > slot_bytes_) {
        throw std::logic_error("delay_line::commit on a full line or with an oversized packet");
    }
    heap_.push_back({release_ns, commits_++, arrival_index, free_slots_.back(), length});
    free_slots_.pop_back();
    std::push_heap(heap_.begin(), heap_.end(), later);
}

std::optional<std::int64_t> delay_line::next_release_ns() const {
    if (empty()) {
        return std::nullopt;
    }
    return heap_.front().release_ns;
}

std::span<const std::byte> delay_line::front() const {
    return {storage_.get() + heap_.front().slot * slot_bytes_, heap_.front().length};
}

std::uint64_t delay_line::front_arrival_index() const {
    return heap_.front().arrival_index;
}

void delay_line::pop() {
    if (empty()) {
        throw std::logic_error("delay_line::pop on an empty line");
    }
    std::pop_heap(heap_.begin(), heap_.end(), later);
    free_slots_.push_back(heap_.back().slot);
    heap_.pop_back();
}

}  // namespace speed::netem
