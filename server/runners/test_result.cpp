#include "server/runners/test_result.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/units.hpp"

namespace speed::server {

namespace {

std::string streams_of(const test_result& result) {
    return fmt::format("{} stream{}", result.streams, result.streams == 1 ? "" : "s");
}

std::string summary_of(const test_result& r) {
    const bool download = r.direction == proto::direction::download;
    if (r.transport == proto::transport::tcp) {
        if (download) {
            return fmt::format("download {}: sent {} (sender side, {} retransmits)", streams_of(r),
                               units::format_bytes(r.tcp_bytes_sent()), r.tcp_retransmits());
        }
        return fmt::format("upload {}: received {} ({} in {:.2f} s, receiver side)", streams_of(r),
                           units::format_bits_per_second(r.received.bits_per_second()),
                           units::format_bytes(r.received.bytes()), r.received.seconds());
    }
    if (download) {
        std::uint64_t packets = 0;
        std::uint64_t bytes = 0;
        for (const auto& stream : r.udp_sent.streams) {
            packets += stream.packets;
            bytes += stream.bytes;
        }
        return fmt::format("udp download {}: sent {} datagrams ({}, {} target)", streams_of(r), packets,
                           units::format_bytes(bytes),
                           r.requested_bitrate == 0
                               ? std::string(r.iperf3_udp_sent.empty() ? "adaptive" : "unpaced")
                               : units::format_bits_per_second(static_cast<double>(r.requested_bitrate)));
    }
    if (!r.iperf3_udp_received.empty()) {
        // iperf3's figures, as the client prints them: lost and the highest sequence number seen.
        std::uint64_t lost = 0;
        std::uint64_t packets = 0;
        double jitter = 0.0;
        for (const auto& stream : r.iperf3_udp_received) {
            lost += stream.errors - std::min(stream.errors, stream.omitted_errors);
            packets += stream.packets - std::min(stream.packets, stream.omitted_packets);
            jitter += stream.jitter_seconds;
        }
        jitter /= static_cast<double>(r.iperf3_udp_received.size());  // iperf3's mean, computed as it does
        return fmt::format(
            "udp upload {}: received {} ({} in {:.2f} s, receiver side), lost {}/{}, jitter {:.3f} ms",
            streams_of(r), units::format_bits_per_second(r.received.bits_per_second()),
            units::format_bytes(r.received.bytes()), r.received.seconds(), lost, packets, jitter * 1000.0);
    }
    std::uint64_t sent_packets = 0;
    std::uint64_t lost = 0;
    for (const auto& stream : r.udp_peer_sent.streams) {
        sent_packets += stream.packets;
    }
    for (const auto& stream : r.udp_received.streams) {
        lost += stream.lost_packets;
    }
    return fmt::format("udp upload {}: received {} ({} in {:.2f} s, receiver side), lost {}/{}",
                       streams_of(r), units::format_bits_per_second(r.received.bits_per_second()),
                       units::format_bytes(r.received.bytes()), r.received.seconds(), lost, sent_packets);
}

}  // namespace

std::uint64_t test_result::tcp_bytes_sent() const {
    std::uint64_t sent = 0;
    for (const auto& stream : tcp_sent) {
        sent += stream.bytes_sent;
    }
    return sent;
}

std::uint32_t test_result::tcp_retransmits() const {
    std::uint32_t retransmits = 0;
    for (const auto& stream : tcp_sent) {
        retransmits += stream.retransmits;
    }
    return retransmits;
}

test_result completed_result(const proto::test_request& request) {
    test_result result;
    result.completed = true;
    result.transport = request.proto;
    result.direction = request.dir;
    result.streams = request.streams;
    result.requested_bitrate = request.bitrate;
    return result;
}

std::string describe_for_log(const test_result& result) {
    std::vector<std::string> parts;
    if (result.completed) {
        parts.push_back(summary_of(result));
    }
    const auto& counters = result.udp_counters;
    if (counters.wrong_address_hellos > 0) {
        parts.push_back(
            fmt::format("{} UDP handshakes from a wrong address dropped", counters.wrong_address_hellos));
    }
    if (counters.rejected_datagrams > 0) {
        parts.push_back(
            fmt::format("{} UDP datagrams without the test's token dropped", counters.rejected_datagrams));
    }
    if (const auto& drops = counters.data_drops; drops.total() > 0) {
        parts.push_back(
            fmt::format("{} UDP DATA datagrams dropped ({} before the streams were ready, {} of a wrong "
                        "length, {} with an "
                        "implausible sequence number)",
                        drops.total(), drops.before_ready, drops.wrong_length, drops.implausible_sequence));
    }
    std::string out;
    for (const auto& part : parts) {
        out += out.empty() ? part : "; " + part;
    }
    return out;
}

std::string describe_tests_for_log(const std::vector<test_result>& results, std::size_t foreign_connections) {
    std::string out;
    for (const auto& result : results) {
        if (auto text = describe_for_log(result); !text.empty()) {
            out += "; " + text;
        }
    }
    if (foreign_connections > 0) {
        out +=
            fmt::format("; {} data or probe connections from another address refused", foreign_connections);
    }
    return out.empty() ? "; no tests" : out;
}

}  // namespace speed::server
