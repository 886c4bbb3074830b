#include "common/udp_messages.hpp"

#include <string>

#include "common/protocol.hpp"
#include "common/wire.hpp"

namespace speed::proto {
namespace {

// Reads a u16 element count and checks it against the streams limit and the bytes actually left, so a lying
// count never allocates.
bool read_count(wire::reader& in, std::size_t element_size, std::uint16_t& count) {
    count = in.u16();
    if (!in.ok() || count > kMaxStreams || in.remaining() < std::size_t{count} * element_size) {
        in.fail();
        return false;
    }
    return true;
}

failure malformed(const char* what) {
    return failure{std::string("truncated or malformed ") + what};
}

}  // namespace

void encode_payload(wire::writer& out, const udp_setup& m) {
    out.u64(m.token);
    out.u16(m.port);
    out.u64(m.max_bitrate);
}

void encode_payload(wire::writer& /*out*/, const udp_echo_request& /*m*/) {}

void encode_payload(wire::writer& out, const udp_sender_report& m) {
    out.u16(static_cast<std::uint16_t>(m.streams.size()));
    for (const auto& s : m.streams) {
        out.u64(s.packets);
        out.u64(s.bytes);
    }
}

void encode_payload(wire::writer& out, const udp_receiver_report& m) {
    out.u64(m.window_ns);
    out.u64(m.omitted_ns);
    out.u64(m.omitted_bytes);
    out.u64(m.ipdv_p50_ns);
    out.u64(m.ipdv_p90_ns);
    out.u64(m.ipdv_p99_ns);
    out.u64(m.ipdv_pairs);
    out.u64(m.ipdv_pairs_excluded);
    out.u16(static_cast<std::uint16_t>(m.streams.size()));
    for (const auto& s : m.streams) {
        for (std::uint64_t value :
             {s.bytes, s.packets_received, s.lost_packets, s.out_of_order, s.duplicates, s.late_packets,
              s.jitter_ns, s.ipdv_p50_ns, s.ipdv_p90_ns, s.ipdv_p99_ns}) {
            out.u64(value);
        }
    }
}

void encode_payload(wire::writer& out, const udp_interval_report& m) {
    out.u32(m.index);
    out.u64(m.start_ns);
    out.u64(m.end_ns);
    out.u8(m.omitted ? 1 : 0);
    out.u16(static_cast<std::uint16_t>(m.streams.size()));
    for (const auto& s : m.streams) {
        out.u64(s.bytes);
        out.u64(s.packets);
        out.u64(s.lost_packets);
        out.u64(s.jitter_ns);
    }
}

result<udp_setup> decode_payload(wire::reader& in, std::type_identity<udp_setup>) {
    udp_setup m;
    m.token = in.u64();
    m.port = in.u16();
    m.max_bitrate = in.u64();
    if (!in.ok()) {
        return malformed("UDP_SETUP");
    }
    if (m.token == 0 || m.port == 0) {
        return failure{"UDP_SETUP has a zero token or port"};
    }
    return m;
}

result<udp_echo_request> decode_payload(wire::reader& /*in*/, std::type_identity<udp_echo_request>) {
    return udp_echo_request{};
}

result<udp_sender_report> decode_payload(wire::reader& in, std::type_identity<udp_sender_report>) {
    udp_sender_report m;
    std::uint16_t count = 0;
    if (!read_count(in, 16, count)) {
        return malformed("UDP_SENDER_REPORT");
    }
    m.streams.resize(count);
    for (auto& s : m.streams) {
        s.packets = in.u64();
        s.bytes = in.u64();
    }
    if (!in.ok()) {
        return malformed("UDP_SENDER_REPORT");
    }
    return m;
}

result<udp_receiver_report> decode_payload(wire::reader& in, std::type_identity<udp_receiver_report>) {
    udp_receiver_report m;
    m.window_ns = in.u64();
    m.omitted_ns = in.u64();
    m.omitted_bytes = in.u64();
    m.ipdv_p50_ns = in.u64();
    m.ipdv_p90_ns = in.u64();
    m.ipdv_p99_ns = in.u64();
    m.ipdv_pairs = in.u64();
    m.ipdv_pairs_excluded = in.u64();
    std::uint16_t count = 0;
    if (!read_count(in, 80, count)) {
        return malformed("UDP_RECEIVER_REPORT");
    }
    m.streams.resize(count);
    for (auto& s : m.streams) {
        for (std::uint64_t* field :
             {&s.bytes, &s.packets_received, &s.lost_packets, &s.out_of_order, &s.duplicates, &s.late_packets,
              &s.jitter_ns, &s.ipdv_p50_ns, &s.ipdv_p90_ns, &s.ipdv_p99_ns}) {
            *field = in.u64();
        }
    }
    if (!in.ok()) {
        return malformed("UDP_RECEIVER_REPORT");
    }
    return m;
}

result<udp_interval_report> decode_payload(wire::reader& in, std::type_identity<udp_interval_report>) {
    udp_interval_report m;
    m.index = in.u32();
    m.start_ns = in.u64();
    m.end_ns = in.u64();
    const std::uint8_t omitted = in.u8();
    std::uint16_t count = 0;
    if (!in.ok() || omitted > 1 || !read_count(in, 32, count)) {
        return malformed("UDP_INTERVAL_REPORT");
    }
    m.omitted = omitted == 1;
    m.streams.resize(count);
    for (auto& s : m.streams) {
        s.bytes = in.u64();
        s.packets = in.u64();
        s.lost_packets = in.u64();
        s.jitter_ns = in.u64();
    }
    if (!in.ok()) {
        return malformed("UDP_INTERVAL_REPORT");
    }
    if (m.end_ns < m.start_ns) {
        return failure{"UDP_INTERVAL_REPORT ends before it starts"};
    }
    return m;
}

}  // namespace speed::proto
