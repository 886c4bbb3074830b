// Batched UDP I/O on Linux: sendmmsg with UDP GSO (UDP_SEGMENT) and recvmmsg with UDP GRO, each with a clean
// fallback to one datagram per message when the kernel or the path refuses. Used by the UDP flows
// (net/udp_flow.hpp), which run it on non-blocking sockets owned by Asio.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

#include "common/udp_wire.hpp"

namespace speed::net {

// Receive and send buffers, GRO, socket overflow counting and kernel receive timestamps: each best effort
// (a kernel without GRO just hands over one datagram per message). Returns the receive buffer the kernel
// granted, bytes of data (0 if unknown): at most net.core.rmem_max, since the *FORCE options are not used.
int configure_udp_data_socket(int fd);
// SO_REUSEPORT, so per-flow sockets can share the listener's port.
std::error_code set_reuse_port(int fd);
// Sends one small datagram (handshake, feedback, probe) on a connected socket; never blocks.
std::error_code send_datagram(int fd, std::span<const std::uint8_t> datagram);

// Test hook: with SPEED_TEST_DROP_UDP_HANDSHAKES=N in the environment, the first N handshake datagrams this
// process would send (HELLO or HELLO_ACK) are silently not sent, as if the network had lost them. The
// integration tests use it to prove that setup survives loss.
bool drop_handshake_for_test();

// The delay before the next HELLO: 100 ms, doubling per attempt, at most 500 ms (a 28-byte datagram twice a
// second harms nobody, and a 5 s deadline then allows 12 attempts).
std::chrono::milliseconds handshake_retry_delay(unsigned attempt);

// Reads whatever is queued on a socket in one recvmmsg call and splits GRO super-datagrams back into the
// sender's datagrams. Arrival times come from the kernel (SO_TIMESTAMPNS) converted to the monotonic clock
// of net::now_ns(), or from the clock right after the call when the kernel gave none.
class batch_receiver {
  public:
    static constexpr std::size_t kMessages = 8;
    static constexpr std::size_t kMessageBytes = 65536;

    batch_receiver();

    // One non-blocking recvmmsg. Returns the number of messages read (0 when nothing was queued), or an
    // error (e.g. connection_refused after an ICMP port unreachable).
    std::size_t receive(int fd, std::error_code& error);
    // Calls visit(std::span<const std::uint8_t> datagram, std::int64_t arrival_ns, bool timed) for each
    // datagram of the last receive(). `timed` means arrival_ns is that datagram's own kernel stamp. The
    // kernel stamps a GRO message once, when its first datagram arrived, and when it splits a GSO packet
    // into datagrams (on loopback, or for a socket without GRO) every piece carries the packet's stamp: so
    // only the first datagram of a message, and only a stamp not seen on the message before, is timed (a
    // message without a stamp gets the read time and is not timed either).
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (std::size_t m = 0; m < received_; ++m) {
            const message_info& info = info_[m];
            const std::uint8_t* data = buffers_.data() + m * kMessageBytes;
            const std::size_t segment = info.segment_bytes == 0 ? info.bytes : info.segment_bytes;
            for (std::size_t offset = 0; offset < info.bytes; offset += segment) {
                const std::size_t length = std::min(segment, info.bytes - offset);
                visit(std::span<const std::uint8_t>(data + offset, length), info.arrival_ns,
                      info.own_stamp && offset == 0);
            }
        }
    }
    // The overflow counter (SO_RXQ_OVFL) of the socket the last receive() read, when a message of that batch
    // carried it; the kernel attaches it only once the socket has dropped something. Per batch, not kept
    // across calls: one receiver (a thread's) reads many sockets, and each counter belongs to its socket.
    std::optional<std::uint32_t> socket_drops() const { return socket_drops_; }

  private:
    struct message_info {
        std::size_t bytes = 0;
        std::size_t segment_bytes = 0;  // GRO: the size of each datagram in the message; 0 = one datagram
        std::int64_t arrival_ns = 0;
        bool own_stamp = false;  // arrival_ns came from SO_TIMESTAMPNS and differs from the previous stamp
    };
    std::vector<std::uint8_t> buffers_;
    std::vector<std::uint8_t> control_;
    std::vector<mmsghdr> headers_;
    std::vector<iovec> iovecs_;
    std::vector<message_info> info_;
    std::size_t received_ = 0;
    std::optional<std::uint32_t> socket_drops_;
    std::int64_t previous_stamp_ns_ = 0;  // the last message's kernel (wall-clock) stamp, across calls
};

// Reads up to kMessages datagrams with their source addresses in one non-blocking recvmmsg call, for an
// unconnected socket (the UDP listener, which only wants handshakes: longer datagrams arrive truncated to
// kMessageBytes).
class sourced_batch_receiver {
  public:
    static constexpr std::size_t kMessages = 64;
    static constexpr std::size_t kMessageBytes = 256;

    sourced_batch_receiver();

    // Returns the number of datagrams read (0 when nothing was queued), or an error.
    std::size_t receive(int fd, std::error_code& error);
    // Calls visit(std::span<const std::uint8_t> datagram, const sockaddr* source, socklen_t source_length)
    // for each datagram of the last receive().
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (std::size_t m = 0; m < received_; ++m) {
            const msghdr& h = headers_[m].msg_hdr;
            visit(std::span<const std::uint8_t>(buffers_.data() + m * kMessageBytes,
                                                std::min<std::size_t>(headers_[m].msg_len, kMessageBytes)),
                  static_cast<const sockaddr*>(h.msg_name), h.msg_namelen);
        }
    }

  private:
    std::vector<std::uint8_t> buffers_;
    std::vector<sockaddr_storage> sources_;
    std::vector<mmsghdr> headers_;
    std::vector<iovec> iovecs_;
    std::size_t received_ = 0;
};

// Sends runs of same-sized datagrams that differ only in a prefix the caller fills: the native DATA header
// and nonce (udp::kDataPrefixSize bytes, net/udp_flow.hpp) or iperf3's header (net/iperf3_udp_sender.hpp).
// The rest of every datagram is random bytes written once, when the sender is made, so there is no per-byte
// work. With GSO, up to kMaxSegments datagrams travel through the stack as one; the kernel (or the NIC)
// splits them, so a receiver without GRO still reads them one by one. Only for connected sockets: the
// messages carry no address.
//
// Every datagram lies in one buffer, one after the other, so a GSO message is one contiguous iovec, as
// iperf3's own --gsro sender writes it. Two iovecs per datagram (its prefix, then one shared body) cost the
// sender a fifth more CPU per byte, most of it in the kernel's copy (docs/performance.md). The price of one
// buffer is memory, so a call sends at most kMaxBatchBytes (four GSO messages: 16 sent no faster), whatever
// the datagram size a peer asked for.
class batch_sender {
  public:
    // Messages per sendmmsg: without GSO a message is one datagram, with GSO up to kMaxSegments of them.
    static constexpr std::size_t kMaxMessages = 16;
    static constexpr std::size_t kMaxGsoMessages = 4;
    static constexpr std::size_t kMaxBatchBytes = kMaxGsoMessages * 65536;
    static constexpr std::size_t kMaxSegments = 64;

    // Datagrams of `datagram_bytes` (clamped to [prefix_bytes, udp::kMaxDatagramBytes]), each starting with
    // `prefix_bytes` the caller fills.
    batch_sender(std::uint32_t datagram_bytes, std::size_t prefix_bytes, bool try_gso);

    struct result {
        std::size_t sent = 0;          // datagrams the kernel accepted
        bool would_block = false;      // the socket buffer is full: wait until it is writable
        bool refused_locally = false;  // this host's firewall refused the datagram (EPERM): try again shortly
        std::error_code error;  // anything else (connection_refused after an ICMP port unreachable, ...)
    };

    // The size of every datagram sent.
    std::uint32_t datagram_bytes() const { return datagram_bytes_; }
    // The most datagrams one send() takes.
    std::size_t capacity() const;
    // Sends up to `count` datagrams; fill_prefix(i, std::span<std::uint8_t> prefix) writes datagram i's
    // prefix (i counts from 0 within this call; datagrams the kernel did not take are not sent, in order:
    // the first `result.sent` left, the others did not).
    template <class Fill>
    result send(int fd, std::size_t count, Fill&& fill_prefix) {
        count = std::min(count, capacity());
        for (std::size_t i = 0; i < count; ++i) {
            fill_prefix(i, std::span<std::uint8_t>(datagrams_.data() + i * datagram_bytes_, prefix_bytes_));
        }
        return send_filled(fd, count);
    }

  private:
    result send_filled(int fd, std::size_t count);
    std::size_t segments_per_message() const;
    std::size_t single_datagram_messages() const;  // per call without GSO
    std::size_t messages_per_call() const;
    std::size_t prepare(std::size_t first, std::size_t count);

    std::size_t prefix_bytes_;
    std::uint32_t datagram_bytes_;
    bool gso_;
    std::size_t max_gso_segments_;
    // The most datagrams one send() takes, with GSO or after it was turned off; each its prefix, then its
    // body.
    std::vector<std::uint8_t> datagrams_;
    std::vector<iovec> iovecs_;
    std::vector<mmsghdr> messages_;
    std::vector<std::uint8_t> control_;
    std::vector<std::size_t> message_datagrams_;
};

}  // namespace speed::net
