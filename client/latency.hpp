// Application-level round trips on the probe connection: PING out, PONG back, timed by the client's monotonic
// clock. The connection has TCP_NODELAY and carries nothing else.
#pragma once

#include <asio/awaitable.hpp>

#include "client/report.hpp"
#include "net/control_channel.hpp"

namespace speed::client {

// Sends `count` probes, one every `interval_seconds` (on a fixed schedule: a slow reply delays only the
// probes that queue behind it), and summarizes the round-trip times.
asio::awaitable<latency_report> measure_latency(net::control_channel& probe, unsigned count,
                                                double interval_seconds);

// Fills rtt and jitter_ms from rtt_ms.
void summarize_latency(latency_report& report);

}  // namespace speed::client
