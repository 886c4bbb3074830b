// common/netdev: /proc/net/dev parsing on fixture files, the wrap and reset rule, intervals and rates on a
// fake clock, and the sampling grid.
#include "common/netdev.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

using namespace speed::netdev;

namespace {

constexpr std::uint64_t k32 = std::uint64_t{1} << 32;
constexpr std::int64_t kMillisecond = 1'000'000;  // in nanoseconds

std::string fixture(const std::string& name) {
    // Appended, not std::string(...) + "..." + name: GCC 12 at -O1 reports a false -Warray-bounds in that
    // concatenation when the file is compiled with the precompiled headers of the ci preset.
    std::string path = SPEED_FIXTURES_DIR "/proc_net_dev/";
    path += name;
    std::ifstream file(path);
    REQUIRE(file.good());
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

std::vector<interface_reading> parse_fixture(const std::string& name) {
    auto parsed = parse_proc_net_dev(fixture(name));
    INFO(name << ": " << (parsed ? std::string() : parsed.error()));
    REQUIRE(parsed);
    return std::move(*parsed);
}

const interface_reading& find(const std::vector<interface_reading>& interfaces, const std::string& name) {
    for (const auto& i : interfaces) {
        if (i.name == name) {
            return i;
        }
    }
    FAIL("no interface " << name);
    throw std::logic_error("unreachable");
}

counters make(std::uint64_t rx_bytes, std::uint64_t rx_packets, std::uint64_t tx_bytes,
              std::uint64_t tx_packets, std::uint64_t errors_and_drops = 0) {
    return counters{rx_bytes, rx_packets, errors_and_drops, errors_and_drops,
                    tx_bytes, tx_packets, errors_and_drops, errors_and_drops};
}

// A reading on the fake clock: `at_ms` milliseconds after an arbitrary start.
struct fake_host {
    std::int64_t start_ns = 5'000'000'000;
    std::vector<interface_reading> interfaces;

    interface_reading& add(const std::string& name, bool up = true, unsigned index = 0) {
        interfaces.push_back({name, counters{}, up, index});
        return interfaces.back();
    }
    interface_reading& operator[](const std::string& name) {
        for (auto& i : interfaces) {
            if (i.name == name) {
                return i;
            }
        }
        throw std::logic_error("no interface " + name);
    }
    void remove(const std::string& name) {
        std::erase_if(interfaces, [&name](const interface_reading& i) { return i.name == name; });
    }
    reading at_ms(std::int64_t milliseconds) const {
        reading r;
        r.monotonic_ns = start_ns + milliseconds * kMillisecond;
        r.wall_time = std::chrono::system_clock::time_point(std::chrono::milliseconds(milliseconds));
        r.interfaces = interfaces;
        return r;
    }
};

std::vector<std::string> names(const interval_report& report) {
    std::vector<std::string> out;
    for (const auto& row : report.interfaces) {
        out.push_back(row.name);
    }
    return out;
}

}  // namespace

TEST_CASE("parses this host's /proc/net/dev", "[netdev]") {
    const auto interfaces = parse_fixture("host.txt");
    REQUIRE(interfaces.size() == 4);
    CHECK(interfaces[0].name == "lo");
    CHECK(interfaces[1].name == "ifb0");
    CHECK(interfaces[2].name == "ifb1");
    CHECK(interfaces[3].name == "eth0");
    CHECK(interfaces[0].total == counters{726036021861, 17813564, 0, 0, 726036021861, 17813564, 0, 0});
    CHECK(interfaces[3].total == counters{26002341, 633, 0, 0, 35340, 432, 0, 0});
    CHECK_FALSE(interfaces[3].up);  // not in the file: the reader adds it
    CHECK(interfaces[3].index == 0);
}

TEST_CASE("parses names as the kernel prints them: long, with dots, dashes and @", "[netdev]") {
    // Captured in a namespace with veth pairs named like Docker bridges, VLANs and veth peers.
    const auto interfaces = parse_fixture("netns_odd_names.txt");
    REQUIRE(interfaces.size() == 5);
    CHECK(find(interfaces, "lo").total == counters{728, 8, 0, 0, 728, 8, 0, 0});
    CHECK(find(interfaces, "br-3f2a9c1d7e5b").total == counters{712, 10, 0, 0, 586, 7, 0, 0});
    CHECK(find(interfaces, "veth-ab").total == counters{586, 7, 0, 0, 712, 10, 0, 0});
    CHECK(find(interfaces, "wg0@odd").total == counters{586, 7, 0, 0, 586, 7, 0, 0});
    CHECK(find(interfaces, "eth0.100").total == counters{586, 7, 0, 0, 586, 7, 0, 0});
}

TEST_CASE("parses counters glued to the colon, as older kernels print large ones", "[netdev]") {
    const auto interfaces = parse_fixture("legacy_glued.txt");
    REQUIRE(interfaces.size() == 2);
    CHECK(interfaces[0].name == "lo");
    CHECK(interfaces[0].total.rx_bytes == 12345678901234);
    CHECK(interfaces[1].name == "enp0s25");
    CHECK(interfaces[1].total == counters{4294967295, 3000000000, 17, 5, 123456789012, 8000000, 2, 11});
}

TEST_CASE("parses full 64-bit counters", "[netdev]") {
    const auto interfaces = parse_fixture("max_counters.txt");
    REQUIRE(interfaces.size() == 1);
    CHECK(interfaces[0].total.rx_bytes == 18446744073709551615u);
    CHECK(interfaces[0].total.rx_packets == 18446744073709551615u);
    CHECK(interfaces[0].total.tx_bytes == 18446744073709551615u);
    CHECK(interfaces[0].total.tx_packets == 1);
}

TEST_CASE("finds the columns by the header's names", "[netdev]") {
    const auto interfaces = parse_fixture("other_layout.txt");
    REQUIRE(interfaces.size() == 1);
    CHECK(interfaces[0].total == counters{100, 2, 3, 4, 200, 20, 5, 6});
}

TEST_CASE("refuses malformed text with the line that is wrong", "[netdev]") {
    const auto error_of = [](const std::string& text) {
        const auto parsed = parse_proc_net_dev(text);
        return parsed ? std::string() : parsed.error();
    };

    CHECK(error_of("") == "not /proc/net/dev text: the two header lines are missing");
    CHECK(error_of("lo: 1 2 3\n") == "not /proc/net/dev text: the two header lines are missing");
    CHECK(error_of("Inter-|\n face bytes packets\n") ==
          "the second header line does not have the 'face |receive columns|transmit columns' form");
    CHECK(error_of("Inter-|\n face |bytes packets errs|bytes packets errs drop\n") ==
          "the header has no 'drop' column for both directions");

    const std::string good_header =
        fixture("wrap_before.txt").substr(0, fixture("wrap_before.txt").find("  eth1"));
    CHECK(error_of(good_header + "  eth0: 1 2 3\n") == "line 3 (eth0): 3 numbers where the header names 16");
    CHECK(error_of(good_header +
                   "    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n") ==
          "line 4: no 'name:' before the counters");
    CHECK(error_of(good_header + "  eth0: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n") ==
          "line 3 (eth0): 'x' is not a 64-bit counter");
    CHECK(error_of(good_header + "  eth0: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n") ==
          "line 3 (eth0): '18446744073709551616' is not a 64-bit counter");
    CHECK(error_of(good_header + "  eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n") ==
          "line 3 (eth0): '-1' is not a 64-bit counter");
    // A malformed line anywhere makes the whole reading an error rather than a partial list.
    CHECK_FALSE(parse_proc_net_dev(good_header + "    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n  eth0: 1\n"));
    // Blank lines and a missing final newline are fine.
    const auto tolerant =
        parse_proc_net_dev(good_header + "\n    lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16");
    REQUIRE(tolerant);
    REQUIRE(tolerant->size() == 1);
    CHECK((*tolerant)[0].total == counters{1, 2, 3, 4, 9, 10, 11, 12});
}

TEST_CASE("the difference of two readings is after - before", "[netdev]") {
    const counter_delta d = difference(make(1000, 10, 500, 5, 1), make(3500, 13, 500, 6, 4));
    CHECK(d.traffic == counters{2500, 3, 3, 3, 0, 1, 3, 3});
    CHECK_FALSE(d.wrapped);
    CHECK_FALSE(d.reset);
}

TEST_CASE("32-bit counters that wrap are counted across the wrap", "[netdev]") {
    // Fixture: a driver with 32-bit counters whose rx and tx bytes wrap between the readings, packets do not.
    const auto before = find(parse_fixture("wrap_before.txt"), "eth1").total;
    const auto after = find(parse_fixture("wrap_after.txt"), "eth1").total;
    const counter_delta d = difference(before, after);
    CHECK(d.wrapped);
    CHECK_FALSE(d.reset);
    CHECK(d.traffic.rx_bytes == 1000 + 704);  // 2^32 - 4294966296 + 704
    CHECK(d.traffic.rx_packets == 2);
    CHECK(d.traffic.tx_bytes == 296 + 100);
    CHECK(d.traffic.tx_packets == 5);
    CHECK(d.traffic.rx_errors == 0);
    CHECK(d.traffic.rx_dropped == 0);

    // The wrap limit: a jump back of just under half the range is a wrap, half or more is not.
    CHECK(difference(make(k32 - 100, 1, 0, 0), make((k32 / 2) - 101, 2, 0, 0)).traffic.rx_bytes ==
          k32 / 2 - 1);
    CHECK_FALSE(difference(make(k32 - 100, 1, 0, 0), make((k32 / 2) - 101, 2, 0, 0)).reset);
    CHECK(difference(make(k32 - 100, 1, 0, 0), make((k32 / 2) - 100, 2, 0, 0)).reset);
}

TEST_CASE("counters that restart are a reset: the traffic is what was counted since", "[netdev]") {
    SECTION("fixture: 64-bit counters back near zero") {
        const auto before = find(parse_fixture("reset_before.txt"), "eth2").total;
        const auto after = find(parse_fixture("reset_after.txt"), "eth2").total;
        const counter_delta d = difference(before, after);
        CHECK(d.reset);
        CHECK(d.traffic == after);
        CHECK(d.traffic == counters{1500, 10, 0, 1, 1000, 8, 0, 0});
    }
    SECTION("a small 32-bit counter falling back is not a plausible wrap") {
        const counter_delta d = difference(make(1'000'000, 900, 2000, 20), make(500, 901, 2100, 21));
        CHECK(d.reset);
        CHECK(d.traffic == make(500, 901, 2100, 21));
    }
    SECTION("bytes and packets of one direction both going back") {
        // Each alone would be a plausible wrap; both at once is a reset.
        const counter_delta d = difference(make(k32 - 10, k32 - 10, 0, 0), make(5, 5, 7, 1));
        CHECK(d.reset);
        CHECK(d.traffic == make(5, 5, 7, 1));
    }
    SECTION("the interface was re-created (its index changed) even though the counters grew") {
        const counter_delta d = difference(make(100, 1, 100, 1), make(5000, 50, 100, 1), /*recreated=*/true);
        CHECK(d.reset);
        CHECK(d.traffic == make(5000, 50, 100, 1));
    }
    SECTION("an error or drop counter that goes back on its own counts 0, not a reset") {
        counters before = make(1000, 10, 1000, 10);
        before.rx_dropped = 7;
        counters after = make(2000, 20, 1500, 15);
        after.rx_dropped = 5;
        const counter_delta d = difference(before, after);
        CHECK_FALSE(d.reset);
        CHECK(d.traffic == counters{1000, 10, 0, 0, 500, 5, 0, 0});
    }
}

TEST_CASE("intervals on a fake clock: rates divide by the measured time", "[netdev]") {
    fake_host host;
    host.add("eth0").total = make(1'000'000, 1000, 2'000'000, 2000);
    host.add("lo").total = make(0, 0, 0, 0);
    traffic_monitor monitor({});
    CHECK_FALSE(monitor.add(host.at_ms(0)));
    CHECK(monitor.watched() == std::vector<std::string>{"eth0", "lo"});

    // 250 ms later: 125,000 bytes in, 25,000 out.
    host["eth0"].total = make(1'125'000, 1100, 2'025'000, 2020);
    auto first = monitor.add(host.at_ms(250));
    REQUIRE(first);
    CHECK(first->seconds == 0.25);
    CHECK(first->start_ns == host.start_ns);
    CHECK(first->end_ns == host.start_ns + 250 * kMillisecond);
    REQUIRE(first->interfaces.size() == 2);
    const auto& eth0 = first->interfaces[0];
    CHECK(eth0.name == "eth0");
    CHECK(eth0.traffic == counters{125'000, 100, 0, 0, 25'000, 20, 0, 0});
    CHECK(eth0.rx_bits_per_second == 4'000'000.0);  // 125,000 * 8 / 0.25
    CHECK(eth0.tx_bits_per_second == 800'000.0);
    CHECK(first->interfaces[1].rx_bits_per_second == 0.0);

    // The next reading comes late (an interval of 0.3 s instead of 0.25): the rate uses 0.3.
    host["eth0"].total = make(1'425'000, 1200, 2'025'000, 2020);
    auto late = monitor.add(host.at_ms(550));
    REQUIRE(late);
    CHECK(late->seconds == Approx(0.3).epsilon(1e-12));
    CHECK(late->interfaces[0].rx_bits_per_second == Approx(300'000 * 8 / 0.3).epsilon(1e-12));

    // Stopped early by a signal after 50 ms with a burst: printed, counted, but not a peak.
    host["eth0"].total = make(1'925'000, 1300, 2'025'000, 2020);
    auto partial = monitor.add(host.at_ms(600), /*partial=*/true);
    REQUIRE(partial);
    CHECK(partial->partial);
    CHECK(partial->interfaces[0].rx_bits_per_second == Approx(500'000 * 8 / 0.05).epsilon(1e-12));

    CHECK(monitor.intervals() == 3);
    CHECK(monitor.seconds() == 0.6);
    const auto& summary = monitor.summary();
    REQUIRE(summary.size() == 2);
    CHECK(summary[0].name == "eth0");
    CHECK(summary[0].intervals == 3);
    CHECK(summary[0].seconds == Approx(0.6).epsilon(1e-12));
    CHECK(summary[0].traffic == counters{925'000, 300, 0, 0, 25'000, 20, 0, 0});
    CHECK(summary[0].rx_bits_per_second() == Approx(925'000 * 8 / 0.6).epsilon(1e-12));
    CHECK(summary[0].tx_bits_per_second() == Approx(25'000 * 8 / 0.6).epsilon(1e-12));
    // The late interval's 8 Mbit/s; the partial interval's 80 Mbit/s is not a peak.
    CHECK(summary[0].rx_peak_bits_per_second == Approx(8'000'000.0).epsilon(1e-12));
    CHECK(summary[0].tx_peak_bits_per_second == 800'000.0);
    CHECK(summary[1].name == "lo");
    CHECK(summary[1].traffic == counters{});
}

TEST_CASE("the sum of the intervals is the counters' difference, wraps included", "[netdev]") {
    fake_host host;
    auto& nic = host.add("eth1");
    nic.total = make(k32 - 5000, 100, 7, 1);
    traffic_monitor monitor({"eth1"});
    monitor.add(host.at_ms(0));
    std::uint64_t sum = 0;
    const std::uint64_t steps[] = {1000, 3999, 2, 123456, 0, 7777};  // crosses 2^32 on the third step
    std::int64_t at = 0;
    for (const std::uint64_t step : steps) {
        host["eth1"].total.rx_bytes = (host["eth1"].total.rx_bytes + step) % k32;
        ++host["eth1"].total.rx_packets;
        const auto report = monitor.add(host.at_ms(at += 100));
        REQUIRE(report);
        sum += report->interfaces.at(0).traffic.rx_bytes;
    }
    CHECK(sum == 1000 + 3999 + 2 + 123456 + 0 + 7777);
    CHECK(monitor.summary().at(0).traffic.rx_bytes == sum);
    CHECK(monitor.summary().at(0).traffic.rx_packets == 6);
}

TEST_CASE("by default every interface that is up is watched, and ones that come up later", "[netdev]") {
    fake_host host;
    host.add("lo", true, 1);
    host.add("eth0", true, 2);
    host.add("wlan0", false, 3);
    traffic_monitor monitor({});
    monitor.add(host.at_ms(0));
    CHECK(monitor.watched() == std::vector<std::string>{"lo", "eth0"});

    host["wlan0"].up = true;
    host.add("veth7", true, 9);
    auto report = monitor.add(host.at_ms(100));
    REQUIRE(report);
    CHECK(names(*report) == std::vector<std::string>{"lo", "eth0"});  // the new ones start next interval
    CHECK(report->appeared == std::vector<std::string>{"wlan0", "veth7"});
    CHECK(report->disappeared.empty());

    // eth0 goes down but still exists: it stays. veth7 is deleted: reported once, then gone.
    host["eth0"].up = false;
    host["wlan0"].total = make(300, 3, 0, 0);
    host.remove("veth7");
    report = monitor.add(host.at_ms(200));
    REQUIRE(report);
    CHECK(names(*report) == std::vector<std::string>{"lo", "eth0", "wlan0"});
    CHECK(report->interfaces[2].traffic.rx_bytes == 300);  // counted from the reading where it appeared
    CHECK(report->disappeared == std::vector<std::string>{"veth7"});
    CHECK(report->appeared.empty());

    report = monitor.add(host.at_ms(300));
    REQUIRE(report);
    CHECK(report->disappeared.empty());
    CHECK(monitor.watched() == std::vector<std::string>{"lo", "eth0", "wlan0"});
    // Every interface ever watched is in the summary, in the order first watched.
    std::vector<std::string> summary_names;
    for (const auto& s : monitor.summary()) {
        summary_names.push_back(s.name);
    }
    CHECK(summary_names == std::vector<std::string>{"lo", "eth0", "wlan0", "veth7"});
    CHECK(monitor.summary()[3].intervals == 0);
}

TEST_CASE("selected interfaces keep their order and are followed when they go and come back", "[netdev]") {
    fake_host host;
    host.add("lo", true, 1);
    host.add("eth0", false, 2);
    host.add("veth1", true, 5).total = make(100, 1, 100, 1);
    traffic_monitor monitor({"veth1", "eth0"});
    monitor.add(host.at_ms(0));
    CHECK(monitor.watched() == std::vector<std::string>{"veth1", "eth0"});  // down, but asked for

    host.remove("veth1");
    auto report = monitor.add(host.at_ms(100));
    REQUIRE(report);
    CHECK(names(*report) == std::vector<std::string>{"eth0"});
    CHECK(report->disappeared == std::vector<std::string>{"veth1"});

    // Back under the same name with a new index and fresh counters.
    host.add("veth1", true, 8).total = make(40, 1, 0, 0);
    report = monitor.add(host.at_ms(200));
    REQUIRE(report);
    CHECK(report->appeared == std::vector<std::string>{"veth1"});
    CHECK(names(*report) == std::vector<std::string>{"eth0"});

    host["veth1"].total = make(1040, 11, 0, 0);
    report = monitor.add(host.at_ms(300));
    REQUIRE(report);
    CHECK(names(*report) == std::vector<std::string>{"veth1", "eth0"});
    CHECK(report->interfaces[0].traffic.rx_bytes == 1000);
    CHECK_FALSE(report->interfaces[0].counters_reset);
    CHECK(monitor.summary().at(0).traffic.rx_bytes == 1000);
}

TEST_CASE("an interface re-created between two readings is a counter reset", "[netdev]") {
    fake_host host;
    host.add("veth1", true, 5).total = make(100, 1, 100, 1);
    traffic_monitor monitor({});
    monitor.add(host.at_ms(0));
    host["veth1"] = interface_reading{"veth1", make(5000, 40, 300, 3), true, 6};
    const auto report = monitor.add(host.at_ms(100));
    REQUIRE(report);
    REQUIRE(report->interfaces.size() == 1);
    CHECK(report->interfaces[0].counters_reset);
    CHECK(report->interfaces[0].traffic == make(5000, 40, 300, 3));
    CHECK(monitor.summary()[0].counters_reset);
}

TEST_CASE("missing_interfaces names the selected ones the kernel does not list", "[netdev]") {
    const auto available = parse_fixture("host.txt");
    CHECK(missing_interfaces({"lo", "eth9", "eth0", "wlan0"}, available) ==
          std::vector<std::string>{"eth9", "wlan0"});
    CHECK(missing_interfaces({}, available).empty());
}

TEST_CASE("sampling instants stay on the grid and skip the ones missed", "[netdev]") {
    constexpr std::int64_t start = 1'000'000'000;
    constexpr std::int64_t interval = 100 * kMillisecond;
    CHECK(next_deadline(start, interval, start) == start + interval);
    CHECK(next_deadline(start, interval, start + interval + 3 * kMillisecond) == start + 2 * interval);
    CHECK(next_deadline(start, interval, start + 2 * interval) == start + 3 * interval);
    // Woke 3.5 intervals late: the next instant is the 4th, not a burst of the missed ones.
    CHECK(next_deadline(start, interval, start + 35 * interval / 10) == start + 4 * interval);
    CHECK(next_deadline(start, interval, start - 5) == start + interval);
}
