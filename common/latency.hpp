// Turning round-trip samples into the latency figures users read: loaded-latency increase, bufferbloat grade
// and responsiveness in round trips per minute (RPM). docs/methodology.md cites the sources.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace speed::latency {

// One probe's timing, all in ns. `sent` and `read` are the client's monotonic clock; `client_wait` is how
// long the reply sat in the client's kernel before the client read it (from the kernel's receive timestamp),
// and `server_hold` how long the server held the probe (from the PONG).
struct probe_timing {
    std::int64_t sent_ns = 0;
    std::int64_t read_ns = 0;
    std::optional<std::int64_t> client_wait_ns;
    std::int64_t server_hold_ns = 0;
};

struct probe_round_trip {
    double network_ms = 0.0;      // application round trip minus both ends' own delays: what ping measures
    double application_ms = 0.0;  // from writing the PING to reading the PONG
};

// Removes the client's wait and the server's hold from the application round trip, each only when it is
// plausible (not negative, not more than what is left): a wall-clock step cannot make a figure up.
probe_round_trip round_trip_of(const probe_timing& timing);

// DSLReports' bufferbloat bands, applied to the increase of the median RTT under load over the idle median.
enum class bufferbloat_grade { a_plus, a, b, c, d, f };

bufferbloat_grade grade_for_increase(double increase_ms);
std::string_view name_of(bufferbloat_grade grade);  // "A+", "A", "B", "C", "D", "F"

// The IETF responsiveness draft's aggregate: a single-sided trimmed mean that drops the samples above the
// 95th percentile. 0 for no samples.
double trimmed_mean_95(std::span<const double> samples_ms);

// RPM = 60000 / RTT in ms.
double rpm_for_rtt(double rtt_ms);

struct responsiveness {
    double rpm = 0.0;                   // the figure to report
    std::optional<double> foreign_rpm;  // from probes on their own connection
    std::optional<double> self_rpm;     // from the load-generating connections (kernel TCP RTT)
};

// The draft's TCP-only formula with our probe types: the mean of the foreign and the self responsiveness,
// each 60000 / trimmed_mean_95; with one kind of sample only, that kind alone. Nothing without samples.
std::optional<responsiveness> responsiveness_of(std::span<const double> foreign_rtt_ms,
                                                std::span<const double> self_rtt_ms);

}  // namespace speed::latency
