#include "client/test_run.hpp"

#include <fmt/format.h>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

#include "client/auth.hpp"
#include "client/exit_codes.hpp"
#include "client/latency.hpp"
#include "client/udp_run.hpp"
#include "common/limits.hpp"
#include "common/measurement.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/control_channel.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/io_pool.hpp"
#include "net/receiver_window.hpp"
#include "net/socket_options.hpp"
#include "net/stream_group.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using asio::ip::tcp;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kReplyTimeout;
using proto::kResultsTimeout;

// Reaching the server failed: name resolution, refusal, connect timeout.
class unreachable_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

std::string describe(const tcp::endpoint& endpoint) {
    return endpoint.address().to_string() + " port " + std::to_string(endpoint.port());
}

// Passes every event on, and notes when (this client's monotonic clock) the receiver's interval reports
// arrived: the receiver's window on the clock the latency probes use. The loaded-latency series runs around
// the setup and the drain too (for UDP tests, around the handshakes); the figures use only its window.
class window_marks final : public progress_sink {
  public:
    explicit window_marks(progress_sink& inner) : inner_(inner) {}
    void connected(const test_report& report) override { inner_.connected(report); }
    void idle_latency_done(const latency_report& latency) override { inner_.idle_latency_done(latency); }
    void direction_started(proto::direction dir, const direction_report& report) override {
        first_report_ns_ = 0;
        last_report_ns_ = 0;
        inner_.direction_started(dir, report);
    }
    void interval_done(proto::direction dir, const interval_report& interval) override {
        const std::int64_t now = net::now_ns();
        if (first_report_ns_ == 0) {
            first_report_ns_ = now;
            first_end_seconds_ = interval.end_seconds;
        }
        last_report_ns_ = now;
        inner_.interval_done(dir, interval);
    }
    void direction_done(const direction_report& report) override { inner_.direction_done(report); }

    // The window after `omitted_seconds` of warm-up: the receiver's time 0 is the first report's arrival
    // minus that interval's end (for uploads the reports travel one way to us first: the window ends late
    // by that one-way delay). Nothing before a report came.
    std::optional<latency::time_span> window(double omitted_seconds) const {
        if (first_report_ns_ == 0) {
            return std::nullopt;
        }
        const std::int64_t zero = first_report_ns_ - units::seconds_to_ns(first_end_seconds_).count();
        return latency::time_span{zero + units::seconds_to_ns(omitted_seconds).count(), last_report_ns_};
    }

  private:
    progress_sink& inner_;
    std::int64_t first_report_ns_ = 0;
    double first_end_seconds_ = 0.0;
    std::int64_t last_report_ns_ = 0;
};

// Everything one run shares, passed by reference to the phase coroutines.
struct run_state {
    const test_options& options;
    window_marks& progress;
    test_report& report;
    net::io_pool& data_pool;
    tcp::endpoint server;
    proto::session_token token{};
    std::shared_ptr<prober> probes;  // the latency probe connection, when probes were asked for
    client_auth auth;                // client/auth.hpp
    server_limits server_caps;       // from WELCOME: uploads are paced to fit them
};

asio::awaitable<std::vector<tcp::endpoint>> resolve(const test_options& options) {
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    const std::string service = std::to_string(options.port);
    auto flags = tcp::resolver::numeric_service;
    asio::error_code ec;
    tcp::resolver::results_type results;
    switch (options.family) {
        case address_family::ipv4:
            std::tie(ec, results) = co_await resolver.async_resolve(tcp::v4(), options.host, service, flags,
                                                                    as_tuple(asio::use_awaitable));
            break;
        case address_family::ipv6:
            std::tie(ec, results) = co_await resolver.async_resolve(tcp::v6(), options.host, service, flags,
                                                                    as_tuple(asio::use_awaitable));
            break;
        case address_family::any:
            std::tie(ec, results) =
                co_await resolver.async_resolve(options.host, service, flags, as_tuple(asio::use_awaitable));
            break;
    }
    if (ec || results.empty()) {
        throw unreachable_error("cannot resolve '" + options.host +
                                "': " + (ec ? ec.message() : std::string("no addresses")));
    }
    std::vector<tcp::endpoint> endpoints;
    for (const auto& entry : results) {
        endpoints.push_back(entry.endpoint());
    }
    co_return endpoints;
}

asio::awaitable<tcp::socket> connect(const tcp::endpoint& endpoint, double timeout_seconds) {
    using namespace asio::experimental::awaitable_operators;
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
    asio::steady_timer timer(executor, std::chrono::milliseconds(units::seconds_to_wire_ms(timeout_seconds)));
    auto result = co_await (socket.async_connect(endpoint, as_tuple(asio::use_awaitable)) ||
                            timer.async_wait(as_tuple(asio::use_awaitable)));
    if (result.index() == 1) {
        throw unreachable_error("connecting to " + describe(endpoint) + " timed out after " +
                                units::format_milliseconds(timeout_seconds * 1000.0));
    }
    if (auto [ec] = std::get<0>(result); ec) {
        throw unreachable_error("cannot connect to " + describe(endpoint) + ": " + ec.message());
    }
    co_return socket;
}

// Tries each address a name resolved to, in order, and keeps the first that accepts (e.g. IPv6 then IPv4).
asio::awaitable<tcp::socket> connect_first(const std::vector<tcp::endpoint>& endpoints,
                                           const test_options& options, tcp::endpoint& connected) {
    std::string failures;
    for (const auto& endpoint : endpoints) {
        try {
            tcp::socket socket = co_await connect(endpoint, options.connect_timeout_seconds);
            connected = endpoint;
            co_return socket;
        } catch (const unreachable_error& e) {
            failures += failures.empty() ? e.what() : std::string("; ") + e.what();
        }
    }
    throw unreachable_error(failures);
}

proto::hello make_hello(proto::connection_kind kind, const proto::session_token& token,
                        std::uint32_t test_id = 0, std::uint16_t stream_index = 0) {
    proto::hello hello;
    hello.kind = kind;
    hello.token = token;
    hello.test_id = test_id;
    hello.stream_index = stream_index;
    hello.software = std::string("speedcli ") + SPEED_VERSION;
    return hello;
}

interval_report to_report(const measure::interval& closed) {
    interval_report entry;
    entry.start_seconds = units::ns_to_seconds(closed.start_ns);
    entry.end_seconds = units::ns_to_seconds(closed.end_ns);
    entry.bytes = closed.bytes();
    entry.bits_per_second = closed.bits_per_second();
    entry.omitted = closed.omitted;
    entry.stream_bytes = closed.stream_bytes;
    return entry;
}

void fill_totals(direction_report& report, const measure::totals& totals) {
    report.seconds = totals.seconds();
    report.bytes = totals.bytes();
    report.bits_per_second = totals.bits_per_second();
    report.omitted_seconds = units::ns_to_seconds(totals.omitted_ns);
    report.omitted_bytes = totals.omitted_bytes;
    report.streams.resize(totals.stream_bytes.size());
    for (std::size_t i = 0; i < totals.stream_bytes.size(); ++i) {
        report.streams[i].bytes = totals.stream_bytes[i];
        report.streams[i].bits_per_second = units::bits_per_second(totals.stream_bytes[i], report.seconds);
    }
}

void fill_sender(direction_report& report, const std::vector<proto::stream_sender_stats>& sender) {
    report.streams.resize(std::max(report.streams.size(), sender.size()));
    report.sender_bytes = 0;
    report.retransmits = 0;
    report.sender_has_tcp_info = !sender.empty();
    for (std::size_t i = 0; i < sender.size(); ++i) {
        report.streams[i].sender = sender[i];
        report.sender_bytes += sender[i].bytes_sent;
        report.retransmits += sender[i].retransmits;
        report.sender_has_tcp_info = report.sender_has_tcp_info && sender[i].has_tcp_info;
    }
}

// Opens the test's data connections and moves them onto the data-plane threads.
asio::awaitable<void> open_streams(run_state& run, net::stream_group& group, std::uint32_t test_id) {
    for (std::uint16_t index = 0; index < group.size(); ++index) {
        tcp::socket socket = co_await connect(run.server, run.options.connect_timeout_seconds);
        net::control_channel channel(std::move(socket));
        const proto::hello hello = make_hello(proto::connection_kind::data, run.token, test_id, index);
        co_await channel.write(hello, clock::now() + kReplyTimeout);
        group.attach(index, channel.release_socket(), run.data_pool.next());
    }
    if (auto failure = group.set_congestion(run.options.congestion)) {
        throw session_error(proto::error_code::unsupported, *failure);
    }
}

// Asks for a test in `dir`, opens its data connections and waits until the server has them all.
asio::awaitable<void> set_up_test(run_state& run, net::control_channel& control, net::stream_group& group,
                                  direction_report& report) {
    const proto::test_request request = tcp_request_for(run.options, report.dir);
    co_await send_test_request(control, run.auth, request, clock::now() + kReplyTimeout);
    const auto accept =
        co_await control.expect<proto::test_accept>(clock::now() + kReplyTimeout, "TEST_ACCEPT");
    report.congestion = accept.congestion;
    report.server_cap_bits_per_second = server_rate_cap(request, run.server_caps);
    co_await open_streams(run, group, accept.test_id);
    if (report.dir == proto::direction::download) {
        // Read from the start so the first byte's timestamp is when it arrived, not when we got round to it.
        group.start_receiving(net::stream_group::kDefaultSelfProbeInterval);
    }
    co_await control.expect<proto::streams_ready>(clock::now() + kReplyTimeout, "STREAMS_READY");
}

// Loaded latency: probes run on their own connection while the direction's load runs. Only probes sent after
// the warm-up count, so slow start does not flatter the figure.
void start_loaded_probes(run_state& run) {
    if (run.probes && run.options.loaded_ping_interval_seconds > 0) {
        run.probes->start_background(units::seconds_to_ns(run.options.loaded_ping_interval_seconds),
                                     clock::now() + units::seconds_to_ns(run.options.omit_seconds));
    }
}

asio::awaitable<void> stop_loaded_probes(run_state& run, direction_report& report) {
    if (run.probes && run.options.loaded_ping_interval_seconds > 0) {
        report.latency = co_await run.probes->stop_background();
    }
}

asio::awaitable<void> record_interval(run_state& run, direction_report& report, measure::interval closed) {
    report.intervals.push_back(to_report(closed));
    run.progress.interval_done(report.dir, report.intervals.back());
    co_return;
}

// A download's receiver window, then STOP: the part of the test that runs beside relay_self_probe_marks().
// Once STOP is out, the SENDER_REPORT is due within kResultsTimeout (`report_deadline`).
asio::awaitable<measure::totals> measure_download_then_stop(run_state& run, net::control_channel& control,
                                                            net::stream_group& group,
                                                            direction_report& report,
                                                            clock::time_point& report_deadline) {
    const measure::totals totals = co_await net::measure_receiver_window(
        group, test_timing::of(tcp_request_for(run.options, report.dir)).plan(),
        clock::now() + kFirstByteTimeout,
        [&run, &report](const measure::interval& closed) { return record_interval(run, report, closed); });
    const proto::stop stop{proto::stop_reason::window_complete};
    co_await control.write(stop, clock::now() + kResultsTimeout);
    report_deadline = clock::now() + kResultsTimeout;
    group.stop_all();
    co_await stop_loaded_probes(run, report);
    co_return totals;
}

// While a download runs the server sends SELF_PROBE_MARKs (docs/protocol.md, "Self probes"); they go to the
// streams as they come, until the SENDER_REPORT that follows STOP, due by `report_deadline` (which
// measure_download_then_stop() brings forward when it sends STOP).
asio::awaitable<proto::sender_report> relay_self_probe_marks(net::control_channel& control,
                                                             net::stream_group& group,
                                                             const clock::time_point& report_deadline) {
    constexpr auto kDeadlineCheck = 100ms;
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

// The download's self probes (application round trips on the load connections), from `since_ns` on.
void fill_self_probes(direction_report& report, const net::stream_group& group, std::int64_t since_ns) {
    report.self_probes_sent = group.self_probes_sent();
    report.self_probes_dropped = group.self_probes_dropped();
    for (const auto& sample : group.self_probe_samples(since_ns)) {
        report.self_probe_sent_ns.push_back(sample.sent_ns);
        report.self_probe_rtt_ms.push_back(static_cast<double>(sample.rtt_ns) / 1e6);
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

asio::awaitable<void> run_download(run_state& run, net::control_channel& control, direction_report& report) {
    using namespace asio::experimental::awaitable_operators;
    const auto& options = run.options;
    net::stream_group group(co_await asio::this_coro::executor, options.streams);
    co_await set_up_test(run, control, group, report);
    run.progress.direction_started(proto::direction::download, report);
    const std::int64_t started_ns = net::now_ns();
    start_loaded_probes(run);

    clock::time_point report_deadline =
        clock::now() + test_timing::of(tcp_request_for(options, report.dir)).client_stop_wait();
    // Without first_failure a server's ERROR read by the relay would show as "multiple exceptions" (the
    // measurement's cancellation fails too).
    net::first_failure failure;
    std::tuple<measure::totals, proto::sender_report> results;
    std::exception_ptr failed;
    try {
        results = co_await (
            net::noting_failure(measure_download_then_stop(run, control, group, report, report_deadline),
                                failure) &&
            net::noting_failure(relay_self_probe_marks(control, group, report_deadline), failure));
    } catch (...) {
        failed = failure.first() ? failure.first() : std::current_exception();
    }
    if (failed) {
        co_await rethrow_preferring_server_error(control, failed);
    }
    auto& [totals, sender] = results;
    fill_totals(report, totals);
    fill_sender(report, sender.streams);
    report.in_band_rtt_ms = units::us_to_ms(sender.rtt_samples_us);
    co_await group.wait_all_ended(clock::now() + kResultsTimeout);
    fill_self_probes(report, group, started_ns);
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

// While an upload runs the server reports each interval, then STOP when its window has closed. Meanwhile
// the client answers the server's self probes (docs/protocol.md, "Self probes") with SELF_PROBE_MARKs; none
// goes out after STOP is read, so none follows the SENDER_REPORT.
asio::awaitable<void> watch_upload_until_stop(run_state& run, net::control_channel& control,
                                              net::stream_group& group, direction_report& report) {
    constexpr auto kMarkInterval = 10ms;
    const auto stop_deadline =
        clock::now() + test_timing::of(tcp_request_for(run.options, report.dir)).client_stop_wait();
    for (;;) {
        const auto marks = group.take_self_probe_marks();
        for (const auto& mark : marks) {
            co_await control.write(mark, clock::now() + kResultsTimeout);
        }
        // GCC 12: no initializer list inside a co_await expression.
        const auto wake = std::min(stop_deadline, clock::now() + kMarkInterval);
        if (!co_await control.wait_readable(wake)) {
            if (clock::now() >= stop_deadline) {
                throw session_error(proto::error_code::timeout, "timed out waiting for the server's STOP");
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
            co_await record_interval(run, report, std::move(closed));
            continue;
        }
        if (std::holds_alternative<proto::stop>(msg)) {
            co_return;
        }
        throw net::control_channel::unexpected(msg, "the server's STOP");
    }
}

asio::awaitable<void> run_upload(run_state& run, net::control_channel& control, direction_report& report) {
    const auto& options = run.options;
    net::stream_group group(co_await asio::this_coro::executor, options.streams);
    co_await set_up_test(run, control, group, report);
    const std::int64_t ready_ns = net::now_ns();
    // Paced to the server's caps (WELCOME) when they are tighter than --bitrate: the server ends an upload
    // that arrives faster than they allow.
    const proto::test_request request = tcp_request_for(options, proto::direction::upload);
    group.start_sending(per_stream_pacing(sender_bitrate(request, run.server_caps), options.streams));
    group.answer_self_probes();
    run.progress.direction_started(proto::direction::upload, report);
    start_loaded_probes(run);

    co_await watch_upload_until_stop(run, control, group, report);
    group.stop_all();
    co_await stop_loaded_probes(run, report);
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
    if (received->stream_bytes.size() != options.streams) {
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
    const auto omit_ns = units::seconds_to_ns(options.omit_seconds).count();
    report.in_band_rtt_ms = units::us_to_ms(group.rtt_samples_us(ready_ns + omit_ns));
}

// Cuts a direction's loaded-latency series to the receiver's window and takes its RPM from the stable part
// of that window (docs/methodology.md, "Responsiveness"). Runs before the direction is printed.
void finish_loaded_latency(const run_state& run, direction_report& d) {
    const auto window = run.progress.window(d.omitted_seconds);
    std::vector<double> self_kernel = d.in_band_rtt_ms;
    std::vector<double> self_probes = d.self_probe_rtt_ms;
    std::vector<double> foreign;
    std::vector<double> foreign_corrected;
    if (window) {
        if (d.latency) {
            d.latency = only_sent_in(*d.latency, *window);
        }
        const latency::time_span stable = latency::stable_part(*window);
        d.stable_seconds =
            std::pair{static_cast<double>(stable.from_ns - window->from_ns) / 1e9 + d.omitted_seconds,
                      static_cast<double>(stable.to_ns - window->from_ns) / 1e9 + d.omitted_seconds};
        // The in-band samples are taken every 100 ms over the window, in time order, without times of their
        // own.
        self_kernel = latency::last_share(d.in_band_rtt_ms, *window, stable);
        self_probes = latency::samples_in(d.self_probe_rtt_ms, d.self_probe_sent_ns, stable);
        if (d.latency) {
            foreign = latency::samples_in(d.latency->application_rtt_ms, d.latency->sent_ns, stable);
            foreign_corrected = latency::samples_in(d.latency->rtt_ms, d.latency->sent_ns, stable);
        }
    } else if (d.latency) {
        // No interval report arrived (a receiver that sent none): every sample of the series counts.
        foreign = d.latency->application_rtt_ms;
        foreign_corrected = d.latency->rtt_ms;
    }
    // Self probes where the direction has them (both, unless the server predates upload self probes or none
    // was answered); otherwise the kernel's RTT stands for them (docs/methodology.md).
    d.self_from_probes = !d.self_probe_sent_ns.empty();
    const std::vector<double>& self = d.self_from_probes ? self_probes : self_kernel;
    d.responsiveness = latency::responsiveness_of(foreign, self);
    d.corrected_responsiveness = latency::responsiveness_of(foreign_corrected, self_kernel);
    d.stable_foreign_ms = std::move(foreign);
    d.stable_foreign_corrected_ms = std::move(foreign_corrected);
    d.stable_self_ms = self;
    d.stable_self_kernel_ms = std::move(self_kernel);
}

// Increase over idle, grade and responsiveness, once both directions are done (docs/methodology.md).
void summarize_loaded_latency(test_report& report) {
    std::vector<double> all_foreign;
    std::vector<double> all_foreign_corrected;
    std::vector<double> all_self;
    std::vector<double> all_self_kernel;
    for (auto* direction : {&report.download, &report.upload}) {
        if (!*direction) {
            continue;
        }
        auto& d = **direction;
        all_foreign.insert(all_foreign.end(), d.stable_foreign_ms.begin(), d.stable_foreign_ms.end());
        all_foreign_corrected.insert(all_foreign_corrected.end(), d.stable_foreign_corrected_ms.begin(),
                                     d.stable_foreign_corrected_ms.end());
        all_self.insert(all_self.end(), d.stable_self_ms.begin(), d.stable_self_ms.end());
        all_self_kernel.insert(all_self_kernel.end(), d.stable_self_kernel_ms.begin(),
                               d.stable_self_kernel_ms.end());
        if (d.latency && !d.latency->rtt_ms.empty() && report.idle_latency &&
            !report.idle_latency->rtt_ms.empty()) {
            d.latency_increase_ms = std::max(0.0, d.latency->rtt.median - report.idle_latency->rtt.median);
            report.worst_increase_ms =
                std::max(report.worst_increase_ms.value_or(0.0), *d.latency_increase_ms);
        }
    }
    if (report.worst_increase_ms) {
        report.bufferbloat_grade = latency::grade_for_increase(*report.worst_increase_ms);
    }
    if (auto overall = latency::responsiveness_of(all_foreign, all_self)) {
        report.responsiveness_rpm = overall->rpm;
    }
    if (auto overall = latency::responsiveness_of(all_foreign_corrected, all_self_kernel)) {
        report.corrected_responsiveness_rpm = overall->rpm;
    }
}

// One direction of the test, over TCP or UDP, with its loaded latency; measured by its receiver.
asio::awaitable<direction_report> run_direction(run_state& run, net::control_channel& control,
                                                const udp_run& udp, proto::direction dir) {
    const bool download = dir == proto::direction::download;
    direction_report result;
    result.dir = dir;
    result.measured_by = download ? "client" : "server";
    if (run.options.udp) {
        start_loaded_probes(run);
        if (download) {
            co_await run_udp_download(udp, control, result);
        } else {
            co_await run_udp_upload(udp, control, result);
        }
        co_await stop_loaded_probes(run, result);
    } else if (download) {
        co_await run_download(run, control, result);
    } else {
        co_await run_upload(run, control, result);
    }
    finish_loaded_latency(run, result);
    run.progress.direction_done(result);
    co_return result;
}

asio::awaitable<void> run_all(run_state& run) {
    const auto& options = run.options;
    auto& report = run.report;
    net::control_channel control(co_await connect_first(co_await resolve(options), options, run.server));
    report.address = run.server.address().to_string();
    asio::error_code local_error;
    if (const auto local = control.socket().local_endpoint(local_error); !local_error) {
        report.local_address = local.address().to_string();
        report.local_port = local.port();
    }
    const proto::hello hello = make_hello(proto::connection_kind::control, {});
    co_await control.write(hello, clock::now() + kReplyTimeout);
    // A speedsrv answers HELLO at once: a peer silent for the whole connect timeout is not one (another
    // service on the port, or a middlebox that accepted for it), so speedcli reports it as not reached.
    proto::welcome welcome;
    bool silent = false;
    try {
        welcome = co_await control.expect<proto::welcome>(
            clock::now() + units::seconds_to_ns(options.connect_timeout_seconds), "WELCOME");
    } catch (const session_error& e) {
        if (e.from_peer() || e.code() != proto::error_code::timeout) {
            throw;
        }
        silent = true;
    }
    if (silent) {
        throw unreachable_error(
            "no speedsrv answered at " + describe(run.server) + " within " +
            fmt::format("{:g} s", options.connect_timeout_seconds) +
            ": the connection was accepted but nothing replied (another service on that port?)");
    }
    run.token = welcome.token;
    report.server_software = welcome.software;
    run.server_caps.max_bitrate = welcome.max_bitrate;
    run.server_caps.max_bytes = welcome.max_bytes;
    report.server_max_bitrate = welcome.max_bitrate;
    report.server_max_bytes = welcome.max_bytes;
    run.auth.key = options.auth_key ? &*options.auth_key : nullptr;
    co_await authenticate(control, welcome, run.auth, clock::now() + kReplyTimeout);
    run.progress.connected(report);

    // --udp: the same phases over UDP (client/udp_run.cpp); latency under load still uses the TCP prober.
    const udp_run udp{options, run.progress, run.data_pool, run.server, run.auth};
    if (options.pings > 0 && options.udp) {
        report.idle_latency = co_await measure_udp_latency(udp, control);
        run.progress.idle_latency_done(*report.idle_latency);
    }
    if ((options.pings > 0 && !options.udp) || options.loaded_ping_interval_seconds > 0) {
        net::control_channel probe(co_await connect(run.server, options.connect_timeout_seconds));
        net::set_no_delay(probe.socket().native_handle());
        const proto::hello probe_hello = make_hello(proto::connection_kind::probe, run.token);
        co_await probe.write(probe_hello, clock::now() + kReplyTimeout);
        run.probes = std::make_shared<prober>(probe.release_socket());
        run.probes->start();
    }
    if (options.pings > 0 && !options.udp) {
        report.idle_latency =
            co_await run.probes->measure(options.pings, units::seconds_to_ns(options.ping_interval_seconds));
        run.progress.idle_latency_done(*report.idle_latency);
    }
    // A direction enters the report only once it completed: one that failed part-way has no window figures
    // (its intervals were already shown as they came), so it reports null like one never started.
    if (options.download) {
        report.download = co_await run_direction(run, control, udp, proto::direction::download);
    }
    if (options.upload) {
        report.upload = co_await run_direction(run, control, udp, proto::direction::upload);
    }
    summarize_loaded_latency(report);
}

int exit_code_for(const session_error& e) {
    if (e.code() == proto::error_code::auth_failed) {
        return kExitRefused;  // whether the server refused the key or speedcli had none to offer
    }
    if (!e.from_peer()) {
        return kExitTestFailed;
    }
    switch (e.code()) {
        case proto::error_code::server_busy:
        case proto::error_code::limit_exceeded:
        case proto::error_code::version_mismatch:
        case proto::error_code::auth_failed:
        case proto::error_code::unsupported:
        case proto::error_code::shutting_down:
            return kExitRefused;
        default:
            return kExitTestFailed;
    }
}

}  // namespace

test_report run_speed_test(const test_options& options, progress_sink& progress) {
    test_report report;
    report.version = SPEED_VERSION;
    report.start_time = units::format_utc_iso8601(std::chrono::system_clock::now());
    report.host = options.host;
    report.port = options.port;
    report.streams = options.streams;
    report.protocol = options.udp ? "udp" : "tcp";

    const std::size_t threads = options.threads != 0
                                    ? options.threads
                                    : std::min<std::size_t>(options.streams, net::default_thread_count());
    // Declared before the data pool, so it outlives it: streams and flows on the data threads post their
    // notifications to the control context (net/change_signal.hpp) for as long as they run.
    asio::io_context control_context(1);
    net::io_pool data_pool(threads);
    data_pool.start("speedcli-data");
    window_marks marks(progress);
    run_state run{options, marks, report, data_pool, {}, {}, {}, {}, {}};

    std::exception_ptr failure;
    asio::co_spawn(control_context, run_all(run), [&failure, &run](std::exception_ptr e) {
        failure = e;
        // The probe connection's reader and series would otherwise keep the loop running after a failure.
        if (run.probes) {
            run.probes->close();
        }
    });
    control_context.run();
    data_pool.stop();

    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const unreachable_error& e) {
            report.error = e.what();
            report.exit_code = kExitUnreachable;
        } catch (const udp_path_error& e) {
            report.error = e.what();
            report.exit_code = kExitUnreachable;
        } catch (const session_error& e) {
            report.error = e.from_peer() ? std::string("server: ") + e.what() : std::string(e.what());
            report.exit_code = exit_code_for(e);
        } catch (const std::exception& e) {
            report.error = e.what();
            report.exit_code = kExitTestFailed;
        }
    }
    return report;
}

}  // namespace speed::client
