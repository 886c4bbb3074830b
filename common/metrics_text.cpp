#include "common/metrics_text.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace speed::metrics {

namespace {

std::string_view type_name(metric_type type) {
    switch (type) {
        case metric_type::counter:
            return "counter";
        case metric_type::gauge:
            return "gauge";
        case metric_type::histogram:
            return "histogram";
    }
    return "untyped";
}

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string escape_help(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_value(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    // Counts up to 2^53 are exact in a double; print them as integers, the way counters read.
    constexpr double kExactIntegers = 9007199254740992.0;
    if (value == std::floor(value) && std::fabs(value) <= kExactIntegers) {
        return std::to_string(static_cast<std::int64_t>(value));
    }
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void histogram::observe(double value) {
    std::size_t bucket = 0;
    while (bucket < bounds_.size() && !(value <= bounds_[bucket])) {
        ++bucket;
    }
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    double sum = sum_.load(std::memory_order_relaxed);
    while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
    }
}

histogram_snapshot histogram::snapshot() const {
    histogram_snapshot out;
    out.bounds = bounds_;
    out.counts.reserve(bounds_.size() + 1);
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        out.counts.push_back(counts_[i].load(std::memory_order_relaxed));
    }
    out.sum = sum_.load(std::memory_order_relaxed);
    return out;
}

void exposition::family(std::string_view name, metric_type type, std::string_view help) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    text_ += escape_help(help);
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type_name(type);
    text_ += '\n';
}

void exposition::append_sample(std::string_view name, std::span<const label> labels,
                               std::string_view extra_name, std::string_view extra_value,
                               std::string_view value) {
    text_ += name;
    if (!labels.empty() || !extra_name.empty()) {
        text_ += '{';
        bool first = true;
        const auto add = [&](std::string_view label_name, std::string_view label_value) {
            if (!first) {
                text_ += ',';
            }
            first = false;
            text_ += label_name;
            text_ += "=\"";
            text_ += escape_label_value(label_value);
            text_ += '"';
        };
        for (const auto& l : labels) {
            add(l.name, l.value);
        }
        if (!extra_name.empty()) {
            add(extra_name, extra_value);
        }
        text_ += '}';
    }
    text_ += ' ';
    text_ += value;
    text_ += '\n';
}

void exposition::sample(std::string_view name, std::span<const label> labels, double value) {
    append_sample(name, labels, {}, {}, format_value(value));
}

void exposition::histogram(std::string_view name, std::span<const label> labels,
                           const histogram_snapshot& values) {
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < values.counts.size(); ++i) {
        cumulative += values.counts[i];
        const std::string bound = i < values.bounds.size() ? format_value(values.bounds[i]) : "+Inf";
        append_sample(bucket, labels, "le", bound, std::to_string(cumulative));
    }
    append_sample(std::string(name) + "_sum", labels, {}, {}, format_value(values.sum));
    append_sample(std::string(name) + "_count", labels, {}, {}, std::to_string(cumulative));
}

}  // namespace speed::metrics
