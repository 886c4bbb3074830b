// speedcli monitor --report: the run as the same self-contained HTML page speedcli --report writes, with
// each interface's rates over time.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "client/monitor/monitor_output.hpp"

namespace speed::client {

// The most intervals a report keeps: the latest ones (a monitor may run for days; 10,000 intervals of a few
// interfaces are a few MB of page, which a browser still draws at once).
inline constexpr std::size_t kReportIntervals = 10'000;

// The page's data: {"monitor": {"version", "interval_seconds", "intervals" (the --json interval objects of
// docs/monitor.md, at most kReportIntervals, the latest), "intervals_left_out", "summary"}}.
nlohmann::ordered_json monitor_report_json(double interval_seconds,
                                           const std::deque<std::string>& interval_lines,
                                           std::size_t left_out, const std::string& summary_line);

// Passes everything on to the printer it wraps, keeps the intervals, and writes the page to `path` when the
// run finishes. failure() says why it could not.
class monitor_report_recorder final : public monitor_printer {
  public:
    monitor_report_recorder(std::unique_ptr<monitor_printer> inner, std::string path)
        : inner_(std::move(inner)), path_(std::move(path)) {}
    void start(const std::vector<std::string>& watched, double interval_seconds) override;
    void interval(const netdev::interval_report& interval) override;
    void finish(const netdev::traffic_monitor& monitor) override;
    const std::optional<std::string>& failure() const { return failure_; }

  private:
    std::unique_ptr<monitor_printer> inner_;
    std::string path_;
    double interval_seconds_ = 0.0;
    std::deque<std::string> lines_;
    std::size_t left_out_ = 0;
    std::optional<std::string> failure_;
};

}  // namespace speed::client
