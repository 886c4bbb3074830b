#include "common/units.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace speed::units {
namespace {

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
        text.remove_suffix(1);
    }
    return text;
}

// Splits "2.5G" into the number 2.5 and the rest "G". from_chars for double is exact and locale-free.
bool split_number(std::string_view text, double& number, std::string_view& rest) {
    const char* begin = text.data();
    const char* end = text.data() + text.size();
    if (begin != end && *begin == '+') {
        ++begin;
    }
    auto [ptr, ec] = std::from_chars(begin, end, number, std::chars_format::general);
    if (ec != std::errc{} || ptr == begin) {
        return false;
    }
    rest = std::string_view(ptr, static_cast<std::size_t>(end - ptr));
    return true;
}

// Removes a leading unit prefix from `suffix` (already lowercase) and returns its multiplier: the n-th letter
// of `prefixes` stands for base^n (counting from 1). No prefix: 1.
double take_prefix(std::string& suffix, double base, std::string_view prefixes) {
    const auto position = suffix.empty() ? std::string_view::npos : prefixes.find(suffix.front());
    if (position == std::string_view::npos) {
        return 1.0;
    }
    suffix.erase(0, 1);
    return std::pow(base, static_cast<double>(position + 1));
}

// Formats `value` (>= 1 or 0) with four significant digits.
std::string four_significant(double value) {
    std::array<char, 64> buffer{};
    int decimals = 3;
    if (value >= 1000.0) {
        decimals = 0;
    } else if (value >= 100.0) {
        decimals = 1;
    } else if (value >= 10.0) {
        decimals = 2;
    }
    std::snprintf(buffer.data(), buffer.size(), "%.*f", decimals, value);
    return buffer.data();
}

}  // namespace

double bits_per_second(std::uint64_t bytes, double seconds) {
    if (!(seconds > 0.0)) {
        return 0.0;
    }
    return static_cast<double>(bytes) * 8.0 / seconds;
}

result<double> parse_bits_per_second(std::string_view text) {
    text = trim(text);
    double number = 0.0;
    std::string_view rest;
    if (!split_number(text, number, rest)) {
        return failure{"'" + std::string(text) + "' is not a rate (examples: 100M, 2.5G, 800k, 0)"};
    }
    std::string suffix = lowercase(trim(rest));
    const double multiplier = take_prefix(suffix, 1000.0, "kmgt");
    if (!(suffix.empty() || suffix == "bit/s" || suffix == "bps" || suffix == "b" || suffix == "bit")) {
        return failure{"'" + std::string(text) + "' has an unknown unit (use k, M, G or T, bits per second)"};
    }
    const double rate = number * multiplier;
    if (!std::isfinite(rate) || rate < 0.0) {
        return failure{"'" + std::string(text) + "' is not a non-negative finite rate"};
    }
    return rate;
}

result<std::uint64_t> parse_bytes(std::string_view text) {
    text = trim(text);
    double number = 0.0;
    std::string_view rest;
    if (!split_number(text, number, rest)) {
        return failure{"'" + std::string(text) + "' is not a byte amount (examples: 1400, 64K, 1M)"};
    }
    std::string suffix = lowercase(trim(rest));
    const double multiplier = take_prefix(suffix, 1024.0, "kmg");
    if (!(suffix.empty() || suffix == "b" || suffix == "ib")) {
        return failure{"'" + std::string(text) + "' has an unknown unit (use K, M or G, powers of 1024)"};
    }
    const double bytes = number * multiplier;
    // 2^63 keeps the conversion below well defined; nothing sensible is that large.
    if (!std::isfinite(bytes) || bytes < 0.0 || bytes >= 9.2e18 || std::floor(bytes) != bytes) {
        return failure{"'" + std::string(text) + "' is not a whole, non-negative number of bytes"};
    }
    return static_cast<std::uint64_t>(bytes);
}

result<double> parse_seconds(std::string_view text) {
    text = trim(text);
    double number = 0.0;
    std::string_view rest;
    if (!split_number(text, number, rest)) {
        return failure{"'" + std::string(text) + "' is not a number of seconds"};
    }
    const std::string suffix = lowercase(trim(rest));
    if (!(suffix.empty() || suffix == "s")) {
        return failure{"'" + std::string(text) + "' has an unknown unit (seconds only)"};
    }
    if (!std::isfinite(number) || number < 0.0) {
        return failure{"'" + std::string(text) + "' is not a non-negative number of seconds"};
    }
    return number;
}

std::string format_bits_per_second(double bits_per_second) {
    static constexpr std::array<const char*, 5> kNames{"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
    if (!std::isfinite(bits_per_second) || bits_per_second <= 0.0) {
        return "0 bit/s";
    }
    std::size_t index = 0;
    double value = bits_per_second;
    // Pick the prefix on the value as it will be printed, so 999.96e6 becomes "1.000 Gbit/s", not "1000
    // Mbit/s".
    while (index + 1 < kNames.size() && std::stod(four_significant(value)) >= 1000.0) {
        value /= 1000.0;
        ++index;
    }
    if (index == 0) {
        std::array<char, 32> buffer{};
        std::snprintf(buffer.data(), buffer.size(), "%.0f bit/s", value);
        return buffer.data();
    }
    return four_significant(value) + " " + kNames[index];
}

namespace {
std::string format_iec(double amount, const char* const* names, std::size_t name_count, bool whole_base) {
    if (!std::isfinite(amount) || amount <= 0.0) {
        return std::string("0 ") + names[0];
    }
    std::size_t index = 0;
    double value = amount;
    while (index + 1 < name_count && std::stod(four_significant(value)) >= 1024.0) {
        value /= 1024.0;
        ++index;
    }
    if (index == 0 && whole_base) {
        std::array<char, 32> buffer{};
        std::snprintf(buffer.data(), buffer.size(), "%.0f %s", value, names[0]);
        return buffer.data();
    }
    return four_significant(value) + " " + names[index];
}
}  // namespace

std::string format_bytes(std::uint64_t bytes) {
    static constexpr std::array<const char*, 6> kNames{"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    return format_iec(static_cast<double>(bytes), kNames.data(), kNames.size(), true);
}

std::string format_bytes_per_second(double bytes_per_second) {
    static constexpr std::array<const char*, 5> kNames{"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"};
    return format_iec(bytes_per_second, kNames.data(), kNames.size(), true);
}

std::string format_rate_in(double bits_per_second, char unit) {
    static constexpr std::string_view kUnits = "kmgtKMGT";
    static constexpr std::array<const char*, 8> kNames{"kbit/s", "Mbit/s", "Gbit/s", "Tbit/s",
                                                       "KiB/s",  "MiB/s",  "GiB/s",  "TiB/s"};
    const auto index = kUnits.find(unit);
    if (index == std::string_view::npos) {
        return format_bits_per_second(bits_per_second);
    }
    const bool bytes = index >= 4;
    const double base = bytes ? 1024.0 : 1000.0;
    double divisor = base;
    for (std::size_t step = 0; step < index % 4; ++step) {
        divisor *= base;
    }
    const double rate = std::isfinite(bits_per_second) && bits_per_second > 0.0 ? bits_per_second : 0.0;
    const double value = (bytes ? rate / 8.0 : rate) / divisor;
    std::array<char, 48> buffer{};
    std::snprintf(buffer.data(), buffer.size(), "%.2f %s", value, kNames[index]);
    return buffer.data();
}

std::string format_milliseconds(double milliseconds) {
    std::array<char, 32> buffer{};
    if (!std::isfinite(milliseconds)) {
        return "n/a";
    }
    const double magnitude = std::fabs(milliseconds);
    const int decimals = magnitude >= 100.0 ? 1 : (magnitude >= 1.0 ? 2 : 3);
    std::snprintf(buffer.data(), buffer.size(), "%.*f ms", decimals, milliseconds);
    return buffer.data();
}

std::string format_utc_iso8601(std::chrono::system_clock::time_point time) {
    const auto whole = std::chrono::floor<std::chrono::seconds>(time);
    const std::time_t seconds = std::chrono::system_clock::to_time_t(whole);
    const auto milliseconds = std::chrono::duration_cast<std::chrono::milliseconds>(time - whole).count();
    std::tm parts{};
    ::gmtime_r(&seconds, &parts);
    std::array<char, 64> text{};
    std::snprintf(text.data(), text.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900,
                  parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                  static_cast<int>(milliseconds));
    return text.data();
}

}  // namespace speed::units
