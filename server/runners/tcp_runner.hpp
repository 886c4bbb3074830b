// TCP tests: the test's data connections (net::stream_group), paced sending with the server's watchdogs and
// byte cap, and the receiver window of an upload with the server's self probes.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include "common/progress_watchdog.hpp"
#include "net/io_pool.hpp"
#include "net/receiver_window.hpp"
#include "net/stream_group.hpp"
#include "server/runners/test_runner.hpp"

namespace speed::server {

class tcp_runner : public test_runner {
  public:
    tcp_runner(asio::any_io_executor control, net::io_pool& data_pool, runner_request request);

    const runner_request& request() const override { return request_; }
    test_setup open() override;
    bool attach_connection(std::size_t index, asio::ip::tcp::socket socket) override;
    asio::awaitable<void> attach_all(test_events& events) override;
    void start() override;
    asio::awaitable<test_result> send(test_events& events) override;
    asio::awaitable<test_result> receive(test_events& events) override;
    asio::awaitable<void> finish() override;
    bool hold_sending() override;
    void abort() override;
    udp_flow_counters flow_counters() const override { return {}; }

  private:
    // Forwards self probe marks and watches the sender (stall, byte cap) until the client has input.
    asio::awaitable<void> watch_sending_until_input(test_events& events);
    // The receiver window; clears `window_open` when it ends, however it ends.
    asio::awaitable<measure::totals> measure_window(test_events& events, bool& window_open);
    // The receiver window of an upload that ends at the client's stop (runner_request::window_ends_at_stop).
    asio::awaitable<measure::totals> measure_until_stop(test_events& events);
    // After the client's stop: reads until the streams hold at least least_bytes after the warm-up (the
    // counters at its end are `in_warm_up`) and then go quiet.
    asio::awaitable<void> drain_after_stop(const net::receiver_watch& watch, progress_watchdog& watchdog,
                                           std::int64_t time_zero_ns,
                                           const std::vector<std::uint64_t>& in_warm_up,
                                           std::vector<std::uint64_t>& counters);
    // Reads the client's self probe marks while `window_open` and hands them to the streams.
    asio::awaitable<void> read_self_probe_marks(test_events& events, const bool& window_open);

    runner_request request_;
    net::io_pool& data_pool_;
    net::stream_group group_;
    asio::steady_timer attach_timer_;             // cancelled whenever a data connection attaches
    std::int64_t started_ns_ = 0;                 // when start() started the streams
    std::vector<std::uint64_t> sent_in_warm_up_;  // a download's counters when its warm-up ended
};

}  // namespace speed::server
