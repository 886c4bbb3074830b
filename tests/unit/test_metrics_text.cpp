#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "common/http_request.hpp"
#include "common/metrics_text.hpp"

using namespace speed::metrics;

TEST_CASE("label values and help text are escaped as the exposition format says", "[metrics]") {
    CHECK(escape_label_value(R"(a\b"c)"
                             "\nd") == R"(a\\b\"c\nd)");
    CHECK(escape_label_value("plain") == "plain");
    CHECK(escape_help(R"(say "hi" \ )"
                      "\n") == R"(say "hi" \\ \n)");
}

TEST_CASE("sample values are integers, shortest decimals or the format's special spellings", "[metrics]") {
    CHECK(format_value(0) == "0");
    CHECK(format_value(42) == "42");
    CHECK(format_value(-3) == "-3");
    CHECK(format_value(18446744073709551615.0) == "18446744073709551616");
    CHECK(format_value(0.005) == "0.005");
    CHECK(format_value(2.5) == "2.5");
    CHECK(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(format_value(std::nan("")) == "NaN");
}

TEST_CASE("an exposition writes families, labelled samples and histograms exactly", "[metrics]") {
    exposition out;
    out.family("speedsrv_up", metric_type::gauge, "Whether the server runs\nat all");
    out.sample("speedsrv_up", 1);
    out.family("speedsrv_tests_total", metric_type::counter, "Tests run");
    const std::array labels{label{"protocol", "tcp"}, label{"direction", "up\"load"}};
    out.sample("speedsrv_tests_total", labels, 7);

    histogram seconds({1.0, 2.5});
    seconds.observe(0.5);
    seconds.observe(1.0);  // a bound belongs to its own bucket
    seconds.observe(2.0);
    seconds.observe(10.0);
    out.family("speedsrv_test_duration_seconds", metric_type::histogram, "Test durations");
    const std::array kind{label{"protocol", "udp"}};
    out.histogram("speedsrv_test_duration_seconds", kind, seconds.snapshot());

    CHECK(out.text() ==
          "# HELP speedsrv_up Whether the server runs\\nat all\n"
          "# TYPE speedsrv_up gauge\n"
          "speedsrv_up 1\n"
          "# HELP speedsrv_tests_total Tests run\n"
          "# TYPE speedsrv_tests_total counter\n"
          "speedsrv_tests_total{protocol=\"tcp\",direction=\"up\\\"load\"} 7\n"
          "# HELP speedsrv_test_duration_seconds Test durations\n"
          "# TYPE speedsrv_test_duration_seconds histogram\n"
          "speedsrv_test_duration_seconds_bucket{protocol=\"udp\",le=\"1\"} 2\n"
          "speedsrv_test_duration_seconds_bucket{protocol=\"udp\",le=\"2.5\"} 3\n"
          "speedsrv_test_duration_seconds_bucket{protocol=\"udp\",le=\"+Inf\"} 4\n"
          "speedsrv_test_duration_seconds_sum{protocol=\"udp\"} 13.5\n"
          "speedsrv_test_duration_seconds_count{protocol=\"udp\"} 4\n");
}

TEST_CASE("an empty histogram exposes zero counts", "[metrics]") {
    exposition out;
    out.histogram("h", {}, histogram({0.1}).snapshot());
    CHECK(out.text() ==
          "h_bucket{le=\"0.1\"} 0\n"
          "h_bucket{le=\"+Inf\"} 0\n"
          "h_sum 0\n"
          "h_count 0\n");
}

using speed::http::parse_request_head;
using speed::http::request_head;
using speed::http::request_limits;
using verdict = request_head::verdict;

TEST_CASE("an HTTP request head is complete at its blank line", "[metrics][http]") {
    const request_limits limits;
    const auto head = parse_request_head("GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", limits);
    CHECK(head.state == verdict::complete);
    CHECK(head.method == "GET");
    CHECK(head.target == "/metrics");
    CHECK(speed::http::status_for(head, "/metrics") == 200);
    CHECK(parse_request_head("GET /metrics HTTP/1.1\r\nHost: a\r\n", limits).state == verdict::incomplete);
    CHECK(parse_request_head("GET /met", limits).state == verdict::incomplete);
}

TEST_CASE("HTTP status: only GET of the path is served", "[metrics][http]") {
    const request_limits limits;
    const auto status = [&](std::string_view text) {
        return speed::http::status_for(parse_request_head(text, limits), "/metrics");
    };
    CHECK(status("GET /metrics?x=1 HTTP/1.0\r\n\r\n") == 200);
    CHECK(status("GET / HTTP/1.1\r\n\r\n") == 404);
    CHECK(status("GET /metrics/ HTTP/1.1\r\n\r\n") == 404);
    CHECK(status("POST /metrics HTTP/1.1\r\n\r\n") == 405);
    CHECK(status("HEAD /metrics HTTP/1.1\r\n\r\n") == 405);
}

TEST_CASE("malformed or oversized HTTP request heads are refused", "[metrics][http]") {
    request_limits limits;
    limits.max_head_bytes = 64;
    limits.max_headers = 2;
    CHECK(parse_request_head("junk\r\n\r\n", limits).state == verdict::bad_request);
    CHECK(parse_request_head("GET /metrics HTTP/2\r\n\r\n", limits).state == verdict::bad_request);
    CHECK(parse_request_head("GET  /metrics HTTP/1.1\r\n\r\n", limits).state == verdict::bad_request);
    CHECK(parse_request_head("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", limits).state ==
          verdict::bad_request);
    CHECK(parse_request_head("GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", limits).state ==
          verdict::bad_request);
    // A bad request line is refused before the head's end arrives.
    CHECK(parse_request_head("\x16\x03\x01 TLS\r\n", limits).state == verdict::bad_request);
    CHECK(parse_request_head("GET /metrics HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n", limits).state ==
          verdict::too_large);
    CHECK(parse_request_head(std::string(64, 'A'), limits).state == verdict::too_large);
    CHECK(parse_request_head("GET /metrics HTTP/1.1\r\nX: " + std::string(50, 'v') + "\r\n\r\n", limits)
              .state == verdict::too_large);
}
