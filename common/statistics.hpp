// Descriptive statistics over samples (latency in ms, interval rates, ...). Pure functions, exact
// definitions: docs/methodology.md cites the method for each one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace speed::stats {

struct summary {
    std::size_t count = 0;
    double min = 0.0;
    double median = 0.0;
    double mean = 0.0;
    double p90 = 0.0;
    double p99 = 0.0;
    double max = 0.0;
    double stddev = 0.0;  // population standard deviation (divides by n)
};

// Percentile `fraction` (0..1) of ascending `sorted` samples by linear interpolation between closest ranks
// (Hyndman & Fan type 7, the default of numpy and R): position = fraction * (n - 1). 0 for no samples.
double percentile_of_sorted(std::span<const double> sorted, double fraction);

// Sorts a copy and summarizes it; all fields are 0 for no samples.
summary summarize(std::span<const double> samples);

// Mean absolute difference of consecutive samples, in sample order: the "jitter" of a probe series
// (as reported by ping-style tools for RTT). 0 with fewer than two samples.
double mean_consecutive_difference(std::span<const double> samples);

// Arithmetic mean of the samples whose rank lies within [lower_fraction, upper_fraction] of the sorted
// series (e.g. 0.0 and 0.95 drops the slowest 5 %). 0 when nothing is left.
double trimmed_mean(std::span<const double> samples, double lower_fraction, double upper_fraction);

// RFC 3550 section 6.4.1 interarrival jitter: J += (|D| - J) / 16, where D is the difference of the
// transit times (arrival - send timestamp) of consecutive packets. Units are whatever the caller uses.
class rfc3550_jitter {
  public:
    void add_transit(double transit);
    double value() const { return jitter_; }
    bool empty() const { return !has_previous_; }

  private:
    double jitter_ = 0.0;
    double previous_transit_ = 0.0;
    bool has_previous_ = false;
};

}  // namespace speed::stats
