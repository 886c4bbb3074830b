// Latency probes: a connection of its own (TCP_NODELAY) on which every PING is answered with a PONG at once.
// It runs on the control thread, never on a data-plane thread, so a saturated data plane does not delay
// answers.
#pragma once

#include <asio/awaitable.hpp>

#include "net/control_channel.hpp"

namespace speed::server {

asio::awaitable<void> run_probe_echo(net::control_channel channel);

}  // namespace speed::server
