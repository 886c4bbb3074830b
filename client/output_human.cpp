#include <fmt/format.h>

#include <cmath>

#include "client/output.hpp"
#include "client/server_selection.hpp"
#include "common/units.hpp"

namespace speed::client {

namespace {

const char* title(proto::direction dir) {
    return dir == proto::direction::download ? "Download" : "Upload";
}

// The headline is the kernel-corrected round trip (what ping measures); the application's own round trip,
// which includes both ends' scheduling, is printed beside it so nobody mistakes one for the other.
std::string latency_line(const latency_report& latency) {
    const double application_median = stats::summarize(latency.application_rtt_ms).median;
    return fmt::format(
        "{} median, {} min, {} p90, {} max, jitter {} ({} probes{}; {}, application RTT {} median)",
        units::format_milliseconds(latency.rtt.median), units::format_milliseconds(latency.rtt.min),
        units::format_milliseconds(latency.rtt.p90), units::format_milliseconds(latency.rtt.max),
        units::format_milliseconds(latency.jitter_ms), latency.rtt_ms.size(),
        latency.lost > 0 ? fmt::format(", {} lost", latency.lost) : std::string(),
        latency.kernel_timestamps ? "kernel-corrected" : "partly corrected",
        units::format_milliseconds(application_median));
}

// ", latency under load 31.2 ms median (+28.9 ms)" when probes ran during the direction.
std::string loaded_latency_suffix(const direction_report& d) {
    if (!d.latency || d.latency->rtt_ms.empty()) {
        return "";
    }
    std::string text =
        ", latency under load " + units::format_milliseconds(d.latency->rtt.median) + " median";
    if (d.latency_increase_ms) {
        text += " (+" + units::format_milliseconds(*d.latency_increase_ms) + ")";
    }
    return text;
}

// ", capped by the server at 100.0 Mbit/s and 1.000 GiB per test" when the server has caps.
std::string caps_suffix(const test_report& report) {
    std::string caps;
    if (report.server_max_bitrate != 0) {
        caps = units::format_bits_per_second(static_cast<double>(report.server_max_bitrate));
    }
    if (report.server_max_bytes != 0) {
        caps += (caps.empty() ? "" : " and ") + units::format_bytes(report.server_max_bytes);
    }
    return caps.empty() ? "" : ", capped by the server at " + caps + " per test";
}

// "    under load  ..." lines of a direction's summary, or of both directions' load with --bidir.
void print_under_load(std::FILE* out, const direction_report& d) {
    if (!d.latency && !d.in_band_rtt_ms.empty()) {
        // No probe connection (an iperf3 server): the load's own TCP RTT is the loaded latency.
        fmt::print(out, "    under load  in-band TCP RTT {} median\n",
                   units::format_milliseconds(stats::summarize(d.in_band_rtt_ms).median));
    }
    if (d.latency && !d.latency->rtt_ms.empty()) {
        std::string increase;
        if (d.latency_increase_ms) {
            increase = fmt::format(", +{} over idle", units::format_milliseconds(*d.latency_increase_ms));
        }
        std::string in_band;
        if (!d.in_band_rtt_ms.empty()) {
            in_band = fmt::format("; in-band TCP RTT {} median",
                                  units::format_milliseconds(stats::summarize(d.in_band_rtt_ms).median));
        }
        if (!d.self_probe_rtt_ms.empty()) {
            in_band += fmt::format("; on the load connections {} median",
                                   units::format_milliseconds(stats::summarize(d.self_probe_rtt_ms).median));
        }
        fmt::print(out, "    under load  {}{}{}\n", latency_line(*d.latency), increase, in_band);
    }
}

// With --bidir the live lines of both directions interleave: each says whose it is.
const char* live_prefix(const test_options* options, proto::direction dir) {
    if (options == nullptr || !options->bidir) {
        return "";
    }
    return dir == proto::direction::download ? "down " : "up   ";
}

}  // namespace

std::string human_output::rate(double bits_per_second) const {
    return units::format_rate_in(bits_per_second, rate_unit_);
}

void human_output::server_selected(const server_selection& selection) {
    if (quiet_) {
        return;
    }
    fmt::print(out_, "Server selection, the fastest of {} HELLO-WELCOME round trips each:\n",
               kSelectionRounds);
    for (std::size_t i = 0; i < selection.candidates.size(); ++i) {
        const auto& candidate = selection.candidates[i];
        const std::string figure =
            candidate.rtt_ms ? units::format_milliseconds(*candidate.rtt_ms) : candidate.error;
        fmt::print(out_, "  {} port {}: {}{}\n", candidate.address.host, candidate.address.port, figure,
                   selection.chosen == i ? "  <- nearest" : "");
    }
}

void human_output::connected(const test_report& report) {
    streams_ = report.streams;
    if (quiet_) {
        return;
    }
    fmt::print(out_, "Connected to {} ({} port {}) from {} port {} at {}, {}{}\n", report.host,
               report.address, report.port, report.local_address, report.local_port, report.start_time,
               report.server_software, caps_suffix(report));
    if (options_ != nullptr) {
        const auto& o = *options_;
        const char* directions = o.bidir                  ? "download and upload at once"
                                 : o.download && o.upload ? "download and upload"
                                 : o.download             ? "download"
                                 : o.upload               ? "upload"
                                                          : "no transfer";
        std::string rate_text = o.bitrate == 0
                                    ? (o.udp ? "adaptive rate" : "unpaced")
                                    : "at " + units::format_bits_per_second(static_cast<double>(o.bitrate));
        fmt::print(out_, "Testing {} over {}: {} stream{}, {} s each{}, {}{}, intervals {}\n", directions,
                   o.udp ? "UDP" : "TCP", o.streams, o.streams == 1 ? "" : "s", o.duration_seconds,
                   o.omit_seconds > 0 ? fmt::format(" after {} s warm-up", o.omit_seconds) : std::string(),
                   rate_text, o.congestion.empty() ? std::string() : ", congestion control " + o.congestion,
                   o.interval_seconds > 0 ? fmt::format("{} s", o.interval_seconds) : std::string("off"));
    }
    std::fflush(out_);
}

void human_output::idle_latency_done(const latency_report& latency) {
    if (quiet_) {
        return;
    }
    fmt::print(out_, "Idle latency: {}\n", latency_line(latency));
    std::fflush(out_);
}

void human_output::direction_started(proto::direction dir, const direction_report& report) {
    if (quiet_) {
        return;
    }
    fmt::print(out_, "{}: {} stream{}, measured by the {} (the receiver)\n", title(dir), streams_,
               streams_ == 1 ? "" : "s", report.measured_by);
    std::fflush(out_);
}

void human_output::interval_done(proto::direction dir, const interval_report& interval) {
    if (quiet_) {
        return;
    }
    std::string udp;
    if (interval.udp) {
        udp = fmt::format("  lost {}/{}  jitter {}", interval.udp->lost_packets,
                          interval.udp->packets + interval.udp->lost_packets,
                          units::format_milliseconds(interval.udp->jitter_ms));
    }
    fmt::print(out_, "  {}[{:6.2f}-{:6.2f} s]  {:>11}  {:>13}{}{}\n", live_prefix(options_, dir),
               interval.start_seconds, interval.end_seconds, units::format_bytes(interval.bytes),
               rate(interval.bits_per_second), udp, interval.omitted ? "  (omitted)" : "");
    std::fflush(out_);
}

void human_output::direction_done(const direction_report& report) {
    if (quiet_) {
        return;
    }
    fmt::print(out_, "  {} {}: {} in {:.2f} s{}\n", title(report.dir), rate(report.bits_per_second),
               units::format_bytes(report.bytes), report.seconds, loaded_latency_suffix(report));
    std::fflush(out_);
}

void human_output::summary(const test_report& report) {
    fmt::print(out_, "{}Summary ({} to {})\n", quiet_ ? "" : "\n", report.protocol == "tcp" ? "TCP" : "UDP",
               report.host);
    if (report.idle_latency) {
        fmt::print(out_, "  Idle latency  {}\n", latency_line(*report.idle_latency));
    } else if (!report.idle_latency_not_measured.empty()) {
        fmt::print(out_, "  Idle latency  not measured: {}\n", report.idle_latency_not_measured);
    }
    for (const auto* direction : {&report.download, &report.upload}) {
        if (!*direction) {
            continue;
        }
        const auto& d = **direction;
        std::string sender = fmt::format("sender {}", units::format_bytes(d.sender_bytes));
        if (d.udp) {
            sender = fmt::format("sender {}, {} datagrams of {} B, {}", units::format_bytes(d.sender_bytes),
                                 d.sender_packets, d.datagram_bytes,
                                 d.target_bits_per_second
                                     ? "target " + units::format_bits_per_second(*d.target_bits_per_second)
                                     : std::string("adaptive rate"));
        }
        if (d.sender_has_tcp_info) {
            sender += fmt::format(", {} retransmits", d.retransmits);
        }
        std::string omitted;
        if (d.omitted_seconds > 0) {
            omitted = fmt::format(", {:.2f} s warm-up omitted", d.omitted_seconds);
        }
        if (d.server_cap_bits_per_second != 0) {
            omitted += ", server cap " +
                       units::format_bits_per_second(static_cast<double>(d.server_cap_bits_per_second));
        }
        fmt::print(out_, "  {:<12}  {:>13}  {} in {:.2f} s{} ({})\n", title(d.dir), rate(d.bits_per_second),
                   units::format_bytes(d.bytes), d.seconds, omitted, sender);
        if (d.udp) {
            fmt::print(out_,
                       "  {:<12}  lost {}/{} ({:.3g} %), jitter {}, IPDV p50/p99 {}/{}, out of order {}, "
                       "duplicates {}, late {}\n",
                       "", d.udp->lost_packets, d.udp->packets_sent, d.udp->lost_percent,
                       units::format_milliseconds(d.udp->jitter_ms),
                       units::format_milliseconds(d.udp->ipdv_p50_ms),
                       units::format_milliseconds(d.udp->ipdv_p99_ms), d.udp->out_of_order, d.udp->duplicates,
                       d.udp->late_packets);
            // Loss at the receiving host (its socket overflowed) is not the network's: say so.
            if (d.udp->receive_buffer_overflows.value_or(0) > 0) {
                fmt::print(
                    out_,
                    "  {:<12}  {} receive buffer overflowed {} time{}: some of the loss is the receiver's, "
                    "not the path's (see net.core.rmem_max)\n",
                    "", d.measured_by == "client" ? "this host's" : "the server's",
                    *d.udp->receive_buffer_overflows, *d.udp->receive_buffer_overflows == 1 ? "" : "s");
            }
        }
        if (!report.bidirectional) {
            print_under_load(out_, d);
        }
        if (d.streams.size() > 1) {
            for (std::size_t i = 0; i < d.streams.size(); ++i) {
                fmt::print(out_, "    stream {:<3}  {:>13}  {}\n", i, rate(d.streams[i].bits_per_second),
                           units::format_bytes(d.streams[i].bytes));
            }
        }
    }
    if (report.bidirectional) {
        const auto& both = *report.bidirectional;
        if (both.overlap_seconds && both.start_skew_seconds) {
            fmt::print(out_, "  {:<12}  windows overlap {:.2f} s, upload started {} {} the download\n",
                       "Both at once", *both.overlap_seconds,
                       units::format_milliseconds(std::abs(*both.start_skew_seconds) * 1e3),
                       *both.start_skew_seconds >= 0 ? "after" : "before");
        } else if (both.overlap_seconds) {
            // --iperf3: one test started both directions; the upload's time 0 is on the server's clock.
            fmt::print(out_, "  {:<12}  windows overlap {:.2f} s (one iperf3 test)\n", "Both at once",
                       *both.overlap_seconds);
        } else {
            fmt::print(out_, "  {:<12}  windows' overlap not known (no interval reports)\n", "Both at once");
        }
        print_under_load(out_, both.load);
    }
    if (report.bufferbloat_grade && report.worst_increase_ms) {
        fmt::print(out_, "  Bufferbloat   grade {} (latency rises by up to {} under load)\n",
                   latency::name_of(*report.bufferbloat_grade),
                   units::format_milliseconds(*report.worst_increase_ms));
    }
    if (report.responsiveness_rpm) {
        fmt::print(out_, "  Responsiveness  {:.0f} RPM (application round trips per minute under load)\n",
                   *report.responsiveness_rpm);
    }
    std::fflush(out_);
}

}  // namespace speed::client
