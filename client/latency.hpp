// Application-level round trips on the probe connection: PING out, PONG back, timed by the client's monotonic
// clock. The connection has TCP_NODELAY, carries nothing else, and is served on the server's control thread.
//
// Probes leave on a fixed schedule whatever the replies do (a slow reply delays no later probe), so under
// load the series samples the queue at regular times instead of backing off when it grows. One reader takes
// every reply as soon as it arrives. The prober runs on the client's control thread, apart from the
// data-plane threads.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "client/report.hpp"

namespace speed::client {

class prober : public std::enable_shared_from_this<prober> {
  public:
    // `socket` is connected and its HELLO sent. Call start() once before any series.
    explicit prober(asio::ip::tcp::socket socket);
    void start();
    void close();

    // Sends `count` probes `interval` apart and waits for their replies (at most a few seconds after the
    // last).
    asio::awaitable<latency_report> measure(unsigned count, std::chrono::nanoseconds interval);

    // Probes every `interval` in the background until stop_background(), which returns the series. For loaded
    // latency: the test runs while the series samples. Probes sent before `count_from` go out (the schedule
    // stays regular) but are not counted.
    void start_background(std::chrono::nanoseconds interval,
                          std::chrono::steady_clock::time_point count_from);
    asio::awaitable<latency_report> stop_background();

  private:
    struct series;
    static asio::awaitable<void> read_replies(std::shared_ptr<prober> self);
    static asio::awaitable<void> run_series(std::shared_ptr<prober> self, std::shared_ptr<series> s);
    void wake_series();

    asio::ip::tcp::socket socket_;
    asio::steady_timer reply_signal_;  // cancelled whenever a reply arrives or the reader fails
    std::shared_ptr<series> current_;
    std::uint32_t next_sequence_ = 0;
    std::optional<std::string> failure_;  // why the reader stopped
};

// Fills rtt and jitter_ms from rtt_ms.
void summarize_latency(latency_report& report);

// The probes of `report` that were sent within `span` (answered and lost), summarized again.
latency_report only_sent_in(const latency_report& report, latency::time_span span);

}  // namespace speed::client
