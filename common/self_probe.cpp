#include "common/self_probe.hpp"

#include <algorithm>

namespace speed::latency {

void self_probe_matcher::probe_sent(std::int64_t sent_ns) {
    if (outstanding_) {
        return;
    }
    outstanding_ = true;
    number_ = next_number_++;
    sent_ns_ = sent_ns;
    offset_at_send_ = read_offset_;
    answer_offset_.reset();
    history_.clear();
}

std::optional<self_probe_sample> self_probe_matcher::bytes_read(std::uint64_t bytes, std::int64_t read_ns) {
    read_offset_ += bytes;
    if (!outstanding_ || bytes == 0) {
        return std::nullopt;
    }
    if (answer_offset_) {
        if (read_offset_ > *answer_offset_) {
            return complete(read_ns);
        }
        return std::nullopt;
    }
    if (history_.size() < kMaxHistory) {
        history_.push_back({read_offset_, read_ns});
    }
    return std::nullopt;
}

std::optional<self_probe_sample> self_probe_matcher::mark(std::uint32_t number, std::uint64_t offset) {
    if (!outstanding_ || number != number_ || answer_offset_) {
        return std::nullopt;
    }
    // Byte `offset` was sent after the server saw the probe, so after every byte the client had read when it
    // sent the probe: a smaller offset is a mark that cannot be true.
    if (offset < offset_at_send_) {
        drop();
        return std::nullopt;
    }
    if (offset >= read_offset_) {
        answer_offset_ = offset;  // not read yet: bytes_read() completes it
        history_.clear();
        return std::nullopt;
    }
    // Already read: the first read since the probe whose end passed the byte.
    const auto read =
        std::upper_bound(history_.begin(), history_.end(), offset,
                         [](std::uint64_t value, const read_record& r) { return value < r.end_offset; });
    if (read == history_.end()) {
        drop();  // read after the history filled up
        return std::nullopt;
    }
    return complete(read->read_ns);
}

void self_probe_matcher::expire(std::int64_t older_than_ns) {
    if (outstanding_ && sent_ns_ < older_than_ns) {
        drop();
    }
}

std::optional<self_probe_sample> self_probe_matcher::complete(std::int64_t read_ns) {
    outstanding_ = false;
    history_.clear();
    return self_probe_sample{sent_ns_, read_ns - sent_ns_};
}

void self_probe_matcher::drop() {
    ++dropped_;
    outstanding_ = false;
    history_.clear();
}

}  // namespace speed::latency
