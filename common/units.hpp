// Units used everywhere in the project.
//
// Rates are bits per second with SI (decimal) prefixes, as network links are sold: 1 Mbit/s = 1,000,000
// bit/s. Byte amounts use IEC (binary) prefixes, as memory and files are counted: 1 MiB = 1,048,576 bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace speed::units {

// The rate in bits per second of `bytes` transferred over `seconds`; 0 when no time elapsed.
double bits_per_second(std::uint64_t bytes, double seconds);

// Parses a rate in bits per second: a plain number or one with an SI suffix k, M, G or T (case-insensitive,
// so "100M", "2.5G", "800k", "1e6" and "0" all work), optionally followed by "bit/s", "bps" or "b".
// Fails with the reason when the text is not a non-negative finite rate.
result<double> parse_bits_per_second(std::string_view text);

// Parses a byte amount: a plain number or one with an IEC suffix K, M, G (powers of 1024, iperf3's convention
// for sizes), optionally followed by "B" or "iB". Fractions are allowed when the result is a whole number.
result<std::uint64_t> parse_bytes(std::string_view text);

// Parses a duration in seconds ("10", "0.5", "2.5s"); negative, non-finite and empty texts are rejected.
result<double> parse_seconds(std::string_view text);

// "941.2 Mbit/s", "36.52 Gbit/s", "812 bit/s": four significant digits, the largest SI prefix that keeps the
// number at or above 1.
std::string format_bits_per_second(double bits_per_second);

// "1.500 GiB", "12.34 MiB", "512 B": IEC prefixes, four significant digits.
std::string format_bytes(std::uint64_t bytes);

// Byte rates for the monitor's --units bytes: "11.92 MiB/s".
std::string format_bytes_per_second(double bytes_per_second);

// A rate in the fixed unit of iperf3's -f/--format: k, m, g, t for kbit/s .. Tbit/s (SI), K, M, G, T for
// KiB/s .. TiB/s (IEC, of bytes); 'a' (or anything else) is the adaptive format_bits_per_second. Two
// decimals: "941.23 Mbit/s", "112.21 MiB/s".
std::string format_rate_in(double bits_per_second, char unit);

// "4.20 ms" style: milliseconds with a precision suited to the magnitude.
std::string format_milliseconds(double milliseconds);

// "2026-11-29T19:40:00.123Z": a wall-clock time in UTC, ISO 8601 with milliseconds (JSON, CSV, logs).
std::string format_utc_iso8601(std::chrono::system_clock::time_point time);

}  // namespace speed::units
