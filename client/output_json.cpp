#include <algorithm>
#include <cmath>

#include "client/output.hpp"
#include "client/server_selection.hpp"

namespace speed::client {

namespace {

using json = nlohmann::ordered_json;

// JSON has no NaN or infinity; a figure that could not be computed is null.
json number(double value) {
    return std::isfinite(value) ? json(value) : json(nullptr);
}

json rtt_summary_json(const stats::summary& rtt) {
    return {{"min", number(rtt.min)},      {"median", number(rtt.median)}, {"mean", number(rtt.mean)},
            {"p90", number(rtt.p90)},      {"p99", number(rtt.p99)},       {"max", number(rtt.max)},
            {"stddev", number(rtt.stddev)}};
}

// Rounded to the microsecond (seconds and milliseconds alike): finer than the clocks' real resolution,
// and it keeps a long series short.
json seconds_rounded(double seconds) {
    return number(std::round(seconds * 1e6) / 1e6);
}
json ms_rounded(double ms) {
    return number(std::round(ms * 1e3) / 1e3);
}

// Every probe of a latency object, in probe order (docs/json.md, "series"): when it was sent, in seconds
// from the series' zero, and its round trips; and when the lost ones were sent. Times are null where the
// probes' send times are not kept (UDP idle probes).
json series_json(const latency_report& latency) {
    std::int64_t zero = latency.zero_ns;
    if (zero == 0) {
        zero = latency.sent_ns.empty() ? 0 : latency.sent_ns.front();
        for (const std::int64_t sent : latency.lost_sent_ns) {
            zero = zero == 0 ? sent : std::min(zero, sent);
        }
    }
    const auto seconds_from_zero = [zero](std::int64_t ns) {
        return seconds_rounded(static_cast<double>(ns - zero) / 1e9);
    };
    const bool timed = latency.sent_ns.size() == latency.rtt_ms.size();
    json t = json::array();
    json rtt = json::array();
    json application = json::array();
    json lost = json::array();
    for (std::size_t i = 0; i < latency.rtt_ms.size(); ++i) {
        rtt.push_back(ms_rounded(latency.rtt_ms[i]));
        if (timed) {
            t.push_back(seconds_from_zero(latency.sent_ns[i]));
        }
    }
    for (const double ms : latency.application_rtt_ms) {
        application.push_back(ms_rounded(ms));
    }
    for (const std::int64_t sent : latency.lost_sent_ns) {
        lost.push_back(seconds_from_zero(sent));
    }
    return {{"t", timed ? std::move(t) : json(nullptr)},
            {"rtt_ms", std::move(rtt)},
            {"application_rtt_ms", std::move(application)},
            {"lost_t", std::move(lost)}};
}

json latency_json_of(const latency_report& latency) {
    json out;
    out["samples"] = latency.rtt_ms.size();
    out["sent"] = latency.sent;
    out["lost"] = latency.lost;
    out["rtt_ms"] = latency.rtt_ms.empty() ? json(nullptr) : rtt_summary_json(latency.rtt);
    out["jitter_ms"] = number(latency.jitter_ms);
    // How rtt_ms was timed: "kernel" when every round trip had the client's kernel wait removed and no
    // server hold was rejected; the counts say which corrections were applied.
    out["timestamps"] = latency.kernel_timestamps ? "kernel" : "application";
    out["corrections"] = {{"client_wait", latency.client_wait_removed},
                          {"server_hold", latency.server_hold_removed},
                          {"server_hold_rejected", latency.server_hold_rejected}};
    out["application_rtt_ms"] = latency.application_rtt_ms.empty()
                                    ? json(nullptr)
                                    : rtt_summary_json(stats::summarize(latency.application_rtt_ms));
    out["series"] = series_json(latency);
    return out;
}

// Latency under a direction's load: the idle shape plus the increase, the in-band RTT and responsiveness.
json loaded_latency_json(const direction_report& d) {
    json out = latency_json_of(d.latency.value_or(latency_report{}));
    out["increase_ms"] = d.latency_increase_ms ? json(*d.latency_increase_ms) : json(nullptr);
    json in_band;
    in_band["samples"] = d.in_band_rtt_ms.size();
    in_band["rtt_ms"] =
        d.in_band_rtt_ms.empty() ? json(nullptr) : rtt_summary_json(stats::summarize(d.in_band_rtt_ms));
    out["in_band"] = std::move(in_band);
    if (d.self_probes_sent > 0) {
        json self;
        self["sent"] = d.self_probes_sent;
        self["samples"] = d.self_probe_rtt_ms.size();
        self["dropped"] = d.self_probes_dropped;
        self["rtt_ms"] = d.self_probe_rtt_ms.empty()
                             ? json(nullptr)
                             : rtt_summary_json(stats::summarize(d.self_probe_rtt_ms));
        out["self_probes"] = std::move(self);
    } else {
        out["self_probes"] = nullptr;
    }
    out["responsiveness_rpm"] = d.responsiveness ? json(d.responsiveness->rpm) : json(nullptr);
    json rpm;
    rpm["foreign_rpm"] = d.responsiveness && d.responsiveness->foreign_rpm
                             ? json(*d.responsiveness->foreign_rpm)
                             : json(nullptr);
    rpm["self_rpm"] =
        d.responsiveness && d.responsiveness->self_rpm ? json(*d.responsiveness->self_rpm) : json(nullptr);
    rpm["foreign_samples"] = d.stable_foreign_ms.size();
    rpm["self_samples"] = d.stable_self_ms.size();
    rpm["self_source"] = d.self_from_probes ? "self_probes" : "in_band";
    rpm["stable_seconds"] =
        d.stable_seconds ? json::array({d.stable_seconds->first, d.stable_seconds->second}) : json(nullptr);
    rpm["kernel_corrected_rpm"] =
        d.corrected_responsiveness ? json(d.corrected_responsiveness->rpm) : json(nullptr);
    rpm["kernel_self_rpm"] = d.corrected_responsiveness && d.corrected_responsiveness->self_rpm
                                 ? json(*d.corrected_responsiveness->self_rpm)
                                 : json(nullptr);
    out["responsiveness"] = std::move(rpm);
    return out;
}

json sender_stream_json(const proto::stream_sender_stats& s) {
    json out;
    out["bytes"] = s.bytes_sent;
    if (s.has_tcp_info) {
        out["retransmits"] = s.retransmits;
        out["rtt_ms"] = s.rtt_us / 1000.0;
        out["rttvar_ms"] = s.rttvar_us / 1000.0;
        out["cwnd_bytes"] = s.cwnd_bytes;
    } else {
        out["retransmits"] = nullptr;
    }
    return out;
}

json ipdv_json(const udp_figures& udp) {
    return {
        {"p50", number(udp.ipdv_p50_ms)}, {"p90", number(udp.ipdv_p90_ms)}, {"p99", number(udp.ipdv_p99_ms)}};
}

// The UDP keys of a direction or a stream (docs/json.md), after the keys TCP has too.
void add_udp_figures(json& out, const udp_figures& udp) {
    out["packets_sent"] = udp.packets_sent;
    out["packets_received"] = udp.packets_received;
    out["lost_packets"] = udp.lost_packets;
    out["lost_percent"] = number(udp.lost_percent);
    out["out_of_order"] = udp.out_of_order;
    out["duplicates"] = udp.duplicates;
    out["late_packets"] = udp.late_packets;
    out["jitter_ms"] = number(udp.jitter_ms);
    out["ipdv_ms"] = ipdv_json(udp);
    if (udp.ipdv_pairs && udp.ipdv_pairs_excluded) {
        out["ipdv_pairs"] = {{"used", *udp.ipdv_pairs}, {"excluded", *udp.ipdv_pairs_excluded}};
    }
}

json direction_json_of(const direction_report& report) {
    json out;
    out["bits_per_second"] = number(report.bits_per_second);
    out["bytes"] = report.bytes;
    out["seconds"] = number(report.seconds);
    out["omitted_seconds"] = number(report.omitted_seconds);
    out["omitted_bytes"] = report.omitted_bytes;
    out["measured_by"] = report.measured_by;
    // TCP receivers count payload without copying it to user space (MSG_TRUNC); UDP receivers read every
    // datagram's header.
    out["receive_copy"] = report.udp.has_value();
    out["server_cap_bits_per_second"] =
        report.server_cap_bits_per_second == 0 ? json(nullptr) : json(report.server_cap_bits_per_second);
    json intervals = json::array();
    for (const auto& interval : report.intervals) {
        intervals.push_back(interval_json(interval));
    }
    out["intervals"] = std::move(intervals);
    json streams = json::array();
    for (std::size_t i = 0; i < report.streams.size(); ++i) {
        const auto& stream = report.streams[i];
        json entry = {{"id", i},
                      {"bytes", stream.bytes},
                      {"bits_per_second", number(stream.bits_per_second)},
                      {"sender", sender_stream_json(stream.sender)}};
        if (i < report.stream_sockets.size()) {
            const auto& socket = report.stream_sockets[i];
            entry["socket"] = {{"local_port", socket.local_port},
                               {"send_buffer_bytes", socket.send_buffer_bytes},
                               {"receive_buffer_bytes", socket.receive_buffer_bytes},
                               {"mss_bytes", socket.mss_bytes},
                               {"tos", socket.tos}};
        }
        if (stream.udp) {
            entry["sender"]["packets"] = stream.sender_packets;
            add_udp_figures(entry, *stream.udp);
        }
        streams.push_back(std::move(entry));
    }
    out["streams"] = std::move(streams);
    json sender;
    sender["bytes"] = report.sender_bytes;
    sender["retransmits"] = report.sender_has_tcp_info ? json(report.retransmits) : json(nullptr);
    sender["congestion"] = report.congestion.empty() ? json(nullptr) : json(report.congestion);
    if (report.udp) {
        sender["packets"] = report.sender_packets;
    }
    out["sender"] = std::move(sender);
    out["latency"] = loaded_latency_json(report);
    if (report.udp) {
        add_udp_figures(out, *report.udp);
        // A direction's only: null when the receiver did not report it (an iperf3 server).
        out["receive_buffer_overflows"] = report.udp->receive_buffer_overflows
                                              ? json(*report.udp->receive_buffer_overflows)
                                              : json(nullptr);
        out["target_bits_per_second"] =
            report.target_bits_per_second ? number(*report.target_bits_per_second) : json(nullptr);
        out["rate_control"] = report.target_bits_per_second ? "fixed" : "adaptive";
        out["datagram_bytes"] = report.datagram_bytes;
    }
    return out;
}

const char* family_name(address_family family) {
    switch (family) {
        case address_family::ipv4:
            return "ipv4";
        case address_family::ipv6:
            return "ipv6";
        case address_family::any:
            break;
    }
    return "any";
}

}  // namespace

nlohmann::ordered_json interval_json(const interval_report& interval) {
    json entry = {{"start", number(interval.start_seconds)},
                  {"end", number(interval.end_seconds)},
                  {"bytes", interval.bytes},
                  {"bits_per_second", number(interval.bits_per_second)},
                  {"omitted", interval.omitted},
                  {"streams", interval.stream_bytes}};
    if (interval.udp) {
        entry["packets"] = interval.udp->packets;
        entry["lost_packets"] = interval.udp->lost_packets;
        entry["jitter_ms"] = number(interval.udp->jitter_ms);
    }
    return entry;
}

nlohmann::ordered_json direction_json(const direction_report& report) {
    return direction_json_of(report);
}

nlohmann::ordered_json latency_json(const latency_report& latency) {
    return latency_json_of(latency);
}

nlohmann::ordered_json parameters_json(const test_options& options) {
    return {
        {"duration_seconds", options.duration_seconds},
        {"omit_seconds", options.omit_seconds},
        {"interval_seconds", options.interval_seconds},
        {"streams", options.streams},
        {"bitrate", options.bitrate == 0 ? json(nullptr) : json(options.bitrate)},
        {"udp", options.udp},
        {"iperf3", options.iperf3},
        {"length", options.udp_length == 0 ? json(nullptr) : json(options.udp_length)},
        {"congestion", options.congestion.empty() ? json(nullptr) : json(options.congestion)},
        {"download", options.download},
        {"upload", options.upload},
        {"bidirectional", options.bidir},
        {"pings", options.pings},
        {"ping_interval_seconds", options.ping_interval_seconds},
        {"loaded_ping_interval_seconds", options.loaded_ping_interval_seconds},
        {"connect_timeout_seconds", options.connect_timeout_seconds},
        {"family", family_name(options.family)},
        {"authentication", options.auth_key.has_value()},
        {"bind", options.sockets.bind_address.empty() ? json(nullptr) : json(options.sockets.bind_address)},
        {"cport", options.sockets.data_port == 0 ? json(nullptr) : json(options.sockets.data_port)},
        {"window", options.sockets.window == 0 ? json(nullptr) : json(options.sockets.window)},
        {"mss", options.sockets.mss == 0 ? json(nullptr) : json(options.sockets.mss)},
        {"tos", options.sockets.tos ? json(*options.sockets.tos) : json(nullptr)}};
}

nlohmann::ordered_json start_json(const test_report& report, const test_options& options) {
    json out;
    out["version"] = report.version;
    out["start_time"] = report.start_time.empty() ? json(nullptr) : json(report.start_time);
    out["server"] = {
        {"host", report.host},
        {"port", report.port},
        {"address", report.address.empty() ? json(nullptr) : json(report.address)},
        {"software", report.server_software.empty() ? json(nullptr) : json(report.server_software)},
        {"max_bitrate", report.server_max_bitrate == 0 ? json(nullptr) : json(report.server_max_bitrate)},
        {"max_bytes", report.server_max_bytes == 0 ? json(nullptr) : json(report.server_max_bytes)}};
    out["local"] = {{"address", report.local_address.empty() ? json(nullptr) : json(report.local_address)},
                    {"port", report.local_port == 0 ? json(nullptr) : json(report.local_port)}};
    out["protocol"] = report.protocol;
    out["streams"] = report.streams;
    out["parameters"] = parameters_json(options);
    return out;
}

nlohmann::ordered_json selection_json(const server_selection& selection) {
    json candidates = json::array();
    for (const auto& candidate : selection.candidates) {
        candidates.push_back({{"host", candidate.address.host},
                              {"port", candidate.address.port},
                              {"rtt_ms", candidate.rtt_ms ? json(*candidate.rtt_ms) : json(nullptr)},
                              {"error", candidate.rtt_ms ? json(nullptr) : json(candidate.error)}});
    }
    return {{"rounds", kSelectionRounds},
            {"candidates", std::move(candidates)},
            {"chosen", selection.chosen ? json(*selection.chosen) : json(nullptr)}};
}

nlohmann::ordered_json to_json(const test_report& report, const test_options& options) {
    json out = start_json(report, options);
    out["server_selection"] = report.selection ? selection_json(*report.selection) : json(nullptr);
    out["latency"] = {
        {"idle", report.idle_latency ? latency_json_of(*report.idle_latency) : json(nullptr)},
        {"idle_not_measured",
         report.idle_latency_not_measured.empty() ? json(nullptr) : json(report.idle_latency_not_measured)}};
    out["download"] = report.download ? direction_json_of(*report.download) : json(nullptr);
    out["upload"] = report.upload ? direction_json_of(*report.upload) : json(nullptr);
    if (report.bidirectional) {
        const auto& both = *report.bidirectional;
        out["bidirectional"] = {
            {"start_skew_seconds",
             both.start_skew_seconds ? number(*both.start_skew_seconds) : json(nullptr)},
            {"overlap_seconds", both.overlap_seconds ? number(*both.overlap_seconds) : json(nullptr)},
            {"latency", loaded_latency_json(both.load)}};
    } else {
        out["bidirectional"] = nullptr;
    }
    out["bufferbloat_grade"] =
        report.bufferbloat_grade ? json(latency::name_of(*report.bufferbloat_grade)) : json(nullptr);
    out["responsiveness_rpm"] = report.responsiveness_rpm ? json(*report.responsiveness_rpm) : json(nullptr);
    out["responsiveness_rpm_kernel_corrected"] =
        report.corrected_responsiveness_rpm ? json(*report.corrected_responsiveness_rpm) : json(nullptr);
    out["error"] = report.error ? json(*report.error) : json(nullptr);
    return out;
}

}  // namespace speed::client
