#include "tests/support/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace speed::testing {

namespace {

int connect_loopback(std::uint16_t port, const std::string& source = {}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::runtime_error("socket() failed");
    }
    if (!source.empty()) {
        sockaddr_in local{};
        local.sin_family = AF_INET;
        if (::inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1 ||
            ::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
            ::close(fd);
            throw std::runtime_error("cannot bind to " + source);
        }
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    }
    return fd;
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

http_response http_exchange(std::uint16_t port, const std::string& request, std::chrono::milliseconds limit) {
    return http_exchange_from({}, port, request, limit);
}

http_response http_exchange_from(const std::string& source, std::uint16_t port, const std::string& request,
                                 std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    const int fd = connect_loopback(port, source);
    std::size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            break;  // the server may answer and close before reading everything (an oversized request)
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string received;
    char buffer[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        const int ms = remaining_ms(deadline);
        if (ms == 0 || ::poll(&p, 1, ms) <= 0) {
            break;
        }
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            break;
        }
        received.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    http_response response;
    const auto head_end = received.find("\r\n\r\n");
    response.head = received.substr(0, head_end);
    if (head_end != std::string::npos) {
        response.body = received.substr(head_end + 4);
    }
    if (received.rfind("HTTP/1.1 ", 0) == 0 && received.size() >= 12) {
        response.status = std::atoi(received.substr(9, 3).c_str());
    }
    return response;
}

http_response http_request(std::uint16_t port, const std::string& method, const std::string& target,
                           const std::string& body, const std::string& headers,
                           std::chrono::milliseconds limit) {
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                          headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    request += body;
    return http_exchange(port, request, limit);
}

std::optional<std::string> header_value(const http_response& response, const std::string& name) {
    const auto lower = [](std::string text) {
        for (char& c : text) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        return text;
    };
    const std::string head = lower(response.head);
    const std::string wanted = "\r\n" + lower(name) + ":";
    const auto at = head.find(wanted);
    if (at == std::string::npos) {
        return std::nullopt;
    }
    const auto start = response.head.find_first_not_of(' ', at + wanted.size());
    const auto end = response.head.find("\r\n", at + wanted.size());
    return response.head.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

http_response http_get(std::uint16_t port, const std::string& target, std::chrono::milliseconds limit) {
    return http_exchange(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                         limit);
}

std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        throw std::runtime_error("cannot find a free port");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

}  // namespace speed::testing
