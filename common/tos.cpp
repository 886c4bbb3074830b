#include "common/tos.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <optional>
#include <string>
#include <utility>

namespace speed::tos {

namespace {

// RFC 2474 class selectors, RFC 2597 assured forwarding, RFC 3246 expedited forwarding, RFC 5865 voice admit,
// RFC 8622 lower effort.
constexpr std::array<std::pair<std::string_view, std::uint8_t>, 23> kCodePoints{{
    {"cs0", 0},   {"cs1", 8},   {"cs2", 16},  {"cs3", 24},  {"cs4", 32},  {"cs5", 40},
    {"cs6", 48},  {"cs7", 56},  {"af11", 10}, {"af12", 12}, {"af13", 14}, {"af21", 18},
    {"af22", 20}, {"af23", 22}, {"af31", 26}, {"af32", 28}, {"af33", 30}, {"af41", 34},
    {"af42", 36}, {"af43", 38}, {"ef", 46},   {"va", 44},   {"le", 1},
}};

std::optional<unsigned> number_of(std::string_view text) {
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    } else if (text.size() > 1 && text[0] == '0') {
        base = 8;
        text.remove_prefix(1);
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

result<std::uint8_t> parse_tos(std::string_view text) {
    const auto value = number_of(text);
    if (!value || *value > 255) {
        return failure{"'" + std::string(text) + "' is not a TOS byte (0-255, decimal, 0x hex or 0 octal)"};
    }
    return static_cast<std::uint8_t>(*value);
}

result<std::uint8_t> parse_dscp(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (const auto& [name, code_point] : kCodePoints) {
        if (lower == name) {
            return static_cast<std::uint8_t>(code_point << 2);
        }
    }
    const auto value = number_of(text);
    if (!value || *value > 63) {
        return failure{"'" + std::string(text) +
                       "' is not a DSCP code point (0-63, or EF, AF11-AF43, CS0-CS7, VA, LE)"};
    }
    return static_cast<std::uint8_t>(*value << 2);
}

}  // namespace speed::tos
