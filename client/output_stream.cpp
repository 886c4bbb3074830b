// Output for machines that read a test while it runs: --json-stream lines and --csv rows.
#include <fmt/format.h>

#include <cmath>

#include "client/output.hpp"
#include "client/server_selection.hpp"

namespace speed::client {

void json_stream_output::event(const char* name, const nlohmann::ordered_json& data) {
    nlohmann::ordered_json line;
    line["event"] = name;
    line["data"] = data;
    const std::string text = line.dump();
    std::fprintf(out_, "%s\n", text.c_str());
    std::fflush(out_);
}

void json_stream_output::server_selected(const server_selection& selection) {
    event("server_selection", selection_json(selection));
}

void json_stream_output::connected(const test_report& report) {
    event("start", start_json(report, options_));
}

void json_stream_output::idle_latency_done(const latency_report& latency) {
    event("idle_latency", latency_json(latency));
}

void json_stream_output::interval_done(proto::direction dir, const interval_report& interval) {
    nlohmann::ordered_json data;
    data["direction"] = std::string(proto::name_of(dir));
    const auto fields = interval_json(interval);
    for (const auto& [key, value] : fields.items()) {
        data[key] = value;
    }
    event("interval", data);
}

void json_stream_output::direction_done(const direction_report& report) {
    nlohmann::ordered_json data;
    data["direction"] = std::string(proto::name_of(report.dir));
    const auto fields = direction_json(report);
    for (const auto& [key, value] : fields.items()) {
        data[key] = value;
    }
    event("direction", data);
}

void json_stream_output::end(const test_report& report) {
    event("end", to_json(report, options_));
}

namespace {

// One CSV field: empty for "no value", quoted (RFC 4180) when it holds a comma, quote or line break.
std::string field(const std::string& text) {
    if (text.find_first_of(",\"\r\n") == std::string::npos) {
        return text;
    }
    std::string quoted = "\"";
    for (const char c : text) {
        quoted += c;
        if (c == '"') {
            quoted += '"';
        }
    }
    return quoted + "\"";
}

std::string number(double value) {
    return std::isfinite(value) ? fmt::format("{}", value) : std::string();
}

std::string number(const std::optional<double>& value) {
    return value ? number(*value) : std::string();
}

// The columns after "time,kind,direction", in header order.
struct csv_row {
    std::string start_seconds, end_seconds, bytes, bits_per_second, omitted;
    std::string packets, lost_packets, lost_percent, jitter_ms;
    std::string latency_median_ms, latency_increase_ms, responsiveness_rpm, error;
};

void print_row(std::FILE* out, const std::string& time, const char* kind, const std::string& direction,
               const csv_row& r) {
    fmt::print(out, "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", field(time), kind, direction,
               r.start_seconds, r.end_seconds, r.bytes, r.bits_per_second, r.omitted, r.packets,
               r.lost_packets, r.lost_percent, r.jitter_ms, r.latency_median_ms, r.latency_increase_ms,
               r.responsiveness_rpm, field(r.error));
    std::fflush(out);
}

// A summary row's loaded-latency columns.
void add_loaded_latency(csv_row& row, const direction_report& d) {
    if (d.latency && !d.latency->rtt_ms.empty()) {
        row.latency_median_ms = number(d.latency->rtt.median);
    }
    row.latency_increase_ms = number(d.latency_increase_ms);
    if (d.responsiveness) {
        row.responsiveness_rpm = number(d.responsiveness->rpm);
    }
}

}  // namespace

void csv_output::header() {
    if (header_printed_) {
        return;
    }
    header_printed_ = true;
    std::fprintf(
        out_,
        "time,kind,direction,start_seconds,end_seconds,bytes,bits_per_second,omitted,packets,"
        "lost_packets,lost_percent,jitter_ms,latency_median_ms,latency_increase_ms,responsiveness_rpm,"
        "error\n");
    std::fflush(out_);
}

void csv_output::connected(const test_report& report) {
    start_time_ = report.start_time;
    header();
}

void csv_output::interval_done(proto::direction dir, const interval_report& interval) {
    csv_row row;
    row.start_seconds = number(interval.start_seconds);
    row.end_seconds = number(interval.end_seconds);
    row.bytes = std::to_string(interval.bytes);
    row.bits_per_second = number(interval.bits_per_second);
    row.omitted = interval.omitted ? "true" : "false";
    if (interval.udp) {
        row.packets = std::to_string(interval.udp->packets);
        row.lost_packets = std::to_string(interval.udp->lost_packets);
        row.jitter_ms = number(interval.udp->jitter_ms);
    }
    print_row(out_, start_time_, "interval", std::string(proto::name_of(dir)), row);
}

void csv_output::end(const test_report& report) {
    start_time_ = report.start_time;
    header();
    if (report.idle_latency && !report.idle_latency->rtt_ms.empty()) {
        csv_row row;
        row.latency_median_ms = number(report.idle_latency->rtt.median);
        print_row(out_, start_time_, "idle_latency", "", row);
    }
    for (const auto* direction : {&report.download, &report.upload}) {
        if (!*direction) {
            continue;
        }
        const auto& d = **direction;
        csv_row row;
        row.start_seconds = number(d.omitted_seconds);
        row.end_seconds = number(d.omitted_seconds + d.seconds);
        row.bytes = std::to_string(d.bytes);
        row.bits_per_second = number(d.bits_per_second);
        row.omitted = "false";
        if (d.udp) {
            row.packets = std::to_string(d.udp->packets_received);
            row.lost_packets = std::to_string(d.udp->lost_packets);
            row.lost_percent = number(d.udp->lost_percent);
            row.jitter_ms = number(d.udp->jitter_ms);
        }
        add_loaded_latency(row, d);
        print_row(out_, start_time_, "summary", std::string(proto::name_of(d.dir)), row);
    }
    if (report.bidirectional) {
        // --bidir: the latency under both loads, over the two windows' overlap.
        csv_row row;
        row.start_seconds = "0";
        row.end_seconds = number(report.bidirectional->overlap_seconds);  // empty when unknown (-i 0)
        add_loaded_latency(row, report.bidirectional->load);
        print_row(out_, start_time_, "summary", "both", row);
    }
    if (report.error) {
        csv_row row;
        row.error = *report.error;
        print_row(out_, start_time_, "error", "", row);
    }
}

}  // namespace speed::client
