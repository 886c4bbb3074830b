// speedsrv --http-port's browser test page (server/web/) run by a real browser: headless Chromium driven by
// selenium (tests/integration/web_page_check.py), against a real speedsrv on 127.0.0.1.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <regex>
#include <string>

#include "tests/support/process.hpp"

using namespace speed::testing;
using json = nlohmann::json;

namespace {

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kPython = "/usr/bin/python3";
constexpr int kSkipped = 77;  // web_page_check.py: selenium or chromedriver missing

std::uint64_t number_before(const std::string& line, const std::string& words) {
    std::smatch match;
    const std::regex pattern("(\\d+) " + words);
    return std::regex_search(line, match, pattern) ? std::stoull(match[1].str()) : 0;
}

}  // namespace

TEST_CASE(
    "web: the browser test page runs to the end in Chromium and its upload figure is what speedsrv received",
    "[integration][web][browser]") {
    if (::access(kChromium, X_OK) != 0 || ::access(kPython, X_OK) != 0) {
        std::puts(
            "SKIP: /usr/bin/chromium or /usr/bin/python3 is not installed (Debian packages chromium, "
            "python3)");
        return;
    }
    server_process server({"--http-port", "0"});
    const int port = server.http_port();
    INFO(server.log());
    REQUIRE(port > 0);
    // 0.5 s of warm-up and 2 s of window per direction: the whole page takes about 7 s.
    const std::string url =
        "http://127.0.0.1:" + std::to_string(port) + "/?autostart=1&duration=2&omit=0.5&streams=4&pings=5";
    const auto browser = run_process({kPython, SPEED_WEB_PAGE_CHECK, url, "20"}, std::chrono::seconds(45));
    if (browser.exit_code == kSkipped) {
        std::puts(browser.out.c_str());
        return;
    }
    INFO(browser.out);
    INFO(browser.err);
    REQUIRE(browser.exit_code == 0);
    const json seen = json::parse(browser.out, nullptr, false);
    REQUIRE(seen.is_object());
    CHECK(seen["error"].is_null());
    REQUIRE(seen["state"] == "done");
    // Both charts (throughput, latency over time) drew pixels.
    CHECK(seen["charts"] == "2");
    const json result = json::parse(seen["result"].get<std::string>(), nullptr, false);
    REQUIRE(result.is_object());
    CHECK(result["error"].is_null());
    CHECK(result["client"]["software"] == "speedsrv web page");
    CHECK(result["download"]["measured_by"] == "client");
    CHECK(result["upload"]["measured_by"] == "server");
    CHECK(result["download"]["bits_per_second"].get<double>() > 0.0);
    CHECK(result["upload"]["bits_per_second"].get<double>() > 0.0);
    CHECK(result["latency"]["idle"]["samples"] == 5);
    CHECK(result["bufferbloat_grade"].is_string());
    for (const auto* direction : {"download", "upload"}) {
        const json& d = result[direction];
        // The headline is the window's bytes over its length; the warm-up's intervals are apart.
        CHECK(d["seconds"].get<double>() == Approx(2.0).margin(1e-6));
        CHECK(d["omitted_seconds"].get<double>() == Approx(0.5).margin(1e-6));
        std::uint64_t window = 0;
        std::uint64_t warm_up = 0;
        for (const auto& interval : d["intervals"]) {
            (interval["omitted"].get<bool>() ? warm_up : window) += interval["bytes"].get<std::uint64_t>();
        }
        CHECK(window == d["bytes"].get<std::uint64_t>());
        CHECK(warm_up == d["omitted_bytes"].get<std::uint64_t>());
        CHECK(d["bits_per_second"].get<double>() ==
              Approx(8.0 * d["bytes"].get<double>() / d["seconds"].get<double>()).epsilon(1e-9));
        CHECK(d["latency"]["samples"].get<int>() > 0);
    }
    // Ground truth: the session's end line in speedsrv's log. The page DELETEs its session at the end.
    REQUIRE(log_shows_within(server, "ended (deleted)"));
    std::smatch match;
    const std::string log = server.log();
    REQUIRE(std::regex_search(log, match, std::regex("web session [^\n]* ended \\(deleted\\)[^\n]*")));
    const std::string ended = match[0].str();
    INFO(ended);
    const std::uint64_t uploaded = number_before(ended, "bytes uploaded");
    // What the page reports speedsrv received is what speedsrv's log says it received, to the byte; the
    // window and the warm-up are parts of it (bodies that arrived after the window are the rest).
    CHECK(result["upload"]["received"]["bytes"].get<std::uint64_t>() == uploaded);
    CHECK(result["upload"]["received"]["bodies"].get<std::uint64_t>() == number_before(ended, "bodies"));
    CHECK(result["upload"]["bytes"].get<std::uint64_t>() +
              result["upload"]["omitted_bytes"].get<std::uint64_t>() <=
          uploaded);
    // The page read at most what speedsrv sent (the downloads it aborted at the window's end were cut short).
    CHECK(result["download"]["bytes"].get<std::uint64_t>() +
              result["download"]["omitted_bytes"].get<std::uint64_t>() <=
          number_before(ended, "bytes downloaded"));
}
