// UDP tests (docs/protocol.md, "UDP tests"): the flows of one test created through the UDP listener's cookie
// handshake, then a paced download or an upload's receiver window with exact loss accounting.
#pragma once

#include <asio/any_io_executor.hpp>
#include <memory>

#include "net/io_pool.hpp"
#include "server/runners/test_runner.hpp"
#include "server/udp_session.hpp"

namespace speed::server {

// Where a UDP test's flows come from: the listener that passes them each stream's first HELLO, and the
// address the client must send from (the control connection's peer).
struct udp_runner_place {
    udp_listener& listener;
    asio::ip::address control_peer;
    udp_local local;
};

class udp_runner : public test_runner {
  public:
    udp_runner(asio::any_io_executor control, net::io_pool& data_pool, udp_runner_place place,
               runner_request request);
    ~udp_runner() override;

    const runner_request& request() const override { return request_; }
    test_setup open() override;
    bool attach_connection(std::size_t, asio::ip::tcp::socket) override { return false; }
    asio::awaitable<void> attach_all(test_events& events) override;
    void start() override;
    asio::awaitable<test_result> send(test_events& events) override;
    asio::awaitable<test_result> receive(test_events& events) override;
    asio::awaitable<void> finish() override { co_return; }
    bool hold_sending() override { return false; }
    void abort() override;
    udp_flow_counters flow_counters() const override;

  private:
    asio::any_io_executor control_;
    net::io_pool& data_pool_;
    udp_runner_place place_;
    runner_request request_;
    std::uint64_t token_ = 0;
    std::shared_ptr<udp_test_flows> flows_;
};

}  // namespace speed::server
