// The UDP datagrams of a speedsrv/speedcli UDP test (docs/protocol.md, "UDP datagrams").
//
// Every datagram starts with the same 28-byte header: type, version, stream id, the test's 64-bit token,
// a 64-bit sequence number and the sender's timestamp. The token is what the server handed out over the TCP
// control connection; a datagram without it is dropped. Behind the header, HELLO and HELLO_ACK carry the
// server's path cookie, DATA the sender's nonce and FEEDBACK its echo (RFC 9000 section 8 style path
// validation: only whoever receives the datagrams at that address:port can answer them). Encoding writes into
// a caller's buffer and decoding reads from one: the data path allocates nothing per datagram. Everything is
// big-endian, field by field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace speed::udp {

// Version 2: the path cookie in HELLO/HELLO_ACK, the nonce in DATA and its echo in FEEDBACK.
inline constexpr std::uint8_t kDatagramVersion = 2;
inline constexpr std::size_t kHeaderSize = 28;
// HELLO and HELLO_ACK: the header and the cookie. Both are the same size, so answering a HELLO 1:1 never
// sends more than it received.
inline constexpr std::size_t kHandshakeSize = kHeaderSize + 8;
// What a DATA datagram starts with: the header and the sender's nonce; the rest is filler.
inline constexpr std::size_t kDataPrefixSize = kHeaderSize + 8;
inline constexpr std::size_t kFeedbackBodySize = 52;
inline constexpr std::size_t kFeedbackSize = kHeaderSize + kFeedbackBodySize;

// --length bounds: a DATA datagram carries at least its header and nonce; at most what an IPv4 UDP datagram
// can carry (65535 - 20 byte IPv4 header - 8 byte UDP header).
inline constexpr std::uint32_t kMinDatagramBytes = kDataPrefixSize;
inline constexpr std::uint32_t kMaxDatagramBytes = 65507;
// The default --length fills a 1500-byte Ethernet MTU without fragmentation: 1500 - 20 (IPv4 header) - 8 (UDP
// header), or 1500 - 40 (IPv6 header) - 8. Our own header is inside this payload, so nothing else comes off.
inline constexpr std::uint32_t kDefaultIpv4DatagramBytes = 1472;
inline constexpr std::uint32_t kDefaultIpv6DatagramBytes = 1452;

enum class datagram_type : std::uint8_t {
    data = 1,       // sender -> receiver: test payload
    hello = 2,      // client -> server: "this socket is stream N of the test with this token" (+ cookie echo)
    hello_ack = 3,  // server -> client: the cookie to echo; cookie 0: the echo arrived, the path is valid
    feedback = 4,  // receiver -> sender: cumulative counters, at least every 500 ms (every 10 ms in practice)
    ping = 5,      // client -> server: a latency probe
    pong = 6,      // server -> client: the probe echoed (same sequence and timestamp)
};

struct header {
    datagram_type type = datagram_type::data;
    std::uint16_t stream = 0;
    std::uint64_t token = 0;
    std::uint64_t sequence = 0;
    std::uint64_t timestamp_ns = 0;  // the sender's monotonic clock; PONG echoes the PING's
    bool operator==(const header&) const = default;
};

// What a receiver tells the sender of one stream. Counters are cumulative so a lost FEEDBACK costs nothing.
struct feedback {
    std::uint64_t packets_received = 0;   // distinct DATA sequence numbers received
    std::uint64_t expected = 0;           // highest sequence received + 1
    std::uint64_t bytes_received = 0;     // UDP payload bytes of those datagrams
    std::uint32_t socket_drops = 0;       // the receiver's socket overflowed this often (SO_RXQ_OVFL)
    std::uint32_t queue_delay_us = 0;     // queueing delay estimate: recent minimum transit - lowest ever
    std::uint64_t echo_timestamp_ns = 0;  // sender timestamp of the newest DATA datagram received
    std::uint32_t echo_delay_us = 0;      // how long that datagram had been received when this was sent
    std::uint64_t echo_nonce = 0;         // the nonce of the newest DATA datagram received (0: none yet)
    bool operator==(const feedback&) const = default;
};

// Writes the header into the first kHeaderSize bytes of `out` (which must be at least that long).
void write_header(std::span<std::uint8_t> out, const header& h);
// The header of `datagram`; nothing when it is too short, of another version or of an unknown type.
std::optional<header> read_header(std::span<const std::uint8_t> datagram);

// Writes a HELLO or HELLO_ACK (header and cookie) into the first kHandshakeSize bytes of `out`.
void write_handshake(std::span<std::uint8_t> out, const header& h, std::uint64_t cookie);
// The cookie of a HELLO or HELLO_ACK (header already read); nothing when it is too short.
std::optional<std::uint64_t> read_cookie(std::span<const std::uint8_t> datagram);

// Writes a DATA datagram's header and nonce into the first kDataPrefixSize bytes of `out`.
void write_data_prefix(std::span<std::uint8_t> out, const header& h, std::uint64_t nonce);
// The nonce of a DATA datagram (header already read); nothing when it is too short.
std::optional<std::uint64_t> read_nonce(std::span<const std::uint8_t> datagram);

// Writes header and feedback body into the first kFeedbackSize bytes of `out`.
void write_feedback(std::span<std::uint8_t> out, const header& h, const feedback& body);
// The body of a FEEDBACK datagram (header already read); nothing when it is too short.
std::optional<feedback> read_feedback(std::span<const std::uint8_t> datagram);

}  // namespace speed::udp
