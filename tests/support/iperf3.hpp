// Which iperf3 the tests run, one home for it: $SPEED_IPERF3 when set (scripts/iperf3-matrix sets it to each
// iperf3 it built, to run the interop tests, ctest label iperf3, against every version), else Debian's
// /usr/bin/iperf3 (3.12 in CI).
#pragma once

#include <compare>
#include <optional>
#include <string>

namespace speed::testing {

// The path of the iperf3 the tests run.
const std::string& iperf3_binary();

// An iperf3 release: 3.21 is {3, 21, 0}; a build between releases ("3.21+") counts as its last release.
struct iperf3_version {
    int major = 0;
    int minor = 0;
    int patch = 0;
    auto operator<=>(const iperf3_version&) const = default;
};

// The version in the first line of `iperf3 --version` ("iperf 3.12 (cJSON 1.7.15)"); nullopt when the text
// names none.
std::optional<iperf3_version> parse_iperf3_version(const std::string& version_output);

// iperf3_binary()'s version, asked once per test process; nullopt when it does not run or names none.
std::optional<iperf3_version> iperf3_binary_version();

// Whether iperf3_binary() runs. When it does not, prints "SKIP: <path> ..." with the reason (ctest reports
// the test as skipped) and returns false.
bool have_iperf3();

// Whether iperf3_binary() is `version` or newer (false when its version is unknown).
bool iperf3_at_least(const iperf3_version& version);

// Whether iperf3_binary() is `version` or newer. When it is older, prints "SKIP: <path> is iperf3 X.Y: <why>"
// and returns false, for a test that cannot check anything with an older iperf3.
bool skip_unless_iperf3_at_least(const iperf3_version& version, const std::string& why);

}  // namespace speed::testing
