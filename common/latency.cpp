#include "common/latency.hpp"

#include <algorithm>
#include <cmath>

#include "common/statistics.hpp"

namespace speed::latency {

probe_round_trip round_trip_of(const probe_timing& timing) {
    const std::int64_t application_ns = std::max<std::int64_t>(0, timing.read_ns - timing.sent_ns);
    probe_round_trip trip;
    std::int64_t network_ns = application_ns;
    if (timing.client_wait_ns && *timing.client_wait_ns >= 0 &&
        *timing.client_wait_ns <= network_ns - kLeastNetworkRoundTripNs) {
        network_ns -= *timing.client_wait_ns;
        trip.client_wait_removed = true;
    }
    if (timing.server_hold_ns >= 0 && timing.server_hold_ns <= kMostServerHoldNs &&
        timing.server_hold_ns <= network_ns - kLeastNetworkRoundTripNs) {
        network_ns -= timing.server_hold_ns;
        trip.server_hold_removed = true;
    } else if (timing.server_hold_ns != 0) {
        trip.server_hold_rejected = true;
    }
    trip.network_ms = static_cast<double>(network_ns) / 1e6;
    trip.application_ms = static_cast<double>(application_ns) / 1e6;
    return trip;
}

bufferbloat_grade grade_for_increase(double increase_ms) {
    if (increase_ms < 5.0) {
        return bufferbloat_grade::a_plus;
    }
    if (increase_ms < 30.0) {
        return bufferbloat_grade::a;
    }
    if (increase_ms < 60.0) {
        return bufferbloat_grade::b;
    }
    if (increase_ms < 200.0) {
        return bufferbloat_grade::c;
    }
    if (increase_ms < 400.0) {
        return bufferbloat_grade::d;
    }
    return bufferbloat_grade::f;
}

std::string_view name_of(bufferbloat_grade grade) {
    switch (grade) {
        case bufferbloat_grade::a_plus:
            return "A+";
        case bufferbloat_grade::a:
            return "A";
        case bufferbloat_grade::b:
            return "B";
        case bufferbloat_grade::c:
            return "C";
        case bufferbloat_grade::d:
            return "D";
        case bufferbloat_grade::f:
            return "F";
    }
    return "?";
}

double trimmed_mean_95(std::span<const double> samples_ms) {
    return stats::trimmed_mean(samples_ms, 0.0, 0.95);
}

double rpm_for_rtt(double rtt_ms) {
    return rtt_ms > 0.0 ? 60000.0 / rtt_ms : 0.0;
}

std::optional<responsiveness> responsiveness_of(std::span<const double> foreign_rtt_ms,
                                                std::span<const double> self_rtt_ms) {
    responsiveness result;
    if (!foreign_rtt_ms.empty()) {
        result.foreign_rpm = rpm_for_rtt(trimmed_mean_95(foreign_rtt_ms));
    }
    if (!self_rtt_ms.empty()) {
        result.self_rpm = rpm_for_rtt(trimmed_mean_95(self_rtt_ms));
    }
    if (result.foreign_rpm && result.self_rpm) {
        result.rpm = (*result.foreign_rpm + *result.self_rpm) / 2.0;
    } else if (result.foreign_rpm) {
        result.rpm = *result.foreign_rpm;
    } else if (result.self_rpm) {
        result.rpm = *result.self_rpm;
    } else {
        return std::nullopt;
    }
    return result;
}

time_span stable_part(time_span window) {
    const std::int64_t length = std::max<std::int64_t>(0, window.to_ns - window.from_ns);
    const std::int64_t stable = std::min(kStableSeconds * 1'000'000'000, length / 2);
    return {window.to_ns - stable, window.to_ns};
}

std::vector<double> samples_in(std::span<const double> values, std::span<const std::int64_t> times_ns,
                               time_span span) {
    std::vector<double> kept;
    const std::size_t count = std::min(values.size(), times_ns.size());
    for (std::size_t i = 0; i < count; ++i) {
        if (span.contains(times_ns[i])) {
            kept.push_back(values[i]);
        }
    }
    return kept;
}

std::vector<double> last_share(std::span<const double> values, time_span window, time_span part) {
    const double length = static_cast<double>(window.to_ns - window.from_ns);
    if (values.empty() || length <= 0.0) {
        return {};
    }
    const double share = std::clamp(static_cast<double>(part.to_ns - part.from_ns) / length, 0.0, 1.0);
    const auto count = static_cast<std::size_t>(std::llround(share * static_cast<double>(values.size())));
    return {values.end() - static_cast<std::ptrdiff_t>(count), values.end()};
}

std::vector<double> share_in(std::span<const double> values, time_span window, time_span part) {
    const double length = static_cast<double>(window.to_ns - window.from_ns);
    if (values.empty() || length <= 0.0) {
        return {};
    }
    const auto count = static_cast<double>(values.size());
    // The samples whose midpoints lie in [from_ns, to_ns): index ceil(f * n - 1/2) on.
    const auto first_at = [&](std::int64_t t) {
        const double fraction = std::clamp(static_cast<double>(t - window.from_ns) / length, 0.0, 1.0);
        return static_cast<std::ptrdiff_t>(std::ceil(fraction * count - 0.5));
    };
    const std::ptrdiff_t first = first_at(part.from_ns);
    const std::ptrdiff_t last = std::max(first, first_at(part.to_ns));
    return {values.begin() + first, values.begin() + last};
}

}  // namespace speed::latency
