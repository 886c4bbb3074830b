// speedsrv --metrics: the Prometheus endpoint against real tests, promtool and a real Prometheus server.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/client_json.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/iperf3.hpp"

using namespace speed::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A speedsrv with --metrics on a free loopback port, and that port (from its log line).
struct metrics_server {
    explicit metrics_server(std::vector<std::string> extra = {})
        : server([&] {
              extra.insert(extra.end(), {"--metrics", "127.0.0.1:0"});
              return extra;
          }()) {
        const std::string log = server.log();
        const std::string marker = "metrics: serving http://127.0.0.1:";
        const auto at = log.find(marker);
        INFO(log);
        REQUIRE(at != std::string::npos);
        metrics_port = static_cast<std::uint16_t>(std::stoi(log.substr(at + marker.size())));
    }

    std::string scrape() {
        const auto response = http_get(metrics_port, "/metrics");
        INFO(response.head);
        REQUIRE(response.status == 200);
        return response.body;
    }

    double value(const std::string& text, const std::string& series) {
        const auto found = sample_value(text, series);
        INFO(series << " in\n" << text);
        REQUIRE(found);
        return *found;
    }

    // The exposition once every session has ended (the client exits a moment before its session's end is
    // counted), within 5 s.
    std::string scrape_when_idle() {
        const auto give_up = std::chrono::steady_clock::now() + 5s;
        for (;;) {
            std::string text = scrape();
            if (value(text, "speedsrv_sessions_active") == 0 || std::chrono::steady_clock::now() > give_up) {
                return text;
            }
            std::this_thread::sleep_for(20ms);
        }
    }

    server_process server;
    std::uint16_t metrics_port = 0;
};

std::uint64_t u64(const json& value) {
    return value.get<std::uint64_t>();
}

bool promtool_installed() {
    return ::access("/usr/bin/promtool", X_OK) == 0;
}

}  // namespace

TEST_CASE("speedsrv --metrics counts a TCP session, its two tests and their payload bytes exactly",
          "[integration][metrics]") {
    metrics_server srv;
    const std::string before = srv.scrape();
    CHECK(srv.value(before, "speedsrv_build_info{version=\"" SPEED_VERSION "\"}") == 1);
    CHECK(srv.value(before,
                    R"(speedsrv_sessions_total{protocol="tcp",outcome="ok",client_protocol="speed"})") == 0);

    const auto run =
        run_client({"127.0.0.1", "--port", std::to_string(srv.server.port()), "--duration", "0.5", "--omit",
                    "0.2", "--pings", "3", "--ping-interval", "0.01", "--json"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    const std::string after = srv.scrape_when_idle();
    INFO(after);
    CHECK(srv.value(after,
                    R"(speedsrv_sessions_total{protocol="tcp",outcome="ok",client_protocol="speed"})") == 1);
    CHECK(srv.value(after, "speedsrv_sessions_active") == 0);
    CHECK(srv.value(after, R"(speedsrv_admissions_total{stage="session"})") == 1);
    CHECK(srv.value(after, R"(speedsrv_handshakes_total{result="control"})") == 1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_started_total{protocol="tcp",direction="download",client_protocol="speed"})") ==
        1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_completed_total{protocol="tcp",direction="download",client_protocol="speed"})") ==
        1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_completed_total{protocol="tcp",direction="upload",client_protocol="speed"})") ==
        1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_completed_total{protocol="udp",direction="upload",client_protocol="speed"})") ==
        0);
    // Downloads: what the server's sender report says it sent (at least what the client received).
    const double sent =
        srv.value(after, R"(speedsrv_payload_bytes_total{direction="download",client_protocol="speed"})");
    CHECK(sent == static_cast<double>(u64(j["download"]["sender"]["bytes"])));
    CHECK(sent >= static_cast<double>(u64(j["download"]["bytes"]) + u64(j["download"]["omitted_bytes"])));
    // Uploads: exactly what the server measured as the receiver, warm-up included.
    CHECK(srv.value(after, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="speed"})") ==
          static_cast<double>(u64(j["upload"]["bytes"]) + u64(j["upload"]["omitted_bytes"])));
    CHECK(srv.value(after, R"(speedsrv_test_duration_seconds_count{protocol="tcp",direction="upload"})") ==
          1);
    // The receiver's figure, in bytes per second.
    CHECK(srv.value(after, R"(speedsrv_upload_throughput_bytes_per_second_sum{protocol="tcp"})") ==
          Approx(j["upload"]["bits_per_second"].get<double>() / 8.0).epsilon(1e-9));
}

TEST_CASE("speedsrv --metrics counts a UDP session's tests and bytes", "[integration][metrics]") {
    metrics_server srv;
    const auto run =
        run_client({"127.0.0.1", "--port", std::to_string(srv.server.port()), "--udp", "--bitrate", "20M",
                    "--duration", "0.5", "--pings", "3", "--ping-interval", "0.01", "--json"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    const std::string after = srv.scrape_when_idle();
    INFO(after);
    CHECK(srv.value(after,
                    R"(speedsrv_sessions_total{protocol="udp",outcome="ok",client_protocol="speed"})") == 1);
    CHECK(srv.value(after,
                    R"(speedsrv_sessions_total{protocol="tcp",outcome="ok",client_protocol="speed"})") == 0);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_completed_total{protocol="udp",direction="download",client_protocol="speed"})") ==
        1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_completed_total{protocol="udp",direction="upload",client_protocol="speed"})") ==
        1);
    CHECK(srv.value(after, R"(speedsrv_payload_bytes_total{direction="download",client_protocol="speed"})") ==
          static_cast<double>(u64(j["download"]["sender"]["bytes"])));
    CHECK(srv.value(after, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="speed"})") ==
          static_cast<double>(u64(j["upload"]["bytes"]) + u64(j["upload"]["omitted_bytes"])));
    CHECK(srv.value(after, R"(speedsrv_udp_datagrams_dropped_total{reason="malformed"})") == 0);
}

TEST_CASE("iperf3 clients' sessions raise the client_protocol=\"iperf3\" counters by exactly their bytes",
          "[integration][metrics][iperf3][iperf3-binary]") {
    if (!have_iperf3() ||
        !skip_unless_iperf3_at_least({3, 11, 0},
                                     "before 3.11 its -J has no receiver sums of a UDP --bidir test "
                                     "(end.sum_received, sum_sent_bidir_reverse) to count")) {
        return;
    }
    metrics_server srv;
    const auto iperf3 = [&](std::vector<std::string> args) {
        std::vector<std::string> argv{
            iperf3_binary(), "-c", "127.0.0.1", "-p", std::to_string(srv.server.port()), "-J", "-t", "1"};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto run = run_process(argv, 30s);
        INFO(run.out << run.err);
        REQUIRE(run.exit_code == 0);
        const json document = json::parse(run.out);
        REQUIRE_FALSE(document.contains("error"));
        return document["end"];
    };
    // The figures speedsrv gave each client are what it counts: the receiver's bytes of an upload and the
    // sender's of a download (no -O, so no warm-up on either side of the comparison).
    const json tcp_upload = iperf3({});
    const json udp_both_ways = iperf3({"-u", "--bidir", "-b", "20M", "-l", "1400"});
    const json tcp_download = iperf3({"-R"});
    const std::string after = srv.scrape_when_idle();
    INFO(after);
    CHECK(srv.value(after,
                    R"(speedsrv_sessions_total{protocol="tcp",outcome="ok",client_protocol="iperf3"})") == 2);
    CHECK(srv.value(after,
                    R"(speedsrv_sessions_total{protocol="udp",outcome="ok",client_protocol="iperf3"})") == 1);
    for (const char* kind :
         {R"(protocol="tcp",direction="upload")", R"(protocol="tcp",direction="download")",
          R"(protocol="udp",direction="upload")", R"(protocol="udp",direction="download")"}) {
        CHECK(srv.value(after, std::string("speedsrv_tests_completed_total{") + kind +
                                   R"(,client_protocol="iperf3"})") == 1);
        CHECK(srv.value(after, std::string("speedsrv_tests_started_total{") + kind +
                                   R"(,client_protocol="speed"})") == 0);
    }
    CHECK(srv.value(after, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="iperf3"})") ==
          static_cast<double>(u64(tcp_upload["sum_received"]["bytes"]) +
                              u64(udp_both_ways["sum_received"]["bytes"])));
    CHECK(
        srv.value(after, R"(speedsrv_payload_bytes_total{direction="download",client_protocol="iperf3"})") ==
        static_cast<double>(u64(tcp_download["sum_sent"]["bytes"]) +
                            u64(udp_both_ways["sum_sent_bidir_reverse"]["bytes"])));
    CHECK(srv.value(after, R"(speedsrv_payload_bytes_total{direction="upload",client_protocol="speed"})") ==
          0);
    CHECK(srv.value(after, R"(speedsrv_payload_bytes_total{direction="download",client_protocol="speed"})") ==
          0);
}

TEST_CASE("a request beyond the server's caps counts as a caps refusal and a limit_exceeded session",
          "[integration][metrics]") {
    metrics_server srv({"--max-streams", "2"});
    const auto run = run_client({"127.0.0.1", "--port", std::to_string(srv.server.port()), "--parallel", "4",
                                 "--duration", "0.3", "--pings", "0", "--json"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code != 0);
    const std::string after = srv.scrape_when_idle();
    INFO(after);
    CHECK(srv.value(after, R"(speedsrv_refusals_total{reason="caps"})") == 1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_sessions_total{protocol="none",outcome="limit_exceeded",client_protocol="speed"})") ==
        1);
    CHECK(
        srv.value(
            after,
            R"(speedsrv_tests_started_total{protocol="tcp",direction="download",client_protocol="speed"})") ==
        0);
}

TEST_CASE("the metrics exposition passes promtool check metrics", "[integration][metrics]") {
    if (!promtool_installed()) {
        WARN("SKIP: promtool (Debian package prometheus) is not installed; ./scripts/test installs it");
        return;
    }
    metrics_server srv;
    REQUIRE(run_client({"127.0.0.1", "--port", std::to_string(srv.server.port()), "--duration", "0.3",
                        "--pings", "2", "--ping-interval", "0.01"})
                .process.exit_code == 0);
    const std::string text = srv.scrape_when_idle();
    const auto path =
        std::filesystem::temp_directory_path() / ("speedsrv-metrics-" + std::to_string(::getpid()));
    std::ofstream(path) << text;
    // promtool reads the exposition on stdin; exit 0 means no errors and no lint findings.
    const auto check =
        run_process({"/bin/sh", "-c", "/usr/bin/promtool check metrics < '" + path.string() + "'"}, 30s);
    std::filesystem::remove(path);
    INFO(text << check.out << check.err);
    CHECK(check.exit_code == 0);
    CHECK(check.out.empty());
}

TEST_CASE("the metrics endpoint answers only GET /metrics", "[integration][metrics]") {
    metrics_server srv;
    const auto ok = http_get(srv.metrics_port, "/metrics?name[]=x");
    CHECK(ok.status == 200);
    CHECK_THAT(ok.head, Catch::Contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    CHECK(http_get(srv.metrics_port, "/").status == 404);
    CHECK(http_get(srv.metrics_port, "/metrics/x").status == 404);
    const auto post =
        http_exchange(srv.metrics_port, "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 5s);
    CHECK(post.status == 405);
    CHECK_THAT(post.head, Catch::Contains("Allow: GET"));
    CHECK(http_exchange(srv.metrics_port, "HELLO\r\n\r\n", 5s).status == 400);
    CHECK(http_exchange(srv.metrics_port,
                        "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", 5s)
              .status == 431);
}

TEST_CASE("speedsrv serves no metrics unless --metrics is given, and refuses a bad address",
          "[integration][metrics]") {
    server_process plain;
    CHECK(plain.log().find("metrics") == std::string::npos);
    for (const char* bad : {"", "9100", "localhost:9100", "127.0.0.1:99999", "::1:9100", "127.0.0.1:"}) {
        INFO(bad);
        auto argv = speedsrv_root_args();
        argv.insert(argv.begin(), speedsrv_path());
        argv.insert(argv.end(), {"--port", "0", "--metrics", bad});
        const auto result = run_process(argv, 5s);
        CHECK(result.exit_code == 2);
        CHECK_THAT(result.err, Catch::Contains("--metrics"));
    }
}

// A real Prometheus scrapes speedsrv once a second; the counter it stores equals the tests run.
TEST_CASE("a Prometheus server scrapes speedsrv and its query returns the number of tests run",
          "[integration][metrics]") {
    if (::access("/usr/bin/prometheus", X_OK) != 0) {
        WARN("SKIP: prometheus (Debian package prometheus) is not installed; ./scripts/test installs it");
        return;
    }
    metrics_server srv;
    constexpr int kRuns = 2;
    for (int i = 0; i < kRuns; ++i) {
        REQUIRE(run_client({"127.0.0.1", "--port", std::to_string(srv.server.port()), "--duration", "0.3",
                            "--pings", "2", "--ping-interval", "0.01", "--no-download"})
                    .process.exit_code == 0);
    }

    const auto dir =
        std::filesystem::temp_directory_path() / ("speedsrv-prometheus-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "data");
    std::ofstream(dir / "prometheus.yml") << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                             "scrape_configs:\n  - job_name: speedsrv\n    static_configs:\n"
                                             "      - targets: ['127.0.0.1:"
                                          << srv.metrics_port << "']\n";
    const std::uint16_t web_port = free_loopback_port();
    std::uint64_t queried = 0;
    std::string last_answer;
    std::string prometheus_log;
    {
        background_process prometheus({"/usr/bin/prometheus",
                                       "--config.file=" + (dir / "prometheus.yml").string(),
                                       "--storage.tsdb.path=" + (dir / "data").string(),
                                       "--web.listen-address=127.0.0.1:" + std::to_string(web_port)});
        // Prometheus starts in about a second here and scrapes every second; 30 s is far beyond both.
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        const std::string query =
            "/api/v1/"
            "query?query=speedsrv_tests_completed_total%7Bprotocol%3D%22tcp%22%2Cdirection%3D%22upload%22%"
            "2Cclient_protocol%3D%22speed%22%7D";
        while (std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(250ms);
            http_response answer;
            try {
                answer = http_get(web_port, query, 2s);
            } catch (const std::exception&) {
                continue;  // not listening yet
            }
            last_answer = answer.body;
            const json parsed = json::parse(answer.body, nullptr, false);
            if (parsed.is_discarded() || parsed["status"] != "success" || parsed["data"]["result"].empty()) {
                continue;
            }
            queried = std::stoull(parsed["data"]["result"][0]["value"][1].get<std::string>());
            break;
        }
        prometheus_log = prometheus.log();
    }
    std::filesystem::remove_all(dir);
    INFO(prometheus_log);
    INFO(last_answer);
    CHECK(queried == kRuns);
}
