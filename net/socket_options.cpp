#include "net/socket_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>

#include "common/congestion_list.hpp"

namespace speed::net {
namespace {

std::error_code last_error() {
    return {errno, std::system_category()};
}

template <class T>
std::error_code set_option(int fd, int level, int name, const T& value) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
        return last_error();
    }
    return {};
}

}  // namespace

std::error_code set_no_delay(int fd) {
    return set_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

std::error_code set_socket_buffers(int fd, std::uint64_t bytes) {
    const int value = static_cast<int>(std::min<std::uint64_t>(bytes, INT32_MAX / 2));
    if (auto ec = set_option(fd, SOL_SOCKET, SO_SNDBUF, value)) {
        return ec;
    }
    return set_option(fd, SOL_SOCKET, SO_RCVBUF, value);
}

std::error_code set_max_segment(int fd, std::uint32_t bytes) {
    return set_option(fd, IPPROTO_TCP, TCP_MAXSEG, static_cast<int>(bytes));
}

std::error_code set_tos(int fd, bool ipv6, std::uint8_t tos) {
    const int value = tos;
    return ipv6 ? set_option(fd, IPPROTO_IPV6, IPV6_TCLASS, value)
                : set_option(fd, IPPROTO_IP, IP_TOS, value);
}

socket_readback read_socket(int fd, bool ipv6) {
    socket_readback out;
    const auto get = [fd](int level, int name) {
        int value = 0;
        socklen_t length = sizeof value;
        return ::getsockopt(fd, level, name, &value, &length) == 0 ? value : 0;
    };
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
        out.local_port =
            ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    }
    out.send_buffer_bytes = static_cast<std::uint64_t>(get(SOL_SOCKET, SO_SNDBUF));
    out.receive_buffer_bytes = net::receive_buffer_bytes(fd);
    out.mss_bytes = static_cast<std::uint32_t>(get(IPPROTO_TCP, TCP_MAXSEG));
    out.tos = static_cast<std::uint8_t>(ipv6 ? get(IPPROTO_IPV6, IPV6_TCLASS) : get(IPPROTO_IP, IP_TOS));
    return out;
}

bool congestion_allowed(const std::string& algorithm) {
    std::ifstream file("/proc/sys/net/ipv4/tcp_allowed_congestion_control");
    std::string list;
    std::getline(file, list);  // one line; unreadable (not Linux) leaves it empty: nothing is allowed
    return congestion_listed(list, algorithm);
}

std::error_code set_congestion(int fd, const std::string& algorithm) {
    if (algorithm.empty()) {
        return {};
    }
    if (!congestion_allowed(algorithm)) {
        return std::make_error_code(std::errc::operation_not_permitted);
    }
#ifdef TCP_CONGESTION
    if (::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, algorithm.data(),
                     static_cast<socklen_t>(algorithm.size())) != 0) {
        return last_error();
    }
    return {};
#else
    return std::make_error_code(std::errc::not_supported);
#endif
}

std::string congestion_of(int fd) {
#ifdef TCP_CONGESTION
    std::array<char, 32> name{};
    socklen_t length = name.size();
    if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), &length) == 0) {
        return std::string(name.data(), strnlen(name.data(), length));
    }
#else
    (void)fd;
#endif
    return {};
}

namespace {
// A TCP socket to ask the kernel about defaults; closed when it goes out of scope.
struct scratch_socket {
    scratch_socket() : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
    ~scratch_socket() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    scratch_socket(const scratch_socket&) = delete;
    scratch_socket& operator=(const scratch_socket&) = delete;
    int fd;
};
}  // namespace

bool congestion_available(const std::string& algorithm) {
    if (algorithm.empty()) {
        return true;
    }
    scratch_socket probe;
    return probe.fd >= 0 && !set_congestion(probe.fd, algorithm);
}

std::string default_congestion() {
    scratch_socket probe;
    return probe.fd >= 0 ? congestion_of(probe.fd) : std::string();
}

std::error_code set_max_pacing_rate(int fd, std::uint64_t bytes_per_second) {
#ifdef SO_MAX_PACING_RATE
    if (bytes_per_second == 0) {
        return {};
    }
    // The kernel takes an unsigned long (64-bit on Linux x86_64/arm64) for rates above 4 GB/s.
    const unsigned long rate = bytes_per_second;
    return set_option(fd, SOL_SOCKET, SO_MAX_PACING_RATE, rate);
#else
    (void)fd;
    return bytes_per_second == 0 ? std::error_code{} : std::make_error_code(std::errc::not_supported);
#endif
}

std::error_code set_keepalive(int fd, int idle_seconds, int interval_seconds, int count) {
    if (auto ec = set_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) {
        return ec;
    }
#ifdef TCP_KEEPIDLE
    if (auto ec = set_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_seconds)) {
        return ec;
    }
    if (auto ec = set_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_seconds)) {
        return ec;
    }
    return set_option(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
#else
    (void)idle_seconds, (void)interval_seconds, (void)count;
    return {};
#endif
}

std::error_code set_user_timeout(int fd, unsigned milliseconds) {
#ifdef TCP_USER_TIMEOUT
    return set_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, milliseconds);
#else
    (void)fd, (void)milliseconds;
    return {};
#endif
}

std::error_code set_receive_low_watermark(int fd, std::size_t bytes) {
    const int value = bytes == 0 ? 1 : static_cast<int>(std::min<std::size_t>(bytes, INT_MAX));
    return set_option(fd, SOL_SOCKET, SO_RCVLOWAT, value);
}

std::uint64_t receive_buffer_bytes(int fd) {
    int value = 0;
    socklen_t length = sizeof value;
    return ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, &length) == 0 && value > 0
               ? static_cast<std::uint64_t>(value)
               : 0;
}

std::error_code set_abortive_close(int fd) {
    linger option{};
    option.l_onoff = 1;
    option.l_linger = 0;
    return set_option(fd, SOL_SOCKET, SO_LINGER, option);
}

std::optional<std::uint64_t> unacknowledged_bytes(int fd) {
#ifdef SIOCOUTQ
    int queued = 0;
    if (::ioctl(fd, SIOCOUTQ, &queued) != 0 || queued < 0) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(queued);
#else
    (void)fd;
    return std::nullopt;
#endif
}

std::optional<proto::stream_sender_stats> read_tcp_info(int fd) {
#ifdef TCP_INFO
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) {
        return std::nullopt;
    }
    proto::stream_sender_stats stats;
    stats.has_tcp_info = true;
    stats.retransmits = info.tcpi_total_retrans;
    stats.rtt_us = info.tcpi_rtt;
    stats.rttvar_us = info.tcpi_rttvar;
    const std::uint64_t cwnd = std::uint64_t{info.tcpi_snd_cwnd} * info.tcpi_snd_mss;
    stats.cwnd_bytes = cwnd > 0xffffffffU ? 0xffffffffU : static_cast<std::uint32_t>(cwnd);
    return stats;
#else
    (void)fd;
    return std::nullopt;
#endif
}

}  // namespace speed::net
