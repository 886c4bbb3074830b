// client/monitor_output: the exact text of the monitor's NDJSON lines, table, summary and --once lines, and
// the escape sequences of the in-place redraw.
#include "client/monitor/monitor_output.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

using namespace speed::client;
using namespace speed::netdev;

namespace {

// 2023-11-14T22:13:20.250Z
const auto kWallTime = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'250));

// Local times in the table are printed in UTC for these tests.
void use_utc() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
}

interval_report sample_interval() {
    interval_report report;
    report.start_ns = 0;
    report.end_ns = 250'000'000;
    report.seconds = 0.25;
    report.wall_time = kWallTime;
    interface_interval eth0;
    eth0.name = "eth0";
    eth0.traffic = counters{125'000, 100, 0, 0, 25'000, 20, 0, 0};
    eth0.rx_bits_per_second = 4'000'000.0;
    eth0.tx_bits_per_second = 800'000.0;
    interface_interval lo;
    lo.name = "lo";
    lo.traffic = counters{1500, 3, 2, 0, 0, 0, 0, 1};
    lo.rx_bits_per_second = 48'000.0;
    lo.counters_reset = true;
    report.interfaces = {eth0, lo};
    report.appeared = {"veth7"};
    report.disappeared = {"veth9"};
    return report;
}

// A monitor that has seen two readings 0.5 s apart: eth0 received 1 MiB.
traffic_monitor sample_monitor() {
    traffic_monitor monitor({"eth0"});
    reading r;
    r.wall_time = kWallTime;
    r.interfaces = {interface_reading{"eth0", counters{}, true, 2}};
    monitor.add(r);
    r.monotonic_ns = 500'000'000;
    r.wall_time = kWallTime + std::chrono::milliseconds(500);
    r.interfaces[0].total = counters{1'048'576, 800, 0, 4, 65'536, 100, 0, 0};
    monitor.add(r);
    return monitor;
}

}  // namespace

TEST_CASE("an interval is one NDJSON line with the documented keys in order", "[monitor]") {
    const std::string line = interval_json_line(sample_interval());
    CHECK(line ==
          R"({"time":"2023-11-14T22:13:20.250Z","interval_seconds":0.25,"interfaces":[)"
          R"({"name":"eth0","rx_bytes":125000,"tx_bytes":25000,"rx_packets":100,"tx_packets":20,)"
          R"("rx_bits_per_second":4000000.0,"tx_bits_per_second":800000.0,"rx_errors":0,"tx_errors":0,)"
          R"("rx_dropped":0,"tx_dropped":0},)"
          R"({"name":"lo","rx_bytes":1500,"tx_bytes":0,"rx_packets":3,"tx_packets":0,)"
          R"("rx_bits_per_second":48000.0,"tx_bits_per_second":0.0,"rx_errors":2,"tx_errors":0,)"
          R"("rx_dropped":0,"tx_dropped":1,"counters_reset":true}],)"
          R"("appeared":["veth7"],"disappeared":["veth9"]})");
    CHECK(line.find('\n') == std::string::npos);

    interval_report quiet;
    quiet.wall_time = kWallTime;
    quiet.seconds = 1.0;
    quiet.partial = true;
    CHECK(interval_json_line(quiet) ==
          R"({"time":"2023-11-14T22:13:20.250Z","interval_seconds":1.0,"interfaces":[],"partial":true})");
}

TEST_CASE("the summary is one NDJSON line under \"summary\"", "[monitor]") {
    const auto json = nlohmann::json::parse(summary_json_line(sample_monitor()));
    const auto& summary = json.at("summary");
    CHECK(summary.at("start") == "2023-11-14T22:13:20.250Z");
    CHECK(summary.at("end") == "2023-11-14T22:13:20.750Z");
    CHECK(summary.at("seconds") == 0.5);
    CHECK(summary.at("intervals") == 1);
    REQUIRE(summary.at("interfaces").size() == 1);
    const auto& eth0 = summary.at("interfaces")[0];
    CHECK(eth0.at("name") == "eth0");
    CHECK(eth0.at("rx_bytes") == 1'048'576);
    CHECK(eth0.at("tx_bytes") == 65'536);
    CHECK(eth0.at("rx_packets") == 800);
    CHECK(eth0.at("rx_dropped") == 4);
    CHECK(eth0.at("rx_bits_per_second") == 1'048'576 * 8 / 0.5);
    CHECK(eth0.at("tx_bits_per_second") == 65'536 * 8 / 0.5);
    CHECK(eth0.at("rx_peak_bits_per_second") == 1'048'576 * 8 / 0.5);
    CHECK(eth0.at("seconds") == 0.5);
    CHECK(eth0.at("intervals") == 1);
    CHECK_FALSE(eth0.contains("counters_reset"));
}

TEST_CASE("table rows: bytes, rates, packets, and errors or drops only when not zero", "[monitor]") {
    use_utc();
    table_style style;
    CHECK(table_header(style) ==
          "time      interface   rx bytes  tx bytes     total       rx rate      tx rate   rx pkts  tx pkts");
    const auto rows = table_rows(sample_interval(), style);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0] ==
          "22:13:20  eth0       122.1 KiB 24.41 KiB 146.5 KiB  4.000 Mbit/s 800.0 kbit/s       100       20");
    CHECK(rows[1] ==
          "22:13:20  lo         1.465 KiB       0 B 1.465 KiB  48.00 kbit/s      0 bit/s         3        0"
          "  rx errors 2, tx dropped 1  (counters reset: traffic before the reset is not counted)");

    style.milliseconds = true;
    style.units = rate_units::bytes;
    style.name_width = 15;
    CHECK(table_rows(sample_interval(), style)[0] ==
          "22:13:20.250  eth0             122.1 KiB 24.41 KiB 146.5 KiB   488.3 KiB/s  97.66 KiB/s       100"
          "       20");
    CHECK(event_lines(sample_interval(), style) ==
          std::vector<std::string>{
              "22:13:20.250  veth9 disappeared (its traffic since the previous row is not counted)",
              "22:13:20.250  veth7 appeared (rows from the next interval on)"});
}

TEST_CASE("the text summary: totals, average and peak rates per interface", "[monitor]") {
    const auto lines = summary_lines(sample_monitor(), table_style{});
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "Summary: 1 interval over 0.500 s");
    CHECK(lines[1] ==
          "interface   received      sent    rx average   tx average       rx peak      tx peak    rx pkts   "
          "tx pkts");
    CHECK(lines[2] ==
          "eth0       1.000 MiB 64.00 KiB  16.78 Mbit/s 1.049 Mbit/s  16.78 Mbit/s 1.049 Mbit/s        800   "
          "    100"
          "  rx dropped 4");
}

TEST_CASE("once_lines: download and upload speed per interface", "[monitor]") {
    const auto lines = once_lines(sample_interval(), table_style{});
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] ==
          "eth0       download 4.000 Mbit/s  upload 800.0 kbit/s  (122.1 KiB received, 24.41 KiB sent in "
          "0.250 s)");
    CHECK(lines[1] ==
          "lo         download 48.00 kbit/s  upload      0 bit/s  (1.465 KiB received, 0 B sent in 0.250 s)"
          "  rx errors 2, tx dropped 1  (counters reset: traffic before the reset is not counted)");
}

TEST_CASE("the live block moves back over itself, keeps events in the scrollback, and clips", "[monitor]") {
    live_block live;
    CHECK(live.update({}, {"header"}, 80, 24) == "header\n");
    CHECK(live.update({"veth7 appeared"}, {"header", "row 1"}, 80, 24) ==
          "\r\x1b[1A\x1b[Jveth7 appeared\nheader\nrow 1\n");
    // A narrower terminal: lines are cut so each takes one screen line.
    CHECK(live.update({}, {"header", "row 1"}, 4, 24) == "\r\x1b[2A\x1b[Jhead\nrow \n");
    // A block as tall as the terminal cannot be moved back over: it is printed and the next one follows it.
    CHECK(live.update({}, {"header", "row 1", "row 2"}, 80, 3) == "\r\x1b[2A\x1b[Jheader\nrow 1\nrow 2\n");
    CHECK(live.update({}, {"header", "row 1"}, 80, 3) == "header\nrow 1\n");
    CHECK(live.update({}, {"header", "row 1"}, 0, 0) == "\r\x1b[2A\x1b[Jheader\nrow 1\n");
}
