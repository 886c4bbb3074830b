#include "client/latency.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cmath>

namespace speed::client {

using asio::experimental::as_tuple;
using net::clock;

namespace {
// A TCP probe cannot be lost, only late; this bounds how late before the test gives up.
constexpr auto kProbeReplyTimeout = std::chrono::seconds(5);
}  // namespace

void summarize_latency(latency_report& report) {
    report.rtt = stats::summarize(report.rtt_ms);
    report.jitter_ms = stats::mean_consecutive_difference(report.rtt_ms);
}

asio::awaitable<latency_report> measure_latency(net::control_channel& probe, unsigned count,
                                                double interval_seconds) {
    latency_report report;
    asio::steady_timer pacer(probe.socket().get_executor());
    const auto start = clock::now();
    const auto interval =
        std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(interval_seconds * 1e9)));
    for (std::uint32_t sequence = 0; sequence < count; ++sequence) {
        const auto scheduled = start + interval * sequence;
        if (clock::now() < scheduled) {
            pacer.expires_at(scheduled);
            co_await pacer.async_wait(as_tuple(asio::use_awaitable));
        }
        const std::int64_t sent_ns = net::now_ns();
        const proto::ping request{sequence, static_cast<std::uint64_t>(sent_ns)};
        co_await probe.write(request, clock::now() + kProbeReplyTimeout);
        ++report.sent;
        const auto reply = co_await probe.expect<proto::pong>(clock::now() + kProbeReplyTimeout, "a PONG");
        const std::int64_t received_ns = net::now_ns();
        if (reply.sequence != sequence || reply.client_time_ns != static_cast<std::uint64_t>(sent_ns)) {
            throw net::session_error(proto::error_code::protocol_error, "a PONG did not match its PING");
        }
        report.rtt_ms.push_back(static_cast<double>(received_ns - sent_ns) / 1e6);
    }
    summarize_latency(report);
    co_return report;
}

}  // namespace speed::client
