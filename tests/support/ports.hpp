// Loopback TCP ports for tests: one nothing holds right now, and whether a given one is free.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace speed::testing {

// Whether a TCP socket can bind 127.0.0.1:`port` right now (port 0: any port).
inline bool loopback_port_free(std::uint16_t port, std::uint16_t* bound = nullptr) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    if (free && bound != nullptr) {
        socklen_t length = sizeof address;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        *bound = ntohs(address.sin_port);
    }
    ::close(fd);
    return free;
}

// A loopback TCP port the kernel just handed out and nothing listens on (0 when none could be had).
inline std::uint16_t unused_loopback_port() {
    std::uint16_t port = 0;
    loopback_port_free(0, &port);
    return port;
}

}  // namespace speed::testing
