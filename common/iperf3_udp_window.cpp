#include "common/iperf3_udp_window.hpp"

#include <algorithm>

namespace speed::iperf3 {

udp_window::udp_window(const measure::plan& plan, std::size_t streams)
    : plan_(plan), points_(plan.sample_points()), streams_(streams) {}

void udp_window::pass_points(stream& s, std::int64_t since) {
    while (s.at_points.size() < points_.size() && since >= points_[s.at_points.size()]) {
        const auto& f = s.receiver.figures();
        s.at_points.push_back({s.all_bytes, f.datagrams, f.errors, f.jitter_seconds});
        if (points_[s.at_points.size() - 1] == plan_.omit_ns) {
            s.receiver.end_warm_up();
        }
    }
}

void udp_window::on_datagram(std::size_t index, std::size_t bytes, const std::optional<udp_header>& h,
                             std::int64_t arrival_ns) {
    if (first_ns_ == 0) {
        first_ns_ = std::max<std::int64_t>(1, arrival_ns);
    }
    // Streams are read one after the other: another stream's datagram may have arrived a little before the
    // first one read; it counts from time 0.
    const std::int64_t since = std::max<std::int64_t>(0, arrival_ns - first_ns_);
    if (since >= plan_.end_ns()) {
        return;  // after the window: the sender goes on until it reads TEST_END
    }
    stream& s = streams_[index];
    pass_points(s, since);
    s.receiver.on_datagram(bytes, h, arrival_ns);
    s.all_bytes += bytes;
    last_ns_ = std::max(last_ns_, arrival_ns);
}

udp_window_interval udp_window::close_point(std::size_t k) {
    udp_window_interval out;
    out.start_ns = k == 0 ? 0 : points_[k - 1];
    out.end_ns = points_[k];
    out.omitted = points_[k] <= plan_.omit_ns;
    double jitter_sum = 0.0;
    for (stream& s : streams_) {
        pass_points(s, points_[k]);
        const sample& now = s.at_points[k];
        const sample before = k == 0 ? sample{} : s.at_points[k - 1];
        out.stream_bytes.push_back(now.bytes - before.bytes);
        out.datagrams += now.datagrams - before.datagrams;
        // A late datagram fills a gap counted before: the interval's own count cannot go below 0.
        out.lost += now.errors > before.errors ? now.errors - before.errors : 0;
        jitter_sum += now.jitter_seconds;
    }
    out.mean_jitter_seconds = streams_.empty() ? 0.0 : jitter_sum / static_cast<double>(streams_.size());
    return out;
}

std::uint64_t udp_window::omitted_bytes() const {
    const auto warm_up_end = std::find(points_.begin(), points_.end(), plan_.omit_ns);
    if (plan_.omit_ns == 0 || warm_up_end == points_.end()) {
        return 0;
    }
    const auto k = static_cast<std::size_t>(warm_up_end - points_.begin());
    std::uint64_t sum = 0;
    for (const stream& s : streams_) {
        if (k < s.at_points.size()) {
            sum += s.at_points[k].bytes;
        }
    }
    return sum;
}

}  // namespace speed::iperf3
