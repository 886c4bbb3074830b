#include "client/iperf3_bidir_windows.hpp"

#include <algorithm>

#include "common/time_units.hpp"

namespace speed::client {

namespace {

// A span from the server's results is the peer's number: one longer than a day (or below 0, or NaN) is taken
// as a day (or 0), so the arithmetic below stays in range.
constexpr double kLongestSpanSeconds = 86400.0;

std::int64_t span_ns(double seconds) {
    if (!(seconds > 0.0)) {
        return 0;
    }
    return units::seconds_to_ns(std::min(seconds, kLongestSpanSeconds)).count();
}

}  // namespace

double iperf3_bidir_overlap_seconds(const iperf3_bidir_windows& windows) {
    const std::int64_t download_from = windows.download_closed_ns - span_ns(windows.download_seconds);
    const std::int64_t upload_from = windows.running_ns + span_ns(windows.upload_warm_up_seconds);
    const std::int64_t upload_to = upload_from + span_ns(windows.upload_seconds);
    const std::int64_t from = std::max(download_from, upload_from);
    const std::int64_t to = std::min(windows.download_closed_ns, upload_to);
    return units::ns_to_seconds(std::max<std::int64_t>(0, to - from));
}

}  // namespace speed::client
