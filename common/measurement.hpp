// Receiver-side accounting of a time-based test, free of I/O so it can be tested with a fake clock.
//
// The receiver's streams only add to cumulative byte counters. One sampler reads every counter at planned
// instants (each interval boundary, the end of the omitted warm-up and the end of the window) and this class
// turns consecutive samples into intervals and totals. Rates use the sample times actually observed, so a
// sampler that wakes 200 us late does not inflate a figure; the intervals add up exactly to the totals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace speed::measure {

// When to sample, in nanoseconds after the receiver saw the first payload byte (time 0). A test's plan
// comes from its timing (common/test_timing.hpp).
// Interval boundaries fall every `interval_ns` from time 0; the end of the warm-up (`omit_ns`) and the end of
// the window (`omit_ns + duration_ns`) are always sample points, so no interval straddles either of them.
struct plan {
    std::int64_t omit_ns = 0;
    std::int64_t duration_ns = 0;
    std::int64_t interval_ns = 0;  // 0: only the warm-up end and the window end are sampled

    std::int64_t end_ns() const { return omit_ns + duration_ns; }
    // Ascending, without duplicates, excluding 0, including end_ns().
    std::vector<std::int64_t> sample_points() const;
};

struct interval {
    std::uint32_t index = 0;
    std::int64_t start_ns = 0;  // observed sample times, relative to time 0
    std::int64_t end_ns = 0;
    bool omitted = false;  // inside the warm-up
    std::vector<std::uint64_t> stream_bytes;

    std::uint64_t bytes() const;
    double seconds() const { return static_cast<double>(end_ns - start_ns) / 1e9; }
    double bits_per_second() const;
};

struct totals {
    std::int64_t window_ns = 0;   // observed length of the measured window
    std::int64_t omitted_ns = 0;  // observed length of the warm-up
    std::uint64_t omitted_bytes = 0;
    std::vector<std::uint64_t> stream_bytes;  // within the window

    std::uint64_t bytes() const;
    double seconds() const { return static_cast<double>(window_ns) / 1e9; }
    double bits_per_second() const;
};

class interval_meter {
  public:
    interval_meter(plan p, std::size_t stream_count);

    // Time 0 and the counters at that moment (bytes before it belong to no interval).
    void start(std::span<const std::uint64_t> counters);
    // The next planned sample, taken at observed time `time_ns` (relative to time 0, >= the previous sample).
    // Returns the interval it closes. Call exactly once per planned point, in order.
    interval sample(std::int64_t time_ns, std::span<const std::uint64_t> counters);

    bool finished() const { return next_point_ >= points_.size(); }
    // The planned time of the next sample (relative to time 0); only valid while !finished().
    std::int64_t next_point_ns() const { return points_[next_point_]; }
    // Final figures; meaningful once finished().
    totals result() const;

  private:
    plan plan_;
    std::vector<std::int64_t> points_;
    std::size_t next_point_ = 0;
    std::uint32_t next_index_ = 0;
    std::int64_t last_time_ns_ = 0;
    std::vector<std::uint64_t> last_counters_;
    std::int64_t omit_end_time_ns_ = 0;
    std::vector<std::uint64_t> omit_end_counters_;
    std::vector<std::uint64_t> start_counters_;
};

}  // namespace speed::measure
