// speedsrv --http-port's browser test page (server/web/) run by a real browser: headless Chromium driven by
// selenium (tests/integration/web_page_check.py), against a real speedsrv on 127.0.0.1.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "common/latency.hpp"
#include "common/statistics.hpp"
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

// The page computes its latency figures itself (server/web/speedtest.js); they must be speedcli's, from
// common/. Calls of the page's figure functions at chosen inputs (each band's edges, interpolation between
// ranks, the trim's cut, a window shorter than twice the stable part), each with what common/ computes for
// the same input. The page rounds jitter to 3 decimals as its JSON does.
struct figure_call {
    json call;
    json expected;
};

std::vector<figure_call> figure_calls() {
    namespace latency = speed::latency;
    namespace stats = speed::stats;
    std::vector<figure_call> calls;
    for (const double increase_ms :
         {0.0, 4.999, 5.0, 29.999, 30.0, 59.999, 60.0, 199.999, 200.0, 399.999, 400.0, 5000.0}) {
        calls.push_back({json::array({"gradeFor", increase_ms}),
                         std::string(latency::name_of(latency::grade_for_increase(increase_ms)))});
    }
    const std::vector<double> sorted{1.0, 2.0, 3.5, 4.0, 10.0};
    for (const double fraction : {0.0, 0.5, 0.9, 0.99, 1.0}) {
        calls.push_back({json::array({"percentileOfSorted", sorted, fraction}),
                         stats::percentile_of_sorted(sorted, fraction)});
    }
    std::vector<double> twenty;
    for (int i = 20; i >= 1; --i) {
        twenty.push_back(i * 1.25);  // unsorted on purpose: both sort before trimming
    }
    std::vector<double> twenty_one = twenty;
    twenty_one.push_back(400.0);
    // 13 samples keep ceil(0.95 x 13) = 13 ranks: the largest too (a rounding trim would drop it).
    const std::vector<double> thirteen{5, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 100};
    for (const auto& samples :
         {twenty, twenty_one, thirteen, std::vector<double>{7.5}, std::vector<double>{}}) {
        calls.push_back({json::array({"trimmedMean95", samples}), latency::trimmed_mean_95(samples)});
    }
    for (const double rtt_ms : {12.5, 0.25, 0.0}) {
        calls.push_back({json::array({"rpmFor", rtt_ms}), latency::rpm_for_rtt(rtt_ms)});
    }
    const std::vector<double> in_send_order{1.0, 3.0, 2.0, 7.5, 7.5};
    calls.push_back({json::array({"jitter", in_send_order}),
                     std::round(stats::mean_consecutive_difference(in_send_order) * 1000.0) / 1000.0});
    for (const auto& [from_s, to_s] : {std::pair{0.0, 10.0}, std::pair{2.0, 8.0}, std::pair{3.0, 3.0}}) {
        const auto part = latency::stable_part(
            {static_cast<std::int64_t>(from_s * 1e9), static_cast<std::int64_t>(to_s * 1e9)});
        calls.push_back(
            {json::array({"stablePart", from_s, to_s}),
             json::array({static_cast<double>(part.from_ns) / 1e9, static_cast<double>(part.to_ns) / 1e9})});
    }
    return calls;
}

bool same_figure(const json& page, const json& expected) {
    if (expected.is_number() && page.is_number()) {
        return std::fabs(page.get<double>() - expected.get<double>()) <=
               1e-9 * std::max(1.0, std::fabs(expected.get<double>()));
    }
    if (expected.is_array() && page.is_array() && page.size() == expected.size()) {
        for (std::size_t i = 0; i < expected.size(); ++i) {
            if (!same_figure(page[i], expected[i])) {
                return false;
            }
        }
        return true;
    }
    return page == expected;
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
    const auto calls = figure_calls();
    json call_list = json::array();
    for (const auto& c : calls) {
        call_list.push_back(c.call);
    }
    const auto browser = run_process(
        {kPython, SPEED_WEB_PAGE_CHECK, url, "20", "--figures", call_list.dump()}, std::chrono::seconds(45));
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
    // The page's figures are common/'s at every chosen input.
    REQUIRE(seen["figures"].size() == calls.size());
    for (std::size_t i = 0; i < calls.size(); ++i) {
        INFO(calls[i].call.dump() << " -> page " << seen["figures"][i].dump() << ", common/ "
                                  << calls[i].expected.dump());
        CHECK(same_figure(seen["figures"][i], calls[i].expected));
    }
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
