#include "common/udp_accounting.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "common/saturating.hpp"

namespace speed::udp {

// ---- ipdv_histogram ----
// Values below 2^7 have a bucket each. Above, a value v with highest set bit b (b >= 7) lands in group
// g = b - 6 and sub-bucket (v >> (b - 6)) - 64, so each power of two is split into 64 equal parts.

std::size_t ipdv_histogram::bucket_of(std::uint64_t value_ns) {
    constexpr std::uint64_t kExact = std::uint64_t{1} << (kSubBucketBits + 1);  // 128
    if (value_ns < kExact) {
        return value_ns;
    }
    const int highest_bit = 63 - std::countl_zero(value_ns);
    const int shift = highest_bit - kSubBucketBits;
    const std::size_t group = static_cast<std::size_t>(shift);  // 1 for 128..255
    const std::size_t sub = (value_ns >> shift) - 64;
    const std::size_t index = 128 + (group - 1) * 64 + sub;
    return std::min(index, kBucketCount - 1);
}

std::uint64_t ipdv_histogram::bucket_start(std::size_t index) {
    if (index < 128) {
        return index;
    }
    const std::size_t group = (index - 128) / 64 + 1;
    const std::size_t sub = (index - 128) % 64;
    return (std::uint64_t{64} + sub) << group;
}

std::uint64_t ipdv_histogram::bucket_width(std::size_t index) {
    if (index < 128) {
        return 1;
    }
    return std::uint64_t{1} << ((index - 128) / 64 + 1);
}

void ipdv_histogram::add(std::uint64_t value_ns) {
    ++buckets_[bucket_of(value_ns)];
    ++count_;
}

void ipdv_histogram::merge(const ipdv_histogram& other) {
    for (std::size_t i = 0; i < kBucketCount; ++i) {
        buckets_[i] += other.buckets_[i];
    }
    count_ += other.count_;
}

std::uint64_t ipdv_histogram::percentile(double fraction) const {
    if (count_ == 0) {
        return 0;
    }
    fraction = std::clamp(fraction, 0.0, 1.0);
    const auto rank = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
        seen += buckets_[i];
        if (seen >= rank) {
            return bucket_start(i) + bucket_width(i) / 2;
        }
    }
    return bucket_start(kBucketCount - 1);
}

// ---- drop_counters ----

drop_counters& drop_counters::operator+=(const drop_counters& other) {
    before_ready += other.before_ready;
    wrong_length += other.wrong_length;
    implausible_sequence += other.implausible_sequence;
    return *this;
}

// ---- receiver_accounting ----

namespace {

// The arithmetic limit: expected = sequence + 1 must not wrap.
constexpr std::uint64_t kLastUsableSequence = std::numeric_limits<std::uint64_t>::max() - 1;

}  // namespace

receiver_accounting::receiver_accounting(std::uint64_t window, data_limits limits)
    : window_(std::max<std::uint64_t>(64, (window + 63) / 64 * 64)),
      limits_(limits),
      seen_(window_ / 64, 0) {}

void receiver_accounting::ready(std::int64_t ready_ns, double max_bits_per_second) {
    if (!ready_ns_) {
        ready_ns_ = ready_ns;
        max_bits_per_second_ = max_bits_per_second;
    }
}

// Twice the rate the sender is held to (its pacer bursts and timer slack stay far below that) plus a reorder
// window of slack: a legitimate sender never comes near it, and a sequence number beyond it would make every
// number in between count as lost.
std::uint64_t receiver_accounting::max_plausible_sequence(std::int64_t arrival_ns) const {
    if (!(max_bits_per_second_ > 0) || !ready_ns_) {
        return kLastUsableSequence;
    }
    const std::int64_t elapsed_ns = std::max<std::int64_t>(0, saturating_sub(arrival_ns, *ready_ns_));
    const double datagram_bits = 8.0 * std::max<std::uint32_t>(limits_.datagram_bytes, 1);
    const double sendable =
        2.0 * max_bits_per_second_ * (static_cast<double>(elapsed_ns) / 1e9) / datagram_bits +
        static_cast<double>(window_);
    // 2^63 is exact as a double and far beyond any real test.
    if (!(sendable < 9.2e18)) {
        return kLastUsableSequence;
    }
    return static_cast<std::uint64_t>(sendable);
}

bool receiver_accounting::count_if_dropped(std::uint64_t sequence, std::uint32_t bytes,
                                           std::int64_t arrival_ns) {
    auto& drops = counters_.drops;
    if (limits_.wait_for_ready && !ready_ns_) {
        ++drops.before_ready;
    } else if (limits_.datagram_bytes != 0 && bytes != limits_.datagram_bytes) {
        ++drops.wrong_length;
    } else if (sequence > max_plausible_sequence(arrival_ns)) {
        ++drops.implausible_sequence;
    } else {
        return false;
    }
    return true;
}

bool receiver_accounting::test_and_set(std::uint64_t sequence) {
    const std::uint64_t slot = sequence % window_;
    std::uint64_t& word = seen_[slot / 64];
    const std::uint64_t bit = std::uint64_t{1} << (slot % 64);
    const bool was_set = (word & bit) != 0;
    word |= bit;
    return was_set;
}

// Clears the ring slots of the sequence numbers from counters_.expected up to and including `sequence`
// (>= expected): they now stand for these new numbers instead of numbers one window older. The distance is
// compared before adding 1, which would wrap for a peer's 2^64-1; the loop runs fewer than window_ times.
void receiver_accounting::advance_to(std::uint64_t sequence) {
    const std::uint64_t from = counters_.expected;
    if (sequence - from >= window_ - 1) {
        std::fill(seen_.begin(), seen_.end(), 0);
        return;
    }
    for (std::uint64_t s = from; s <= sequence;) {
        const std::uint64_t slot = s % window_;
        const std::uint64_t bit = slot % 64;
        const std::uint64_t run = std::min<std::uint64_t>(64 - bit, sequence - s + 1);
        const std::uint64_t mask = run == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << run) - 1) << bit;
        seen_[slot / 64] &= ~mask;
        s += run;
    }
}

void receiver_accounting::set_boundary(std::int64_t boundary_ns) {
    if (boundary_ns != boundary_ns_) {
        boundary_ns_ = boundary_ns;
        at_boundary_.reset();
    }
}

void receiver_accounting::on_queue_empty(std::int64_t read_start_ns) {
    if (boundary_ns_ != 0 && !at_boundary_ && read_start_ns >= boundary_ns_) {
        at_boundary_ = counters_;
    }
}

arrival receiver_accounting::on_datagram(std::uint64_t sequence, std::uint32_t bytes, std::int64_t sent_ns,
                                         std::int64_t arrival_ns, bool timed) {
    if (boundary_ns_ != 0 && !at_boundary_ && arrival_ns >= boundary_ns_) {
        at_boundary_ = counters_;
    }
    if (count_if_dropped(sequence, bytes, arrival_ns)) {
        return arrival::dropped;
    }
    arrival kind = arrival::in_order;
    if (sequence >= counters_.expected) {
        advance_to(sequence);
        test_and_set(sequence);
        counters_.expected = sequence + 1;
    } else if (counters_.expected - sequence > window_ || test_and_set(sequence)) {
        ++counters_.duplicates;
        return arrival::duplicate;
    } else {
        kind = arrival::out_of_order;
        ++counters_.out_of_order;
    }
    ++counters_.packets_received;
    counters_.bytes_received += bytes;
    if (counters_.first_arrival_ns == 0) {
        counters_.first_arrival_ns = arrival_ns;
    }

    // The send time is the peer's: wrap instead of overflowing (the clocks' offset cancels in differences).
    const auto transit_ns = static_cast<std::int64_t>(static_cast<std::uint64_t>(arrival_ns) -
                                                      static_cast<std::uint64_t>(sent_ns));
    if (timed) {
        // iperf3's recurrence: every distinct datagram in arrival order, out-of-order ones included.
        jitter_.add_transit(static_cast<double>(transit_ns));
        counters_.jitter_ns = jitter_.value();
        min_transit_ns_ = std::min(min_transit_ns_.value_or(transit_ns), transit_ns);
        recent_min_transit_ns_ = std::min(recent_min_transit_ns_.value_or(transit_ns), transit_ns);
    } else {
        ++counters_.untimed;
    }
    // IPDV pairs sequence n with n + 1 whichever arrives first: each pair is formed once, by its later
    // arrival, from the ring slots of the two neighbours (no loop, whatever sequence the peer chose).
    if (sequence > 0) {
        pair_with(transits_[(sequence - 1) % kTransitRing], sequence - 1, transit_ns, timed);
    }
    if (sequence < UINT64_MAX) {
        pair_with(transits_[(sequence + 1) % kTransitRing], sequence + 1, transit_ns, timed);
    }
    transits_[sequence % kTransitRing] = transit_slot{sequence, transit_ns, true, timed};
    return kind;
}

void receiver_accounting::pair_with(const transit_slot& neighbour, std::uint64_t sequence,
                                    std::int64_t transit_ns, bool timed) {
    if (!neighbour.used || neighbour.sequence != sequence) {
        return;  // not received yet, lost, or its slot was reused by a later sequence number
    }
    if (!timed || !neighbour.timed) {
        ++counters_.ipdv_pairs_excluded;
        return;
    }
    ++counters_.ipdv_pairs;
    const auto later = static_cast<std::uint64_t>(transit_ns);
    const auto earlier = static_cast<std::uint64_t>(neighbour.transit_ns);
    ipdv_.add(transit_ns >= neighbour.transit_ns ? later - earlier : earlier - later);
}

std::int64_t receiver_accounting::take_queue_delay_ns() {
    if (!recent_min_transit_ns_ || !min_transit_ns_) {
        return 0;
    }
    const std::int64_t delay = saturating_sub(*recent_min_transit_ns_, *min_transit_ns_);
    recent_min_transit_ns_.reset();
    return delay;
}

// ---- finalization ----

finalize_result finalize_stream(const receiver_counters& at_window_end, const receiver_counters& at_drain_end,
                                std::uint64_t packets_sent) {
    finalize_result result;
    if (at_drain_end.expected > packets_sent) {
        result.error = "the sender reported " + std::to_string(packets_sent) + " datagrams but sequence " +
                       std::to_string(at_drain_end.expected - 1) + " arrived";
        return result;
    }
    if (at_drain_end.packets_received < at_window_end.packets_received) {
        result.error = "the final count (" + std::to_string(at_drain_end.packets_received) +
                       " datagrams) is below the count when the window closed (" +
                       std::to_string(at_window_end.packets_received) + "): the stream did not drain";
        return result;
    }
    stream_totals totals;
    totals.packets_sent = packets_sent;
    totals.packets_received = at_drain_end.packets_received;
    totals.lost_packets = packets_sent - at_drain_end.packets_received;
    totals.out_of_order = at_drain_end.out_of_order;
    totals.duplicates = at_drain_end.duplicates;
    totals.late_packets = at_drain_end.packets_received - at_window_end.packets_received;
    totals.jitter_ns = at_drain_end.jitter_ns;
    result.totals = totals;
    return result;
}

double lost_percent(std::uint64_t lost, std::uint64_t sent) {
    return sent == 0 ? 0.0 : 100.0 * static_cast<double>(lost) / static_cast<double>(sent);
}

}  // namespace speed::udp
