// One monotonic clock for every timestamp in the project: intervals, windows, probe RTTs.
#pragma once

#include <chrono>
#include <cstdint>

namespace speed::net {

using clock = std::chrono::steady_clock;

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
}

}  // namespace speed::net
