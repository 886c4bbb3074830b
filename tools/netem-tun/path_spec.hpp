// One direction of netem-tun as given on its command line: "DEVICE:DELAY_MS[:LOSS_PERCENT]".
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
};

// Parses "tun-up:20" (20 ms, no loss) or "tun-up:10.5:1" (10.5 ms, 1 % loss). Returns nothing and a reason in
// `error` for an empty or over-long device name (IFNAMSIZ), a negative or non-numeric delay, a delay over
// 10 s, or a loss outside 0..100 %.
std::optional<path_spec> parse_path_spec(std::string_view text, std::string* error);

}  // namespace speed::netem
