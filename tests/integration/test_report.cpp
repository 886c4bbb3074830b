// speedcli --report: the HTML page of a real run (client/output_html.hpp), and a real browser drawing it.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/integration/client_json.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/temp_dir.hpp"

using namespace speed::testing;
using json = nlohmann::json;

namespace {

constexpr int kExitUsage = 2;
constexpr const char* kChromium = "/usr/bin/chromium";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string lowered(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// The page's data block, parsed (null when there is none).
json data_block(const std::string& page) {
    const std::string open = R"(<script type="application/json" id="report-data">)";
    const auto from = page.find(open);
    const auto end = from == std::string::npos ? from : page.find("</script>", from);
    if (end == std::string::npos) {
        return nullptr;
    }
    return json::parse(page.substr(from + open.size(), end - from - open.size()), nullptr, false);
}

// The value of `attribute` on the <body> of a DOM dump; empty when absent.
std::string body_attribute(const std::string& dom, const std::string& attribute) {
    std::smatch match;
    const std::regex body("<body([^>]*)>");
    if (!std::regex_search(dom, match, body)) {
        return "";
    }
    const std::string attributes = match[1];
    const std::regex value(" " + attribute + "=\"([^\"]*)\"");
    return std::regex_search(attributes, match, value) ? match[1].str() : "";
}

// Headless Chromium's DOM of the page at `path` once loaded (report.js draws synchronously before that). The
// page's Content-Security-Policy lets it load nothing; the proxy that does not exist makes sure of it.
process_result dump_dom(const std::string& path, const temp_dir& dir) {
    return run_process({kChromium, "--headless", "--disable-gpu", "--no-sandbox",
                        "--user-data-dir=" + (dir.path() / "profile").string(), "--proxy-server=127.0.0.1:9",
                        "--dump-dom", "file://" + path},
                       std::chrono::seconds(60));
}

// speedcli with `args` against a speedsrv of its own, writing its --report page into `dir`: the page's path.
std::string report_of_run(const temp_dir& dir, const std::vector<std::string>& args) {
    server_process server;
    const std::string path = (dir.path() / "r.html").string();
    std::vector<std::string> argv{"127.0.0.1", "-p", std::to_string(server.port())};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--report", path});
    const auto run = run_client(argv);
    INFO(run.process.err);
    REQUIRE(run.process.exit_code == 0);
    return path;
}

// Headless Chromium's DOM of the page at `path`, which it drew without an error.
std::string drawn_dom(const std::string& path, const temp_dir& dir) {
    const auto browser = dump_dom(path, dir);
    INFO(browser.err);
    REQUIRE(browser.exit_code == 0);
    CHECK(body_attribute(browser.out, "data-state") == "done");
    // No error paragraph (the script's own text is in the dump too, so the element is looked for, not its
    // words).
    CHECK(browser.out.find(R"(<p class="error">)") == std::string::npos);
    return browser.out;
}

process_result speedcli_monitor(const std::vector<std::string>& args) {
    std::vector<std::string> argv{speedcli_path(), "monitor"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, std::chrono::seconds(30));
}

}  // namespace

TEST_CASE("speedcli --report writes one self-contained page that carries the --json document",
          "[integration][output][report]") {
    server_process server;
    temp_dir dir("speedreport");
    const std::string path = (dir.path() / "r.html").string();
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "-O", "0.5",
                                 "--pings", "5", "--json", "--report", path});
    INFO(run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const std::string page = read_file(path);
    CHECK(page.rfind("<!DOCTYPE html>\n", 0) == 0);
    const std::string low = lowered(page);
    CHECK(low.find("http:") == std::string::npos);
    CHECK(low.find("https:") == std::string::npos);
    CHECK(low.find(" src=") == std::string::npos);
    CHECK(low.find(" href=") == std::string::npos);
    // The page's data is the document --json printed, to the last digit.
    const json data = data_block(page);
    REQUIRE(run.json.is_object());
    CHECK(data == run.json);
    // With the raw samples the charts are drawn from: one send time per answered probe.
    for (const auto* key : {"download", "upload"}) {
        const json& latency = data[key]["latency"];
        CHECK(latency["series"]["t"].size() == latency["samples"].get<std::size_t>());
        CHECK(latency["series"]["rtt_ms"].size() == latency["samples"].get<std::size_t>());
        // On the interval clock: the probes kept are those sent from the end of the warm-up to the end of the
        // window, which is the end of RPM's stable part (times rounded to the µs).
        const double from = data[key]["omitted_seconds"].get<double>() - 1e-6;
        const double to = latency["responsiveness"]["stable_seconds"][1].get<double>() + 1e-6;
        for (const auto& t : latency["series"]["t"]) {
            CHECK(t.get<double>() >= from);
            CHECK(t.get<double>() <= to);
        }
    }
    CHECK(data["latency"]["idle"]["series"]["rtt_ms"].size() == 5);
}

TEST_CASE("speedcli --report to a file that cannot be written is a usage error before the test",
          "[integration][output][report]") {
    // No server listens on the port: the run would fail to connect (exit 3) if it got that far.
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(unused_loopback_port()), "--report",
                                 "/nonexistent-directory/r.html"});
    CHECK(run.process.exit_code == kExitUsage);
    CHECK(run.process.err.find("--report /nonexistent-directory/r.html: No such file or directory") !=
          std::string::npos);
}

TEST_CASE("Headless Chromium opens a --report page offline and draws every chart",
          "[integration][output][report][browser]") {
    if (::access(kChromium, X_OK) != 0) {
        std::puts("SKIP: /usr/bin/chromium is not installed (Debian package chromium)");
        return;
    }
    temp_dir dir("speedreport");
    // Two streams: the throughput charts have a line per stream too.
    const std::string dom = drawn_dom(report_of_run(dir, {"-t", "1", "-P", "2", "--pings", "5"}), dir);
    // Throughput of both directions, latency over time, latency distribution: each drew pixels.
    CHECK(body_attribute(dom, "data-charts-created") == "4");
    CHECK(body_attribute(dom, "data-charts") == "4");
}

TEST_CASE("Headless Chromium draws a --bidir run: both directions on one chart, the latency under both",
          "[integration][output][report][browser][bidir]") {
    if (::access(kChromium, X_OK) != 0) {
        std::puts("SKIP: /usr/bin/chromium is not installed (Debian package chromium)");
        return;
    }
    temp_dir dir("speedreport");
    const std::string path = report_of_run(dir, {"-t", "1", "-b", "100M", "--pings", "5", "--bidir"});
    const json data = data_block(read_file(path));
    REQUIRE(data["bidirectional"].is_object());
    REQUIRE(data["bidirectional"]["latency"]["series"]["rtt_ms"].size() > 0);
    REQUIRE(data["bufferbloat_grade"].is_string());
    const std::string dom = drawn_dom(path, dir);
    // Download and upload on one chart; latency over time and its distribution, idle and under both loads
    // (no probe was under one direction alone): three charts, each drew pixels.
    CHECK(body_attribute(dom, "data-charts-created") == "3");
    CHECK(body_attribute(dom, "data-charts") == "3");
    CHECK(dom.find("<h2>Download and upload throughput, at once</h2>") != std::string::npos);
    // The summary's cards: the latency under both, how the windows overlapped, and the grade from them.
    CHECK(dom.find(R"(<div class="label">Latency under both loads</div>)") != std::string::npos);
    CHECK(dom.find(R"(<div class="label">Both at once</div>)") != std::string::npos);
    CHECK(dom.find(R"(<div class="label">Bufferbloat grade</div><div class="value">)" +
                   data["bufferbloat_grade"].get<std::string>() + "</div>") != std::string::npos);
}

TEST_CASE("monitor --report writes a page with every interval and the summary",
          "[integration][monitor][report]") {
    temp_dir dir("speedreport");
    const std::string path = (dir.path() / "m.html").string();
    const auto run = speedcli_monitor({"-I", "lo", "-i", "0.05", "-c", "3", "--json", "--report", path});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const std::string page = read_file(path);
    CHECK(lowered(page).find("https:") == std::string::npos);
    const json data = data_block(page);
    REQUIRE(data["monitor"]["intervals"].size() == 3);
    CHECK(data["monitor"]["intervals"][0]["interfaces"][0]["name"] == "lo");
    CHECK(data["monitor"]["summary"]["intervals"] == 3);
    CHECK(data["monitor"]["intervals_left_out"] == 0);
    // The intervals are the lines --json printed.
    CHECK(json::parse(run.out.substr(0, run.out.find('\n'))) == data["monitor"]["intervals"][0]);
}

TEST_CASE("monitor --report to a file that cannot be written is a usage error",
          "[integration][monitor][report]") {
    const auto run = speedcli_monitor({"-I", "lo", "-c", "1", "--report", "/nonexistent-directory/m.html"});
    CHECK(run.exit_code == kExitUsage);
    CHECK(run.err.find("--report /nonexistent-directory/m.html: No such file or directory") !=
          std::string::npos);
}

TEST_CASE("Headless Chromium opens a monitor --report page offline and draws its chart",
          "[integration][monitor][report][browser]") {
    if (::access(kChromium, X_OK) != 0) {
        std::puts("SKIP: /usr/bin/chromium is not installed (Debian package chromium)");
        return;
    }
    temp_dir dir("speedreport");
    const std::string path = (dir.path() / "m.html").string();
    const auto run = speedcli_monitor({"-I", "lo", "-i", "0.05", "-c", "3", "--report", path});
    REQUIRE(run.exit_code == 0);
    const auto browser = dump_dom(path, dir);
    INFO(browser.err);
    REQUIRE(browser.exit_code == 0);
    CHECK(body_attribute(browser.out, "data-state") == "done");
    CHECK(body_attribute(browser.out, "data-charts-created") == "1");  // lo's rates
    CHECK(body_attribute(browser.out, "data-charts") == "1");
}
