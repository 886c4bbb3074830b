#include "common/statistics.hpp"

#include <algorithm>
#include <cmath>

namespace speed::stats {

double percentile_of_sorted(std::span<const double> sorted, double fraction) {
    if (sorted.empty()) {
        return 0.0;
    }
    fraction = std::clamp(fraction, 0.0, 1.0);
    const double position = fraction * static_cast<double>(sorted.size() - 1);
    const auto lower = static_cast<std::size_t>(std::floor(position));
    const std::size_t upper = std::min(lower + 1, sorted.size() - 1);
    const double weight = position - static_cast<double>(lower);
    return sorted[lower] + (sorted[upper] - sorted[lower]) * weight;
}

summary summarize(std::span<const double> samples) {
    summary result;
    if (samples.empty()) {
        return result;
    }
    std::vector<double> sorted(samples.begin(), samples.end());
    std::sort(sorted.begin(), sorted.end());
    result.count = sorted.size();
    result.min = sorted.front();
    result.max = sorted.back();
    result.median = percentile_of_sorted(sorted, 0.5);
    result.p90 = percentile_of_sorted(sorted, 0.9);
    result.p99 = percentile_of_sorted(sorted, 0.99);
    double sum = 0.0;
    for (double value : sorted) {
        sum += value;
    }
    result.mean = sum / static_cast<double>(sorted.size());
    double squares = 0.0;
    for (double value : sorted) {
        squares += (value - result.mean) * (value - result.mean);
    }
    result.stddev = std::sqrt(squares / static_cast<double>(sorted.size()));
    return result;
}

double mean_consecutive_difference(std::span<const double> samples) {
    if (samples.size() < 2) {
        return 0.0;
    }
    double sum = 0.0;
    for (std::size_t i = 1; i < samples.size(); ++i) {
        sum += std::fabs(samples[i] - samples[i - 1]);
    }
    return sum / static_cast<double>(samples.size() - 1);
}

double trimmed_mean(std::span<const double> samples, double lower_fraction, double upper_fraction) {
    if (samples.empty() || !(upper_fraction > lower_fraction)) {
        return 0.0;
    }
    std::vector<double> sorted(samples.begin(), samples.end());
    std::sort(sorted.begin(), sorted.end());
    const double n = static_cast<double>(sorted.size());
    // Keep ranks [floor(lower*n), ceil(upper*n)); with upper = 1 that is every sample from the lower cut on.
    const auto first = static_cast<std::size_t>(std::floor(std::clamp(lower_fraction, 0.0, 1.0) * n));
    const auto last = static_cast<std::size_t>(std::ceil(std::clamp(upper_fraction, 0.0, 1.0) * n));
    if (last <= first) {
        return 0.0;
    }
    double sum = 0.0;
    for (std::size_t i = first; i < last; ++i) {
        sum += sorted[i];
    }
    return sum / static_cast<double>(last - first);
}

void rfc3550_jitter::add_transit(double transit) {
    if (has_previous_) {
        const double difference = std::fabs(transit - previous_transit_);
        jitter_ += (difference - jitter_) / 16.0;
    }
    previous_transit_ = transit;
    has_previous_ = true;
}

}  // namespace speed::stats
