// The UDP datagrams of a speedsrv/speedcli UDP test (docs/protocol.md, "UDP datagrams").
//
// Every datagram starts with the same 28-byte header: type, version, stream id, the test's 64-bit token,
// a 64-bit sequence number and the sender's timestamp. The token is what the server handed out over the TCP
// control connection; a datagram without it is dropped. Encoding writes into a caller's buffer and decoding
// reads from one: the data path allocates nothing per datagram. Everything is big-endian, field by field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace speed::udp {

inline constexpr std::uint8_t kDatagramVersion = 1;
inline constexpr std::size_t kHeaderSize = 28;
inline constexpr std::size_t kFeedbackBodySize = 44;
inline constexpr std::size_t kFeedbackSize = kHeaderSize + kFeedbackBodySize;

// --length bounds: a DATA datagram carries at least its header; at most what an IPv4 UDP datagram can carry
// (65535 - 20 byte IPv4 header - 8 byte UDP header).
inline constexpr std::uint32_t kMinDatagramBytes = 32;
inline constexpr std::uint32_t kMaxDatagramBytes = 65507;
// The default --length fills a 1500-byte Ethernet MTU without fragmentation: 1500 - 20 (IPv4 header) - 8 (UDP
// header), or 1500 - 40 (IPv6 header) - 8. Our own header is inside this payload, so nothing else comes off.
inline constexpr std::uint32_t kDefaultIpv4DatagramBytes = 1472;
inline constexpr std::uint32_t kDefaultIpv6DatagramBytes = 1452;

enum class datagram_type : std::uint8_t {
    data = 1,       // sender -> receiver: test payload
    hello = 2,      // client -> server: "this socket is stream N of the test with this token"
    hello_ack = 3,  // server -> client: the HELLO arrived; the flow is set up
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
    bool operator==(const feedback&) const = default;
};

// Writes the header into the first kHeaderSize bytes of `out` (which must be at least that long).
void write_header(std::span<std::uint8_t> out, const header& h);
// The header of `datagram`; nothing when it is too short, of another version or of an unknown type.
std::optional<header> read_header(std::span<const std::uint8_t> datagram);

// Writes header and feedback body into the first kFeedbackSize bytes of `out`.
void write_feedback(std::span<std::uint8_t> out, const header& h, const feedback& body);
// The body of a FEEDBACK datagram (header already read); nothing when it is too short.
std::optional<feedback> read_feedback(std::span<const std::uint8_t> datagram);

}  // namespace speed::udp
