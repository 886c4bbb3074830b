// Reading a Prometheus text exposition in tests.
#pragma once

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

namespace speed::testing {

// The value of the sample whose name and labels are exactly `series` (e.g. `x_total{a="b"}`) in an
// exposition, or nothing when there is no such line.
inline std::optional<double> sample_value(const std::string& exposition, const std::string& series) {
    std::istringstream lines(exposition);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ') {
            return std::strtod(line.c_str() + series.size() + 1, nullptr);
        }
    }
    return std::nullopt;
}

}  // namespace speed::testing
