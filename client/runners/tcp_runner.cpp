// One direction of a TCP test (docs/protocol.md, "A test"): the client's data connections carry the load; the
// client measures a download, the server an upload, each with its self probes on the load connections.
#include <fmt/format.h>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <exception>

#include "client/connect.hpp"
#include "client/runners/direction_runner.hpp"
#include "common/measurement.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/receiver_window.hpp"
#include "net/stream_group.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using asio::ip::tcp;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kReplyTimeout;
using proto::kResultsTimeout;

// The download's self probes (application round trips on the load connections), from `since_ns` on.
void fill_self_probes(direction_report& report, const net::stream_group& group, std::int64_t since_ns) {
    report.self_probes_sent = group.self_probes_sent();
    report.self_probes_dropped = group.self_probes_dropped();
    for (const auto& sample : group.self_probe_samples(since_ns)) {
        report.self_probe_sent_ns.push_back(sample.sent_ns);
        report.self_probe_rtt_ms.push_back(static_cast<double>(sample.rtt_ns) / 1e6);
    }
}

// An upload's self probes as the server timed them (SELF_PROBE_SAMPLES): their send times count from
// STREAMS_READY, placed on the client's clock at `ready_ns`, when the client read it (docs/methodology.md).
void fill_upload_self_probes(direction_report& report, const proto::self_probe_samples& samples,
                             std::int64_t ready_ns) {
    report.self_probes_sent = samples.sent;
    report.self_probes_dropped = samples.dropped;
    for (const auto& sample : samples.samples) {
        report.self_probe_sent_ns.push_back(ready_ns + std::int64_t{sample.sent_us} * 1000);
        report.self_probe_rtt_ms.push_back(sample.rtt_us / 1000.0);
    }
}

// Rethrows `failed`, unless it is a local failure (a data connection reset, say) and the server's ERROR that
// explains it arrives within a short grace: the server writes ERROR on the control connection and then closes
// the test's data connections, and the reset can overtake the ERROR (seen under AddressSanitizer). The grace
// is a deadline of ours; messages before the ERROR (self probe marks) are skipped until it passes.
asio::awaitable<void> rethrow_preferring_server_error(net::control_channel& control,
                                                      std::exception_ptr failed) {
    constexpr auto kServerReasonGrace = 250ms;
    bool local_failure = false;
    try {
        std::rethrow_exception(failed);
    } catch (const session_error& e) {
        local_failure = !e.from_peer();
    } catch (...) {
    }
    if (local_failure) {
        const auto deadline = clock::now() + kServerReasonGrace;
        std::exception_ptr server_error;
        try {
            while (clock::now() < deadline) {
                co_await control.read(deadline, "the server's reason");
            }
        } catch (const session_error& e) {
            if (e.from_peer()) {
                server_error = std::current_exception();
            }
        }
        if (server_error) {
            std::rethrow_exception(server_error);
        }
    }
    std::rethrow_exception(failed);
}

class tcp_runner final : public direction_runner {
  public:
    explicit tcp_runner(runner_session& session) : session_(session) {}

    proto::test_request request_for(const test_options& options, proto::direction dir) const override {
        return tcp_request_for(options, dir);
    }

  private:
    // Opens the test's data connections and moves them onto the data-plane threads.
    asio::awaitable<void> open_streams(const proto::test_request& request, net::stream_group& group,
                                       std::uint32_t test_id, direction_report& report) {
        for (std::uint16_t index = 0; index < group.size(); ++index) {
            tcp::socket socket =
                co_await connect(session_.server, session_.connect_timeout_seconds, session_.sockets, index);
            report.stream_sockets.push_back(
                net::read_socket(socket.native_handle(), session_.server.address().is_v6()));
            net::control_channel channel(std::move(socket));
            const proto::hello hello =
                make_hello(proto::connection_kind::data, session_.token, test_id, index);
            co_await channel.write(hello, clock::now() + kReplyTimeout);
            group.attach(index, channel.release_socket(), session_.data_pool.next());
        }
        if (auto failure = group.set_congestion(request.congestion)) {
            throw session_error(proto::error_code::unsupported, *failure);
        }
    }

    // Sends the request, opens its data connections and waits until the server has them all.
    asio::awaitable<void> set_up(const proto::test_request& request, net::stream_group& group,
                                 direction_report& report) {
        auto& control = session_.control;
        co_await send_test_request(control, session_.auth, request, clock::now() + kReplyTimeout);
        const auto accept =
            co_await control.expect<proto::test_accept>(clock::now() + kReplyTimeout, "TEST_ACCEPT");
        report.congestion = accept.congestion;
        report.server_cap_bits_per_second = server_rate_cap(request, session_.server_caps);
        co_await open_streams(request, group, accept.test_id, report);
        if (request.dir == proto::direction::download) {
            // Read from the start so the first byte's timestamp is when it arrived, not when we got round to
            // it.
            group.start_receiving(net::stream_group::kDefaultSelfProbeInterval);
        }
        co_await control.expect<proto::streams_ready>(clock::now() + kReplyTimeout, "STREAMS_READY");
    }

    static asio::awaitable<void> record_interval(direction_events& events, direction_report& report,
                                                 measure::interval closed) {
        report.intervals.push_back(to_report(closed));
        events.interval(report.intervals.back());
        co_return;
    }

    // A download's receiver window, then STOP: the part of the test that runs beside
    // relay_self_probe_marks(). Once STOP is out, the SENDER_REPORT is due within kResultsTimeout
    // (`report_deadline`).
    asio::awaitable<measure::totals> measure_download_then_stop(const proto::test_request& request,
                                                                net::stream_group& group,
                                                                direction_events& events,
                                                                direction_report& report,
                                                                clock::time_point& report_deadline) {
        auto& control = session_.control;
        const measure::totals totals = co_await net::measure_receiver_window(
            group, test_timing::of(request).plan(), clock::now() + kFirstByteTimeout,
            [&events, &report](const measure::interval& closed) {
                return record_interval(events, report, closed);
            });
        const proto::stop stop{proto::stop_reason::window_complete};
        co_await control.write(stop, clock::now() + kResultsTimeout);
        report_deadline = clock::now() + kResultsTimeout;
        group.stop_all();
        co_await events.window_closed(report);
        co_return totals;
    }

    // While a download runs the server sends SELF_PROBE_MARKs (docs/protocol.md, "Self probes"); they go to
    // the streams as they come, until the SENDER_REPORT that follows STOP, due by `report_deadline` (which
    // measure_download_then_stop() brings forward when it sends STOP).
    asio::awaitable<proto::sender_report> relay_self_probe_marks(net::stream_group& group,
                                                                 const clock::time_point& report_deadline) {
        constexpr auto kDeadlineCheck = 100ms;
        auto& control = session_.control;
        for (;;) {
            // GCC 12: no initializer list inside a co_await expression.
            const auto wake = std::min(report_deadline, clock::now() + kDeadlineCheck);
            if (!co_await control.wait_readable(wake)) {
                if (clock::now() >= report_deadline) {
                    throw session_error(proto::error_code::timeout,
                                        "timed out waiting for the server's SENDER_REPORT");
                }
                continue;
            }
            proto::message msg = co_await control.read(report_deadline, "the server's SENDER_REPORT");
            if (auto* mark = std::get_if<proto::self_probe_mark>(&msg)) {
                if (!group.on_self_probe_mark(*mark)) {
                    throw session_error(proto::error_code::protocol_error,
                                        fmt::format("SELF_PROBE_MARK names stream {} of a {}-stream test",
                                                    mark->stream_index, group.size()));
                }
                continue;
            }
            if (auto* sender = std::get_if<proto::sender_report>(&msg)) {
                co_return std::move(*sender);
            }
            throw net::control_channel::unexpected(msg, "the server's SENDER_REPORT");
        }
    }

    asio::awaitable<void> download(const proto::test_request& request, direction_events& events,
                                   direction_report& report) override {
        using namespace asio::experimental::awaitable_operators;
        net::stream_group group(co_await asio::this_coro::executor, request.streams);
        co_await set_up(request, group, report);
        events.ready(report);
        const std::int64_t started_ns = net::now_ns();

        clock::time_point report_deadline = clock::now() + test_timing::of(request).client_stop_wait();
        // Without first_failure a server's ERROR read by the relay would show as "multiple exceptions" (the
        // measurement's cancellation fails too).
        net::first_failure failure;
        std::tuple<measure::totals, proto::sender_report> results;
        std::exception_ptr failed;
        try {
            results = co_await (
                net::noting_failure(
                    measure_download_then_stop(request, group, events, report, report_deadline), failure) &&
                net::noting_failure(relay_self_probe_marks(group, report_deadline), failure));
        } catch (...) {
            failed = failure.first() ? failure.first() : std::current_exception();
        }
        if (failed) {
            co_await rethrow_preferring_server_error(session_.control, failed);
        }
        auto& [totals, sender] = results;
        fill_totals(report, totals);
        fill_sender(report, sender.streams);
        report.in_band_rtt_ms = units::us_to_ms(sender.rtt_samples_us);
        co_await group.wait_all_ended(clock::now() + kResultsTimeout);
        fill_self_probes(report, group, started_ns);
    }

    // While an upload runs the server reports each interval, then STOP when its window has closed. Meanwhile
    // the client answers the server's self probes (docs/protocol.md, "Self probes") with SELF_PROBE_MARKs;
    // none goes out after STOP is read, so none follows the SENDER_REPORT.
    asio::awaitable<void> watch_upload_until_stop(const proto::test_request& request,
                                                  net::stream_group& group, direction_events& events,
                                                  direction_report& report) {
        constexpr auto kMarkInterval = 10ms;
        auto& control = session_.control;
        const auto stop_deadline = clock::now() + test_timing::of(request).client_stop_wait();
        for (;;) {
            const auto marks = group.take_self_probe_marks();
            for (const auto& mark : marks) {
                co_await control.write(mark, clock::now() + kResultsTimeout);
            }
            // GCC 12: no initializer list inside a co_await expression.
            const auto wake = std::min(stop_deadline, clock::now() + kMarkInterval);
            if (!co_await control.wait_readable(wake)) {
                if (clock::now() >= stop_deadline) {
                    throw session_error(proto::error_code::timeout,
                                        "timed out waiting for the server's STOP");
                }
                continue;
            }
            proto::message msg = co_await control.read(stop_deadline, "the server's STOP");
            if (auto* interval = std::get_if<proto::interval_report>(&msg)) {
                measure::interval closed;
                closed.index = interval->index;
                closed.start_ns = static_cast<std::int64_t>(interval->start_ns);
                closed.end_ns = static_cast<std::int64_t>(interval->end_ns);
                closed.omitted = interval->omitted;
                closed.stream_bytes = interval->stream_bytes;
                co_await record_interval(events, report, std::move(closed));
                continue;
            }
            if (std::holds_alternative<proto::stop>(msg)) {
                co_return;
            }
            throw net::control_channel::unexpected(msg, "the server's STOP");
        }
    }

    asio::awaitable<void> upload(const proto::test_request& request, direction_events& events,
                                 direction_report& report) override {
        auto& control = session_.control;
        net::stream_group group(co_await asio::this_coro::executor, request.streams);
        co_await set_up(request, group, report);
        const std::int64_t ready_ns = net::now_ns();  // the server's self probe times count from here
        co_await events.load_may_start();
        // Paced to the server's caps (WELCOME) when they are tighter than the request's bitrate: the server
        // ends an upload that arrives faster than they allow.
        group.start_sending(
            per_stream_pacing(sender_bitrate(request, session_.server_caps), request.streams));
        group.answer_self_probes();
        events.ready(report);

        co_await watch_upload_until_stop(request, group, events, report);
        group.stop_all();
        co_await events.window_closed(report);
        co_await group.wait_all_ended(clock::now() + kResultsTimeout);
        const proto::sender_report sent{group.sender_stats(), {}};
        co_await control.write(sent, clock::now() + kResultsTimeout);
        // A server that probed and got answers reports the self probes first.
        proto::message msg =
            co_await control.read(clock::now() + kResultsTimeout, "the server's RECEIVER_REPORT");
        if (auto* samples = std::get_if<proto::self_probe_samples>(&msg)) {
            fill_upload_self_probes(report, *samples, ready_ns);
            msg = co_await control.read(clock::now() + kResultsTimeout, "the server's RECEIVER_REPORT");
        }
        auto* received = std::get_if<proto::receiver_report>(&msg);
        if (received == nullptr) {
            throw net::control_channel::unexpected(msg, "the server's RECEIVER_REPORT");
        }
        if (received->stream_bytes.size() != request.streams) {
            throw session_error(proto::error_code::protocol_error,
                                "RECEIVER_REPORT has the wrong number of streams");
        }
        measure::totals totals;
        totals.window_ns = static_cast<std::int64_t>(received->window_ns);
        totals.omitted_ns = static_cast<std::int64_t>(received->omitted_ns);
        totals.omitted_bytes = received->omitted_bytes;
        totals.stream_bytes = received->stream_bytes;
        fill_totals(report, totals);
        fill_sender(report, sent.streams);
        const auto warm_up_ns = std::chrono::nanoseconds(test_timing::of(request).warm_up).count();
        report.in_band_rtt_ms = units::us_to_ms(group.rtt_samples_us(ready_ns + warm_up_ns));
    }

    runner_session& session_;
};

}  // namespace

std::unique_ptr<direction_runner> make_tcp_runner(runner_session& session) {
    return std::make_unique<tcp_runner>(session);
}

}  // namespace speed::client
