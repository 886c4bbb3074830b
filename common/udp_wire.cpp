#include "common/udp_wire.hpp"

#include "common/wire.hpp"

namespace speed::udp {

using wire::get_big_endian;
using wire::put_big_endian;

void write_header(std::span<std::uint8_t> out, const header& h) {
    std::uint8_t* p = out.data();
    p[0] = static_cast<std::uint8_t>(h.type);
    p[1] = kDatagramVersion;
    put_big_endian(p + 2, h.stream, 2);
    put_big_endian(p + 4, h.token, 8);
    put_big_endian(p + 12, h.sequence, 8);
    put_big_endian(p + 20, h.timestamp_ns, 8);
}

std::optional<header> read_header(std::span<const std::uint8_t> datagram) {
    if (datagram.size() < kHeaderSize) {
        return std::nullopt;
    }
    const std::uint8_t* p = datagram.data();
    if (p[0] < static_cast<std::uint8_t>(datagram_type::data) ||
        p[0] > static_cast<std::uint8_t>(datagram_type::pong) || p[1] != kDatagramVersion) {
        return std::nullopt;
    }
    header h;
    h.type = static_cast<datagram_type>(p[0]);
    h.stream = static_cast<std::uint16_t>(get_big_endian(p + 2, 2));
    h.token = get_big_endian(p + 4, 8);
    h.sequence = get_big_endian(p + 12, 8);
    h.timestamp_ns = get_big_endian(p + 20, 8);
    return h;
}

namespace {

// HELLO, HELLO_ACK and DATA carry one 64-bit value right behind the header (cookie or nonce).
void write_tagged(std::span<std::uint8_t> out, const header& h, std::uint64_t tag) {
    write_header(out, h);
    put_big_endian(out.data() + kHeaderSize, tag, 8);
}

std::optional<std::uint64_t> read_tag(std::span<const std::uint8_t> datagram) {
    if (datagram.size() < kHeaderSize + 8) {
        return std::nullopt;
    }
    return get_big_endian(datagram.data() + kHeaderSize, 8);
}

}  // namespace

void write_handshake(std::span<std::uint8_t> out, const header& h, std::uint64_t cookie) {
    write_tagged(out, h, cookie);
}

std::optional<std::uint64_t> read_cookie(std::span<const std::uint8_t> datagram) {
    return read_tag(datagram);
}

void write_data_prefix(std::span<std::uint8_t> out, const header& h, std::uint64_t nonce) {
    write_tagged(out, h, nonce);
}

std::optional<std::uint64_t> read_nonce(std::span<const std::uint8_t> datagram) {
    return read_tag(datagram);
}

void write_feedback(std::span<std::uint8_t> out, const header& h, const feedback& body) {
    write_header(out, h);
    std::uint8_t* p = out.data() + kHeaderSize;
    put_big_endian(p, body.packets_received, 8);
    put_big_endian(p + 8, body.expected, 8);
    put_big_endian(p + 16, body.bytes_received, 8);
    put_big_endian(p + 24, body.socket_drops, 4);
    put_big_endian(p + 28, body.queue_delay_us, 4);
    put_big_endian(p + 32, body.echo_timestamp_ns, 8);
    put_big_endian(p + 40, body.echo_delay_us, 4);
    put_big_endian(p + 44, body.echo_nonce, 8);
}

std::optional<feedback> read_feedback(std::span<const std::uint8_t> datagram) {
    if (datagram.size() < kFeedbackSize) {
        return std::nullopt;
    }
    const std::uint8_t* p = datagram.data() + kHeaderSize;
    feedback body;
    body.packets_received = get_big_endian(p, 8);
    body.expected = get_big_endian(p + 8, 8);
    body.bytes_received = get_big_endian(p + 16, 8);
    body.socket_drops = static_cast<std::uint32_t>(get_big_endian(p + 24, 4));
    body.queue_delay_us = static_cast<std::uint32_t>(get_big_endian(p + 28, 4));
    body.echo_timestamp_ns = get_big_endian(p + 32, 8);
    body.echo_delay_us = static_cast<std::uint32_t>(get_big_endian(p + 40, 4));
    body.echo_nonce = get_big_endian(p + 44, 8);
    return body;
}

}  // namespace speed::udp
