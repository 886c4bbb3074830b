#include "common/protocol.hpp"

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "common/wire.hpp"

namespace speed::proto {
namespace {

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

bool read_bool(wire::reader& in) {
    const std::uint8_t value = in.u8();
    if (value > 1) {
        in.fail();
    }
    return value == 1;
}

result<hello> decode_payload(wire::reader& in, std::type_identity<hello>) {
    hello m;
    const std::uint32_t magic = in.u32();
    if (!in.ok()) {
        return failure{"truncated HELLO"};
    }
    if (magic != kMagic) {
        return failure{"HELLO has the wrong magic (not a speedcli/speedsrv peer?)"};
    }
    m.version = in.u16();
    if (!in.ok()) {
        return failure{"truncated HELLO"};
    }
    if (m.version != kProtocolVersion) {
        // Only magic and version are fixed across versions; the caller answers with version_mismatch.
        return m;
    }
    const std::uint8_t kind = in.u8();
    if (kind < 1 || kind > 3) {
        return failure{"HELLO has an unknown connection kind " + std::to_string(kind)};
    }
    m.kind = static_cast<connection_kind>(kind);
    in.bytes(m.token);
    m.test_id = in.u32();
    m.stream_index = in.u16();
    m.software = in.string16(kMaxSoftwareLength);
    if (!in.ok()) {
        return failure{"truncated or oversized HELLO"};
    }
    return m;
}

result<welcome> decode_payload(wire::reader& in, std::type_identity<welcome>) {
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
        return failure{"truncated or malformed WELCOME"};
    }
    return m;
}

result<error> decode_payload(wire::reader& in, std::type_identity<error>) {
    error m;
    const std::uint16_t code = in.u16();
    m.message = in.string16(kMaxErrorMessageLength);
    if (!in.ok()) {
        return failure{"truncated or oversized ERROR"};
    }
    // Only the codes this version defines: a peer's number must not reach a switch or a log as an enum value
    // that has no name.
    if (code < static_cast<std::uint16_t>(error_code::protocol_error) ||
        code > static_cast<std::uint16_t>(error_code::shutting_down)) {
        return failure{"ERROR has an unknown code " + std::to_string(code)};
    }
    m.code = static_cast<error_code>(code);
    return m;
}

result<test_request> decode_payload(wire::reader& in, std::type_identity<test_request>) {
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
        return failure{"truncated or oversized TEST_REQUEST"};
    }
    if (dir < 1 || dir > 2) {
        return failure{"TEST_REQUEST has an unknown direction " + std::to_string(dir)};
    }
    if (proto < 1 || proto > 2) {
        return failure{"TEST_REQUEST has an unknown transport " + std::to_string(proto)};
    }
    m.dir = static_cast<direction>(dir);
    m.proto = static_cast<transport>(proto);
    return m;
}

result<test_accept> decode_payload(wire::reader& in, std::type_identity<test_accept>) {
    test_accept m;
    m.test_id = in.u32();
    m.congestion = in.string16(kMaxCongestionLength);
    if (!in.ok()) {
        return failure{"truncated or oversized TEST_ACCEPT"};
    }
    return m;
}

result<stop> decode_payload(wire::reader& in, std::type_identity<stop>) {
    stop m;
    const std::uint8_t reason = in.u8();
    if (!in.ok()) {
        return failure{"truncated STOP"};
    }
    if (reason < 1 || reason > 2) {
        return failure{"STOP has an unknown reason " + std::to_string(reason)};
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

result<interval_report> decode_payload(wire::reader& in, std::type_identity<interval_report>) {
    interval_report m;
    m.index = in.u32();
    m.start_ns = in.u64();
    m.end_ns = in.u64();
    m.omitted = read_bool(in);
    if (!decode_u64_list(in, m.stream_bytes)) {
        return failure{"truncated or malformed INTERVAL_REPORT"};
    }
    if (m.end_ns < m.start_ns) {
        return failure{"INTERVAL_REPORT ends before it starts"};
    }
    return m;
}

result<sender_report> decode_payload(wire::reader& in, std::type_identity<sender_report>) {
    constexpr std::size_t kStreamStatsSize = 8 + 1 + 4 * 4;
    sender_report m;
    const std::uint16_t count = in.u16();
    if (!in.ok() || count > kMaxStreams || in.remaining() < std::size_t{count} * kStreamStatsSize) {
        return failure{"truncated or malformed SENDER_REPORT"};
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
        return failure{"truncated or malformed SENDER_REPORT"};
    }
    m.rtt_samples_us.resize(samples);
    for (auto& sample : m.rtt_samples_us) {
        sample = in.u32();
    }
    if (!in.ok()) {
        return failure{"malformed SENDER_REPORT"};
    }
    return m;
}

result<receiver_report> decode_payload(wire::reader& in, std::type_identity<receiver_report>) {
    receiver_report m;
    m.window_ns = in.u64();
    m.omitted_ns = in.u64();
    m.omitted_bytes = in.u64();
    if (!decode_u64_list(in, m.stream_bytes)) {
        return failure{"truncated or malformed RECEIVER_REPORT"};
    }
    return m;
}

result<self_probe_mark> decode_payload(wire::reader& in, std::type_identity<self_probe_mark>) {
    self_probe_mark m;
    m.stream_index = in.u16();
    m.probe = in.u32();
    m.payload_offset = in.u64();
    if (!in.ok()) {
        return failure{"truncated SELF_PROBE_MARK"};
    }
    return m;
}

result<self_probe_samples> decode_payload(wire::reader& in, std::type_identity<self_probe_samples>) {
    self_probe_samples m;
    m.sent = in.u32();
    m.dropped = in.u32();
    const std::uint16_t count = in.u16();
    if (!in.ok() || count > kMaxSelfProbes || in.remaining() < std::size_t{count} * 8) {
        return failure{"truncated or malformed SELF_PROBE_SAMPLES"};
    }
    m.samples.resize(count);
    for (auto& sample : m.samples) {
        sample.sent_us = in.u32();
        sample.rtt_us = in.u32();
    }
    return m;
}

result<ping> decode_payload(wire::reader& in, std::type_identity<ping>) {
    ping m;
    m.sequence = in.u32();
    m.client_time_ns = in.u64();
    if (!in.ok()) {
        return failure{"truncated PING"};
    }
    return m;
}

result<pong> decode_payload(wire::reader& in, std::type_identity<pong>) {
    pong m;
    m.sequence = in.u32();
    m.client_time_ns = in.u64();
    m.server_hold_ns = in.u64();
    if (!in.ok()) {
        return failure{"truncated PONG"};
    }
    return m;
}

result<auth_challenge> decode_payload(wire::reader& in, std::type_identity<auth_challenge>) {
    auth_challenge m;
    in.bytes(m.nonce);
    if (!in.ok()) {
        return failure{"truncated AUTH_CHALLENGE"};
    }
    return m;
}

result<auth_response> decode_payload(wire::reader& in, std::type_identity<auth_response>) {
    auth_response m;
    m.key_name = in.string16(kMaxKeyNameLength);
    in.bytes(m.client_nonce);
    in.bytes(m.mac);
    if (!in.ok()) {
        return failure{"truncated or oversized AUTH_RESPONSE"};
    }
    return m;
}

result<auth_ok> decode_payload(wire::reader& in, std::type_identity<auth_ok>) {
    auth_ok m;
    in.bytes(m.server_proof);
    if (!in.ok()) {
        return failure{"truncated AUTH_OK"};
    }
    return m;
}

result<test_auth> decode_payload(wire::reader& in, std::type_identity<test_auth>) {
    test_auth m;
    in.bytes(m.mac);
    if (!in.ok()) {
        return failure{"truncated TEST_AUTH"};
    }
    return m;
}

result<report_auth> decode_payload(wire::reader& in, std::type_identity<report_auth>) {
    report_auth m;
    in.bytes(m.mac);
    if (!in.ok()) {
        return failure{"truncated REPORT_AUTH"};
    }
    return m;
}

result<streams_ready> decode_payload(wire::reader& /*in*/, std::type_identity<streams_ready>) {
    return streams_ready{};
}

// ---- dispatch, generated from the message table
// -----------------------------------------------------------------

static_assert(sizeof(message_type) == 1, "the decoder table has one slot per type byte");
using payload_decoder = result<message> (*)(wire::reader& in);

// The UDP messages decode in common/udp_messages.cpp, found by argument-dependent lookup.
template <class M>
result<message> decode_as(wire::reader& in) {
    result<M> decoded = decode_payload(in, std::type_identity<M>{});
    if (!decoded) {
        return failure{std::move(decoded).error()};
    }
    return message{std::move(*decoded)};
}

template <class... Entries>
constexpr std::array<payload_decoder, 256> decoders_of(message_list<Entries...> /*table*/) {
    std::array<payload_decoder, 256> decoders{};
    ((decoders[static_cast<std::uint8_t>(Entries::id)] = &decode_as<typename Entries::type>), ...);
    return decoders;
}

// Indexed by type byte; null for a byte no message has.
constexpr std::array<payload_decoder, 256> kDecoders = decoders_of(message_table{});

result<message> decode_payload(std::uint8_t type, std::span<const std::uint8_t> payload) {
    const payload_decoder decoder = kDecoders[type];
    if (decoder == nullptr) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", type);
        return failure{std::string("unknown message type ") + hex};
    }
    wire::reader in(payload);
    result<message> decoded = decoder(in);
    if (decoded) {
        // A HELLO from another version may carry fields this version does not know; anything else must be
        // exact.
        const auto* other_hello = std::get_if<hello>(&*decoded);
        const bool foreign_hello = other_hello != nullptr && other_hello->version != kProtocolVersion;
        if (!foreign_hello && in.remaining() != 0) {
            return failure{std::string(name_of(message_type{type})) + " has " +
                           std::to_string(in.remaining()) + " unexpected trailing bytes"};
        }
    }
    return decoded;
}

}  // namespace

message_type type_of(const message& msg) {
    return message_table::ids[msg.index()];
}

namespace {

// The table entry of `type`, handed to `use`; false when no message has that type byte.
template <class F, class... Entries>
bool with_entry(message_type type, F&& use, message_list<Entries...> /*table*/) {
    return ((Entries::id == type ? (use(std::type_identity<Entries>{}), true) : false) || ...);
}

}  // namespace

bool is_report(message_type type) {
    bool report = false;
    with_entry(
        type, [&report](auto entry) { report = decltype(entry)::type::is_report; }, message_table{});
    return report;
}

std::string_view name_of(message_type type) {
    std::string_view name = "UNKNOWN";
    with_entry(
        type, [&name](auto entry) { name = decltype(entry)::type::name; }, message_table{});
    return name;
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
    speed::result<message> payload = decode_payload(type, input.subspan(kFrameHeaderSize, length));
    if (!payload) {
        result.status = decode_status::bad;
        result.reason = std::move(payload).error();
        return result;
    }
    result.status = decode_status::ok;
    result.consumed = frame_size;
    result.msg = std::move(*payload);
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
