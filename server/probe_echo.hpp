// Latency probes: a connection of its own (TCP_NODELAY) on which every PING is answered with a PONG at once.
//
// Probe connections run on the probe echo's own thread (server/main.cpp), neither on the control thread nor
// on a data-plane thread: a saturated data plane or a busy control thread does not delay answers, and a PING
// flood does not slow the sessions. The loop reads whatever the socket has and answers every complete PING in
// it with one write; no timer is armed per probe (an idle watchdog closes a connection that sends nothing for
// a while), so an answer costs one read and one write system call. PINGs are rate-limited per connection
// (common/ping_limiter.hpp: over the rate they are dropped, and a connection that keeps it up is ended). The
// session the probe connection belongs to closes it when the session ends.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>

#include "common/ping_limiter.hpp"
#include "net/clock.hpp"

namespace speed::server {

// Moves `socket` (of the control context) onto `echo_context`, where its probe connection will run. A socket
// that cannot be moved comes back closed.
asio::ip::tcp::socket move_to_probe_echo(asio::ip::tcp::socket socket, asio::io_context& echo_context);

class probe_connection : public std::enable_shared_from_this<probe_connection> {
  public:
    // `socket` belongs to the probe echo's context (move_to_probe_echo).
    explicit probe_connection(asio::ip::tcp::socket socket);

    // Starts answering PINGs on the socket's own context until the peer closes, sends something else, goes
    // idle, floods, or close() is called.
    static void start(std::shared_ptr<probe_connection> self);
    // Ends the connection (the session it belongs to has ended). Any thread: the work is posted to the
    // connection's own context.
    void close();

  private:
    static asio::awaitable<void> run(std::shared_ptr<probe_connection> self);
    static asio::awaitable<void> close_when_idle(std::shared_ptr<probe_connection> self);
    void close_now();

    asio::ip::tcp::socket socket_;
    asio::steady_timer idle_timer_;
    net::clock::time_point last_activity_ = net::clock::now();
    ping_limiter limiter_;
    bool finished_ = false;
};

}  // namespace speed::server
