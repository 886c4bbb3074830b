// speedcli's report outputs: the raw latency series of the JSON document (docs/json.md, "series"), the
// --report HTML page (client/output_html.hpp) and monitor --report's data
// (client/monitor/monitor_report.hpp).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/monitor/monitor_report.hpp"
#include "client/output.hpp"
#include "client/output_html.hpp"

using namespace speed::client;
using json = nlohmann::ordered_json;

namespace {

std::string lowered(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++count;
    }
    return count;
}

constexpr std::string_view kDataOpen = R"(<script type="application/json" id="report-data">)";

// The page's data block, parsed.
json data_block(const std::string& page) {
    const auto from = page.find(kDataOpen);
    REQUIRE(from != std::string::npos);
    const auto begin = from + kDataOpen.size();
    const auto end = page.find("</script>", begin);
    REQUIRE(end != std::string::npos);
    return json::parse(page.substr(begin, end - begin));
}

// A finished run's document with a peer (the server's software string) and an error that try to end the data
// block and run their own script.
json hostile_document() {
    test_report report;
    report.version = "0.1.0";
    report.host = "127.0.0.1";
    report.port = 5201;
    report.server_software = "speedsrv</script><script>alert(1)</script><!--";
    report.error = "peer said </SCRIPT >< / script>&amp;\\u003c";
    latency_report idle;
    idle.rtt_ms = {0.05};
    idle.sent_ns = {1};
    report.idle_latency = idle;
    return to_json(report, test_options{});
}

latency_report three_probes(std::int64_t zero_ns) {
    latency_report latency;
    latency.rtt_ms = {0.0414, 1.25, 0.0496};
    latency.application_rtt_ms = {0.1014, 1.3, 0.112};
    latency.sent_ns = {1'000'000'000, 1'050'013'400, 1'100'021'000};
    latency.lost_sent_ns = {1'150'000'000};
    latency.zero_ns = zero_ns;
    latency.sent = 4;
    latency.lost = 1;
    return latency;
}

}  // namespace

TEST_CASE("A latency object lists every probe's send time and round trips, to the microsecond",
          "[unit][output][series]") {
    const json series = latency_json(three_probes(0))["series"];
    // Zero 0: the times count from the first probe sent.
    CHECK(series.dump() ==
          R"({"t":[0.0,0.050013,0.100021],"rtt_ms":[0.041,1.25,0.05],"application_rtt_ms":[0.101,1.3,0.112],)"
          R"("lost_t":[0.15]})");
}

TEST_CASE("A loaded series counts its times from the direction's receiver time 0", "[unit][output][series]") {
    const json series = latency_json(three_probes(500'000'000))["series"];
    CHECK(series["t"].dump() == "[0.5,0.550013,0.600021]");
    CHECK(series["lost_t"].dump() == "[0.65]");
}

TEST_CASE("A series without send times (UDP idle probes) has null times and its round trips",
          "[unit][output][series]") {
    latency_report latency;
    latency.rtt_ms = {0.2, 0.3};
    latency.sent = 2;
    const json series = latency_json(latency)["series"];
    CHECK(series.dump() == R"({"t":null,"rtt_ms":[0.2,0.3],"application_rtt_ms":[],"lost_t":[]})");
}

TEST_CASE("A lost probe sent before the first answered one is the series' zero", "[unit][output][series]") {
    latency_report latency = three_probes(0);
    latency.lost_sent_ns = {900'000'000};
    const json series = latency_json(latency)["series"];
    CHECK(series["t"].dump() == "[0.1,0.150013,0.200021]");
    CHECK(series["lost_t"].dump() == "[0.0]");
}

TEST_CASE("The report page loads nothing: no URL at all, and a policy that allows only its own inline code",
          "[unit][output][html]") {
    const std::string page = lowered(html_report(hostile_document()));
    CHECK(page.find("http:") == std::string::npos);
    CHECK(page.find("https:") == std::string::npos);
    CHECK(page.find("//cdn") == std::string::npos);
    CHECK(page.find(" src=") == std::string::npos);
    CHECK(page.find(" href=") == std::string::npos);
    CHECK(page.find("<link") == std::string::npos);
    const auto style = page.find("<style>");
    REQUIRE(style != std::string::npos);
    CHECK(page.substr(style, page.find("</style>") - style).find("url(") == std::string::npos);
    const auto policy =
        page.find(R"(<meta http-equiv="content-security-policy" content="default-src 'none'; )");
    CHECK(policy != std::string::npos);
    CHECK(policy < page.find("<script"));
    CHECK(page.find("unsafe-") == std::string::npos);
    // Two scripts the browser runs (Chart.js and the page's own), each allowed by its hash, and the style.
    CHECK(count_of(page, "'sha256-") == 3);
}

TEST_CASE("The report page carries the JSON document unchanged", "[unit][output][html]") {
    test_report report;
    report.version = "0.1.0";
    report.host = "speed.example";
    report.server_software = "speedsrv 0.1.0 \xc3\xa9";  // UTF-8 text
    latency_report idle;
    idle.rtt_ms = {0.041, 0.052};
    idle.application_rtt_ms = {0.1, 0.11};
    idle.sent_ns = {5'000, 50'005'000};
    report.idle_latency = idle;
    direction_report download;
    download.bits_per_second = 1e9;
    download.intervals.push_back({0.0, 1.0, 125'000'000, 1e9, false, {125'000'000}, std::nullopt});
    report.download = download;
    const json document = to_json(report, test_options{});
    CHECK(data_block(html_report(document)) == document);
}

TEST_CASE("No string from the peer can end the report's data block or open a comment in it",
          "[unit][output][html]") {
    const json document = hostile_document();
    const std::string page = html_report(document);
    const std::string low = lowered(page);
    // The three <script> elements the page has, each closed once: the hostile text opened none.
    CHECK(count_of(low, "<script") == 3);
    CHECK(count_of(low, "</script") == 3);
    CHECK(count_of(low, "<!--") == 0);
    // The data block still reads back as the same strings.
    const json data = data_block(page);
    CHECK(data["server"]["software"] == "speedsrv</script><script>alert(1)</script><!--");
    CHECK(data["error"] == "peer said </SCRIPT >< / script>&amp;\\u003c");
    CHECK(data == document);
}

TEST_CASE("The report's data block is ASCII with <, > and & escaped, even from invalid UTF-8",
          "[unit][output][html]") {
    json document;
    document["software"] = std::string("a<b>c&d\xff\xc3");
    CHECK(json_for_html(document) == R"({"software":"a\u003cb\u003ec\u0026d\ufffd\ufffd"})");
}

TEST_CASE("monitor --report's data: the --json intervals and the summary, with how many were left out",
          "[unit][output][html][monitor]") {
    const json document = monitor_report_json(
        0.5, {R"({"time":"2026-11-30T06:10:46.713Z","interval_seconds":0.5,"interfaces":[]})"}, 2,
        R"({"summary":{"intervals":3}})");
    CHECK(document.dump() ==
          std::string(R"({"monitor":{"version":")") + SPEED_VERSION +
              R"(","interval_seconds":0.5,"intervals":[{"time":"2026-11-30T06:10:46.713Z",)"
              R"("interval_seconds":0.5,"interfaces":[]}],"intervals_left_out":2,)"
              R"("summary":{"intervals":3}}})");
}

namespace {
struct silent_printer final : monitor_printer {
    void start(const std::vector<std::string>&, double) override {}
    void interval(const speed::netdev::interval_report&) override {}
    void finish(const speed::netdev::traffic_monitor&) override {}
};
}  // namespace

TEST_CASE("monitor --report keeps the latest intervals only, however long the monitor runs",
          "[unit][output][html][monitor]") {
    const auto path = std::filesystem::temp_directory_path() /
                      ("speedcli-monitor-report-" + std::to_string(::getpid()) + ".html");
    monitor_report_recorder recorder(std::make_unique<silent_printer>(), path.string());
    recorder.start({}, 1.0);
    speed::netdev::interval_report interval;
    for (std::size_t i = 0; i <= kReportIntervals; ++i) {
        interval.seconds = static_cast<double>(i);  // tells the intervals apart
        recorder.interval(interval);
    }
    recorder.finish(speed::netdev::traffic_monitor({}));
    CHECK_FALSE(recorder.failure());
    std::ifstream in(path);
    std::ostringstream page;
    page << in.rdbuf();
    std::filesystem::remove(path);
    const json data = data_block(page.str())["monitor"];
    REQUIRE(data["intervals"].size() == kReportIntervals);
    CHECK(data["intervals"][0]["interval_seconds"] == 1.0);  // the first one (0) was left out
    CHECK(data["intervals"].back()["interval_seconds"] == static_cast<double>(kReportIntervals));
    CHECK(data["intervals_left_out"] == 1);
}

namespace {

// A finished UDP test with one direction: a download speedcli received, or an upload speedsrv received;
// `overflows` is what the receiver's sockets reported.
test_report udp_test(speed::proto::direction dir, std::optional<std::uint64_t> overflows) {
    test_report report;
    report.protocol = "udp";
    report.host = "127.0.0.1";
    direction_report direction;
    direction.dir = dir;
    direction.measured_by = dir == speed::proto::direction::download ? "client" : "server";
    direction.seconds = 2.0;
    udp_figures udp;
    udp.packets_sent = 1000;
    udp.packets_received = 900;
    udp.lost_packets = 100;
    udp.lost_percent = 10.0;
    udp.receive_buffer_overflows = overflows;
    direction.udp = udp;
    (dir == speed::proto::direction::download ? report.download : report.upload) = direction;
    return report;
}

std::string human_summary(const test_report& report) {
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    human_output(file, true).summary(report);
    std::rewind(file);
    std::string text;
    for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) {
        text.push_back(static_cast<char>(c));
    }
    std::fclose(file);
    return text;
}

}  // namespace

TEST_CASE(
    "A UDP direction says how often the receiver's buffers overflowed and whose, or null when unreported",
    "[unit][output][udp]") {
    using speed::proto::direction;
    const auto download = udp_test(direction::download, 37);
    CHECK(direction_json(*download.download)["receive_buffer_overflows"] == 37);
    CHECK(human_summary(download).find("this host's receive buffer overflowed 37 times") !=
          std::string::npos);

    const auto upload = udp_test(direction::upload, 5);
    CHECK(direction_json(*upload.upload)["receive_buffer_overflows"] == 5);
    CHECK(human_summary(upload).find("the server's receive buffer overflowed 5 times") != std::string::npos);
    CHECK(human_summary(udp_test(direction::upload, 1)).find("overflowed 1 time:") != std::string::npos);

    const auto counted_none = udp_test(direction::download, 0);
    CHECK(direction_json(*counted_none.download)["receive_buffer_overflows"] == 0);
    CHECK(human_summary(counted_none).find("overflowed") == std::string::npos);

    const auto not_reported = udp_test(direction::upload, std::nullopt);  // an iperf3 server
    CHECK(direction_json(*not_reported.upload)["receive_buffer_overflows"].is_null());
    CHECK(human_summary(not_reported).find("overflowed") == std::string::npos);
}
