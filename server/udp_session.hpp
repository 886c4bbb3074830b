// The server's side of UDP tests and UDP latency probes, as seen by a session (server/session.hpp).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/udp.hpp>
#include <memory>

#include "net/io_pool.hpp"
#include "net/udp_flow.hpp"
#include "server/udp_listener.hpp"

namespace speed::server {

// Where a session's UDP sockets live: the address the client reached (the control connection's local
// address) and the UDP port, shared with every other flow via SO_REUSEPORT.
struct udp_local {
    asio::ip::address address;
    std::uint16_t port = 0;
};

// The flows of one UDP test: the listener hands it each stream's first HELLO, and it creates that stream's
// connected socket on a data-plane thread, with a fresh cookie the client must echo from that socket's peer.
class udp_test_flows : public udp_hello_handler {
  public:
    udp_test_flows(asio::any_io_executor control, std::size_t streams, net::udp_flow_settings settings,
                   asio::ip::address control_peer, udp_local local, net::io_pool& data_pool);
    const asio::ip::address& control_peer() const override { return control_peer_; }
    void on_hello(std::uint16_t stream, const asio::ip::udp::endpoint& source, std::size_t bytes) override;
    net::udp_flow_group& group() { return group_; }

  private:
    asio::ip::address control_peer_;
    udp_local local_;
    net::io_pool& data_pool_;
    net::udp_flow_group group_;
};

// A latency echo: one connected socket on the control thread that answers HELLO with HELLO_ACK and PING with
// PONG, datagram for datagram and never larger (so it needs no cookie: it never sends beyond 1:1).
class udp_echo : public udp_hello_handler, public std::enable_shared_from_this<udp_echo> {
  public:
    // The echo's socket and loop run on `executor` (the probe thread); on_hello and the destructor are
    // called on the control thread.
    udp_echo(asio::any_io_executor executor, std::uint64_t token, asio::ip::address control_peer,
             udp_local local);
    ~udp_echo() override;
    const asio::ip::address& control_peer() const override { return control_peer_; }
    void on_hello(std::uint16_t stream, const asio::ip::udp::endpoint& source, std::size_t bytes) override;

  private:
    asio::any_io_executor executor_;
    std::uint64_t token_;
    asio::ip::address control_peer_;
    udp_local local_;
    std::shared_ptr<asio::ip::udp::socket> socket_;
};

// A socket bound to `local` (sharing the port) and connected to `peer`, on `context`.
asio::ip::udp::socket open_flow_socket(const asio::any_io_executor& executor, const udp_local& local,
                                       const asio::ip::udp::endpoint& peer, asio::error_code& ec);

}  // namespace speed::server
