#include "client/runners/direction_runner.hpp"

namespace speed::client {

asio::awaitable<direction_report> direction_runner::run(const proto::test_request& request,
                                                        direction_events& events) {
    direction_report report;
    report.dir = request.dir;
    const bool download_test = request.dir == proto::direction::download;
    report.measured_by = download_test ? "client" : "server";  // the receiver measures
    if (download_test) {
        co_await download(request, events, report);
    } else {
        co_await upload(request, events, report);
    }
    events.result(report);
    co_return report;
}

}  // namespace speed::client
