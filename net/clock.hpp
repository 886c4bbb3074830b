// One monotonic clock for every timestamp in the project: intervals, windows, probe RTTs.
#pragma once

#include <chrono>
#include <cstdint>

namespace speed::net {

using clock = std::chrono::steady_clock;

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
}

inline std::chrono::nanoseconds milliseconds_to_duration(std::uint32_t ms) {
    return std::chrono::milliseconds(ms);
}

}  // namespace speed::net
