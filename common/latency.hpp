// Turning round-trip samples into the latency figures users read: loaded-latency increase, bufferbloat grade
// and responsiveness in round trips per minute (RPM). docs/methodology.md cites the sources.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

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
    bool client_wait_removed = false;
    bool server_hold_removed = false;
    bool server_hold_rejected = false;  // the server reported a hold that cannot be true: not removed
};

// The most a server's reported hold may be before it is not believed: the server answers on its control
// thread, so a hold of milliseconds already means a starved server, and more than this means a broken one.
inline constexpr std::int64_t kMostServerHoldNs = 10'000'000;
// What the corrections must leave of a round trip: kernel-to-kernel round trips on loopback measured 10-40 us
// (14 us the least under load), so a remainder below this means a correction was wrong.
inline constexpr std::int64_t kLeastNetworkRoundTripNs = 2'000;

// Removes the client's wait and the server's hold from the application round trip, each only when it is
// plausible: the client's wait when it is not negative and leaves at least kLeastNetworkRoundTripNs, the
// server's hold (a figure the peer chose) when it is at most kMostServerHoldNs and leaves at least
// kLeastNetworkRoundTripNs. A wall-clock step or a misbehaving server cannot make a figure up.
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
    std::optional<double> foreign_rpm;  // from probes on their own connection (application round trips)
    std::optional<double> self_rpm;     // from the load-generating connections (kernel TCP RTT)
};

// The draft's TCP-only formula with our probe types: the mean of the foreign and the self responsiveness,
// each 60000 / trimmed_mean_95; with one kind of sample only, that kind alone. Nothing without samples.
std::optional<responsiveness> responsiveness_of(std::span<const double> foreign_rtt_ms,
                                                std::span<const double> self_rtt_ms);

// The part of a load's measured window whose samples RPM uses, on any one clock: the draft computes
// responsiveness once the load has reached working conditions, from its last kStableSeconds (MAD = 4
// intervals of 1 s). Ours has a fixed length, so the stable part is its last kStableSeconds, and never more
// than its second half: the first half holds slow start and the queue's filling.
inline constexpr std::int64_t kStableSeconds = 4;
struct time_span {
    std::int64_t from_ns = 0;
    std::int64_t to_ns = 0;
    bool contains(std::int64_t t) const { return t >= from_ns && t <= to_ns; }
};
time_span stable_part(time_span window);

// The samples whose times (parallel to `values`) lie in `span`.
std::vector<double> samples_in(std::span<const double> values, std::span<const std::int64_t> times_ns,
                               time_span span);
// For a series taken at a regular period over the whole window, in time order, but without times: the
// samples that stand for `part` of `window`, by share of the count (the last share for a part that ends the
// window).
std::vector<double> last_share(std::span<const double> values, time_span window, time_span part);
// The same for any `part` of `window`, by position: sample i of n stands for the time (i + 1/2) / n of the
// way through the window (--bidir cuts each direction's series to the stable part of both windows' overlap).
std::vector<double> share_in(std::span<const double> values, time_span window, time_span part);

}  // namespace speed::latency
