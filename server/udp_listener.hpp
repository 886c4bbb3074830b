// speedsrv's UDP port: the same number as the TCP listener (like iperf3), so a firewall needs one TCP and one
// UDP rule. Only handshakes arrive here: a HELLO with a live token from the IP address of that token's
// control connection creates the stream's own connected socket on the same port (SO_REUSEPORT; the kernel
// then delivers that client's datagrams straight to it). Everything else is dropped and counted, and
// nothing is ever sent from this socket: an unverified address gets no bytes at all (stricter than the 3x
// of RFC 9000 section 8).
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

namespace speed::server {

// Whoever owns a token: a UDP test's flows or a latency echo.
class udp_hello_handler {
  public:
    virtual ~udp_hello_handler() = default;
    // The control connection's peer: HELLOs from any other IP address are dropped.
    virtual const asio::ip::address& control_peer() const = 0;
    // A HELLO with this handler's token for `stream`, from the control peer's address (any port).
    virtual void on_hello(std::uint16_t stream, const asio::ip::udp::endpoint& source) = 0;
    // A HELLO with this handler's token from another address (logged with the session).
    std::uint64_t wrong_address_hellos = 0;
};

// Addresses compare as the family they travel in: ::ffff:192.0.2.1 is 192.0.2.1.
asio::ip::address unmapped(const asio::ip::address& address);

class udp_listener {
  public:
    explicit udp_listener(asio::io_context& control);
    ~udp_listener();

    // Binds to `endpoint` (the TCP listener's address and port) and starts reading. Throws std::system_error.
    void listen(const asio::ip::udp::endpoint& endpoint);
    std::uint16_t port() const { return port_; }
    void close();

    void add(std::uint64_t token, std::weak_ptr<udp_hello_handler> handler);
    void remove(std::uint64_t token);

    struct drop_counts {
        std::uint64_t malformed = 0;      // not a speedsrv datagram, or not a HELLO
        std::uint64_t unknown_token = 0;  // a token no live test owns
        std::uint64_t wrong_address = 0;  // a live token from an address other than its control connection's
        std::uint64_t total() const { return malformed + unknown_token + wrong_address; }
    };
    const drop_counts& drops() const { return drops_; }

  private:
    void handle(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source);
    void note_drop();

    asio::io_context& control_;
    std::vector<std::shared_ptr<asio::ip::udp::socket>> sockets_;
    std::uint16_t port_ = 0;
    std::unordered_map<std::uint64_t, std::weak_ptr<udp_hello_handler>> handlers_;
    drop_counts drops_;
    drop_counts logged_;
    std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace speed::server
