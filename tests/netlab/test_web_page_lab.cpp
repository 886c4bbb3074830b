// The browser test page against speedcli on the same shaped link in the same run: Chromium in the client
// namespace runs speedsrv's page (server/web/, driven by tests/integration/web_page_check.py) across the
// lab's 100 Mbit/s tbf link; its download (bytes the page read) and upload (speedsrv's receiver figures) must
// land within 5 % of speedcli's with the same streams, warm-up and window.
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

}  // namespace

TEST_CASE("The browser test page on a 100 Mbit/s link is within 5 % of speedcli", "[netlab][accuracy][web]") {
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

    const auto speedcli =
        run_speedcli(link, server.port(),
                     {"--pings", "5", "--duration", "4", "--omit", "1", "--streams", "4", "--interval", "0"});
    INFO(speedcli.process.out << speedcli.process.err);
    REQUIRE(speedcli.process.exit_code == 0);

    const std::string url = std::string("http://") + kServerAddress + ":" +
                            std::to_string(server.http_port()) +
                            "/?autostart=1&duration=4&omit=1&streams=4&pings=5";
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
    const auto page = nlohmann::json::parse(seen["result"].get<std::string>(), nullptr, false);
    REQUIRE(page.is_object());

    const double download = speedcli.json["download"]["bits_per_second"].get<double>();
    const double upload = speedcli.json["upload"]["bits_per_second"].get<double>();
    const double page_download = page["download"]["bits_per_second"].get<double>();
    const double page_upload = page["upload"]["bits_per_second"].get<double>();
    std::printf(
        "netlab: 100 Mbit/s link: download speedcli %.3f page %.3f; upload speedcli %.3f page %.3f Mbit/s\n",
        download / 1e6, page_download / 1e6, upload / 1e6, page_upload / 1e6);
    CHECK(page_download == Approx(download).epsilon(kToolTolerance));
    CHECK(page_upload == Approx(upload).epsilon(kToolTolerance));
}
