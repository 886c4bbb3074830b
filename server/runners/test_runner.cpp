#include "server/runners/test_runner.hpp"

#include <algorithm>

#include "common/test_timing.hpp"

namespace speed::server {

runner_request runner_request::for_test(const proto::test_request& test, const server_limits& limits,
                                        std::chrono::nanoseconds configured_stall) {
    const auto stall = stall_timeout_ns(sender_bitrate(test, limits), test.streams, configured_stall.count());
    return runner_request{test, limits, std::chrono::nanoseconds(stall)};
}

sender_stop_wait sender_stop_wait::of(const proto::test_request& test, const test_events& events) {
    const auto test_length = test_timing::of(test).length();
    const auto grace = std::max<std::chrono::milliseconds>(std::chrono::seconds(1), test_length);
    const auto now = net::clock::now();
    return {std::min(now + test_length + grace, now + events.stop_timeout()), grace};
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
