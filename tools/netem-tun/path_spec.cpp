#include "tools/netem-tun/path_spec.hpp"

#include <net/if.h>

#include <charconv>
#include <cmath>
#include <vector>

namespace speed::netem {

namespace {

constexpr double kMaxDelayMs = 10'000.0;

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) {
            return parts;
        }
        text.remove_prefix(at + 1);
    }
}

std::optional<double> parse_number(std::string_view text) {
    double value = 0.0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

std::optional<path_spec> fail(std::string* error, std::string reason) {
    if (error != nullptr) {
        *error = std::move(reason);
    }
    return std::nullopt;
}

}  // namespace

std::optional<path_spec> parse_path_spec(std::string_view text, std::string* error) {
    const auto parts = split(text, ':');
    if (parts.size() < 2 || parts.size() > 4) {
        return fail(error,
                    "expected DEVICE:DELAY_MS[:LOSS_PERCENT[:JITTER_MS]], got '" + std::string(text) + "'");
    }
    path_spec spec;
    spec.device = std::string(parts[0]);
    if (spec.device.empty() || spec.device.size() >= IFNAMSIZ) {
        return fail(error, "the device name must have 1 to " + std::to_string(IFNAMSIZ - 1) + " characters");
    }
    const auto delay_ns = parse_milliseconds(parts[1]);
    if (!delay_ns) {
        return fail(error, "the delay must be a number of milliseconds from 0 to 10000, got '" +
                               std::string(parts[1]) + "'");
    }
    spec.delay_ns = *delay_ns;
    if (parts.size() >= 3) {
        const auto loss_percent = parse_number(parts[2]);
        if (!loss_percent || *loss_percent < 0.0 || *loss_percent > 100.0) {
            return fail(error,
                        "the loss must be a percentage from 0 to 100, got '" + std::string(parts[2]) + "'");
        }
        spec.loss_probability = *loss_percent / 100.0;
    }
    if (parts.size() == 4) {
        spec.jitter_ns = parse_milliseconds(parts[3]);
        if (!spec.jitter_ns) {
            return fail(error, "the jitter must be a number of milliseconds from 0 to 10000, got '" +
                                   std::string(parts[3]) + "'");
        }
    }
    return spec;
}

std::optional<std::int64_t> parse_milliseconds(std::string_view text) {
    const auto ms = parse_number(text);
    if (!ms || *ms < 0.0 || *ms > kMaxDelayMs) {
        return std::nullopt;
    }
    return std::llround(*ms * 1e6);
}

}  // namespace speed::netem
