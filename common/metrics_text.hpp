// Prometheus' text exposition format, version 0.0.4 (docs/operations.md, "Metrics"): a writer that turns
// metric families into text, and a histogram with fixed buckets that any thread may update without a lock.
// Pure: no I/O, no clocks; what is exposed and when is the server's business (server/metrics.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace speed::metrics {

enum class metric_type { counter, gauge, histogram };

struct label {
    std::string_view name;
    std::string_view value;
};

// A label value as the format quotes it: backslash, double quote and line feed escaped.
std::string escape_label_value(std::string_view value);
// HELP text: backslash and line feed escaped (quotes stay).
std::string escape_help(std::string_view text);
// A sample value: integers without exponent or fraction, others in the shortest form that reads back the
// same, and +Inf, -Inf, NaN as the format spells them.
std::string format_value(double value);

// The counts of a histogram at one moment: counts[i] observations fell in bucket i (not cumulative), where
// bucket i holds values <= bounds[i] and above bounds[i-1]; the last count is above every bound.
struct histogram_snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> counts;  // bounds.size() + 1
    double sum = 0.0;
};

// A histogram with fixed bucket bounds (ascending, finite). observe() is wait-free apart from the sum's
// compare-and-swap loop, and a snapshot taken while others observe may be off by the observations in flight.
class histogram {
  public:
    explicit histogram(std::vector<double> bounds);
    void observe(double value);
    histogram_snapshot snapshot() const;

  private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
    std::atomic<double> sum_{0.0};
};

// Builds one exposition: each family() starts a metric family (# HELP and # TYPE lines), followed by its
// samples. Names and label names are the caller's constants (not checked); label values are escaped here.
class exposition {
  public:
    void family(std::string_view name, metric_type type, std::string_view help);
    void sample(std::string_view name, std::span<const label> labels, double value);
    void sample(std::string_view name, double value) { sample(name, {}, value); }
    // NAME_bucket{...,le="..."} for every bound and +Inf (cumulative), NAME_sum and NAME_count.
    void histogram(std::string_view name, std::span<const label> labels, const histogram_snapshot& values);

    const std::string& text() const { return text_; }

  private:
    void append_sample(std::string_view name, std::span<const label> labels, std::string_view extra_name,
                       std::string_view extra_value, std::string_view value);
    std::string text_;
};

}  // namespace speed::metrics
