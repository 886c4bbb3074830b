// Socket options the data plane and the probes use; each returns an error instead of throwing so callers
// decide whether a missing feature matters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>

#include "common/protocol.hpp"

namespace speed::net {

// Disables Nagle so a small probe leaves at once.
std::error_code set_no_delay(int fd);

// -w: the send and receive buffers of a socket, before it connects (the window scale is agreed in the
// handshake). Linux doubles the value for its bookkeeping and caps it at net.core.wmem_max / rmem_max.
std::error_code set_socket_buffers(int fd, std::uint64_t bytes);
// -M: the largest segment this socket announces and sends, before it connects (TCP_MAXSEG).
std::error_code set_max_segment(int fd, std::uint32_t bytes);
// -S / --dscp: the IPv4 TOS byte or the IPv6 traffic class of what the socket sends.
std::error_code set_tos(int fd, bool ipv6, std::uint8_t tos);

// What the kernel applied to a connected socket, read back: the figures a user checks -w, -M and -S by.
struct socket_readback {
    std::uint16_t local_port = 0;
    std::uint64_t send_buffer_bytes = 0;     // SO_SNDBUF (the doubled value)
    std::uint64_t receive_buffer_bytes = 0;  // SO_RCVBUF
    std::uint32_t mss_bytes = 0;             // TCP_MAXSEG: the segment size in use (without TCP options)
    std::uint8_t tos = 0;
};
socket_readback read_socket(int fd, bool ipv6);
// Linux TCP_CONGESTION; "" leaves the system default. Only names in the kernel's
// tcp_allowed_congestion_control are set (operation_not_permitted otherwise): a privileged process would
// make the kernel load a module for any other name it is given.
std::error_code set_congestion(int fd, const std::string& algorithm);
// Whether `algorithm` is in /proc/sys/net/ipv4/tcp_allowed_congestion_control.
bool congestion_allowed(const std::string& algorithm);
// The congestion control the socket actually uses ("" where unknown).
std::string congestion_of(int fd);
// Whether this host offers `algorithm` ("" always works), and what a new TCP socket gets by default.
bool congestion_available(const std::string& algorithm);
std::string default_congestion();
// Linux SO_MAX_PACING_RATE in bytes per second; the kernel paces TCP to it (0 = unlimited).
std::error_code set_max_pacing_rate(int fd, std::uint64_t bytes_per_second);
// Keepalive probes after `idle_seconds` and a TCP_USER_TIMEOUT, so a vanished peer is noticed.
std::error_code set_keepalive(int fd, int idle_seconds, int interval_seconds, int count);
std::error_code set_user_timeout(int fd, unsigned milliseconds);
// SO_RCVLOWAT: readiness (and a blocking read) waits until `bytes` are queued; 0 = the default of 1 byte.
// Linux caps it at half the largest receive buffer; a non-blocking read still returns what is queued.
std::error_code set_receive_low_watermark(int fd, std::size_t bytes);
// SO_RCVBUF as the kernel reports it (the doubled value; autotuning grows it); 0 when unknown.
std::uint64_t receive_buffer_bytes(int fd);
// Close with RST: discards queued bytes so the next phase starts on an idle link.
std::error_code set_abortive_close(int fd);

// Bytes written to a TCP socket that the peer has not acknowledged yet (Linux SIOCOUTQ), if known.
std::optional<std::uint64_t> unacknowledged_bytes(int fd);

// The kernel's view of a sending TCP socket (Linux TCP_INFO); nothing on other systems.
std::optional<proto::stream_sender_stats> read_tcp_info(int fd);

}  // namespace speed::net
