// What a server allows, the check of a client's test request against it, and the budget a running test must
// stay within. Everything here is pure so the same code runs in the server and in the fuzzers.
#pragma once

#include <cstdint>
#include <optional>

#include "common/protocol.hpp"

namespace speed {

struct server_limits {
    std::uint16_t max_streams = 32;
    std::uint32_t max_duration_ms = 60'000;  // the measured window
    std::uint32_t max_omit_ms = 30'000;      // the warm-up
    std::uint32_t min_interval_ms = 100;  // shorter report intervals are refused (0 = no intervals is fine)
    std::uint64_t max_bitrate = 0;        // bits/s for what the server sends; 0 = no cap
    std::uint64_t max_bytes = 0;          // payload bytes one test may move (warm-up included); 0 = no cap
    // The slowest paced test (-b) the server runs, bits/s (0 = any): a test paced at a trickle would hold a
    // session slot for next to nothing. 100 kbit/s is below the slowest ADSL uploads (128 kbit/s) and EDGE,
    // so no real link is kept from measuring; unpaced tests (bitrate 0) are never refused by it.
    std::uint64_t min_bitrate = 100'000;
    std::uint32_t max_tests_per_session = 8;
    // UDP has no congestion control of its own: a public server caps each UDP test (both directions) unless
    // the operator says otherwise (--max-bitrate sets both caps; 0 = no cap).
    std::uint64_t max_udp_bitrate = 1'000'000'000;
    bool udp = true;  // --no-udp turns UDP tests off
};

// The smallest measured window a test may ask for: shorter windows say more about the clock than the link.
inline constexpr std::uint32_t kMinDurationMs = 100;

// Returns the refusal to send, or nothing when the request is acceptable.
std::optional<proto::error> validate_request(const proto::test_request& request, const server_limits& limits);

// The rate the sender of an accepted test paces at, bits/s (0 = as fast as it can): the smallest of the
// requested bitrate, the server's max_bitrate (max_udp_bitrate for UDP) and the rate that moves max_bytes in
// the test's warm-up plus window. The server applies it to what it sends; speedcli applies it to its uploads
// (it learns the caps from WELCOME), so a well-behaved client never trips the receiver's budget below.
std::uint64_t sender_bitrate(const proto::test_request& request, const server_limits& limits);

// The most the server lets a test send, bits/s (0 = no cap), whatever the client asked for: the transport's
// rate cap (max_bitrate, or max_udp_bitrate for UDP) and the rate that moves max_bytes in the test's warm-up
// plus window. UDP_SETUP announces it for UDP tests; speedcli reports it with each direction, and the running
// test's budget is built from it (a client's own --bitrate is not a server cap).
std::uint64_t server_rate_cap(const proto::test_request& request, const server_limits& limits);

// A per-stream pacing rate in bytes/s for a direction's bits/s spread over `streams` (0 stays unlimited; a
// positive rate never rounds down to 0, which would mean unlimited).
std::uint64_t per_stream_pacing(std::uint64_t bits_per_second, std::uint16_t streams);

// The stall timeout for a test whose sender paces at `bits_per_second` (0 = unpaced) over `streams`: the
// configured one, stretched for very slow paces to the time four full-size segments (kStallSegmentBytes) take
// on one stream, since the kernel sends a paced stream's segments in bursts of at least two.
inline constexpr std::uint64_t kStallSegmentBytes = 4 * 1500;
std::int64_t stall_timeout_ns(std::uint64_t bits_per_second, std::uint16_t streams,
                              std::int64_t configured_ns);

// What a running test may move, checked by the server against the bytes it receives (upload) or that the
// client acknowledged (download). The sender is expected to pace at `bits_per_second`; the budget allows
// kRateMargin above that rate plus a burst (burst_bytes(): kBurstSeconds at the rate, at most kBurstShare of
// max_bytes, at least kMinBurstBytes), and in total at most max_bytes × kRateMargin, burst or not, so that
// the byte cap holds within 1.25x whatever the test's length.
struct test_budget {
    static constexpr double kRateMargin = 1.25;
    static constexpr double kBurstSeconds = 1.0;
    static constexpr std::uint64_t kMinBurstBytes = 256 * 1024;
    static constexpr double kBurstShare = 0.25;

    std::uint64_t bits_per_second = 0;  // 0 = no rate cap
    std::uint64_t max_bytes = 0;        // 0 = no byte cap

    static test_budget for_test(const proto::test_request& request, const server_limits& limits);
    bool unlimited() const { return bits_per_second == 0 && max_bytes == 0; }
    // The burst the rate check allows on top of the rate: max(kMinBurstBytes, min(kBurstSeconds at the rate,
    // kBurstShare × max_bytes)); without a byte cap, max(kMinBurstBytes, kBurstSeconds at the rate).
    double burst_bytes() const;
    // The refusal once `bytes` moved in `elapsed_ns` since the test's data started exceed the budget.
    std::optional<proto::error> check(std::int64_t elapsed_ns, std::uint64_t bytes) const;
};

}  // namespace speed
