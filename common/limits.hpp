// What a server allows, and the check of a client's test request against it. The check is pure so the same
// code validates on the server and is fuzzed on its own.
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
    // UDP has no congestion control of its own: a public server caps each UDP test (both directions) unless
    // the operator says otherwise (--max-bitrate sets both caps; 0 = no cap).
    std::uint64_t max_udp_bitrate = 1'000'000'000;
    bool udp = true;  // --no-udp turns UDP tests off
};

// The smallest measured window a test may ask for: shorter windows say more about the clock than the link.
inline constexpr std::uint32_t kMinDurationMs = 100;

// Returns the refusal to send, or nothing when the request is acceptable.
std::optional<proto::error> validate_request(const proto::test_request& request, const server_limits& limits);

}  // namespace speed
