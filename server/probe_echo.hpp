// Latency probes: a connection of its own (TCP_NODELAY) on which every PING is answered with a PONG at once.
//
// It runs on the control thread, never on a data-plane thread, so a saturated data plane does not delay
// answers. The loop reads whatever the socket has and answers every complete PING in it with one write; no
// timer is armed per probe (an idle watchdog closes a connection that sends nothing for a while), so an
// answer costs one read and one write system call. The session the probe connection belongs to closes it
// when the session ends.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>

#include "net/clock.hpp"

namespace speed::server {

class probe_connection {
  public:
    explicit probe_connection(asio::ip::tcp::socket socket);

    // Answers PINGs until the peer closes, sends something else, goes idle, or close() is called.
    static asio::awaitable<void> run(std::shared_ptr<probe_connection> self);
    // Ends the connection (the session it belongs to has ended). Control thread only.
    void close();

  private:
    static asio::awaitable<void> close_when_idle(std::shared_ptr<probe_connection> self);

    asio::ip::tcp::socket socket_;
    asio::steady_timer idle_timer_;
    net::clock::time_point last_activity_ = net::clock::now();
    bool finished_ = false;
};

}  // namespace speed::server
