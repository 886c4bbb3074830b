// Latency probes: a connection of its own (TCP_NODELAY) on which every PING is answered with a PONG at once.
//
// It runs on the control thread, never on a data-plane thread, so a saturated data plane does not delay
// answers. The loop reads whatever the socket has and answers every complete PING in it with one write; no
// timer is armed per probe (an idle watchdog closes a connection that sends nothing for a while), so an
// answer costs one read and one write system call.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

namespace speed::server {

asio::awaitable<void> run_probe_echo(asio::ip::tcp::socket socket);

}  // namespace speed::server
