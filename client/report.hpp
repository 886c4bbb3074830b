// What a speed test found: the model that the human and the JSON output both print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client/server_list.hpp"
#include "common/latency.hpp"
#include "common/protocol.hpp"
#include "common/statistics.hpp"
#include "net/socket_options.hpp"

namespace speed::client {

struct latency_report {
    std::vector<double> rtt_ms;  // in probe order: network round trips (both ends' own delays removed)
    std::vector<double> application_rtt_ms;  // the same probes from writing the PING to reading the PONG
    std::vector<std::int64_t> sent_ns;       // when each of those probes left (client monotonic clock)
    std::vector<std::int64_t> lost_sent_ns;  // when the probes that never got a reply left
    // The instant the JSON series' times count from (client monotonic clock, ns): a loaded series uses its
    // direction's receiver time 0, the clock of the intervals; 0 = the first probe sent.
    std::int64_t zero_ns = 0;
    std::vector<latency::probe_round_trip> corrections;  // per sample: which corrections were applied
    bool kernel_timestamps = false;  // every probe's round trip had the client's kernel wait removed
    // How many round trips had each correction applied (common/latency.hpp), and how many reported server
    // holds were implausible and left in.
    std::uint32_t client_wait_removed = 0;
    std::uint32_t server_hold_removed = 0;
    std::uint32_t server_hold_rejected = 0;
    std::uint32_t sent = 0;
    std::uint32_t lost = 0;
    stats::summary rtt;      // over rtt_ms
    double jitter_ms = 0.0;  // mean absolute difference of consecutive RTTs
};

// UDP figures of a stream or a whole direction (docs/json.md). Packet counts cover the whole test
// (warm-up, window and the tail until the sender stopped); bytes and rates cover the window.
struct udp_figures {
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;  // distinct datagrams
    std::uint64_t lost_packets = 0;      // packets_sent - packets_received, exactly
    double lost_percent = 0.0;
    std::uint64_t out_of_order = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t late_packets = 0;  // arrived after the window closed: counted as received, not lost
    double jitter_ms = 0.0;          // RFC 3550
    double ipdv_p50_ms = 0.0;        // |IPDV| percentiles (RFC 5481)
    double ipdv_p90_ms = 0.0;
    double ipdv_p99_ms = 0.0;
    // A direction's only: IPDV pairs used, and left out because a side's arrival time was a GRO message's.
    std::optional<std::uint64_t> ipdv_pairs;
    std::optional<std::uint64_t> ipdv_pairs_excluded;
    // A direction's only: packets the receiving sockets dropped because their buffers were full
    // (SO_RXQ_OVFL): speedcli's own for a download, speedsrv's (its latest FEEDBACK's) for an upload, none
    // from iperf3. A packet is one datagram or a GRO message of several, so this counts overflows, not lost
    // datagrams; their datagrams are among lost_packets.
    std::optional<std::uint64_t> receive_buffer_overflows;
};

struct udp_interval_figures {
    std::uint64_t packets = 0;
    std::uint64_t lost_packets = 0;  // sequence gaps opened in the interval (an estimate)
    double jitter_ms = 0.0;
};

struct interval_report {
    double start_seconds = 0.0;  // receiver clock, from the first payload byte
    double end_seconds = 0.0;
    std::uint64_t bytes = 0;
    double bits_per_second = 0.0;
    bool omitted = false;
    std::vector<std::uint64_t> stream_bytes;
    std::optional<udp_interval_figures> udp;
};

struct stream_report {
    std::uint64_t bytes = 0;  // received within the window
    double bits_per_second = 0.0;
    proto::stream_sender_stats sender;
    std::optional<udp_figures> udp;
    std::uint64_t sender_packets = 0;  // UDP
};

struct direction_report {
    proto::direction dir = proto::direction::download;
    std::string measured_by;       // "client" or "server": always the receiver
    double bits_per_second = 0.0;  // receiver goodput over the window
    std::uint64_t bytes = 0;       // received within the window
    double seconds = 0.0;          // observed window length
    double omitted_seconds = 0.0;
    std::uint64_t omitted_bytes = 0;
    std::vector<interval_report> intervals;
    std::vector<stream_report> streams;
    // TCP: each data socket as the kernel set it up (local port, buffers, MSS, TOS), read after connecting.
    std::vector<net::socket_readback> stream_sockets;
    // Sender side, secondary: bytes handed to the sockets (includes bytes still queued at the end) and
    // TCP_INFO.
    std::uint64_t sender_bytes = 0;
    std::uint32_t retransmits = 0;
    bool sender_has_tcp_info = false;
    std::string congestion;  // the sender's congestion control where known
    // The server's rate cap for this direction's test, bits/s (0 = none): a figure close to it measures the
    // cap.
    std::uint64_t server_cap_bits_per_second = 0;

    // Latency under this direction's load: probes on their own connection during the measured window, and the
    // kernel's RTT of the loaded connections themselves (in-band), both in ms.
    std::optional<latency_report> latency;
    std::vector<double> in_band_rtt_ms;
    // Downloads: self probes, application round trips on the load connections (docs/methodology.md), with
    // when each was sent (client monotonic clock, ns), and how many were sent and given up.
    std::vector<double> self_probe_rtt_ms;
    std::vector<std::int64_t> self_probe_sent_ns;
    std::uint64_t self_probes_sent = 0;
    std::uint64_t self_probes_dropped = 0;
    std::optional<double> latency_increase_ms;              // loaded median - idle median
    std::optional<latency::responsiveness> responsiveness;  // application round trips, stable part
    // The same from the kernel-corrected round trips (the figure RPM used to be): for comparison only.
    std::optional<latency::responsiveness> corrected_responsiveness;
    // The part of the window RPM used, s from the start of the load (docs/methodology.md).
    std::optional<std::pair<double, double>> stable_seconds;
    // The samples RPM used: application round trips and kernel-corrected ones of the probes sent in the
    // stable part; the self probes sent in it (where the direction has them, else the in-band RTTs that stand
    // for it), and the in-band RTTs that stand for it (the kernel figure's self samples).
    std::vector<double> stable_foreign_ms;
    std::vector<double> stable_foreign_corrected_ms;
    std::vector<double> stable_self_ms;
    bool self_from_probes = false;  // stable_self_ms holds self probes, not in-band kernel RTTs
    std::vector<double> stable_self_kernel_ms;

    // UDP only.
    std::optional<udp_figures> udp;
    std::optional<double> target_bits_per_second;  // nothing: adaptive rate (--bitrate 0)
    std::uint32_t datagram_bytes = 0;
    std::uint64_t sender_packets = 0;
};

// --bidir: download and upload loaded at once, each in its own session and measured by its receiver
// (docs/methodology.md, "Bidirectional tests").
struct bidirectional_report {
    // When the upload's receiver window began minus when the download's did (their time 0, the first byte),
    // on this client's clock, s: positive when the upload started later. The upload's is placed by its
    // interval reports' arrival, so it reads late by their one-way trip over the loaded downlink.
    // Both nothing without interval reports (-i 0): then the windows' places are unknown.
    std::optional<double> start_skew_seconds;
    std::optional<double> overlap_seconds;  // how long both windows (after the warm-up) were open together
    // Latency under both loads, over the overlap: the latency fields of a direction_report (latency,
    // in_band_rtt_ms, self probes, latency_increase_ms, responsiveness, stable_*); the others stay empty.
    // stable_seconds counts from the start of the overlap.
    direction_report load;
};

struct test_report {
    std::string version;
    std::string
        start_time;  // when the run began: UTC, ISO 8601 with milliseconds ("2026-11-29T19:40:00.123Z")
    std::string host;
    std::uint16_t port = 0;
    std::string address;  // the address actually connected to
    // The control connection's own end (the address the route to the server chose).
    std::string local_address;
    std::uint16_t local_port = 0;
    std::string server_software;
    // The server's per-test caps from WELCOME (0 = none): a figure at the cap may be the cap, not the link.
    std::uint64_t server_max_bitrate = 0;
    std::uint64_t server_max_bytes = 0;
    std::string protocol = "tcp";
    std::uint16_t streams = 1;
    std::optional<latency_report> idle_latency;
    // Why there is no idle latency although --pings asked for it (an iperf3 server has no echo); empty
    // otherwise.
    std::string idle_latency_not_measured;
    std::optional<direction_report> download;
    std::optional<direction_report> upload;
    std::optional<bidirectional_report> bidirectional;  // --bidir, once both directions completed
    // From the loaded latency of both directions (docs/methodology.md).
    std::optional<latency::bufferbloat_grade> bufferbloat_grade;
    std::optional<double> worst_increase_ms;
    std::optional<double> responsiveness_rpm;
    std::optional<double> corrected_responsiveness_rpm;  // from kernel-corrected round trips: comparison only
    std::optional<server_selection> selection;  // --servers: every candidate as timed, and the one chosen
    std::optional<std::string> error;
    int exit_code = 0;  // client/exit_codes.hpp
};

}  // namespace speed::client
