#include "server/runners/test_runner.hpp"

namespace speed::server {

runner_request runner_request::for_test(const proto::test_request& test, const server_limits& limits,
                                        std::chrono::nanoseconds configured_stall) {
    const auto stall = stall_timeout_ns(sender_bitrate(test, limits), test.streams, configured_stall.count());
    return runner_request{test, limits, std::chrono::nanoseconds(stall)};
}

asio::awaitable<test_result> run_test(test_runner& runner, test_events& events) {
    const test_setup setup = runner.open();
    co_await events.accepted(setup);
    co_await runner.attach_all(events);
    runner.start();
    co_await events.ready();
    test_result result;
    if (runner.request().test.dir == proto::direction::download) {
        result = co_await runner.send(events);
    } else {
        result = co_await runner.receive(events);
    }
    co_await events.result(result);
    co_await runner.finish();
    co_return result;
}

}  // namespace speed::server
