// The end-of-session log line's tests part, formatted from test results (server/runners/test_result.hpp).
#include <catch2/catch.hpp>

#include "server/runners/test_result.hpp"

using speed::server::describe_for_log;
using speed::server::describe_tests_for_log;
using speed::server::test_result;
namespace proto = speed::proto;

namespace {

test_result completed(proto::transport transport, proto::direction direction, std::uint16_t streams) {
    test_result result;
    result.completed = true;
    result.transport = transport;
    result.direction = direction;
    result.streams = streams;
    return result;
}

test_result tcp_download() {
    auto result = completed(proto::transport::tcp, proto::direction::download, 2);
    result.tcp_sent.resize(2);
    result.tcp_sent[0].bytes_sent = 1024;
    result.tcp_sent[0].retransmits = 3;
    result.tcp_sent[1].bytes_sent = 512;
    result.tcp_sent[1].retransmits = 4;
    return result;
}

test_result udp_upload() {
    auto result = completed(proto::transport::udp, proto::direction::upload, 2);
    result.received.window_ns = 1'000'000'000;
    result.received.stream_bytes = {500'000, 500'000};
    result.udp_peer_sent.streams = {{400, 400'000}, {400, 400'000}};
    result.udp_received.streams.resize(2);
    result.udp_received.streams[0].lost_packets = 3;
    result.udp_received.streams[1].lost_packets = 5;
    return result;
}

}  // namespace

TEST_CASE("a TCP download is logged with the bytes the server sent and its retransmits", "[summary]") {
    CHECK(describe_for_log(tcp_download()) ==
          "download 2 streams: sent 1.500 KiB (sender side, 7 retransmits)");
}

TEST_CASE("a TCP upload is logged with the receiver's rate, bytes and window", "[summary]") {
    auto result = completed(proto::transport::tcp, proto::direction::upload, 1);
    result.received.window_ns = 2'000'000'000;
    result.received.stream_bytes = {250'000'000};
    CHECK(describe_for_log(result) ==
          "upload 1 stream: received 1.000 Gbit/s (238.4 MiB in 2.00 s, receiver side)");
}

TEST_CASE("a UDP download is logged with its datagrams and its target rate", "[summary]") {
    auto result = completed(proto::transport::udp, proto::direction::download, 1);
    result.udp_sent.streams = {{100, 102'400}};
    CHECK(describe_for_log(result) ==
          "udp download 1 stream: sent 100 datagrams (100.0 KiB, adaptive target)");
    result.requested_bitrate = 10'000'000;
    CHECK(describe_for_log(result) ==
          "udp download 1 stream: sent 100 datagrams (100.0 KiB, 10.00 Mbit/s target)");
}

TEST_CASE("a UDP upload is logged with its losses against what the client sent, then its flows' drops",
          "[summary]") {
    auto result = udp_upload();
    CHECK(describe_for_log(result) ==
          "udp upload 2 streams: received 8.000 Mbit/s (976.6 KiB in 1.00 s, receiver side), lost 8/800");
    result.udp_counters.wrong_address_hellos = 2;
    result.udp_counters.data_drops = {1, 2, 3};
    CHECK(
        describe_for_log(result) ==
        "udp upload 2 streams: received 8.000 Mbit/s (976.6 KiB in 1.00 s, receiver side), lost 8/800; 2 UDP "
        "handshakes from a wrong address dropped; 6 UDP DATA datagrams dropped (1 before the streams were "
        "ready, 2 of a wrong length, 3 with an implausible sequence number)");
}

TEST_CASE("a test that did not complete is logged only by its flows' counters", "[summary]") {
    test_result failed;
    failed.transport = proto::transport::udp;
    CHECK(describe_for_log(failed).empty());
    failed.udp_counters.rejected_datagrams = 4;
    CHECK(describe_for_log(failed) == "4 UDP datagrams without the test's token dropped");
}

TEST_CASE("the session's tests part joins the tests and the refused connections", "[summary]") {
    CHECK(describe_tests_for_log({}, 0) == "; no tests");
    CHECK(describe_tests_for_log({}, 3) == "; 3 data or probe connections from another address refused");
    test_result silent;  // a failed test with nothing to say leaves no trace
    CHECK(describe_tests_for_log({silent}, 0) == "; no tests");
    CHECK(
        describe_tests_for_log({tcp_download(), silent}, 1) ==
        "; download 2 streams: sent 1.500 KiB (sender side, 7 retransmits); 1 data or probe connections from "
        "another address refused");
}

TEST_CASE("an iperf3 UDP upload is logged with iperf3's figures: lost and packets after the warm-up, jitter",
          "[summary][iperf3]") {
    auto result = completed(proto::transport::udp, proto::direction::upload, 2);
    result.received.window_ns = 1'000'000'000;
    result.received.stream_bytes = {500'000, 500'000};
    speed::iperf3::udp_receiver_figures first;
    first.packets = 500;
    first.omitted_packets = 100;
    first.errors = 7;
    first.omitted_errors = 2;
    first.jitter_seconds = 0.000250;
    speed::iperf3::udp_receiver_figures second;
    second.packets = 400;
    second.errors = 1;
    second.jitter_seconds = 0.000750;
    result.iperf3_udp_received = {first, second};
    CHECK(describe_for_log(result) ==
          "udp upload 2 streams: received 8.000 Mbit/s (976.6 KiB in 1.00 s, receiver side), lost 6/800, "
          "jitter 0.500 ms");
}

TEST_CASE("an iperf3 UDP download at -b 0 is logged as unpaced, not adaptive", "[summary][iperf3]") {
    auto result = completed(proto::transport::udp, proto::direction::download, 1);
    result.udp_sent.streams = {{100, 102'400}};
    result.iperf3_udp_sent = {{102'400, 100, 0, 0}};
    CHECK(describe_for_log(result) ==
          "udp download 1 stream: sent 100 datagrams (100.0 KiB, unpaced target)");
}
