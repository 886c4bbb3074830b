// Helpers for tests of `speedcli monitor --json`: split NDJSON, check each line against docs/monitor.md.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace speed::testing {

// Every line of `text` parsed as one JSON object; a line that is not one fails the test.
inline std::vector<nlohmann::ordered_json> ndjson_lines(const std::string& text) {
    std::vector<nlohmann::ordered_json> lines;
    std::istringstream stream(text);
    std::string line;
    while (std::getline(stream, line)) {
        INFO("line: " << line);
        auto parsed = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
        REQUIRE(parsed.is_object());
        lines.push_back(std::move(parsed));
    }
    return lines;
}

inline std::vector<std::string> keys_of(const nlohmann::ordered_json& object) {
    std::vector<std::string> keys;
    for (const auto& item : object.items()) {
        keys.push_back(item.key());
    }
    return keys;
}

// One interval line: the documented keys in order (optional ones only when they carry something), ISO 8601
// time, and every rate equal to its bytes over the measured interval.
inline void check_interval_line(const nlohmann::ordered_json& line) {
    INFO(line.dump());
    auto keys = keys_of(line);
    REQUIRE(keys.size() >= 3);
    CHECK(std::vector<std::string>(keys.begin(), keys.begin() + 3) ==
          std::vector<std::string>{"time", "interval_seconds", "interfaces"});
    for (std::size_t i = 3; i < keys.size(); ++i) {
        CHECK((keys[i] == "appeared" || keys[i] == "disappeared" || keys[i] == "partial"));
    }
    static const std::regex iso8601(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
    CHECK(std::regex_match(line["time"].get<std::string>(), iso8601));
    const double seconds = line["interval_seconds"].get<double>();
    CHECK(seconds > 0.0);
    for (const auto& entry : line["interfaces"]) {
        INFO(entry.dump());
        auto entry_keys = keys_of(entry);
        if (entry.contains("counters_reset")) {
            CHECK(entry_keys.back() == "counters_reset");
            entry_keys.pop_back();
        }
        CHECK(entry_keys == std::vector<std::string>{"name", "rx_bytes", "tx_bytes", "rx_packets",
                                                     "tx_packets", "rx_bits_per_second", "tx_bits_per_second",
                                                     "rx_errors", "tx_errors", "rx_dropped", "tx_dropped"});
        for (const char* counter : {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors",
                                    "tx_errors", "rx_dropped", "tx_dropped"}) {
            CHECK(entry[counter].is_number_unsigned());
        }
        const double rx_expected =
            static_cast<double>(entry["rx_bytes"].get<std::uint64_t>()) * 8.0 / seconds;
        const double tx_expected =
            static_cast<double>(entry["tx_bytes"].get<std::uint64_t>()) * 8.0 / seconds;
        CHECK(entry["rx_bits_per_second"].get<double>() == Approx(rx_expected).epsilon(1e-12));
        CHECK(entry["tx_bits_per_second"].get<double>() == Approx(tx_expected).epsilon(1e-12));
    }
}

// The summary line agrees with the interval lines before it: totals are their sums, seconds the sum of the
// interval lengths, peaks the highest full-interval rates.
inline void check_summary_line(const nlohmann::ordered_json& summary_line,
                               const std::vector<nlohmann::ordered_json>& intervals) {
    INFO(summary_line.dump());
    REQUIRE(keys_of(summary_line) == std::vector<std::string>{"summary"});
    const auto& summary = summary_line["summary"];
    CHECK(keys_of(summary) == std::vector<std::string>{"start", "end", "seconds", "intervals", "interfaces"});
    CHECK(summary["intervals"].get<std::size_t>() == intervals.size());
    double seconds = 0.0;
    for (const auto& line : intervals) {
        seconds += line["interval_seconds"].get<double>();
    }
    CHECK(summary["seconds"].get<double>() == Approx(seconds).epsilon(1e-9));
    for (const auto& entry : summary["interfaces"]) {
        INFO(entry.dump());
        const std::string name = entry["name"].get<std::string>();
        std::uint64_t rx_bytes = 0;
        std::uint64_t tx_bytes = 0;
        std::uint64_t rx_packets = 0;
        double interface_seconds = 0.0;
        double rx_peak = 0.0;
        for (const auto& line : intervals) {
            for (const auto& row : line["interfaces"]) {
                if (row["name"] == name) {
                    rx_bytes += row["rx_bytes"].get<std::uint64_t>();
                    tx_bytes += row["tx_bytes"].get<std::uint64_t>();
                    rx_packets += row["rx_packets"].get<std::uint64_t>();
                    interface_seconds += line["interval_seconds"].get<double>();
                    if (!line.contains("partial")) {
                        rx_peak = std::max(rx_peak, row["rx_bits_per_second"].get<double>());
                    }
                }
            }
        }
        CHECK(entry["rx_bytes"].get<std::uint64_t>() == rx_bytes);
        CHECK(entry["tx_bytes"].get<std::uint64_t>() == tx_bytes);
        CHECK(entry["rx_packets"].get<std::uint64_t>() == rx_packets);
        CHECK(entry["seconds"].get<double>() == Approx(interface_seconds).epsilon(1e-9));
        CHECK(entry["rx_peak_bits_per_second"].get<double>() == Approx(rx_peak).epsilon(1e-12));
        if (interface_seconds > 0.0) {
            CHECK(entry["rx_bits_per_second"].get<double>() ==
                  Approx(static_cast<double>(rx_bytes) * 8.0 / interface_seconds).epsilon(1e-9));
        }
    }
}

}  // namespace speed::testing
