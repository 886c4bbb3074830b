// What one test on the server measured or sent, as data: the runners (server/runners/test_runner.hpp) return
// it, a front-end turns it into its protocol's reports, and the session's log line is formatted from it.
// Pure: no Asio, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/iperf3_udp.hpp"
#include "common/measurement.hpp"
#include "common/protocol.hpp"
#include "common/udp_accounting.hpp"

namespace speed::server {

// What a UDP test's flows turned away, known once the flows close (after the test's result: they outlive it
// until the next request, so that FEEDBACK still in flight lands on them).
struct udp_flow_counters {
    std::uint64_t wrong_address_hellos = 0;  // handshakes from another address than the control connection's
    std::uint64_t rejected_datagrams = 0;    // datagrams without the test's token
    udp::drop_counters data_drops;           // DATA dropped by the receivers, per reason
    bool operator==(const udp_flow_counters&) const = default;
};

struct test_result {
    // False for a test that failed before its result: only its UDP flow counters are known.
    bool completed = false;
    proto::transport transport = proto::transport::tcp;
    proto::direction direction = proto::direction::download;  // named from the client's side
    std::uint16_t streams = 0;
    std::uint64_t requested_bitrate = 0;  // the client's target; 0: as fast as allowed (UDP: adaptive)

    // A download: the server is the sender.
    std::vector<proto::stream_sender_stats> tcp_sent;  // per stream, with the kernel's figures
    // Per stream, the bytes handed to the socket by the end of the warm-up (sampled within a few hundred ms
    // of it): what a front-end leaves out when it reports the sender's figure after the warm-up, as iperf3
    // does.
    std::vector<std::uint64_t> tcp_sent_in_warm_up;
    std::vector<std::uint32_t> rtt_samples_us;  // in-band RTT after the warm-up, at most kMaxRttSamples
    proto::udp_sender_report udp_sent;          // per stream datagrams and bytes

    // An upload: the server is the receiver, and measures (docs/methodology.md).
    measure::totals received;                 // the measured window, TCP and UDP
    proto::self_probe_samples self_probes;    // TCP: round trips of the server's probes on the load
    proto::udp_sender_report udp_peer_sent;   // UDP: what the client says it sent
    proto::udp_receiver_report udp_received;  // UDP: the exact accounting against it

    // An iperf3 UDP test (server/runners/iperf3_udp_runner.hpp), per stream: iperf3's receiver figures (an
    // upload; `received` holds the same bytes) or its sender's (-R; `udp_sent` holds the same counts).
    std::vector<iperf3::udp_receiver_figures> iperf3_udp_received;
    std::vector<iperf3::udp_sender_figures> iperf3_udp_sent;

    udp_flow_counters udp_counters;

    std::uint64_t tcp_bytes_sent() const;
    std::uint32_t tcp_retransmits() const;
    bool operator==(const test_result&) const = default;
};

// The result of a completed test as `request` describes it; the runner fills in the figures.
test_result completed_result(const proto::test_request& request);

// One test for the end-of-session log line, e.g. "upload 1 stream: received 1.00 Mbit/s (125.0 KiB in 1.00 s,
// receiver side)", followed by its UDP flow counters when any is non-zero, all joined by "; ". Empty for a
// test with nothing to say.
std::string describe_for_log(const test_result& result);

// The tests part of the end-of-session log line: "; " before each test's description, then the refused
// connections from another address when there were any; "; no tests" when nothing is to be said.
std::string describe_tests_for_log(const std::vector<test_result>& results, std::size_t foreign_connections);

}  // namespace speed::server
