// iperf3 UDP tests (`iperf3 -u`, with -R): iperf3's own data path (common/iperf3_udp.hpp), not speedsrv's
// flows. Each stream opens with the client's 4-byte connect datagram at the shared UDP port, passed by the
// listener only from the control connection's IP address and only while this test waits for its streams; the
// stream's socket is connected to where the connect came from and answers with the 4-byte reply (1:1).
// An upload counts on the server's clock, in the test's window from the first datagram, with iperf3's
// receiver accounting; a download (-R) paces iperf3's datagrams at the client's -b, never above the server's
// UDP cap, to that address:port only. With --bidir one runner has both: the client connects its P sending
// streams first and then its P receiving ones (iperf3 3.12 and 3.21, iperf_create_streams), so the first P
// connects are received here and the next P sent to; receive() and send() run at once, each stopping only its
// own streams.
#pragma once

#include <asio/any_io_executor.hpp>
#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "net/io_pool.hpp"
#include "server/runners/test_runner.hpp"
#include "server/runners/udp_runner.hpp"

namespace speed::server {

class iperf3_udp_runner : public test_runner {
  public:
    // Which of the test's streams the runner receives on and which it sends on.
    enum class stream_roles { by_direction, both_ways };
    iperf3_udp_runner(asio::any_io_executor control, net::io_pool& data_pool, udp_runner_place place,
                      runner_request request, bool counters_64bit,
                      stream_roles roles = stream_roles::by_direction);
    ~iperf3_udp_runner() override;

    const runner_request& request() const override { return request_; }
    test_setup open() override;
    bool attach_connection(std::size_t, asio::ip::tcp::socket) override { return false; }
    asio::awaitable<void> attach_all(test_events& events) override;
    void start() override;
    asio::awaitable<test_result> send(test_events& events) override;
    asio::awaitable<test_result> receive(test_events& events) override;
    asio::awaitable<void> finish() override { co_return; }
    bool hold_sending() override;
    void abort() override;
    udp_flow_counters flow_counters() const override { return {}; }

    struct stream;  // one stream's socket and figures, shared with its loop on a data thread
    struct shared;  // what the streams share: the window, the stop flag
    class connects;

  private:
    using stream_list = std::span<const std::shared_ptr<stream>>;
    stream_list receiving() const;
    stream_list sending() const;
    // Stops the loops of `streams` (`stop` is their flag) and waits until each has left its figures (or
    // `deadline`).
    asio::awaitable<void> stop_streams(stream_list streams, std::atomic<bool>& stop,
                                       net::clock::time_point deadline);

    asio::any_io_executor control_;
    udp_runner_place place_;
    runner_request request_;
    // The first `receivers_` streams to connect are received on, the next `senders_` sent on.
    std::uint32_t receivers_ = 0;
    std::uint32_t senders_ = 0;
    std::shared_ptr<shared> shared_;
    std::shared_ptr<connects> connects_;
};

}  // namespace speed::server
