#include "common/web_api.hpp"

#include <algorithm>

namespace speed::web {

namespace {

constexpr std::string_view kSessionsPath = "/api/sessions";
constexpr std::size_t kMaxDecimalDigits = 20;  // 2^64 - 1 has 20

bool is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace

std::string session_id_text(std::span<const std::uint8_t, kSessionIdBytes> bytes) {
    constexpr std::string_view digits = "0123456789abcdef";
    std::string text;
    text.reserve(kSessionIdChars);
    for (const std::uint8_t b : bytes) {
        text.push_back(digits[b >> 4]);
        text.push_back(digits[b & 0x0f]);
    }
    return text;
}

bool is_session_id(std::string_view text) {
    return text.size() == kSessionIdChars && std::all_of(text.begin(), text.end(), is_lower_hex);
}

route parse_route(std::string_view path) {
    if (path == "/") {
        return {endpoint::page, {}};
    }
    if (path == "/speedtest.js") {
        return {endpoint::script, {}};
    }
    if (path == "/speedtest.css") {
        return {endpoint::style, {}};
    }
    if (path == "/chart.min.js") {
        return {endpoint::chart, {}};
    }
    if (path == kSessionsPath) {
        return {endpoint::sessions, {}};
    }
    if (path.size() <= kSessionsPath.size() + 1 || !path.starts_with(kSessionsPath) ||
        path[kSessionsPath.size()] != '/') {
        return {endpoint::none, {}};
    }
    const std::string_view rest = path.substr(kSessionsPath.size() + 1);
    const std::size_t slash = rest.find('/');
    const std::string_view id = rest.substr(0, slash);
    if (!is_session_id(id)) {
        return {endpoint::unknown_session, {}};
    }
    if (slash == std::string_view::npos) {
        return {endpoint::session, id};
    }
    const std::string_view action = rest.substr(slash + 1);
    if (action == "ping") {
        return {endpoint::ping, id};
    }
    if (action == "download") {
        return {endpoint::download, id};
    }
    if (action == "upload") {
        return {endpoint::upload, id};
    }
    return {endpoint::none, {}};
}

std::optional<std::uint64_t> parse_download_bytes(std::string_view query, std::uint64_t max) {
    // Each pass consumes at least one character of the query: bounded by its length.
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (!pair.starts_with("bytes=")) {
            continue;
        }
        const std::string_view digits = pair.substr(6);
        if (digits.empty() || digits.size() > kMaxDecimalDigits) {
            return std::nullopt;
        }
        std::uint64_t value = 0;
        for (const char c : digits) {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            const auto digit = static_cast<std::uint64_t>(c - '0');
            // value * 10 + digit > max, written so that nothing wraps.
            if (value > (max - digit) / 10) {
                return std::nullopt;
            }
            value = value * 10 + digit;
        }
        return value;
    }
    return std::nullopt;
}

upload_bins::upload_bins(std::uint64_t interval_ns, std::size_t max_intervals)
    : interval_ns_(std::max<std::uint64_t>(interval_ns, 1)),
      max_intervals_(std::max<std::size_t>(max_intervals, 1)) {}

void upload_bins::add(std::uint64_t arrival_ns, std::uint64_t bytes) {
    if (!first_ns_) {
        first_ns_ = arrival_ns;
    }
    const std::uint64_t since = arrival_ns > *first_ns_ ? arrival_ns - *first_ns_ : 0;
    const std::size_t index =
        static_cast<std::size_t>(std::min<std::uint64_t>(since / interval_ns_, max_intervals_ - 1));
    if (bins_.size() <= index) {
        bins_.resize(index + 1, 0);
    }
    bins_[index] += bytes;
    bytes_total_ += bytes;
    ++bodies_;
}

std::vector<upload_bins::interval> upload_bins::intervals() const {
    std::vector<interval> out;
    out.reserve(bins_.size());
    const double seconds = interval_seconds();
    for (std::size_t i = 0; i < bins_.size(); ++i) {
        out.push_back({static_cast<double>(i) * seconds, static_cast<double>(i + 1) * seconds, bins_[i]});
    }
    return out;
}

}  // namespace speed::web
