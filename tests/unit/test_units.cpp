#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>

#include "common/time_units.hpp"
#include "common/units.hpp"

using namespace speed::units;

TEST_CASE("rates parse with SI prefixes", "[units]") {
    CHECK(parse_bits_per_second("100M") == 100e6);
    CHECK(parse_bits_per_second("2.5G") == 2.5e9);
    CHECK(parse_bits_per_second("800k") == 800e3);
    CHECK(parse_bits_per_second("800K") == 800e3);
    CHECK(parse_bits_per_second("1T") == 1e12);
    CHECK(parse_bits_per_second("0") == 0.0);
    CHECK(parse_bits_per_second("1500") == 1500.0);
    CHECK(parse_bits_per_second("1e6") == 1e6);
    CHECK(parse_bits_per_second(" 10 Mbit/s ") == 10e6);
    CHECK(parse_bits_per_second("10mbps") == 10e6);
}

TEST_CASE("bad rates are refused with a reason", "[units]") {
    CHECK_FALSE(parse_bits_per_second(""));
    const auto word = parse_bits_per_second("fast");
    CHECK_FALSE(word);
    CHECK_THAT(word.error(), Catch::Contains("not a rate"));
    const auto unit = parse_bits_per_second("10X");
    CHECK_FALSE(unit);
    CHECK_THAT(unit.error(), Catch::Contains("unknown unit"));
    CHECK_FALSE(parse_bits_per_second("-5M"));
    CHECK_FALSE(parse_bits_per_second("inf"));
    CHECK_FALSE(parse_bits_per_second("nan"));
}

TEST_CASE("byte amounts parse with IEC prefixes", "[units]") {
    CHECK(parse_bytes("1400") == 1400U);
    CHECK(parse_bytes("64K") == 65536U);
    CHECK(parse_bytes("1M") == 1048576U);
    CHECK(parse_bytes("1.5K") == 1536U);
    CHECK(parse_bytes("2GiB") == 2147483648ULL);
    CHECK_FALSE(parse_bytes("1.3"));
    CHECK_FALSE(parse_bytes("-1"));
    CHECK_FALSE(parse_bytes("3Q"));
}

TEST_CASE("seconds parse", "[units]") {
    CHECK(parse_seconds("10") == 10.0);
    CHECK(parse_seconds("0.5s") == 0.5);
    CHECK_FALSE(parse_seconds("-1"));
    CHECK_FALSE(parse_seconds("1min"));
}

TEST_CASE("rates format with four significant digits and the largest fitting prefix", "[units]") {
    CHECK(format_bits_per_second(941.2e6) == "941.2 Mbit/s");
    CHECK(format_bits_per_second(36.523e9) == "36.52 Gbit/s");
    CHECK(format_bits_per_second(1.2345e9) == "1.234 Gbit/s");
    CHECK(format_bits_per_second(812) == "812 bit/s");
    CHECK(format_bits_per_second(1000) == "1.000 kbit/s");
    CHECK(format_bits_per_second(999.96e6) == "1.000 Gbit/s");
    CHECK(format_bits_per_second(0) == "0 bit/s");
    CHECK(format_bits_per_second(-5) == "0 bit/s");
    CHECK(format_bits_per_second(2.5e12) == "2.500 Tbit/s");
}

TEST_CASE("byte amounts format with IEC prefixes", "[units]") {
    CHECK(format_bytes(0) == "0 B");
    CHECK(format_bytes(512) == "512 B");
    CHECK(format_bytes(1024) == "1.000 KiB");
    CHECK(format_bytes(1536) == "1.500 KiB");
    CHECK(format_bytes(12'939'428) == "12.34 MiB");
    CHECK(format_bytes(1'610'612'736) == "1.500 GiB");
    CHECK(format_bytes_per_second(1024.0 * 1024.0 * 11.92) == "11.92 MiB/s");
}

TEST_CASE("bits per second from bytes and seconds", "[units]") {
    CHECK(bits_per_second(125'000'000, 1.0) == 1e9);
    CHECK(bits_per_second(1'250'000, 0.01) == Approx(1e9).epsilon(1e-12));
    CHECK(bits_per_second(100, 0.0) == 0.0);
}

TEST_CASE("milliseconds format by magnitude", "[units]") {
    CHECK(format_milliseconds(0.0523) == "0.052 ms");
    CHECK(format_milliseconds(4.2) == "4.20 ms");
    CHECK(format_milliseconds(123.45) == "123.5 ms");
}

TEST_CASE("ISO 8601 times are UTC with milliseconds", "[units]") {
    const auto wall_time =
        std::chrono::system_clock::time_point{std::chrono::milliseconds(1'700'000'000'250)};
    CHECK(format_utc_iso8601(wall_time) == "2023-11-14T22:13:20.250Z");
    CHECK(format_utc_iso8601(std::chrono::system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
    CHECK(format_utc_iso8601(wall_time + std::chrono::microseconds(999)) == "2023-11-14T22:13:20.250Z");
}

TEST_CASE("rates format in iperf3's fixed -f units", "[units]") {
    CHECK(format_rate_in(941'234'567.0, 'k') == "941234.57 kbit/s");
    CHECK(format_rate_in(941'234'567.0, 'm') == "941.23 Mbit/s");
    CHECK(format_rate_in(941'234'567.0, 'g') == "0.94 Gbit/s");
    CHECK(format_rate_in(2.5e12, 't') == "2.50 Tbit/s");
    // Bytes: rate / 8 in powers of 1024.
    CHECK(format_rate_in(8.0 * 1024.0, 'K') == "1.00 KiB/s");
    CHECK(format_rate_in(8.0 * 1024.0 * 1024.0 * 100.0, 'M') == "100.00 MiB/s");
    CHECK(format_rate_in(8.0 * 1024.0 * 1024.0 * 1024.0 * 3.0, 'G') == "3.00 GiB/s");
    CHECK(format_rate_in(8.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0, 'T') == "1.00 TiB/s");
    // 'a' (or any other letter) adapts the prefix; nothing below zero or non-finite.
    CHECK(format_rate_in(941'234'567.0, 'a') == "941.2 Mbit/s");
    CHECK(format_rate_in(-5.0, 'm') == "0.00 Mbit/s");
    CHECK(format_rate_in(std::nan(""), 'M') == "0.00 MiB/s");
}

TEST_CASE("time conversions round seconds to the nearest unit and report fractions exactly", "[units]") {
    using namespace std::chrono_literals;
    CHECK(seconds_to_ns(1.5) == 1'500'000'000ns);
    CHECK(seconds_to_ns(0.0000000004) == 0ns);
    CHECK(seconds_to_ns(0.0000000006) == 1ns);
    CHECK(seconds_to_ms(0.0004) == 0ms);
    CHECK(seconds_to_ms(2.0006) == 2001ms);
    CHECK(seconds_to_wire_ms(10.0) == 10'000U);
    CHECK(seconds_to_wire_ms(0.2504) == 250U);
    // Whole microseconds, truncated, clamped to u32 (a self probe's send time and round trip on the wire).
    CHECK(ns_to_wire_us(1'999) == 1U);
    CHECK(ns_to_wire_us(-5'000) == 0U);
    CHECK(ns_to_wire_us(4'294'967'295'999) == 4'294'967'295U);
    CHECK(ns_to_wire_us(5'000'000'000'000) == 4'294'967'295U);
    CHECK(ns_to_seconds(std::int64_t{2'500'000'000}) == 2.5);
    CHECK(ns_to_seconds(std::uint64_t{0}) == 0.0);
    CHECK(ns_to_ms(std::uint64_t{1'250'000}) == 1.25);
    CHECK(ns_to_ms(std::int64_t{-500'000}) == -0.5);
    CHECK(us_to_ms(std::vector<std::uint32_t>{0, 1500, 4'294'967'295U}) ==
          std::vector<double>{0.0, 1.5, 4'294'967.295});
}
