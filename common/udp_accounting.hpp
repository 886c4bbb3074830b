// Receiver-side accounting of one UDP stream, free of I/O so every rule has exact test vectors
// (docs/methodology.md, "UDP").
//
// Each DATA datagram is classified by its sequence number: new and in order, new but out of order (below the
// highest sequence seen), or a duplicate. Received counts distinct sequence numbers only, so after the sender
// says how many it sent, lost = sent - received exactly. Jitter is RFC 3550's running estimate over arrival
// order (as iperf3 computes it); IPDV (RFC 5481) is the delay difference of consecutive sequence numbers,
// whatever order they arrived in, kept in a histogram for percentiles. Only datagrams whose arrival time is
// their own (not the stamp of a GRO message they were coalesced into) enter jitter and IPDV.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/statistics.hpp"

namespace speed::udp {

// Non-negative nanosecond values in log-linear buckets: exact below 128 ns, within 1/64 (1.6 %) above, up to
// 2^42 ns (73 minutes; larger values land in the last bucket). Histograms of several streams add up.
class ipdv_histogram {
  public:
    static constexpr int kSubBucketBits = 6;                    // 64 sub-buckets per power of two
    static constexpr std::size_t kBucketCount = 128 + 64 * 35;  // groups 1..35 reach 2^42

    void add(std::uint64_t value_ns);
    void merge(const ipdv_histogram& other);
    std::uint64_t count() const { return count_; }
    // The value at `fraction` (0..1) of the samples, nearest rank (the smallest bucket holding at least
    // ceil(fraction * count) samples), reported as the middle of that bucket. 0 without samples.
    std::uint64_t percentile(double fraction) const;

    static std::size_t bucket_of(std::uint64_t value_ns);
    // The smallest value of bucket `index` and how many values it spans.
    static std::uint64_t bucket_start(std::size_t index);
    static std::uint64_t bucket_width(std::size_t index);

  private:
    std::vector<std::uint64_t> buckets_ = std::vector<std::uint64_t>(kBucketCount, 0);
    std::uint64_t count_ = 0;
};

// DATA datagrams a receiver refused, per reason (docs/protocol.md, "What the receiver drops"). None of them
// counts as received, lost, out of order or duplicate.
struct drop_counters {
    std::uint64_t before_ready = 0;          // arrived before the test's streams were ready
    std::uint64_t wrong_length = 0;          // not the test's datagram size
    std::uint64_t implausible_sequence = 0;  // beyond what the sender could have sent by then
    std::uint64_t total() const { return before_ready + wrong_length + implausible_sequence; }
    drop_counters& operator+=(const drop_counters& other);
    bool operator==(const drop_counters&) const = default;
};

// What a receiver holds DATA to. The defaults check nothing but the arithmetic limit (the last sequence
// number, 2^64-1, is never plausible: expected = sequence + 1 would wrap); ready() adds the rate bound.
struct data_limits {
    std::uint32_t datagram_bytes = 0;  // the test's datagram size; 0 accepts any length
    bool wait_for_ready = false;       // DATA before ready() is dropped
};

// Cumulative counters of one stream, as the receiving thread publishes them.
struct receiver_counters {
    std::uint64_t packets_received = 0;  // distinct sequence numbers
    std::uint64_t bytes_received = 0;    // UDP payload bytes of those datagrams
    std::uint64_t expected = 0;          // highest sequence received + 1
    std::uint64_t out_of_order = 0;      // distinct datagrams that arrived after a higher sequence
    std::uint64_t duplicates = 0;        // datagrams whose sequence had already arrived (or too old to tell)
    double jitter_ns = 0.0;              // RFC 3550 running estimate
    std::int64_t first_arrival_ns = 0;   // 0 until the first DATA datagram
    drop_counters drops;                 // DATA refused (none of the counts above include them)
    std::uint64_t ipdv_pairs = 0;        // consecutive sequence numbers both received and timed
    std::uint64_t ipdv_pairs_excluded = 0;  // both received, but one's arrival time was a batch's
    std::uint64_t untimed = 0;              // distinct datagrams left out of jitter and IPDV for that reason

    // Sequence numbers skipped so far (expected - received): the loss estimate while a test runs.
    std::uint64_t gaps() const { return expected - packets_received; }
};

enum class arrival { in_order, out_of_order, duplicate, dropped };

class receiver_accounting {
  public:
    // Reordering deeper than this many sequence numbers cannot be told from duplication.
    static constexpr std::uint64_t kDefaultWindow = std::uint64_t{1} << 20;

    // Sequence numbers whose transit times are kept for IPDV: a datagram pairs with a neighbour that arrived
    // up to this many sequence numbers' worth of slots earlier.
    static constexpr std::size_t kTransitRing = 4096;

    explicit receiver_accounting(std::uint64_t window = kDefaultWindow, data_limits limits = {});

    // The sender may send from `ready_ns` (receiver clock) on, at most `max_bits_per_second` on this stream
    // (0: no rate bound): sequence numbers above 2 x that rate x (arrival - ready_ns) / datagram bits +
    // window are implausible. The first call counts.
    void ready(std::int64_t ready_ns, double max_bits_per_second);
    bool is_ready() const { return ready_ns_.has_value(); }

    // One DATA datagram of `bytes` UDP payload bytes, sent at `sent_ns` (sender clock) and received at
    // `arrival_ns` (receiver clock; the two clocks may differ by a constant). `timed` says that arrival_ns is
    // this datagram's own arrival; false for the later datagrams of a GRO message, which carry the stamp of
    // the message's first. Any values are safe: what data_limits refuses is dropped, counted in
    // counters().drops and changes nothing else.
    arrival on_datagram(std::uint64_t sequence, std::uint32_t bytes, std::int64_t sent_ns,
                        std::int64_t arrival_ns, bool timed = true);

    // Arrival-time binning of the measured window (docs/methodology.md, "Goodput"). set_boundary() arms the
    // next interval boundary (receiver clock; 0 disarms); the counters as they stood just before the first
    // datagram that arrived at or after it are kept as boundary_counters(): everything that arrived before
    // the boundary and nothing after, as long as the socket hands datagrams over in arrival order. Arming the
    // same boundary again changes nothing; a new one forgets the previous snapshot.
    void set_boundary(std::int64_t boundary_ns);
    std::int64_t boundary_ns() const { return boundary_ns_; }
    // A read that began at `read_start_ns` found the socket empty: whatever arrived before then was counted,
    // so a boundary at or before it is passed with the counters as they are.
    void on_queue_empty(std::int64_t read_start_ns);
    // The counters at the armed boundary, once a datagram (or an empty read) showed that the receiver has
    // read past it; empty before.
    const std::optional<receiver_counters>& boundary_counters() const { return at_boundary_; }

    const receiver_counters& counters() const { return counters_; }
    const ipdv_histogram& ipdv() const { return ipdv_; }
    // Queueing delay estimate for FEEDBACK: the smallest transit time since the previous call minus the
    // smallest ever (both include the clock offset, which cancels). 0 when nothing arrived since.
    std::int64_t take_queue_delay_ns();

    // The highest sequence number a sender held to the limits could have sent by `arrival_ns`.
    std::uint64_t max_plausible_sequence(std::int64_t arrival_ns) const;

  private:
    struct transit_slot {
        std::uint64_t sequence = 0;
        std::int64_t transit_ns = 0;
        bool used = false;
        bool timed = false;
    };

    bool test_and_set(std::uint64_t sequence);
    void advance_to(std::uint64_t sequence);
    bool count_if_dropped(std::uint64_t sequence, std::uint32_t bytes, std::int64_t arrival_ns);
    void pair_with(const transit_slot& neighbour, std::uint64_t sequence, std::int64_t transit_ns,
                   bool timed);

    std::uint64_t window_;
    data_limits limits_;
    std::optional<std::int64_t> ready_ns_;
    double max_bits_per_second_ = 0;
    std::vector<std::uint64_t> seen_;  // a ring of window_ bits, bit s % window_ for sequence s
    receiver_counters counters_;
    stats::rfc3550_jitter jitter_;
    ipdv_histogram ipdv_;
    std::vector<transit_slot> transits_ = std::vector<transit_slot>(kTransitRing);  // slot s % kTransitRing
    std::int64_t boundary_ns_ = 0;
    std::optional<receiver_counters> at_boundary_;
    std::optional<std::int64_t> min_transit_ns_;
    std::optional<std::int64_t> recent_min_transit_ns_;
};

// The final figures of one stream once the sender's count is known.
struct stream_totals {
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t lost_packets = 0;  // packets_sent - packets_received
    std::uint64_t out_of_order = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t late_packets = 0;  // received after the measured window closed: counted, not lost
    double jitter_ns = 0.0;
    bool operator==(const stream_totals&) const = default;
};

// Combines the counters at the end of the window and after the drain with the sender's count. Fails (with
// the reason) when the receiver saw a sequence number the sender says it never sent, or when the final
// counters are behind the window's (they were not taken after the drain).
struct finalize_result {
    std::optional<stream_totals> totals;
    std::string error;
};
finalize_result finalize_stream(const receiver_counters& at_window_end, const receiver_counters& at_drain_end,
                                std::uint64_t packets_sent);

// lost / sent in percent; 0 when nothing was sent.
double lost_percent(std::uint64_t lost, std::uint64_t sent);

}  // namespace speed::udp
