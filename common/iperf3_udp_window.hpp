// speedcli's measured window over iperf3's UDP receiver accounting (`speedcli --iperf3 --udp` download),
// pure: time 0 is the first datagram's arrival on any stream; the warm-up (-O) resets iperf3's figures as
// iperf3's receiver does when it ends; each datagram counts in the sample interval its arrival time falls in;
// datagrams after the window are not counted. The caller hands every datagram in with its arrival time, then
// closes each sample point once every datagram that arrived before it was handed in. docs/methodology.md,
// "Over UDP".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/iperf3_udp.hpp"
#include "common/measurement.hpp"

namespace speed::iperf3 {

// One closed interval of the window, all streams.
struct udp_window_interval {
    std::int64_t start_ns = 0;  // from time 0: the planned sample points
    std::int64_t end_ns = 0;
    bool omitted = false;  // inside the warm-up
    std::vector<std::uint64_t> stream_bytes;
    std::uint64_t datagrams = 0;       // received in the interval
    std::uint64_t lost = 0;            // sequence gaps opened in it (late datagrams that filled one excepted)
    double mean_jitter_seconds = 0.0;  // the streams' jitter at its end, averaged
};

class udp_window {
  public:
    udp_window(const measure::plan& plan, std::size_t streams);

    // A datagram of `bytes` bytes on stream `index` with header `h`, arrived at `arrival_ns` (any monotonic
    // clock, the same for every call).
    void on_datagram(std::size_t index, std::size_t bytes, const std::optional<udp_header>& h,
                     std::int64_t arrival_ns);

    bool started() const { return first_ns_ != 0; }
    std::int64_t first_ns() const { return first_ns_; }
    std::int64_t last_ns() const { return last_ns_; }  // the latest arrival counted
    std::size_t point_count() const { return points_.size(); }
    std::int64_t point_ns(std::size_t k) const { return points_[k]; }  // from time 0

    // Closes sample point `k` (the points in order, each once) on every stream and returns the interval
    // that ends there.
    udp_window_interval close_point(std::size_t k);

    // A stream's iperf3 figures (after the warm-up once it has ended), as iperf3's EXCHANGE_RESULTS carries.
    const udp_receiver_figures& figures(std::size_t index) const {
        return streams_[index].receiver.figures();
    }
    std::size_t stream_count() const { return streams_.size(); }
    // Bytes received in the warm-up, all streams (0 until its point is closed).
    std::uint64_t omitted_bytes() const;

  private:
    struct sample {
        std::uint64_t bytes = 0;  // warm-up included
        std::uint64_t datagrams = 0;
        std::uint64_t errors = 0;
        double jitter_seconds = 0.0;
    };
    struct stream {
        udp_receiver receiver;
        std::uint64_t all_bytes = 0;
        std::vector<sample> at_points;  // one per point passed
    };
    void pass_points(stream& s, std::int64_t since);

    measure::plan plan_;
    std::vector<std::int64_t> points_;
    std::vector<stream> streams_;
    std::int64_t first_ns_ = 0;
    std::int64_t last_ns_ = 0;
};

}  // namespace speed::iperf3
