// A token bucket that paces a UDP sender: fine-grained (a burst is at most the bucket: a couple of
// milliseconds of the rate), exact over the long run, and free of clocks of its own so tests drive it with a
// fake one: every call takes the current time.
//
// A sender that wakes up late (a busy host, a descheduled thread) finds the bucket full and loses the credit
// above it. That credit is not thrown away: it becomes debt, paid back at up to a quarter of the rate on top
// of the rate, so the long-run rate stays exact without ever sending a burst larger than the bucket. Debt
// older than a second's worth is forgiven (a sender that cannot keep up must not build an endless backlog),
// and a new rate clears it (the adaptive controller changed its mind).
//
// Debt covers a sender that is late now and then. A sender that is late every time (a host whose CPUs are
// all busy wakes it milliseconds after its timer) never has room to repay: with a 2 ms bucket, a model of it
// woken 3 ms late sent 52 % of the rate, a real one beside six busy loops on two cores 68-86 %. So the
// bucket also grows to 1.25 times the time the sender actually takes between calls (averaged over the last
// ~100 ms, weighted by time, so a stall among many short waits barely moves it), up to 20 ms: the smallest
// burst that still reaches the rate on that host.
#pragma once

#include <cstdint>

namespace speed::udp {

// The bucket of a sender's pacer (net/udp_flow.hpp, net/iperf3_udp_sender.hpp): at most this much of the rate
// (and at least two datagrams), fine-grained pacing, yet enough slack that a timer waking up 100 us late
// costs no rate.
inline constexpr std::int64_t kSenderBurstNs = 2'000'000;

class pacer {
  public:
    static constexpr double kCatchUpShare = 0.25;  // debt is repaid at up to this share of the rate
    static constexpr std::int64_t kMostDebtNs = 1'000'000'000;  // at most this much of the rate is owed
    static constexpr double kWakeGapShare = 1.25;               // the bucket holds this many wake gaps
    static constexpr double kWakeGapWindowNs = 100e6;           // the gap is averaged over about this long
    static constexpr std::int64_t kLongestWakeGapBurstNs = 20'000'000;  // a late sender's bucket, at most

    // The bucket holds at most `burst_ns` worth of the rate, and never less than `min_burst_bytes` (so at
    // least a datagram or two fits even at a low rate). It starts holding `min_burst_bytes`.
    pacer(double bits_per_second, std::int64_t burst_ns, std::uint64_t min_burst_bytes, std::int64_t now_ns);

    // Changes the rate from `now_ns` on; credit earned at the old rate is kept.
    void set_rate(double bits_per_second, std::int64_t now_ns);
    double bits_per_second() const { return bytes_per_ns_ * 8e9; }
    // The most the bucket holds at the current rate: `burst_ns` of it, or more for a sender that is late
    // every time (see above).
    std::uint64_t depth_bytes() const;
    // The time-weighted average time between calls, ns.
    double wake_gap_ns() const { return wake_gap_ns_; }
    // Credit lost to lateness that is still to be paid back, bytes.
    double debt_bytes() const { return debt_; }

    // How many datagrams of `datagram_bytes` may leave at `now_ns`.
    std::uint64_t allowed(std::int64_t now_ns, std::uint32_t datagram_bytes);
    // Takes `bytes` out of the bucket (after sending them).
    void consume(std::uint64_t bytes);
    // Nanoseconds from `now_ns` until `bytes` are allowed; 0 when they are now.
    std::int64_t wait_ns(std::int64_t now_ns, std::uint64_t bytes);
    // The departure time datagram `index` of a batch handed to the kernel at `batch_ns` carries: the batch's
    // time plus `index` datagrams' worth of the current rate, the spacing the schedule gives them. One stamp
    // for the whole batch would turn the batch into delay variation wherever a bottleneck near the rate
    // spaces the datagrams out; the offset restarts with every batch, so a stamp is never more than one
    // batch ahead of the time the datagram was handed over.
    std::int64_t departure_ns(std::int64_t batch_ns, std::uint64_t index, std::uint32_t datagram_bytes) const;

  private:
    void refill(std::int64_t now_ns);

    double bytes_per_ns_;
    std::int64_t burst_ns_;
    std::uint64_t min_burst_bytes_;
    double tokens_;
    double debt_ = 0;
    double wake_gap_ns_ = 0;
    std::int64_t last_ns_;
};

}  // namespace speed::udp
