#include "client/monitor/monitor_report.hpp"

#include "client/output_html.hpp"

namespace speed::client {

nlohmann::ordered_json monitor_report_json(double interval_seconds,
                                           const std::deque<std::string>& interval_lines,
                                           std::size_t left_out, const std::string& summary_line) {
    using json = nlohmann::ordered_json;
    json intervals = json::array();
    for (const auto& line : interval_lines) {
        intervals.push_back(json::parse(line, nullptr, /*allow_exceptions=*/false));
    }
    const json summary = json::parse(summary_line, nullptr, /*allow_exceptions=*/false);
    json monitor;
    monitor["version"] = SPEED_VERSION;
    monitor["interval_seconds"] = interval_seconds;
    monitor["intervals"] = std::move(intervals);
    monitor["intervals_left_out"] = left_out;
    monitor["summary"] =
        summary.is_object() && summary.contains("summary") ? summary["summary"] : json(nullptr);
    return json{{"monitor", std::move(monitor)}};
}

void monitor_report_recorder::start(const std::vector<std::string>& watched, double interval_seconds) {
    interval_seconds_ = interval_seconds;
    inner_->start(watched, interval_seconds);
}

void monitor_report_recorder::interval(const netdev::interval_report& interval) {
    inner_->interval(interval);
    lines_.push_back(interval_json_line(interval));
    if (lines_.size() > kReportIntervals) {
        lines_.pop_front();
        ++left_out_;
    }
}

void monitor_report_recorder::finish(const netdev::traffic_monitor& monitor) {
    inner_->finish(monitor);
    failure_ = write_html_report(
        path_, monitor_report_json(interval_seconds_, lines_, left_out_, summary_json_line(monitor)));
}

}  // namespace speed::client
