#include "common/protocol.hpp"

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "common/wire.hpp"

namespace speed::proto {
namespace {

template <class... Fs>
struct overloaded : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

void encode_payload(wire::writer& out, const hello& m) {
    out.u32(kMagic);
    out.u16(m.version);
    out.u8(static_cast<std::uint8_t>(m.kind));
    out.bytes(m.token);
    out.u32(m.test_id);
    out.u16(m.stream_index);
    out.string16(m.software.substr(0, kMaxSoftwareLength));
}

void encode_payload(wire::writer& out, const welcome& m) {
    out.u16(m.version);
    out.bytes(m.token);
    out.string16(m.software.substr(0, kMaxSoftwareLength));
    out.u16(m.max_streams);
    out.u32(m.max_duration_ms);
    out.u64(m.max_bitrate);
    out.u64(m.max_bytes);
    out.u8(m.auth_required ? 1 : 0);
}

void encode_payload(wire::writer& out, const error& m) {
    out.u16(static_cast<std::uint16_t>(m.code));
    out.string16(m.message.substr(0, kMaxErrorMessageLength));
}

void encode_payload(wire::writer& out, const test_request& m) {
    out.u8(static_cast<std::uint8_t>(m.dir));
    out.u8(static_cast<std::uint8_t>(m.proto));
    out.u16(m.streams);
    out.u32(m.duration_ms);
    out.u32(m.omit_ms);
    out.u32(m.interval_ms);
    out.u64(m.bitrate);
    out.u32(m.udp_payload_bytes);
    out.string16(m.congestion.substr(0, kMaxCongestionLength));
}

void encode_payload(wire::writer& out, const test_accept& m) {
    out.u32(m.test_id);
    out.string16(m.congestion.substr(0, kMaxCongestionLength));
}
void encode_payload(wire::writer& /*out*/, const streams_ready& /*m*/) {}
void encode_payload(wire::writer& out, const stop& m) {
    out.u8(static_cast<std::uint8_t>(m.reason));
}

void encode_payload(wire::writer& out, const self_probe_mark& m) {
    out.u16(m.stream_index);
    out.u32(m.probe);
    out.u64(m.payload_offset);
}

void encode_payload(wire::writer& out, const self_probe_samples& m) {
    out.u32(m.sent);
    out.u32(m.dropped);
    const std::size_t count = std::min<std::size_t>(m.samples.size(), kMaxSelfProbes);
    out.u16(static_cast<std::uint16_t>(count));
    for (std::size_t i = 0; i < count; ++i) {
        out.u32(m.samples[i].sent_us);
        out.u32(m.samples[i].rtt_us);
    }
}

void encode_u64_list(wire::writer& out, const std::vector<std::uint64_t>& values) {
    out.u16(static_cast<std::uint16_t>(values.size()));
    for (std::uint64_t value : values) {
        out.u64(value);
    }
}

void encode_payload(wire::writer& out, const interval_report& m) {
    out.u32(m.index);
    out.u64(m.start_ns);
    out.u64(m.end_ns);
    out.u8(m.omitted ? 1 : 0);
    encode_u64_list(out, m.stream_bytes);
}

void encode_payload(wire::writer& out, const sender_report& m) {
    out.u16(static_cast<std::uint16_t>(m.streams.size()));
    for (const auto& s : m.streams) {
        out.u64(s.bytes_sent);
        out.u8(s.has_tcp_info ? 1 : 0);
        out.u32(s.retransmits);
        out.u32(s.rtt_us);
        out.u32(s.rttvar_us);
        out.u32(s.cwnd_bytes);
    }
    const std::size_t samples = std::min(m.rtt_samples_us.size(), kMaxRttSamples);
    out.u16(static_cast<std::uint16_t>(samples));
    for (std::size_t i = 0; i < samples; ++i) {
        out.u32(m.rtt_samples_us[i]);
    }
}

void encode_payload(wire::writer& out, const receiver_report& m) {
    out.u64(m.window_ns);
    out.u64(m.omitted_ns);
    out.u64(m.omitted_bytes);
    encode_u64_list(out, m.stream_bytes);
}

void encode_payload(wire::writer& out, const ping& m) {
    out.u32(m.sequence);
    out.u64(m.client_time_ns);
}

void encode_payload(wire::writer& out, const pong& m) {
    out.u32(m.sequence);
    out.u64(m.client_time_ns);
    out.u64(m.server_hold_ns);
}

void encode_payload(wire::writer& out, const auth_challenge& m) {
    out.bytes(m.nonce);
}
void encode_payload(wire::writer& out, const auth_response& m) {
    out.string16(m.key_name.substr(0, kMaxKeyNameLength));
    out.bytes(m.client_nonce);
    out.bytes(m.mac);
}
void encode_payload(wire::writer& out, const auth_ok& m) {
    out.bytes(m.server_proof);
}
void encode_payload(wire::writer& out, const test_auth& m) {
    out.bytes(m.mac);
}
void encode_payload(wire::writer& out, const report_auth& m) {
    out.bytes(m.mac);
}

// ---- decoding
// ----------------------------------------------------------------------------------------------

struct payload_error {
    std::string reason;
};
using payload_result = std::variant<message, payload_error>;

bool read_bool(wire::reader& in) {
    const std::uint8_t value = in.u8();
    if (value > 1) {
        in.fail();
    }
    return value == 1;
}

payload_result decode_hello(wire::reader& in) {
    hello m;
    const std::uint32_t magic = in.u32();
    if (!in.ok()) {
        return payload_error{"truncated HELLO"};
    }
    if (magic != kMagic) {
        return payload_error{"HELLO has the wrong magic (not a speedcli/speedsrv peer?)"};
    }
    m.version = in.u16();
    if (!in.ok()) {
        return payload_error{"truncated HELLO"};
    }
    if (m.version != kProtocolVersion) {
        // Only magic and version are fixed across versions; the caller answers with version_mismatch.
        return m;
    }
    const std::uint8_t kind = in.u8();
    if (kind < 1 || kind > 3) {
        return payload_error{"HELLO has an unknown connection kind " + std::to_string(kind)};
    }
    m.kind = static_cast<connection_kind>(kind);
    in.bytes(m.token);
    m.test_id = in.u32();
    m.stream_index = in.u16();
    m.software = in.string16(kMaxSoftwareLength);
    if (!in.ok()) {
        return payload_error{"truncated or oversized HELLO"};
    }
    return m;
}

payload_result decode_welcome(wire::reader& in) {
    welcome m;
    m.version = in.u16();
    in.bytes(m.token);
    m.software = in.string16(kMaxSoftwareLength);
    m.max_streams = in.u16();
    m.max_duration_ms = in.u32();
    m.max_bitrate = in.u64();
    m.max_bytes = in.u64();
    m.auth_required = read_bool(in);
    if (!in.ok()) {
        return payload_error{"truncated or malformed WELCOME"};
    }
    return m;
}

payload_result decode_error(wire::reader& in) {
    error m;
    const std::uint16_t code = in.u16();
    m.message = in.string16(kMaxErrorMessageLength);
    if (!in.ok()) {
        return payload_error{"truncated or oversized ERROR"};
    }
    // Only the codes this version defines: a peer's number must not reach a switch or a log as an enum value
    // that has no name.
    if (code < static_cast<std::uint16_t>(error_code::protocol_error) ||
        code > static_cast<std::uint16_t>(error_code::shutting_down)) {
        return payload_error{"ERROR has an unknown code " + std::to_string(code)};
    }
    m.code = static_cast<error_code>(code);
    return m;
}

payload_result decode_test_request(wire::reader& in) {
    test_request m;
    const std::uint8_t dir = in.u8();
    const std::uint8_t proto = in.u8();
    m.streams = in.u16();
    m.duration_ms = in.u32();
    m.omit_ms = in.u32();
    m.interval_ms = in.u32();
    m.bitrate = in.u64();
    m.udp_payload_bytes = in.u32();
    m.congestion = in.string16(kMaxCongestionLength);
    if (!in.ok()) {
        return payload_error{"truncated or oversized TEST_REQUEST"};
    }
    if (dir < 1 || dir > 2) {
        return payload_error{"TEST_REQUEST has an unknown direction " + std::to_string(dir)};
    }
    if (proto < 1 || proto > 2) {
        return payload_error{"TEST_REQUEST has an unknown transport " + std::to_string(proto)};
    }
    m.dir = static_cast<direction>(dir);
    m.proto = static_cast<transport>(proto);
    return m;
}

payload_result decode_test_accept(wire::reader& in) {
    test_accept m;
    m.test_id = in.u32();
    m.congestion = in.string16(kMaxCongestionLength);
    if (!in.ok()) {
        return payload_error{"truncated or oversized TEST_ACCEPT"};
    }
    return m;
}

payload_result decode_stop(wire::reader& in) {
    stop m;
    const std::uint8_t reason = in.u8();
    if (!in.ok()) {
        return payload_error{"truncated STOP"};
    }
    if (reason < 1 || reason > 2) {
        return payload_error{"STOP has an unknown reason " + std::to_string(reason)};
    }
    m.reason = static_cast<stop_reason>(reason);
    return m;
}

bool decode_u64_list(wire::reader& in, std::vector<std::uint64_t>& values) {
    const std::uint16_t count = in.u16();
    // Check the count against what is actually there before reserving: a lying count must not allocate.
    if (!in.ok() || count > kMaxStreams || in.remaining() < std::size_t{count} * 8) {
        in.fail();
        return false;
    }
    values.resize(count);
    for (auto& value : values) {
        value = in.u64();
    }
    return in.ok();
}

payload_result decode_interval_report(wire::reader& in) {
    interval_report m;
    m.index = in.u32();
    m.start_ns = in.u64();
    m.end_ns = in.u64();
    m.omitted = read_bool(in);
    if (!decode_u64_list(in, m.stream_bytes)) {
        return payload_error{"truncated or malformed INTERVAL_REPORT"};
    }
    if (m.end_ns < m.start_ns) {
        return payload_error{"INTERVAL_REPORT ends before it starts"};
    }
    return m;
}

payload_result decode_sender_report(wire::reader& in) {
    constexpr std::size_t kStreamStatsSize = 8 + 1 + 4 * 4;
    sender_report m;
    const std::uint16_t count = in.u16();
    if (!in.ok() || count > kMaxStreams || in.remaining() < std::size_t{count} * kStreamStatsSize) {
        return payload_error{"truncated or malformed SENDER_REPORT"};
    }
    m.streams.resize(count);
    for (auto& s : m.streams) {
        s.bytes_sent = in.u64();
        s.has_tcp_info = read_bool(in);
        s.retransmits = in.u32();
        s.rtt_us = in.u32();
        s.rttvar_us = in.u32();
        s.cwnd_bytes = in.u32();
    }
    const std::uint16_t samples = in.u16();
    if (!in.ok() || samples > kMaxRttSamples || in.remaining() < std::size_t{samples} * 4) {
        return payload_error{"truncated or malformed SENDER_REPORT"};
    }
    m.rtt_samples_us.resize(samples);
    for (auto& sample : m.rtt_samples_us) {
        sample = in.u32();
    }
    if (!in.ok()) {
        return payload_error{"malformed SENDER_REPORT"};
    }
    return m;
}

payload_result decode_receiver_report(wire::reader& in) {
    receiver_report m;
    m.window_ns = in.u64();
    m.omitted_ns = in.u64();
    m.omitted_bytes = in.u64();
    if (!decode_u64_list(in, m.stream_bytes)) {
        return payload_error{"truncated or malformed RECEIVER_REPORT"};
    }
    return m;
}

payload_result decode_self_probe_mark(wire::reader& in) {
    self_probe_mark m;
    m.stream_index = in.u16();
    m.probe = in.u32();
    m.payload_offset = in.u64();
    if (!in.ok()) {
        return payload_error{"truncated SELF_PROBE_MARK"};
    }
    return m;
}

payload_result decode_self_probe_samples(wire::reader& in) {
    self_probe_samples m;
    m.sent = in.u32();
    m.dropped = in.u32();
    const std::uint16_t count = in.u16();
    if (!in.ok() || count > kMaxSelfProbes || in.remaining() < std::size_t{count} * 8) {
        return payload_error{"truncated or malformed SELF_PROBE_SAMPLES"};
    }
    m.samples.resize(count);
    for (auto& sample : m.samples) {
        sample.sent_us = in.u32();
        sample.rtt_us = in.u32();
    }
    return m;
}

payload_result decode_ping(wire::reader& in) {
    ping m;
    m.sequence = in.u32();
    m.client_time_ns = in.u64();
    if (!in.ok()) {
        return payload_error{"truncated PING"};
    }
    return m;
}

payload_result decode_pong(wire::reader& in) {
    pong m;
    m.sequence = in.u32();
    m.client_time_ns = in.u64();
    m.server_hold_ns = in.u64();
    if (!in.ok()) {
        return payload_error{"truncated PONG"};
    }
    return m;
}

payload_result decode_auth_challenge(wire::reader& in) {
    auth_challenge m;
    in.bytes(m.nonce);
    if (!in.ok()) {
        return payload_error{"truncated AUTH_CHALLENGE"};
    }
    return m;
}

payload_result decode_auth_response(wire::reader& in) {
    auth_response m;
    m.key_name = in.string16(kMaxKeyNameLength);
    in.bytes(m.client_nonce);
    in.bytes(m.mac);
    if (!in.ok()) {
        return payload_error{"truncated or oversized AUTH_RESPONSE"};
    }
    return m;
}

payload_result decode_auth_ok(wire::reader& in) {
    auth_ok m;
    in.bytes(m.server_proof);
    if (!in.ok()) {
        return payload_error{"truncated AUTH_OK"};
    }
    return m;
}

payload_result decode_test_auth(wire::reader& in) {
    test_auth m;
    in.bytes(m.mac);
    if (!in.ok()) {
        return payload_error{"truncated TEST_AUTH"};
    }
    return m;
}

payload_result decode_report_auth(wire::reader& in) {
    report_auth m;
    in.bytes(m.mac);
    if (!in.ok()) {
        return payload_error{"truncated REPORT_AUTH"};
    }
    return m;
}

// The UDP messages decode in common/udp_messages.cpp.
template <class T>
payload_result decode_udp(wire::reader& in) {
    T m;
    std::string reason;
    if (!decode_payload(in, m, reason)) {
        return payload_error{std::move(reason)};
    }
    return m;
}

payload_result decode_payload(std::uint8_t type, std::span<const std::uint8_t> payload) {
    wire::reader in(payload);
    payload_result result = payload_error{};
    switch (static_cast<message_type>(type)) {
        case message_type::hello:
            result = decode_hello(in);
            break;
        case message_type::welcome:
            result = decode_welcome(in);
            break;
        case message_type::error:
            result = decode_error(in);
            break;
        case message_type::test_request:
            result = decode_test_request(in);
            break;
        case message_type::test_accept:
            result = decode_test_accept(in);
            break;
        case message_type::streams_ready:
            result = message{streams_ready{}};
            break;
        case message_type::stop:
            result = decode_stop(in);
            break;
        case message_type::interval_report:
            result = decode_interval_report(in);
            break;
        case message_type::sender_report:
            result = decode_sender_report(in);
            break;
        case message_type::receiver_report:
            result = decode_receiver_report(in);
            break;
        case message_type::self_probe_mark:
            result = decode_self_probe_mark(in);
            break;
        case message_type::self_probe_samples:
            result = decode_self_probe_samples(in);
            break;
        case message_type::ping:
            result = decode_ping(in);
            break;
        case message_type::pong:
            result = decode_pong(in);
            break;
        case message_type::udp_setup:
            result = decode_udp<udp_setup>(in);
            break;
        case message_type::udp_echo_request:
            result = decode_udp<udp_echo_request>(in);
            break;
        case message_type::udp_sender_report:
            result = decode_udp<udp_sender_report>(in);
            break;
        case message_type::udp_receiver_report:
            result = decode_udp<udp_receiver_report>(in);
            break;
        case message_type::udp_interval_report:
            result = decode_udp<udp_interval_report>(in);
            break;
        case message_type::auth_challenge:
            result = decode_auth_challenge(in);
            break;
        case message_type::auth_response:
            result = decode_auth_response(in);
            break;
        case message_type::auth_ok:
            result = decode_auth_ok(in);
            break;
        case message_type::test_auth:
            result = decode_test_auth(in);
            break;
        case message_type::report_auth:
            result = decode_report_auth(in);
            break;
        default: {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02x", type);
            return payload_error{std::string("unknown message type ") + hex};
        }
    }
    if (std::holds_alternative<message>(result)) {
        const auto& msg = std::get<message>(result);
        // A HELLO from another version may carry fields this version does not know; anything else must be
        // exact.
        const bool foreign_hello =
            std::holds_alternative<hello>(msg) && std::get<hello>(msg).version != kProtocolVersion;
        if (!foreign_hello && in.remaining() != 0) {
            return payload_error{std::string(name_of(static_cast<message_type>(type))) + " has " +
                                 std::to_string(in.remaining()) + " unexpected trailing bytes"};
        }
    }
    return result;
}

}  // namespace

message_type type_of(const message& msg) {
    return std::visit(overloaded{
                          [](const hello&) { return message_type::hello; },
                          [](const welcome&) { return message_type::welcome; },
                          [](const error&) { return message_type::error; },
                          [](const test_request&) { return message_type::test_request; },
                          [](const test_accept&) { return message_type::test_accept; },
                          [](const streams_ready&) { return message_type::streams_ready; },
                          [](const stop&) { return message_type::stop; },
                          [](const interval_report&) { return message_type::interval_report; },
                          [](const sender_report&) { return message_type::sender_report; },
                          [](const receiver_report&) { return message_type::receiver_report; },
                          [](const ping&) { return message_type::ping; },
                          [](const pong&) { return message_type::pong; },
                          [](const udp_setup&) { return message_type::udp_setup; },
                          [](const udp_echo_request&) { return message_type::udp_echo_request; },
                          [](const udp_sender_report&) { return message_type::udp_sender_report; },
                          [](const udp_receiver_report&) { return message_type::udp_receiver_report; },
                          [](const udp_interval_report&) { return message_type::udp_interval_report; },
                          [](const auth_challenge&) { return message_type::auth_challenge; },
                          [](const auth_response&) { return message_type::auth_response; },
                          [](const auth_ok&) { return message_type::auth_ok; },
                          [](const test_auth&) { return message_type::test_auth; },
                          [](const report_auth&) { return message_type::report_auth; },
                          [](const self_probe_mark&) { return message_type::self_probe_mark; },
                          [](const self_probe_samples&) { return message_type::self_probe_samples; },
                      },
                      msg);
}

bool is_report(message_type type) {
    switch (type) {
        case message_type::interval_report:
        case message_type::sender_report:
        case message_type::receiver_report:
        case message_type::self_probe_mark:
        case message_type::self_probe_samples:
        case message_type::udp_sender_report:
        case message_type::udp_receiver_report:
        case message_type::udp_interval_report:
            return true;
        default:
            return false;
    }
}

std::string_view name_of(message_type type) {
    switch (type) {
        case message_type::hello:
            return "HELLO";
        case message_type::welcome:
            return "WELCOME";
        case message_type::error:
            return "ERROR";
        case message_type::test_request:
            return "TEST_REQUEST";
        case message_type::test_accept:
            return "TEST_ACCEPT";
        case message_type::streams_ready:
            return "STREAMS_READY";
        case message_type::stop:
            return "STOP";
        case message_type::interval_report:
            return "INTERVAL_REPORT";
        case message_type::sender_report:
            return "SENDER_REPORT";
        case message_type::receiver_report:
            return "RECEIVER_REPORT";
        case message_type::self_probe_mark:
            return "SELF_PROBE_MARK";
        case message_type::self_probe_samples:
            return "SELF_PROBE_SAMPLES";
        case message_type::ping:
            return "PING";
        case message_type::pong:
            return "PONG";
        case message_type::udp_setup:
            return "UDP_SETUP";
        case message_type::udp_echo_request:
            return "UDP_ECHO_REQUEST";
        case message_type::udp_sender_report:
            return "UDP_SENDER_REPORT";
        case message_type::udp_receiver_report:
            return "UDP_RECEIVER_REPORT";
        case message_type::udp_interval_report:
            return "UDP_INTERVAL_REPORT";
        case message_type::auth_challenge:
            return "AUTH_CHALLENGE";
        case message_type::auth_response:
            return "AUTH_RESPONSE";
        case message_type::auth_ok:
            return "AUTH_OK";
        case message_type::test_auth:
            return "TEST_AUTH";
        case message_type::report_auth:
            return "REPORT_AUTH";
    }
    return "UNKNOWN";
}

std::string_view name_of(error_code code) {
    switch (code) {
        case error_code::protocol_error:
            return "protocol error";
        case error_code::version_mismatch:
            return "version mismatch";
        case error_code::server_busy:
            return "server busy";
        case error_code::unknown_session:
            return "unknown session";
        case error_code::limit_exceeded:
            return "limit exceeded";
        case error_code::timeout:
            return "timeout";
        case error_code::internal:
            return "internal error";
        case error_code::auth_failed:
            return "authentication failed";
        case error_code::unsupported:
            return "unsupported";
        case error_code::shutting_down:
            return "server shutting down";
    }
    return "unknown error";
}

std::string_view name_of(direction dir) {
    return dir == direction::download ? "download" : "upload";
}

void encode(const message& msg, std::vector<std::uint8_t>& out) {
    wire::writer writer(out);
    const std::size_t start = writer.size();
    writer.u8(static_cast<std::uint8_t>(type_of(msg)));
    writer.u32(0);  // payload length, patched below
    std::visit([&writer](const auto& m) { encode_payload(writer, m); }, msg);
    const std::size_t payload_length = writer.size() - start - kFrameHeaderSize;
    writer.patch_u32(start + 1, static_cast<std::uint32_t>(payload_length));
}

std::vector<std::uint8_t> encode(const message& msg) {
    std::vector<std::uint8_t> out;
    encode(msg, out);
    return out;
}

decode_result decode_frame(std::span<const std::uint8_t> input, std::uint32_t max_payload) {
    decode_result result;
    if (input.size() < kFrameHeaderSize) {
        result.status = decode_status::need_more;
        result.bytes_needed = kFrameHeaderSize;
        return result;
    }
    const std::uint8_t type = input[0];
    const auto length = static_cast<std::uint32_t>(wire::get_big_endian(input.data() + 1, 4));
    if (length > max_payload) {
        result.status = decode_status::bad;
        result.reason = "frame payload of " + std::to_string(length) + " bytes exceeds the limit of " +
                        std::to_string(max_payload);
        return result;
    }
    const std::size_t frame_size = kFrameHeaderSize + length;
    if (input.size() < frame_size) {
        result.status = decode_status::need_more;
        result.bytes_needed = frame_size;
        return result;
    }
    payload_result payload = decode_payload(type, input.subspan(kFrameHeaderSize, length));
    if (auto* failure = std::get_if<payload_error>(&payload)) {
        result.status = decode_status::bad;
        result.reason = std::move(failure->reason);
        return result;
    }
    result.status = decode_status::ok;
    result.consumed = frame_size;
    result.msg = std::move(std::get<message>(payload));
    return result;
}

bool tokens_equal(const session_token& a, const session_token& b) {
    std::uint8_t difference = 0;
    for (std::size_t i = 0; i < kTokenSize; ++i) {
        difference = static_cast<std::uint8_t>(difference | (a[i] ^ b[i]));
    }
    return difference == 0;
}

std::string token_prefix(const session_token& token) {
    char text[9];
    std::snprintf(text, sizeof text, "%02x%02x%02x%02x", token[0], token[1], token[2], token[3]);
    return text;
}

}  // namespace speed::proto
