// iperf3's UDP data path (esnet/iperf, src/iperf_udp.c), pure: the "connect" datagram that opens each UDP
// stream, the header every data datagram starts with, and the receiver's accounting exactly as iperf3
// computes it (lost = gaps in the sequence, out-of-order, RFC 1889 jitter), so that an iperf3 client prints
// speedsrv's receiver figures with their usual meaning.
//
// A data datagram starts with the sender's clock (seconds and microseconds, 32-bit big-endian each) and the
// datagram's sequence number, counting from 1: 32-bit big-endian, or 64-bit with --udp-counters-64bit. The
// rest is filler. The peer chooses every one of these numbers: nothing here loops over them, and the counts
// saturate instead of wrapping.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace speed::iperf3 {

// ---- the connect datagram ----

// Which greeting a 4-byte datagram is: none (anything else, of any length), iperf3's current one (3.17 on),
// or the legacy one older clients send. The answer is the matching reply, 4 bytes: never more than came in.
inline constexpr std::size_t kUdpConnectSize = 4;
enum class udp_connect : std::uint8_t { none, current, legacy };
udp_connect classify_udp_connect(std::span<const std::uint8_t> datagram);
std::array<std::uint8_t, 4> udp_connect_reply(udp_connect greeting);

// ---- the data header ----

inline constexpr std::size_t kUdpHeaderSize = 12;    // sec, usec, 32-bit count
inline constexpr std::size_t kUdpHeaderSize64 = 16;  // sec, usec, 64-bit count
std::size_t udp_header_size(bool counters_64bit);

struct udp_header {
    std::uint32_t seconds = 0;
    std::uint32_t microseconds = 0;
    std::uint64_t count = 0;  // the datagram's sequence number; the first is 1
    bool operator==(const udp_header&) const = default;
};

// Writes `h` into the first udp_header_size() bytes of `out` (false, nothing written, when it is shorter).
// A 32-bit count keeps the low 32 bits, as iperf3's sender does.
bool write_udp_header(std::span<std::uint8_t> out, const udp_header& h, bool counters_64bit);
// The header at the start of `datagram`; nothing when the datagram is shorter than it.
std::optional<udp_header> read_udp_header(std::span<const std::uint8_t> datagram, bool counters_64bit);

// A time as the header carries it, from nanoseconds of any clock (iperf3 only ever subtracts two of them
// from the same sender). The seconds keep their low 32 bits.
udp_header udp_header_at(std::int64_t clock_ns, std::uint64_t count);

// ---- the receiver ----

// One stream's figures as iperf3's receiver keeps them (iperf_udp_recv, iperf_reset_stats), and what its
// EXCHANGE_RESULTS carries.
struct udp_receiver_figures {
    std::uint64_t bytes = 0;            // received after the warm-up (iperf3 resets it when -O ends)
    std::uint64_t packets = 0;          // the highest sequence number seen (iperf3's packet_count)
    std::uint64_t errors = 0;           // lost: gaps in the sequence, less the late arrivals that filled them
    std::uint64_t out_of_order = 0;     // datagrams at or below the highest sequence number seen
    double jitter_seconds = 0.0;        // RFC 1889 6.3.1, smoothed by 1/16; reset when the warm-up ends
    std::uint64_t omitted_packets = 0;  // packets, errors and out_of_order when the warm-up ended
    std::uint64_t omitted_errors = 0;
    std::uint64_t omitted_out_of_order = 0;
    // speedsrv's own figures, not in iperf3's results: the warm-up's bytes (for the server's metrics) and the
    // datagrams counted, warm-up included.
    std::uint64_t omitted_bytes = 0;
    std::uint64_t datagrams = 0;
    bool operator==(const udp_receiver_figures&) const = default;
};

class udp_receiver {
  public:
    // A datagram of `bytes` bytes with header `h` read at `arrival_ns` (the receiver's clock). Datagrams
    // too short for the header are counted as bytes only, as iperf3 does.
    void on_datagram(std::size_t bytes, const std::optional<udp_header>& h, std::int64_t arrival_ns);
    // The warm-up (-O) ended: what came so far is set apart.
    void end_warm_up();
    const udp_receiver_figures& figures() const { return figures_; }

  private:
    udp_receiver_figures figures_;
    double previous_transit_ = 0.0;
    bool timed_ = false;  // a datagram with a header arrived: previous_transit_ holds its transit
};

// ---- the sender ----

// One stream's figures as iperf3's sender keeps them: EXCHANGE_RESULTS carries bytes less omitted_bytes,
// packets and omitted_packets.
struct udp_sender_figures {
    std::uint64_t bytes = 0;
    std::uint64_t packets = 0;        // the last sequence number sent
    std::uint64_t omitted_bytes = 0;  // bytes and packets when the warm-up ended
    std::uint64_t omitted_packets = 0;
    bool operator==(const udp_sender_figures&) const = default;
};

// The transit time iperf3 takes for jitter: |arrival - sent| in seconds, at microsecond resolution (its
// iperf_time_diff is an absolute difference). `arrival_ns` and the header's time are on unrelated clocks;
// only differences between two transits mean anything.
double udp_transit_seconds(const udp_header& h, std::int64_t arrival_ns);

}  // namespace speed::iperf3
