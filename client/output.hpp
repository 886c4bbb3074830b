// Printing a test: live lines and a summary for people, one JSON document for machines (docs/json.md).
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>

#include "client/options.hpp"
#include "client/progress.hpp"
#include "client/report.hpp"

namespace speed::client {

// The JSON document of docs/json.md. Keys keep their documented order.
nlohmann::ordered_json to_json(const test_report& report, const test_options& options);
// Its parts, which --json-stream prints as they happen: what is known once connected (version, start time,
// server, local end, protocol, streams, parameters), the requested parameters alone, one interval, one
// direction, one latency object.
nlohmann::ordered_json start_json(const test_report& report, const test_options& options);
nlohmann::ordered_json parameters_json(const test_options& options);
nlohmann::ordered_json interval_json(const interval_report& interval);
nlohmann::ordered_json direction_json(const direction_report& report);
nlohmann::ordered_json latency_json(const latency_report& latency);
nlohmann::ordered_json selection_json(const server_selection& selection);

// Prints progress as it happens and the summary at the end, to `out`. Quiet: the summary only. Rates in
// `rate_unit` (units::format_rate_in: 'a' adapts the prefix to each figure).
class human_output : public progress_sink {
  public:
    explicit human_output(std::FILE* out, bool quiet = false, char rate_unit = 'a',
                          const test_options* options = nullptr)
        : out_(out), quiet_(quiet), rate_unit_(rate_unit), options_(options) {}
    void server_selected(const server_selection& selection) override;
    void connected(const test_report& report) override;
    void idle_latency_done(const latency_report& latency) override;
    void direction_started(proto::direction dir, const direction_report& report) override;
    void interval_done(proto::direction dir, const interval_report& interval) override;
    void direction_done(const direction_report& report) override;
    void summary(const test_report& report);

  private:
    std::string rate(double bits_per_second) const;
    std::FILE* out_;
    bool quiet_ = false;
    char rate_unit_ = 'a';
    const test_options* options_ = nullptr;  // the requested parameters, printed once connected
    std::uint16_t streams_ = 1;
};

// --json-stream: one JSON object per line as the test runs, each {"event": NAME, "data": {...}} (iperf3's
// --json-stream shape): "start" once connected, "idle_latency", "interval" (with its "direction"),
// "direction" when one completes, and "end" with the whole --json document. Every line is flushed, so a run
// that is cut short still leaves what it measured.
class json_stream_output : public progress_sink {
  public:
    json_stream_output(std::FILE* out, const test_options& options) : out_(out), options_(options) {}
    void server_selected(const server_selection& selection) override;
    void connected(const test_report& report) override;
    void idle_latency_done(const latency_report& latency) override;
    void interval_done(proto::direction dir, const interval_report& interval) override;
    void direction_done(const direction_report& report) override;
    void end(const test_report& report);

  private:
    void event(const char* name, const nlohmann::ordered_json& data);
    std::FILE* out_;
    const test_options& options_;
};

// --csv: a header, one row per interval as it ends, and one summary row per completed direction at the end
// (columns in docs/json.md, "CSV"). Numbers are plain: bits/s, bytes, seconds, milliseconds.
class csv_output : public progress_sink {
  public:
    explicit csv_output(std::FILE* out) : out_(out) {}
    void connected(const test_report& report) override;
    void interval_done(proto::direction dir, const interval_report& interval) override;
    void end(const test_report& report);
    // The header row, also printed when the test failed before connecting.
    void header();

  private:
    std::FILE* out_;
    std::string start_time_;
    bool header_printed_ = false;
};

}  // namespace speed::client
