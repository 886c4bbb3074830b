#include "common/measurement.hpp"

#include <algorithm>
#include <stdexcept>

#include "common/units.hpp"

namespace speed::measure {

std::vector<std::int64_t> plan::sample_points() const {
    std::vector<std::int64_t> points;
    if (interval_ns > 0) {
        for (std::int64_t t = interval_ns; t < end_ns(); t += interval_ns) {
            points.push_back(t);
        }
    }
    if (omit_ns > 0) {
        points.push_back(omit_ns);
    }
    points.push_back(end_ns());
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    return points;
}

std::uint64_t interval::bytes() const {
    std::uint64_t sum = 0;
    for (std::uint64_t b : stream_bytes) {
        sum += b;
    }
    return sum;
}

double interval::bits_per_second() const {
    return units::bits_per_second(bytes(), seconds());
}

std::uint64_t totals::bytes() const {
    std::uint64_t sum = 0;
    for (std::uint64_t b : stream_bytes) {
        sum += b;
    }
    return sum;
}

double totals::bits_per_second() const {
    return units::bits_per_second(bytes(), seconds());
}

interval_meter::interval_meter(plan p, std::size_t stream_count)
    : plan_(p),
      points_(p.sample_points()),
      last_counters_(stream_count, 0),
      omit_end_counters_(stream_count, 0),
      start_counters_(stream_count, 0) {}

void interval_meter::start(std::span<const std::uint64_t> counters) {
    std::copy(counters.begin(), counters.end(), last_counters_.begin());
    std::copy(counters.begin(), counters.end(), omit_end_counters_.begin());
    std::copy(counters.begin(), counters.end(), start_counters_.begin());
    last_time_ns_ = 0;
    omit_end_time_ns_ = 0;
}

interval interval_meter::sample(std::int64_t time_ns, std::span<const std::uint64_t> counters) {
    if (finished() || counters.size() != last_counters_.size()) {
        throw std::logic_error("interval_meter::sample called out of plan");
    }
    time_ns = std::max(time_ns, last_time_ns_);
    const std::int64_t planned = points_[next_point_++];
    interval closed;
    closed.index = next_index_++;
    closed.start_ns = last_time_ns_;
    closed.end_ns = time_ns;
    closed.omitted = planned <= plan_.omit_ns;
    closed.stream_bytes.resize(counters.size());
    for (std::size_t i = 0; i < counters.size(); ++i) {
        // Counters only grow; guard anyway so a caller bug cannot wrap into a huge figure.
        closed.stream_bytes[i] = counters[i] >= last_counters_[i] ? counters[i] - last_counters_[i] : 0;
        last_counters_[i] = std::max(counters[i], last_counters_[i]);
    }
    last_time_ns_ = time_ns;
    if (planned == plan_.omit_ns) {
        omit_end_time_ns_ = time_ns;
        omit_end_counters_ = last_counters_;
    }
    return closed;
}

totals interval_meter::result() const {
    totals t;
    t.window_ns = last_time_ns_ - omit_end_time_ns_;
    t.omitted_ns = omit_end_time_ns_;
    t.stream_bytes.resize(last_counters_.size());
    for (std::size_t i = 0; i < last_counters_.size(); ++i) {
        t.stream_bytes[i] = last_counters_[i] - omit_end_counters_[i];
        t.omitted_bytes += omit_end_counters_[i] - start_counters_[i];
    }
    return t;
}

}  // namespace speed::measure
