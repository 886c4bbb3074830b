// One direction of netem-tun as given on its command line: "DEVICE:DELAY_MS[:LOSS_PERCENT[:JITTER_MS]]".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace speed::netem {

struct path_spec {
    std::string device;         // TUN interface name
    std::int64_t delay_ns = 0;  // one-way delay added to every packet
    double loss_probability = 0.0;
    // uniform extra delay in [0, jitter] per packet; nothing: --jitter's value applies
    std::optional<std::int64_t> jitter_ns;
};

// Parses "tun-up:20" (20 ms, no loss), "tun-up:10.5:1" (10.5 ms, 1 % loss) or "tun-up:5:0:4" (5 ms plus
// uniform 0-4 ms). Returns nothing and a reason in `error` for an empty or over-long device name (IFNAMSIZ),
// a negative or non-numeric delay or jitter, a delay or jitter over 10 s, or a loss outside 0..100 %.
std::optional<path_spec> parse_path_spec(std::string_view text, std::string* error);

// Milliseconds from 0 to 10 s as whole nanoseconds; nothing for anything else (negative, NaN, too long).
std::optional<std::int64_t> parse_milliseconds(std::string_view text);

}  // namespace speed::netem
