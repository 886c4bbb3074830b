#include "server/runners/test_runner.hpp"

namespace speed::server {

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
