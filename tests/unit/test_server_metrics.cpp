#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include "server/metrics.hpp"
#include "tests/support/exposition.hpp"

using namespace speed;
using speed::server::client_protocol;
using speed::server::server_metrics;
using speed::server::session_metrics;
using speed::testing::sample_value;

namespace {

double value(const server_metrics& metrics, const std::string& series) {
    const std::string text = metrics.render({});
    INFO(series << " in\n" << text);
    const auto found = sample_value(text, series);
    REQUIRE(found);
    return *found;
}

proto::test_request request_of(proto::transport transport, proto::direction dir) {
    proto::test_request request;
    request.proto = transport;
    request.dir = dir;
    return request;
}

}  // namespace

TEST_CASE("a session is counted once, under the transports of its completed tests", "[metrics]") {
    server_metrics metrics;
    {
        session_metrics session(metrics);
        const auto tcp_upload = request_of(proto::transport::tcp, proto::direction::upload);
        const auto udp_download = request_of(proto::transport::udp, proto::direction::download);
        session.test_started(tcp_upload);
        session.test_completed(tcp_upload, 1000, 8000.0);
        session.test_started(udp_download);
        session.test_completed(udp_download, 500);
        session.ended();
        session.ended();
    }  // the destructor does not count it again
    CHECK(value(metrics,
                R"(speedsrv_sessions_total{protocol="both",outcome="ok",client_protocol="speed"})") == 1);
    CHECK(value(metrics, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="speed"})") ==
          1000);
    CHECK(value(metrics, R"(speedsrv_payload_bytes_total{direction="download",client_protocol="speed"})") ==
          500);
    CHECK(value(metrics, R"(speedsrv_upload_throughput_bytes_per_second_sum{protocol="tcp"})") == 1000);
    CHECK(value(metrics, R"(speedsrv_upload_throughput_bytes_per_second_count{protocol="udp"})") == 0);
    CHECK(
        value(
            metrics,
            R"(speedsrv_tests_completed_total{protocol="udp",direction="download",client_protocol="speed"})") ==
        1);
}

TEST_CASE(
    "an iperf3 session's tests and bytes count under client_protocol=\"iperf3\", apart from speedsrv's own",
    "[metrics]") {
    server_metrics metrics;
    {
        session_metrics session(metrics, client_protocol::iperf3);
        const auto udp_upload = request_of(proto::transport::udp, proto::direction::upload);
        session.test_started(udp_upload);
        session.test_completed(udp_upload, 700, 5600.0);
    }
    {
        session_metrics session(metrics);
        const auto udp_upload = request_of(proto::transport::udp, proto::direction::upload);
        session.test_started(udp_upload);
        session.test_completed(udp_upload, 300, 2400.0);
    }
    CHECK(value(metrics,
                R"(speedsrv_sessions_total{protocol="udp",outcome="ok",client_protocol="iperf3"})") == 1);
    CHECK(value(metrics, R"(speedsrv_sessions_total{protocol="udp",outcome="ok",client_protocol="speed"})") ==
          1);
    CHECK(
        value(
            metrics,
            R"(speedsrv_tests_started_total{protocol="udp",direction="upload",client_protocol="iperf3"})") ==
        1);
    CHECK(
        value(
            metrics,
            R"(speedsrv_tests_completed_total{protocol="udp",direction="upload",client_protocol="iperf3"})") ==
        1);
    CHECK(value(metrics, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="iperf3"})") ==
          700);
    CHECK(value(metrics, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="speed"})") ==
          300);
    CHECK(value(metrics, R"(speedsrv_payload_bytes_total{direction="download",client_protocol="iperf3"})") ==
          0);
    // The throughput histogram keeps its labels: both sessions' uploads.
    CHECK(value(metrics, R"(speedsrv_upload_throughput_bytes_per_second_count{protocol="udp"})") == 2);
}

TEST_CASE("a session's ending error is its outcome, and auth and cap failures are refusals too",
          "[metrics]") {
    server_metrics metrics;
    {
        session_metrics session(metrics);
        session.failed(proto::error_code::auth_failed);
    }  // a session that never reached its end (shutdown) is counted as it goes
    {
        session_metrics session(metrics);
        const auto request = request_of(proto::transport::tcp, proto::direction::download);
        session.test_started(request);  // started, never completed
        session.failed(proto::error_code::limit_exceeded);
        session.ended();
    }
    CHECK(
        value(metrics,
              R"(speedsrv_sessions_total{protocol="none",outcome="auth_failed",client_protocol="speed"})") ==
        1);
    CHECK(
        value(
            metrics,
            R"(speedsrv_sessions_total{protocol="none",outcome="limit_exceeded",client_protocol="speed"})") ==
        1);
    CHECK(value(metrics, R"(speedsrv_refusals_total{reason="auth"})") == 1);
    CHECK(value(metrics, R"(speedsrv_refusals_total{reason="caps"})") == 1);
    CHECK(
        value(
            metrics,
            R"(speedsrv_tests_started_total{protocol="tcp",direction="download",client_protocol="speed"})") ==
        1);
    CHECK(
        value(
            metrics,
            R"(speedsrv_tests_completed_total{protocol="tcp",direction="download",client_protocol="speed"})") ==
        0);
    // Error outcomes that never happened have no series; "ok" always has one.
    CHECK_FALSE(
        sample_value(metrics.render({}),
                     R"(speedsrv_sessions_total{protocol="tcp",outcome="timeout",client_protocol="speed"})"));
    CHECK(value(metrics, R"(speedsrv_sessions_total{protocol="tcp",outcome="ok",client_protocol="speed"})") ==
          0);
}

TEST_CASE("browser test connections closed at accept are counted, from 0", "[metrics]") {
    server_metrics metrics;
    CHECK(value(metrics, "speedsrv_web_connections_refused_total") == 0);
    metrics.web_connection_refused();
    metrics.web_connection_refused();
    CHECK(value(metrics, "speedsrv_web_connections_refused_total") == 2);
}

TEST_CASE("UDP drops: the listener's when UDP is on, the flows' always", "[metrics]") {
    server_metrics metrics;
    udp::drop_counters drops;
    drops.before_ready = 1;
    drops.wrong_length = 2;
    drops.implausible_sequence = 3;
    metrics.udp_flow_drops(drops, 4);
    speed::server::metrics_gauges gauges;
    CHECK_FALSE(
        sample_value(metrics.render(gauges), R"(speedsrv_udp_datagrams_dropped_total{reason="malformed"})"));
    gauges.udp_listener = speed::server::udp_listener_drops{5, 6, 7, 8};
    const std::string text = metrics.render(gauges);
    const auto dropped = [&](const char* reason) {
        return sample_value(text,
                            std::string(R"(speedsrv_udp_datagrams_dropped_total{reason=")") + reason + "\"}");
    };
    CHECK(dropped("malformed") == 5.0);
    CHECK(dropped("unknown_token") == 6.0);
    CHECK(dropped("wrong_address") == 7.0);
    CHECK(dropped("excess_hello") == 8.0);
    CHECK(dropped("before_ready") == 1.0);
    CHECK(dropped("wrong_length") == 2.0);
    CHECK(dropped("implausible_sequence") == 3.0);
    CHECK(dropped("no_token") == 4.0);
}
