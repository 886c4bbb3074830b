#include "common/iperf3_protocol.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/wire.hpp"

namespace speed::iperf3 {

namespace {

using nlohmann::json;

constexpr std::array kStates{state::test_start,       state::test_running,     state::test_end,
                             state::param_exchange,   state::create_streams,   state::server_terminate,
                             state::client_terminate, state::exchange_results, state::display_results,
                             state::iperf_start,      state::iperf_done,       state::access_denied,
                             state::server_error};

bool in_cookie_alphabet(std::uint8_t byte) {
    return kCookieAlphabet.find(static_cast<char>(byte)) != std::string_view::npos && byte != 0;
}

// A member iperf3 reads as a number, or nothing when it is absent or not a number (iperf3 ignores it then).
std::optional<double> number_member(const json& document, const char* name) {
    const auto it = document.find(name);
    if (it == document.end() || !it->is_number()) {
        return std::nullopt;
    }
    return it->get<double>();
}

bool true_member(const json& document, const char* name) {
    const auto it = document.find(name);
    return it != document.end() && it->is_boolean() && it->get<bool>();
}

// A number member that must be a whole number in [least, most]; NaN and fractions are out of range. nullopt
// when absent, the error when out of range.
struct bounded {
    std::optional<std::int64_t> value;
    bool out_of_range = false;
};

bounded bounded_member(const json& document, const char* name, std::int64_t least, std::int64_t most) {
    const auto number = number_member(document, name);
    if (!number) {
        return {};
    }
    // Compared as doubles first: converting a huge or NaN double to an integer is undefined.
    if (!(*number >= static_cast<double>(least) && *number <= static_cast<double>(most)) ||
        std::trunc(*number) != *number) {
        return {std::nullopt, true};
    }
    return {static_cast<std::int64_t>(*number), false};
}

std::string string_member(const json& document, const char* name) {
    const auto it = document.find(name);
    return it != document.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

failure refusal(error_code code, std::string reason) {
    return failure{std::move(reason), static_cast<int>(code)};
}

// Whole numbers up to 2^53 are exact in a double, which is how JSON numbers reach us.
constexpr std::int64_t kMaxExactInteger = std::int64_t{1} << 53;

}  // namespace

std::optional<state> state_of(std::uint8_t byte) {
    const auto value = static_cast<std::int8_t>(byte);
    for (const state s : kStates) {
        if (static_cast<std::int8_t>(s) == value) {
            return s;
        }
    }
    return std::nullopt;
}

std::uint8_t byte_of(state s) {
    return static_cast<std::uint8_t>(static_cast<std::int8_t>(s));
}

std::string_view name_of(state s) {
    switch (s) {
        case state::test_start:
            return "TEST_START";
        case state::test_running:
            return "TEST_RUNNING";
        case state::test_end:
            return "TEST_END";
        case state::param_exchange:
            return "PARAM_EXCHANGE";
        case state::create_streams:
            return "CREATE_STREAMS";
        case state::server_terminate:
            return "SERVER_TERMINATE";
        case state::client_terminate:
            return "CLIENT_TERMINATE";
        case state::exchange_results:
            return "EXCHANGE_RESULTS";
        case state::display_results:
            return "DISPLAY_RESULTS";
        case state::iperf_start:
            return "IPERF_START";
        case state::iperf_done:
            return "IPERF_DONE";
        case state::access_denied:
            return "ACCESS_DENIED";
        case state::server_error:
            return "SERVER_ERROR";
    }
    return "unknown";
}

std::vector<std::uint8_t> encode_server_error(error_code code) {
    std::vector<std::uint8_t> out(9, 0);
    out[0] = byte_of(state::server_error);
    wire::put_big_endian(out.data() + 1, static_cast<std::uint32_t>(code), 4);
    return out;  // errno 0: the code alone names the problem
}

bool is_cookie(std::span<const std::uint8_t> bytes) {
    return bytes.size() == kCookieSize && bytes.back() == 0 &&
           std::all_of(bytes.begin(), bytes.end() - 1, in_cookie_alphabet);
}

bool starts_like_iperf3(std::span<const std::uint8_t> first_bytes) {
    return std::all_of(first_bytes.begin(), first_bytes.end(), in_cookie_alphabet);
}

std::vector<std::uint8_t> encode_json(const json& document) {
    const std::string text = document.dump();
    std::vector<std::uint8_t> out(4 + text.size());
    wire::put_big_endian(out.data(), text.size(), 4);
    std::copy(text.begin(), text.end(), out.begin() + 4);
    return out;
}

void json_reader::append(std::span<const std::uint8_t> bytes) {
    if (consumed_ > 0 && consumed_ == buffer_.size()) {
        buffer_.clear();
        consumed_ = 0;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

json_decode decode_json(std::span<const std::uint8_t> bytes, std::uint32_t max_length) {
    json_decode out;
    if (bytes.size() < 4) {
        return out;
    }
    const auto length = static_cast<std::uint32_t>(wire::get_big_endian(bytes.data(), 4));
    if (length == 0 || length > max_length) {
        out.result = json_decode::status::bad;
        out.reason = "a JSON document of " + std::to_string(length) + " bytes (at most " +
                     std::to_string(max_length) + ")";
        return out;
    }
    if (bytes.size() - 4 < length) {
        return out;
    }
    const auto* text = reinterpret_cast<const char*>(bytes.data() + 4);
    out.document = json::parse(text, text + length, nullptr, /*allow_exceptions=*/false);
    out.consumed = 4 + std::size_t{length};
    if (out.document.is_discarded()) {
        out.result = json_decode::status::bad;
        out.reason = "a document that is not JSON";
        return out;
    }
    out.result = json_decode::status::ok;
    return out;
}

json_reader::outcome json_reader::next() {
    json_decode decoded = decode_json(std::span(buffer_).subspan(consumed_), max_length_);
    switch (decoded.result) {
        case json_decode::status::need_more:
            return need_more{};
        case json_decode::status::bad:
            return bad{std::move(decoded.reason)};
        case json_decode::status::ok:
            break;
    }
    consumed_ += decoded.consumed;
    return std::move(decoded.document);
}

result<parameters> parse_parameters(const json& document) {
    if (!document.is_object()) {
        return refusal(error_code::receive_parameters, "the parameters are not a JSON object");
    }
    parameters p;
    if (true_member(document, "sctp")) {
        return refusal(error_code::not_implemented, "SCTP is not supported");
    }
    if (true_member(document, "mptcp")) {
        return refusal(error_code::not_implemented, "MPTCP is not supported");
    }
    if (document.contains("authtoken")) {
        return refusal(error_code::authentication, "iperf3's RSA authentication is not supported");
    }
    if (true_member(document, "udp")) {
        p.protocol = transport::udp;
    }
    p.reverse = true_member(document, "reverse");
    p.bidirectional = true_member(document, "bidirectional");
    p.no_delay = true_member(document, "nodelay");

    const std::int64_t block_most = p.protocol == transport::udp ? kMaxUdpBlock : kMaxTcpBlock;
    const error_code block_code =
        p.protocol == transport::udp ? error_code::udp_block_size : error_code::tcp_block_size;
    // Each bounded number: its name, range, the code a client is told when it is outside, where it goes.
    struct check {
        const char* name;
        std::int64_t least;
        std::int64_t most;
        error_code code;
        std::function<void(std::int64_t)> assign;
    };
    const auto to_u32 = [](std::uint32_t& field) {
        return [&field](std::int64_t v) { field = static_cast<std::uint32_t>(v); };
    };
    const auto to_u64 = [](std::uint64_t& field) {
        return [&field](std::int64_t v) { field = static_cast<std::uint64_t>(v); };
    };
    const std::array<check, 10> checks{{
        {"time", 0, kMaxDurationSeconds, error_code::duration, to_u32(p.duration_seconds)},
        {"omit", 0, kMaxOmitSeconds, error_code::omit, to_u32(p.omit_seconds)},
        {"parallel", 1, kMaxStreams, error_code::streams, to_u32(p.streams)},
        {"num", 0, kMaxExactInteger, error_code::receive_parameters, to_u64(p.bytes)},
        {"blockcount", 0, kMaxExactInteger, error_code::receive_parameters, to_u64(p.blocks)},
        {"len", 0, block_most, block_code, to_u32(p.block_length)},
        {"bandwidth", 0, kMaxExactInteger, error_code::total_rate, to_u64(p.bitrate)},
        {"window", 0, kMaxSocketBuffer, error_code::socket_buffer, to_u64(p.socket_buffer)},
        {"MSS", 0, kMaxMss, error_code::mss, to_u32(p.mss)},
        {"TOS", 0, 255, error_code::tos, to_u32(p.tos)},
    }};
    for (const check& c : checks) {
        const bounded b = bounded_member(document, c.name, c.least, c.most);
        if (b.out_of_range) {
            return refusal(c.code, std::string("\"") + c.name + "\" is out of range");
        }
        if (b.value) {
            c.assign(*b.value);
        }
    }
    if (p.protocol == transport::udp && p.block_length != 0 && p.block_length < kMinUdpBlock) {
        return refusal(error_code::udp_block_size, "\"len\" is below iperf3's UDP header");
    }
    const auto server_output = number_member(document, "get_server_output");
    p.get_server_output = server_output && *server_output != 0.0;
    const auto counters = number_member(document, "udp_counters_64bit");
    p.udp_counters_64bit = counters && *counters != 0.0;
    const auto skip_copy = number_member(document, "skip_rx_copy");
    p.skip_rx_copy = skip_copy && *skip_copy != 0.0;
    p.congestion = string_member(document, "congestion");
    p.client_version = string_member(document, "client_version");
    return p;
}

json parameters_json(const parameters& p) {
    json out;
    out[p.protocol == transport::udp ? "udp" : "tcp"] = true;
    out["omit"] = p.omit_seconds;
    out["time"] = p.duration_seconds;
    out["num"] = p.bytes;
    out["blockcount"] = p.blocks;
    if (p.mss != 0) {
        out["MSS"] = p.mss;
    }
    if (p.no_delay) {
        out["nodelay"] = true;
    }
    out["parallel"] = p.streams;
    if (p.reverse) {
        out["reverse"] = true;
    }
    if (p.bidirectional) {
        out["bidirectional"] = true;
    }
    if (p.socket_buffer != 0) {
        out["window"] = p.socket_buffer;
    }
    if (p.block_length != 0) {
        out["len"] = p.block_length;
    }
    if (p.bitrate != 0) {
        out["bandwidth"] = p.bitrate;
    }
    if (p.tos != 0) {
        out["TOS"] = p.tos;
    }
    if (!p.congestion.empty()) {
        out["congestion"] = p.congestion;
    }
    if (p.get_server_output) {
        out["get_server_output"] = 1;
    }
    if (p.udp_counters_64bit) {
        out["udp_counters_64bit"] = 1;
    }
    if (p.skip_rx_copy) {
        out["skip_rx_copy"] = 1;
    }
    if (!p.client_version.empty()) {
        out["client_version"] = p.client_version;
    }
    return out;
}

std::int32_t stream_id(std::size_t index) {
    if (index == 0) {
        return 1;
    }
    return static_cast<std::int32_t>(std::min<std::size_t>(index, kMaxStreams * 2) + 2);
}

void set_cpu_utilization(results& r, const cpu_sample& start, const cpu_sample& end) {
    r.cpu_user_percent = r.cpu_system_percent = r.cpu_total_percent = 0.0;
    const std::int64_t wall = end.wall_ns - start.wall_ns;
    if (wall <= 0) {
        return;
    }
    const auto percent = [wall](std::int64_t from, std::int64_t to) {
        return to > from ? static_cast<double>(to - from) * 100.0 / static_cast<double>(wall) : 0.0;
    };
    r.cpu_user_percent = percent(start.user_ns, end.user_ns);
    r.cpu_system_percent = percent(start.system_ns, end.system_ns);
    r.cpu_total_percent = r.cpu_user_percent + r.cpu_system_percent;
}

json results_json(const results& r) {
    json out;
    out["cpu_util_total"] = r.cpu_total_percent;
    out["cpu_util_user"] = r.cpu_user_percent;
    out["cpu_util_system"] = r.cpu_system_percent;
    out["sender_has_retransmits"] = r.sender_has_retransmits ? 1 : 0;
    if (!r.congestion_used.empty()) {
        out["congestion_used"] = r.congestion_used;
    }
    json streams = json::array();
    for (const stream_result& s : r.streams) {
        streams.push_back({{"id", s.id},
                           {"bytes", s.bytes},
                           {"retransmits", s.retransmits},
                           {"jitter", s.jitter_seconds},
                           {"errors", s.errors},
                           {"omitted_errors", s.omitted_errors},
                           {"packets", s.packets},
                           {"omitted_packets", s.omitted_packets},
                           {"start_time", s.start_seconds},
                           {"end_time", s.end_seconds}});
    }
    out["streams"] = std::move(streams);
    if (!r.server_output_text.empty()) {
        out["server_output_text"] = r.server_output_text;
    }
    return out;
}

results parse_results(const json& document) {
    results r;
    if (!document.is_object()) {
        return r;
    }
    r.cpu_total_percent = number_member(document, "cpu_util_total").value_or(0.0);
    r.cpu_user_percent = number_member(document, "cpu_util_user").value_or(0.0);
    r.cpu_system_percent = number_member(document, "cpu_util_system").value_or(0.0);
    r.sender_has_retransmits = number_member(document, "sender_has_retransmits").value_or(0.0) == 1.0;
    r.congestion_used = string_member(document, "congestion_used");
    r.server_output_text = string_member(document, "server_output_text");
    const auto streams = document.find("streams");
    if (streams == document.end() || !streams->is_array()) {
        return r;
    }
    const auto whole = [](const json& entry, const char* name, std::int64_t fallback) {
        const bounded b = bounded_member(entry, name, -kMaxExactInteger, kMaxExactInteger);
        return b.value.value_or(fallback);
    };
    for (const json& entry : *streams) {
        if (r.streams.size() >= static_cast<std::size_t>(kMaxStreams) * 2) {
            break;
        }
        if (!entry.is_object()) {
            continue;
        }
        stream_result s;
        s.id =
            static_cast<std::int32_t>(std::clamp<std::int64_t>(whole(entry, "id", 0), INT32_MIN, INT32_MAX));
        s.bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, whole(entry, "bytes", 0)));
        s.retransmits = whole(entry, "retransmits", -1);
        s.jitter_seconds = number_member(entry, "jitter").value_or(0.0);
        s.errors = whole(entry, "errors", 0);
        s.omitted_errors = whole(entry, "omitted_errors", 0);
        s.packets = whole(entry, "packets", 0);
        s.omitted_packets = whole(entry, "omitted_packets", 0);
        s.start_seconds = number_member(entry, "start_time").value_or(0.0);
        s.end_seconds = number_member(entry, "end_time").value_or(0.0);
        r.streams.push_back(s);
    }
    return r;
}

}  // namespace speed::iperf3
