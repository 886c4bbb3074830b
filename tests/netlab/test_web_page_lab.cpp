// The browser test page against speedcli on the same shaped link in the same run: Chromium in the client
// namespace runs speedsrv's page (server/web/, driven by tests/integration/web_page_check.py) across the
// lab's 100 Mbit/s tbf link; its download (bytes the page read) and upload (speedsrv's receiver figures) must
// land within 5 % (download) and 10 % (upload) of speedcli's with the same streams, warm-up and window.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;

namespace {

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kPython = "/usr/bin/python3";
constexpr int kPageSkipped = 77;  // web_page_check.py: selenium or chromedriver missing
// Between the two tools on the same link, as test_tcp_accuracy.cpp allows speedcli against iperf3.
constexpr double kToolTolerance = 0.05;
// The upload's figure is speedsrv's own count of the bytes that arrived (test_web_page.cpp checks it against
// speedsrv's log byte for byte), so against speedcli it compares how fast Chromium sends, not a measurement:
// on a 2-core VM with dear context switches, 5 runs on a quiet machine ended with the page at 89.4-94.5
// Mbit/s (several earlier attempts below 90.9) where speedcli read 95.4-95.6: 1-7 % less.
constexpr double kPageUploadTolerance = 0.10;
constexpr double kLowestShare = 0.95;

}  // namespace

TEST_CASE("web: the browser test page on a 100 Mbit/s link is within 5 % of speedcli down and 10 % up",
          "[netlab][accuracy][web]") {
    if (::access(kChromium, X_OK) != 0 || ::access(kPython, X_OK) != 0) {
        skip_test(
            "/usr/bin/chromium or /usr/bin/python3 is not installed (Debian packages chromium, python3)");
    }
    constexpr std::uint64_t kRate = 100'000'000;
    lab_config config;
    config.upload.rate_bits_per_second = kRate;
    config.download.rate_bits_per_second = kRate;
    lab link(config);
    auto& server = link.start_speedsrv({"--http-port", "0"});
    REQUIRE(server.http_port() > 0);

    // The most TCP payload the link carries (docs/netlab.md). On the shared 2-core machine (load average 10)
    // a tool fell short of it now and then: speedcli to 87.6-91 Mbit/s in 2 of 7 runs while the page, in the
    // same test, got 92.5-97. Such a run (either tool, below 95 % of the ceiling in a direction, the share
    // test_tcp_accuracy.cpp asks of a tool that fills the link) is repeated once, as that test repeats
    // iperf3; the page up to twice: on another 2-core VM (dear context switches) its upload read 91-94 on a
    // quiet machine and 64-79 Mbit/s in every attempt while CI's sanitizer build ran beside it (so .ci/run
    // runs this test after that build), where speedcli kept 94-95.6. Its upload idles between a body's end
    // and the next POST, which the page's one JavaScript thread (also drawing the charts) likely starts late
    // when the machine is busy (not measured).
    const auto segment = full_tcp_segment(kLinkMtu, tcp_timestamps_enabled(link));
    const double ceiling = static_cast<double>(kRate) * static_cast<double>(segment.payload_bytes) /
                           static_cast<double>(segment.frame_bytes);
    const auto fills_link = [&](const nlohmann::json& result) {
        return result["download"]["bits_per_second"].get<double>() >= kLowestShare * ceiling &&
               result["upload"]["bits_per_second"].get<double>() >= kLowestShare * ceiling;
    };

    speed::testing::client_run speedcli;
    for (int attempt = 0; attempt < 2; ++attempt) {
        speedcli = run_speedcli(
            link, server.port(),
            {"--pings", "5", "--duration", "4", "--omit", "1", "--streams", "4", "--interval", "0"});
        INFO(speedcli.process.out << speedcli.process.err);
        REQUIRE(speedcli.process.exit_code == 0);
        if (fills_link(speedcli.json)) {
            break;
        }
        std::printf("netlab: speedcli fell short of the link's ceiling; repeating it\n");
    }

    const std::string url = std::string("http://") + kServerAddress + ":" +
                            std::to_string(server.http_port()) +
                            "/?autostart=1&duration=4&omit=1&streams=4&pings=5";
    nlohmann::json page;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const auto browser =
            link.run_in_client({kPython, SPEED_WEB_PAGE_CHECK, url, "40"}, std::chrono::seconds(60));
        if (browser.exit_code == kPageSkipped) {
            skip_test(browser.out);
        }
        INFO(browser.out << browser.err << "\nspeedsrv's log:\n" << server.log());
        REQUIRE(browser.exit_code == 0);
        const auto seen = nlohmann::json::parse(browser.out, nullptr, false);
        REQUIRE(seen.is_object());
        REQUIRE(seen["state"] == "done");
        page = nlohmann::json::parse(seen["result"].get<std::string>(), nullptr, false);
        REQUIRE(page.is_object());
        if (fills_link(page)) {
            break;
        }
        std::printf("netlab: the page fell short of the link's ceiling; repeating it\n");
    }

    const double download = speedcli.json["download"]["bits_per_second"].get<double>();
    const double upload = speedcli.json["upload"]["bits_per_second"].get<double>();
    const double page_download = page["download"]["bits_per_second"].get<double>();
    const double page_upload = page["upload"]["bits_per_second"].get<double>();
    std::printf(
        "netlab: 100 Mbit/s link: ceiling %.3f; download speedcli %.3f page %.3f; upload speedcli %.3f page "
        "%.3f Mbit/s\n",
        ceiling / 1e6, download / 1e6, page_download / 1e6, upload / 1e6, page_upload / 1e6);
    // Never above what the link carries, beyond a window's edges (the page's reads, and speedsrv's count of
    // whole upload bodies, put up to about one body or read burst on either side of an edge). Measured on a
    // quiet machine with 0.1 s bodies: download 95.1-95.6, upload 94.6-96.0 (+0.35 %) against 95.64 Mbit/s.
    CHECK(page_download <= ceiling * 1.03);
    CHECK(page_upload <= ceiling * 1.03);
    CHECK(page_download == Approx(download).epsilon(kToolTolerance));
    CHECK(page_upload == Approx(upload).epsilon(kPageUploadTolerance));
}
