// speedsrv's UDP port: the same number as the TCP listener (like iperf3), so a firewall needs one TCP and one
// UDP rule. Only handshakes arrive here: a HELLO with a live token from the IP address of that token's
// control connection creates the stream's own connected socket on the same port (SO_REUSEPORT; the kernel
// then delivers that client's datagrams straight to it). That socket answers with a cookie and sends nothing
// beyond 1:1 until its exact address:port echoes the cookie (net/udp_flow.hpp). Everything else is dropped
// and counted, and nothing is ever sent from this socket: an unverified address gets no bytes from it at all.
// The verdict on each datagram is common/udp_handshake.hpp's (judge_listener_datagram).
//
// iperf3 clients open a UDP stream with a 4-byte connect datagram and no token: one from the IP address of an
// iperf3 session's control connection that waits for its UDP streams, within the number it asked for, is
// passed to that session, which creates the stream's connected socket and answers with the 4-byte reply
// from it (1:1). iperf3's protocol has nothing to check beyond the address (docs/operations.md).
//
// The listener reads on a thread of its own, in recvmmsg batches, so a flood of junk at this port cannot
// delay the control thread's deadlines; only a HELLO or an iperf3 connect that passed every check is posted
// to the control thread.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/iperf3_udp.hpp"
#include "common/udp_handshake.hpp"

namespace speed::server {

// Whoever owns a token: a UDP test's flows or a latency echo.
class udp_hello_handler {
  public:
    virtual ~udp_hello_handler() = default;
    // The control connection's peer: HELLOs from any other IP address are dropped. Read on the listener's
    // thread: it must not change after construction.
    virtual const asio::ip::address& control_peer() const = 0;
    // On the control thread: a HELLO of `bytes` bytes with this handler's token for `stream`, from the
    // control peer's address (any port).
    virtual void on_hello(std::uint16_t stream, const asio::ip::udp::endpoint& source, std::size_t bytes) = 0;
    // A HELLO with this handler's token from another address (logged with the session).
    std::atomic<std::uint64_t> wrong_address_hellos{0};
    // HELLOs the listener handed to the control thread (at most udp::kMaxHellosPerToken,
    // common/udp_handshake.hpp). The listener's thread only adds to it.
    std::atomic<std::uint64_t> hellos_passed{0};
};

// An iperf3 session that waits for its UDP streams: the listener passes it the 4-byte connect datagrams
// (common/iperf3_udp.hpp) from its control connection's IP address, at most one per stream it asked for.
class iperf3_connect_handler {
  public:
    virtual ~iperf3_connect_handler() = default;
    // Read on the listener's thread: neither may change after construction.
    virtual const asio::ip::address& control_peer() const = 0;
    virtual std::uint32_t streams() const = 0;
    // On the control thread: a connect from the control peer's address (any port).
    virtual void on_connect(const asio::ip::udp::endpoint& source, iperf3::udp_connect greeting) = 0;
    // Connects the listener handed to the control thread. The listener's thread only adds to it.
    std::atomic<std::uint32_t> connects_passed{0};
};

// Addresses compare as the family they travel in: ::ffff:192.0.2.1 is 192.0.2.1.
asio::ip::address unmapped(const asio::ip::address& address);

class udp_listener {
  public:
    // HELLOs that passed are posted to `control`; the listener reads on a thread of its own.
    explicit udp_listener(asio::io_context& control);
    ~udp_listener();
    udp_listener(const udp_listener&) = delete;
    udp_listener& operator=(const udp_listener&) = delete;

    // Binds to `endpoint` (the TCP listener's address and port) and starts reading. Throws std::system_error.
    void listen(const asio::ip::udp::endpoint& endpoint);
    std::uint16_t port() const { return port_; }
    // Closes the sockets and joins the listener's thread. Idempotent.
    void close();

    // Any thread.
    void add(std::uint64_t token, std::weak_ptr<udp_hello_handler> handler);
    void remove(std::uint64_t token);
    // An iperf3 session waits for its UDP streams from add_iperf3 to remove_iperf3. Any thread.
    void add_iperf3(const std::shared_ptr<iperf3_connect_handler>& handler);
    void remove_iperf3(const iperf3_connect_handler* handler);
    // Whether an iperf3 session from `address` waits for its UDP streams. Any thread.
    bool iperf3_waiting_from(const asio::ip::address& address) const;

    struct drop_counts {
        std::uint64_t malformed = 0;      // not a speedsrv datagram, not a HELLO, or a HELLO too short
        std::uint64_t unknown_token = 0;  // a token no live test owns
        std::uint64_t wrong_address = 0;  // a live token from an address other than its control connection's
        std::uint64_t excess = 0;         // more HELLOs for one token than any client sends
        std::uint64_t total() const { return malformed + unknown_token + wrong_address + excess; }
    };
    // A snapshot; any thread.
    drop_counts drops() const;

  private:
    struct atomic_drop_counts {
        std::atomic<std::uint64_t> malformed{0};
        std::atomic<std::uint64_t> unknown_token{0};
        std::atomic<std::uint64_t> wrong_address{0};
        std::atomic<std::uint64_t> excess{0};
    };
    void handle(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source);
    void pass_iperf3_connect(const udp::hello_verdict& verdict,
                             const std::shared_ptr<iperf3_connect_handler>& handler,
                             const asio::ip::udp::endpoint& source);
    void note_drop();

    asio::io_context& control_;
    asio::io_context io_;  // the listener's own
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
    std::vector<std::shared_ptr<asio::ip::udp::socket>> sockets_;  // created before the reads start
    std::uint16_t port_ = 0;

    mutable std::mutex mutex_;  // guards handlers_
    std::unordered_map<std::uint64_t, std::weak_ptr<udp_hello_handler>> handlers_;
    // Few at a time (one per iperf3 UDP test between CREATE_STREAMS and its last stream): a list.
    std::vector<std::pair<const iperf3_connect_handler*, std::weak_ptr<iperf3_connect_handler>>>
        iperf3_waiting_;

    atomic_drop_counts drops_;
    // The listener's thread only.
    drop_counts logged_;
    std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace speed::server
