#include "common/self_probe.hpp"

#include <algorithm>

namespace speed::latency {

void self_probe_matcher::probe_sent(std::int64_t sent_ns) {
    if (!can_send()) {
        return;
    }
    if (probes_.empty()) {
        history_.clear();
        history_full_ = false;
    }
    probes_.push_back({next_number_++, sent_ns, read_offset_, std::nullopt});
}

std::vector<self_probe_sample> self_probe_matcher::bytes_read(std::uint64_t bytes, std::int64_t read_ns) {
    read_offset_ += bytes;
    std::vector<self_probe_sample> completed;
    if (probes_.empty() || bytes == 0) {
        return completed;
    }
    // Once a read is left out, none after it goes in: the history never has a hole a lookup could step over.
    history_full_ = history_full_ || history_.size() >= kMaxHistory;
    if (!history_full_) {
        history_.push_back({read_offset_, read_ns});
    }
    for (auto it = probes_.begin(); it != probes_.end();) {
        if (it->answer && read_offset_ > *it->answer) {
            completed.push_back({it->sent_ns, read_ns - it->sent_ns});
            const auto index = it - probes_.begin();
            remove(it);
            it = probes_.begin() + index;
        } else {
            ++it;
        }
    }
    return completed;
}

std::optional<self_probe_sample> self_probe_matcher::mark(std::uint32_t number, std::uint64_t offset) {
    const auto it =
        std::find_if(probes_.begin(), probes_.end(), [number](const probe& p) { return p.number == number; });
    if (it == probes_.end() || it->answer) {
        return std::nullopt;
    }
    // Byte `offset` was sent after the server saw the probe, so after every byte the client had read when it
    // sent the probe: a smaller offset is a mark that cannot be true.
    if (offset < it->offset_at_send) {
        ++dropped_;
        remove(it);
        return std::nullopt;
    }
    if (offset >= read_offset_) {
        it->answer = offset;  // not read yet: bytes_read() completes it
        return std::nullopt;
    }
    // Already read: the first read since the oldest outstanding probe was sent whose end passed the byte
    // (every read since this probe was sent is in the history, unless it filled up).
    const auto read =
        std::upper_bound(history_.begin(), history_.end(), offset,
                         [](std::uint64_t value, const read_record& r) { return value < r.end_offset; });
    if (read == history_.end()) {
        ++dropped_;
        remove(it);
        return std::nullopt;
    }
    const self_probe_sample sample{it->sent_ns, read->read_ns - it->sent_ns};
    remove(it);
    return sample;
}

void self_probe_matcher::expire(std::int64_t older_than_ns) {
    while (!probes_.empty() && probes_.front().sent_ns < older_than_ns) {
        ++dropped_;
        remove(probes_.begin());
    }
}

void self_probe_matcher::remove(std::deque<probe>::iterator it) {
    probes_.erase(it);
    if (probes_.empty()) {
        history_.clear();
        history_full_ = false;
        return;
    }
    // Reads that ended before the oldest outstanding probe was sent can no longer hold an answer.
    const std::uint64_t oldest = probes_.front().offset_at_send;
    const auto first_kept =
        std::upper_bound(history_.begin(), history_.end(), oldest,
                         [](std::uint64_t value, const read_record& r) { return value < r.end_offset; });
    history_.erase(history_.begin(), first_kept);
}

}  // namespace speed::latency
