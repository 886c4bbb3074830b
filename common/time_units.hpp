// The project's time conversions, in one place. Durations that the code waits for or schedules are
// std::chrono types; seconds come in as doubles from the command line; the protocol carries whole
// milliseconds (u32) and nanoseconds (integers); reports show fractional seconds and milliseconds (doubles).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <vector>

namespace speed::units {

// Seconds from the command line, rounded to the nearest nanosecond or millisecond.
inline std::chrono::nanoseconds seconds_to_ns(double seconds) {
    return std::chrono::nanoseconds(std::llround(seconds * 1e9));
}
inline std::chrono::milliseconds seconds_to_ms(double seconds) {
    return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

// Seconds from the command line as the whole milliseconds a TEST_REQUEST carries.
inline std::uint32_t seconds_to_wire_ms(double seconds) {
    return static_cast<std::uint32_t>(std::llround(seconds * 1000.0));
}

// Nanoseconds as the whole microseconds (u32) the protocol carries, clamped to its range.
inline std::uint32_t ns_to_wire_us(std::int64_t ns) {
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ns / 1000, 0, UINT32_MAX));
}

// Integer nanoseconds or microseconds (from the wire or a clock) as figures for a report.
inline double ns_to_seconds(std::integral auto ns) {
    return static_cast<double>(ns) / 1e9;
}
inline double ns_to_ms(std::integral auto ns) {
    return static_cast<double>(ns) / 1e6;
}
inline std::vector<double> us_to_ms(const std::vector<std::uint32_t>& samples_us) {
    std::vector<double> ms;
    ms.reserve(samples_us.size());
    for (auto us : samples_us) {
        ms.push_back(us / 1000.0);
    }
    return ms;
}

}  // namespace speed::units
