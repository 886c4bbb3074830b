// Interface traffic for `speedcli monitor`: parsing Linux's /proc/net/dev, turning two readings of the
// kernel's cumulative counters into one interval's traffic (32-bit wraps and resets handled), and following a
// set of interfaces over a run (intervals, interfaces appearing and disappearing, the summary). Pure: the
// caller reads the counters and the clocks, so tests drive all of it with fixture text and a fake clock.
// docs/monitor.md describes the rules.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"

namespace speed::netdev {

// The counters the monitor reports, per direction: bytes, packets, errors, drops. In a reading they are the
// kernel's cumulative counts; in an interval, the traffic of that interval.
struct counters {
    std::uint64_t rx_bytes = 0;
    std::uint64_t rx_packets = 0;
    std::uint64_t rx_errors = 0;
    std::uint64_t rx_dropped = 0;
    std::uint64_t tx_bytes = 0;
    std::uint64_t tx_packets = 0;
    std::uint64_t tx_errors = 0;
    std::uint64_t tx_dropped = 0;

    bool operator==(const counters&) const = default;
    counters& operator+=(const counters& other);
};

// One interface in one reading.
struct interface_reading {
    std::string name;
    counters total;      // cumulative, as the kernel reports them
    bool up = false;     // IFF_UP: administratively up
    unsigned index = 0;  // the kernel's interface index; 0 when unknown
};

// Every interface at one instant, stamped with both clocks.
struct reading {
    std::int64_t monotonic_ns = 0;                    // steady clock: intervals are measured on it
    std::chrono::system_clock::time_point wall_time;  // the same instant, for printing
    std::vector<interface_reading> interfaces;        // in the kernel's order
};

// Parses the text of /proc/net/dev: two header lines, then one line per interface,
// "NAME: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast tx_bytes tx_packets tx_errs
// tx_drop fifo colls carrier compressed". The name ends at the line's last colon, so kernels that glue the
// first number to the colon ("enp0s25:123456789") parse too. Any malformed line makes the whole text an
// error. The interfaces come in the file's order; `up` and `index` are not in the file.
result<std::vector<interface_reading>> parse_proc_net_dev(std::string_view text);

// One interval's traffic from two readings of the same interface's counters.
struct counter_delta {
    counters traffic;
    bool wrapped = false;  // some counter wrapped at 2^32 (counted across the wrap)
    bool reset = false;    // the counters restarted: `traffic` is what was counted since the restart
};

// The wrap and reset rule (docs/monitor.md):
//  - a counter that did not decrease contributes after - before;
//  - a counter that decreased wrapped at 2^32 when both readings fit in 32 bits and the wrapped difference,
//    2^32 - before + after, is below 2^31 (drivers with 32-bit counters wrap them; a jump back that large
//    from a wrap is indistinguishable, a jump back of more than half the range is not a wrap);
//  - the counters were reset (driver reset, interface re-created, counters cleared) when a byte or packet
//    counter decreased and that is not a wrap, when the bytes and the packets of one direction both decreased
//    (both wrapping in one interval is implausible; a reset takes both), or when `recreated` (the interface
//    index changed). Then every counter's traffic is its value after: the count since the restart;
//  - an error or drop counter that went back without a reset and not as a wrap contributes 0.
counter_delta difference(const counters& before, const counters& after, bool recreated = false);

// One interface's row in one interval.
struct interface_interval {
    std::string name;
    counters traffic;  // this interval's deltas
    double rx_bits_per_second = 0.0;
    double tx_bits_per_second = 0.0;
    bool counters_reset = false;  // counters restarted in this interval: traffic before the restart is lost
};

// What changed between two readings.
struct interval_report {
    std::int64_t start_ns = 0;  // monotonic clock of the previous reading
    std::int64_t end_ns = 0;    // monotonic clock of this reading
    double seconds = 0.0;       // measured: (end_ns - start_ns) / 1e9, the divisor of every rate
    std::chrono::system_clock::time_point wall_time;  // of this reading
    bool partial = false;  // ended early (stop signal): shorter than the nominal interval
    std::vector<interface_interval> interfaces;
    std::vector<std::string> appeared;  // watched from this reading on; rows start with the next interval
    std::vector<std::string>
        disappeared;  // gone from the kernel's list: traffic since the last reading is lost
};

// One interface over the whole run.
struct interface_summary {
    std::string name;
    counters traffic;      // sum of its intervals
    double seconds = 0.0;  // sum of the lengths of its intervals
    std::size_t intervals = 0;
    double rx_peak_bits_per_second = 0.0;  // highest rate of a full (not partial) interval
    double tx_peak_bits_per_second = 0.0;
    bool counters_reset = false;  // some interval had a reset

    double rx_bits_per_second() const;  // average: traffic / seconds
    double tx_bits_per_second() const;
};

// Positions in a list by name (hosts with thousands of interfaces exist: no quadratic searches).
using name_index = std::unordered_map<std::string_view, std::size_t>;

// Where each name stands in `items` (anything with a `name`); the views point into `items`.
template <typename Named>
name_index index_by_name(const std::vector<Named>& items) {
    name_index index;
    for (std::size_t i = 0; i < items.size(); ++i) {
        index.emplace(items[i].name, i);
    }
    return index;
}

// Follows the watched interfaces over a run. The first reading is the baseline; every later one closes an
// interval. Watched: the `selected` names when given (in that order), otherwise every interface that is up,
// including ones that come up later (in the kernel's order). A watched interface stays watched while it
// exists, up or not; one that leaves the kernel's list is reported as disappeared, and appears again if it
// comes back.
class traffic_monitor {
  public:
    explicit traffic_monitor(std::vector<std::string> selected);

    // Returns nothing for the first reading (the baseline) and the interval since the previous reading after.
    // `partial`: the interval was cut short (its rate does not count for the peak).
    std::optional<interval_report> add(const reading& now, bool partial = false);

    // Names watched after the latest reading, in row order.
    std::vector<std::string> watched() const;
    // Per interface in the order it was first watched (interfaces without a full interval included).
    const std::vector<interface_summary>& summary() const { return summary_; }
    // Intervals so far, and the span from the baseline to the latest reading.
    std::size_t intervals() const { return intervals_; }
    double seconds() const;
    std::chrono::system_clock::time_point first_wall_time() const { return first_wall_time_; }
    std::chrono::system_clock::time_point last_wall_time() const { return last_wall_time_; }

  private:
    struct tracked {
        std::string name;
        counters total;
        unsigned index = 0;
    };
    std::vector<const interface_reading*> candidates(const reading& now,
                                                     const name_index& tracked_by_name) const;
    interface_summary& summary_for(const std::string& name);

    std::vector<std::string> selected_;
    std::vector<tracked> tracked_;  // watched interfaces with their latest reading, in row order
    std::vector<interface_summary> summary_;
    std::unordered_map<std::string, std::size_t> summary_index_;  // name -> position in summary_
    bool have_baseline_ = false;
    std::int64_t first_ns_ = 0;
    std::int64_t last_ns_ = 0;
    std::chrono::system_clock::time_point first_wall_time_;
    std::chrono::system_clock::time_point last_wall_time_;
    std::size_t intervals_ = 0;
};

// The names in `selected` that `available` lacks, in `selected` order.
std::vector<std::string> missing_interfaces(const std::vector<std::string>& selected,
                                            const std::vector<interface_reading>& available);

// The next sampling instant after `now_ns` on the grid start_ns + k * interval_ns, k >= 1. Deadlines are
// absolute, so the time each read and print takes does not accumulate into drift, and instants already missed
// (the process was stopped, the machine suspended) are skipped rather than sampled in a burst.
std::int64_t next_deadline(std::int64_t start_ns, std::int64_t interval_ns, std::int64_t now_ns);

}  // namespace speed::netdev
