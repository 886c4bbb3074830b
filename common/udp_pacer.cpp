#include "common/udp_pacer.hpp"

#include <algorithm>
#include <cmath>

#include "common/saturating.hpp"

namespace speed::udp {

namespace {

// Converts a non-negative byte or nanosecond count to an integer without the undefined behaviour of an
// out-of-range conversion (2^62 is far beyond any bucket or wait).
constexpr double kLargestCount = 4.6e18;

}  // namespace

pacer::pacer(double bits_per_second, std::int64_t burst_ns, std::uint64_t min_burst_bytes,
             std::int64_t now_ns)
    : bytes_per_ns_(std::max(bits_per_second, 0.0) / 8e9),
      burst_ns_(burst_ns),
      min_burst_bytes_(min_burst_bytes),
      tokens_(static_cast<double>(min_burst_bytes)),
      last_ns_(now_ns) {}

void pacer::set_rate(double bits_per_second, std::int64_t now_ns) {
    refill(now_ns);
    bytes_per_ns_ = std::max(bits_per_second, 0.0) / 8e9;
    tokens_ = std::min(tokens_, static_cast<double>(depth_bytes()));
    debt_ = 0;
}

std::uint64_t pacer::depth_bytes() const {
    const double late_sender_ns =
        std::min(kWakeGapShare * wake_gap_ns_, static_cast<double>(kLongestWakeGapBurstNs));
    const double burst = bytes_per_ns_ * std::max(static_cast<double>(burst_ns_), late_sender_ns);
    return std::max(min_burst_bytes_, static_cast<std::uint64_t>(std::clamp(burst, 0.0, kLargestCount)));
}

void pacer::refill(std::int64_t now_ns) {
    if (now_ns <= last_ns_) {
        return;  // the clock did not move (or a caller passed an older time): nothing earned
    }
    const double elapsed = static_cast<double>(saturating_sub(now_ns, last_ns_));
    // Weighted by time: a call after a long gap counts for as long as the gap lasted.
    wake_gap_ns_ += (elapsed - wake_gap_ns_) * std::min(1.0, elapsed / kWakeGapWindowNs);
    const double repaid = std::min(debt_, kCatchUpShare * bytes_per_ns_ * elapsed);
    debt_ -= repaid;
    tokens_ += bytes_per_ns_ * elapsed + repaid;
    // A sender that wakes up late gets at most one bucket at once; the rest is owed, not sent in a burst.
    const double depth = static_cast<double>(depth_bytes());
    if (tokens_ > depth) {
        debt_ = std::min(debt_ + (tokens_ - depth), bytes_per_ns_ * static_cast<double>(kMostDebtNs));
        tokens_ = depth;
    }
    last_ns_ = now_ns;
}

std::uint64_t pacer::allowed(std::int64_t now_ns, std::uint32_t datagram_bytes) {
    refill(now_ns);
    if (tokens_ < datagram_bytes || datagram_bytes == 0) {
        return 0;
    }
    return static_cast<std::uint64_t>(tokens_ / datagram_bytes);
}

void pacer::consume(std::uint64_t bytes) {
    tokens_ -= static_cast<double>(bytes);
}

std::int64_t pacer::wait_ns(std::int64_t now_ns, std::uint64_t bytes) {
    refill(now_ns);
    const double missing = static_cast<double>(bytes) - tokens_;
    if (missing <= 0) {
        return 0;
    }
    if (bytes_per_ns_ <= 0) {
        return INT64_MAX / 4;  // rate 0: never (callers cap their sleep)
    }
    return static_cast<std::int64_t>(std::min(std::ceil(missing / bytes_per_ns_), kLargestCount));
}

std::int64_t pacer::departure_ns(std::int64_t batch_ns, std::uint64_t index,
                                 std::uint32_t datagram_bytes) const {
    if (bytes_per_ns_ <= 0.0) {
        return batch_ns;
    }
    const double offset = static_cast<double>(index) * static_cast<double>(datagram_bytes) / bytes_per_ns_;
    return batch_ns + static_cast<std::int64_t>(std::llround(offset));
}

}  // namespace speed::udp
