#include "client/test_run.hpp"

#include <sys/socket.h>

#include <fmt/format.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

#include "client/auth.hpp"
#include "client/connect.hpp"
#include "client/exit_codes.hpp"
#include "client/iperf3_run.hpp"
#include "client/latency.hpp"
#include "client/runners/direction_runner.hpp"
#include "client/server_selection.hpp"
#include "client/udp_run.hpp"
#include "common/iperf3_protocol.hpp"
#include "common/limits.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/control_channel.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/io_pool.hpp"
#include "net/socket_options.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using asio::ip::tcp;
using net::clock;
using net::session_error;

namespace {

using proto::kReplyTimeout;

// Everything one run shares, passed by reference to the phase coroutines.
struct run_state {
    const test_options& options;
    progress_sink& progress;
    test_report& report;
    net::io_pool& data_pool;
    tcp::endpoint server;
    proto::session_token token{};
    std::shared_ptr<prober> probes;  // the latency probe connection, when probes were asked for
    client_auth auth;                // client/auth.hpp
    server_limits server_caps;       // from WELCOME: uploads are paced to fit them
};

class bidirectional_load;

// What speedcli does around one direction's load, for TCP and UDP alike: shows its progress, runs the
// loaded-latency probes from ready to window_closed (probes sent in the warm-up do not count, so slow start
// does not flatter the figure), and notes when (this client's monotonic clock) the receiver's interval
// reports arrived: the receiver's window on the clock the latency probes use.
class direction_progress final : public direction_events {
  public:
    direction_progress(run_state& run, const proto::test_request& request, bidirectional_load* both)
        : run_(run), request_(request), both_(both) {}

    asio::awaitable<void> may_request() override;
    void ready(const direction_report& report) override;
    asio::awaitable<void> load_may_start() override;
    void interval(const interval_report& closed) override {
        // Each report places the receiver's time 0 on our clock, late by how long it took to reach us (one
        // way for uploads, and longer when the control connection held it back): the earliest is the best.
        const std::int64_t zero = net::now_ns() - units::seconds_to_ns(closed.end_seconds).count();
        zero_ns_ = reports_ == 0 ? zero : std::min(zero_ns_, zero);
        last_end_seconds_ = closed.end_seconds;
        ++reports_;
        run_.progress.interval_done(request_.dir, closed);
    }
    asio::awaitable<void> window_closed(direction_report& report) override;

    // The window after `omitted_seconds` of warm-up, on our clock, from the receiver's time 0 to its last
    // report's end. Nothing before a report came.
    std::optional<latency::time_span> window(double omitted_seconds) const {
        if (reports_ == 0) {
            return std::nullopt;
        }
        return latency::time_span{zero_ns_ + units::seconds_to_ns(omitted_seconds).count(),
                                  zero_ns_ + units::seconds_to_ns(last_end_seconds_).count()};
    }

  private:
    run_state& run_;
    const proto::test_request& request_;
    bidirectional_load* both_;  // --bidir: the load both directions share; null otherwise
    std::size_t reports_ = 0;
    std::int64_t zero_ns_ = 0;  // the receiver's time 0 on our clock
    double last_end_seconds_ = 0.0;
};

bool loaded_probes(const run_state& run) {
    return run.probes && run.options.loaded_ping_interval_seconds > 0;
}

void start_loaded_probes(run_state& run, const proto::test_request& request) {
    if (loaded_probes(run)) {
        run.probes->start_background(units::seconds_to_ns(run.options.loaded_ping_interval_seconds),
                                     clock::now() + test_timing::of(request).warm_up);
    }
}

// Something one coroutine waits for and another makes happen, on one thread.
class one_shot {
  public:
    explicit one_shot(asio::any_io_executor executor) : timer_(std::move(executor)) {}
    void set() {
        set_ = true;
        timer_.cancel();
    }
    // Whether it happened within `limit`.
    asio::awaitable<bool> wait(std::chrono::nanoseconds limit) {
        if (!set_) {
            timer_.expires_after(limit);
            co_await timer_.async_wait(as_tuple(asio::use_awaitable));
        }
        co_return set_;
    }

  private:
    asio::steady_timer timer_;
    bool set_ = false;
};

// --bidir: what the two directions' loads share. The server sends a download from its STREAMS_READY on, and
// the client an upload when it likes, so: the upload sets up its data connections first, then the download
// sets up and starts, then the upload starts sending, with nothing between the two starts but one turn of
// the event loop. One probe series runs from when both are loading until the first window closes; its
// samples count over the overlap of the two receivers' windows (docs/methodology.md, "Bidirectional
// tests").
class bidirectional_load {
  public:
    bidirectional_load(run_state& run, asio::any_io_executor executor)
        : run_(run), upload_set_up_(executor), download_started_(executor) {}

    // The download's wait for the upload's set-up, bounded by what that set-up may take: two replies and a
    // connection per stream.
    asio::awaitable<void> upload_set_up() {
        const auto limit = 2 * kReplyTimeout +
                           run_.options.streams * units::seconds_to_ns(run_.options.connect_timeout_seconds);
        const bool set_up = co_await upload_set_up_.wait(limit);
        if (!set_up) {
            throw session_error(proto::error_code::timeout,
                                "--bidir: the upload's data connections were not set up in time");
        }
    }

    // The upload's wait for the download's load, bounded: the server ends an upload whose first byte does
    // not come within kFirstByteTimeout.
    asio::awaitable<void> download_started() {
        upload_set_up_.set();
        const bool started = co_await download_started_.wait(proto::kFirstByteTimeout);
        if (!started) {
            throw session_error(
                proto::error_code::timeout,
                "--bidir: the download did not start in time for the upload to start with it");
        }
    }

    void ready(proto::direction dir, const proto::test_request& request) {
        (dir == proto::direction::download ? download_loading_ : upload_loading_) = true;
        if (dir == proto::direction::download) {
            download_started_.set();
        }
        if (download_loading_ && upload_loading_ && !probing_) {
            probing_ = loaded_probes(run_);
            start_loaded_probes(run_, request);
        }
    }

    asio::awaitable<void> window_closed() {
        if (probing_) {
            probing_ = false;
            series_ = co_await run_.probes->stop_background();
        }
    }

    // Each direction's receiver window on this client's clock (time 0 and the window after the warm-up),
    // once the direction has completed.
    void completed(proto::direction dir, std::optional<latency::time_span> from_zero,
                   std::optional<latency::time_span> window) {
        auto& kept = dir == proto::direction::download ? download_ : upload_;
        kept = {from_zero, window};
    }

    bidirectional_report report(const direction_report& download, const direction_report& upload) const;

  private:
    struct windows {
        std::optional<latency::time_span> from_zero;
        std::optional<latency::time_span> measured;
    };

    run_state& run_;
    one_shot upload_set_up_;
    one_shot download_started_;
    bool download_loading_ = false;
    bool upload_loading_ = false;
    bool probing_ = false;
    std::optional<latency_report> series_;
    windows download_;
    windows upload_;
};

void direction_progress::ready(const direction_report& report) {
    run_.progress.direction_started(report.dir, report);
    if (both_ != nullptr) {
        both_->ready(report.dir, request_);
    } else {
        start_loaded_probes(run_, request_);
    }
}

asio::awaitable<void> direction_progress::may_request() {
    if (both_ != nullptr && request_.dir == proto::direction::download) {
        co_await both_->upload_set_up();
    }
}

asio::awaitable<void> direction_progress::load_may_start() {
    if (both_ != nullptr && request_.dir == proto::direction::upload) {
        co_await both_->download_started();
    }
}

asio::awaitable<void> direction_progress::window_closed(direction_report& report) {
    if (both_ != nullptr) {
        co_await both_->window_closed();
    } else if (loaded_probes(run_)) {
        report.latency = co_await run_.probes->stop_background();
    }
}

// Tries each address a name resolved to, in order, and keeps the first that accepts (e.g. IPv6 then IPv4).
asio::awaitable<tcp::socket> connect_first(const std::vector<tcp::endpoint>& endpoints,
                                           const test_options& options, tcp::endpoint& connected) {
    std::string failures;
    for (const auto& endpoint : endpoints) {
        try {
            tcp::socket socket = co_await connect(endpoint, options.connect_timeout_seconds, options.sockets);
            connected = endpoint;
            co_return socket;
        } catch (const unreachable_error& e) {
            failures += failures.empty() ? e.what() : std::string("; ") + e.what();
        }
    }
    throw unreachable_error(failures);
}

// iperf3 servers listen on speedsrv's port (5201) too. One takes the first 37 bytes of speedcli's HELLO for
// its cookie and answers PARAM_EXCHANGE; a busy one answers ACCESS_DENIED at once. Neither byte starts a
// speedsrv frame, so a peek at the first byte of the answer tells them apart without reading it.
void reject_iperf3_server(tcp::socket& control, const tcp::endpoint& server) {
    std::uint8_t first = 0;
    if (::recv(control.native_handle(), &first, 1, MSG_PEEK | MSG_DONTWAIT) != 1) {
        return;  // nothing or a close: the WELCOME read says what happened
    }
    const auto state = iperf3::state_of(first);
    if (state == iperf3::state::param_exchange || state == iperf3::state::access_denied) {
        throw unreachable_error(describe(server) +
                                " runs an iperf3 server, not speedsrv (it answered with iperf3's " +
                                std::string(iperf3::name_of(*state)) + "); test it with speedcli --iperf3");
    }
}

// RPM from the samples of the stable part: the probes' application and kernel-corrected round trips, the self
// probes and the in-band RTTs.
void set_responsiveness(direction_report& d, std::vector<double> foreign,
                        std::vector<double> foreign_corrected, std::vector<double> self_probes,
                        std::vector<double> self_kernel) {
    // Self probes where the direction has them (both, unless the server predates upload self probes or none
    // was answered); otherwise the kernel's RTT stands for them (docs/methodology.md).
    d.self_from_probes = !d.self_probe_sent_ns.empty();
    d.stable_self_ms = d.self_from_probes ? std::move(self_probes) : self_kernel;
    d.responsiveness = latency::responsiveness_of(foreign, d.stable_self_ms);
    d.corrected_responsiveness = latency::responsiveness_of(foreign_corrected, self_kernel);
    d.stable_foreign_ms = std::move(foreign);
    d.stable_foreign_corrected_ms = std::move(foreign_corrected);
    d.stable_self_kernel_ms = std::move(self_kernel);
}

// Cuts a direction's loaded-latency series to the receiver's window and takes its RPM from the stable part
// of that window (docs/methodology.md, "Responsiveness"). Runs before the direction is printed.
void finish_loaded_latency(const direction_progress& progress, direction_report& d) {
    const auto window = progress.window(d.omitted_seconds);
    std::vector<double> self_kernel = d.in_band_rtt_ms;
    std::vector<double> self_probes = d.self_probe_rtt_ms;
    std::vector<double> foreign;
    std::vector<double> foreign_corrected;
    if (window) {
        if (d.latency) {
            d.latency = only_sent_in(*d.latency, *window);
            d.latency->zero_ns = window->from_ns - units::seconds_to_ns(d.omitted_seconds).count();
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
    set_responsiveness(d, std::move(foreign), std::move(foreign_corrected), std::move(self_probes),
                       std::move(self_kernel));
}

bidirectional_report bidirectional_load::report(const direction_report& download,
                                                const direction_report& upload) const {
    bidirectional_report out;
    if (download_.from_zero && upload_.from_zero) {
        out.start_skew_seconds =
            units::ns_to_seconds(upload_.from_zero->from_ns - download_.from_zero->from_ns);
    }
    std::optional<latency::time_span> overlap;
    if (download_.measured && upload_.measured) {
        overlap = latency::time_span{std::max(download_.measured->from_ns, upload_.measured->from_ns),
                                     std::min(download_.measured->to_ns, upload_.measured->to_ns)};
        overlap->to_ns = std::max(overlap->from_ns, overlap->to_ns);
        out.overlap_seconds = units::ns_to_seconds(overlap->to_ns - overlap->from_ns);
    }
    auto& d = out.load;
    d.latency = series_;
    for (const auto* direction : {&download, &upload}) {
        d.self_probes_sent += direction->self_probes_sent;
        d.self_probes_dropped += direction->self_probes_dropped;
        d.self_probe_rtt_ms.insert(d.self_probe_rtt_ms.end(), direction->self_probe_rtt_ms.begin(),
                                   direction->self_probe_rtt_ms.end());
        d.self_probe_sent_ns.insert(d.self_probe_sent_ns.end(), direction->self_probe_sent_ns.begin(),
                                    direction->self_probe_sent_ns.end());
        d.in_band_rtt_ms.insert(d.in_band_rtt_ms.end(), direction->in_band_rtt_ms.begin(),
                                direction->in_band_rtt_ms.end());
    }
    if (!overlap) {
        // No interval reports (-i 0): the windows are unknown, every sample counts (as for one direction).
        std::vector<double> foreign = d.latency ? d.latency->application_rtt_ms : std::vector<double>{};
        std::vector<double> foreign_corrected = d.latency ? d.latency->rtt_ms : std::vector<double>{};
        set_responsiveness(d, std::move(foreign), std::move(foreign_corrected), d.self_probe_rtt_ms,
                           d.in_band_rtt_ms);
        return out;
    }
    if (d.latency) {
        d.latency = only_sent_in(*d.latency, *overlap);
        d.latency->zero_ns = overlap->from_ns;  // the series' times count from the overlap's start
    }
    const latency::time_span stable = latency::stable_part(*overlap);
    d.stable_seconds = std::pair{units::ns_to_seconds(stable.from_ns - overlap->from_ns),
                                 units::ns_to_seconds(stable.to_ns - overlap->from_ns)};
    // Each direction's in-band series covers its own window.
    std::vector<double> self_kernel = latency::share_in(download.in_band_rtt_ms, *download_.measured, stable);
    const std::vector<double> upload_kernel =
        latency::share_in(upload.in_band_rtt_ms, *upload_.measured, stable);
    self_kernel.insert(self_kernel.end(), upload_kernel.begin(), upload_kernel.end());
    std::vector<double> foreign;
    std::vector<double> foreign_corrected;
    if (d.latency) {
        foreign = latency::samples_in(d.latency->application_rtt_ms, d.latency->sent_ns, stable);
        foreign_corrected = latency::samples_in(d.latency->rtt_ms, d.latency->sent_ns, stable);
    }
    set_responsiveness(d, std::move(foreign), std::move(foreign_corrected),
                       latency::samples_in(d.self_probe_rtt_ms, d.self_probe_sent_ns, stable),
                       std::move(self_kernel));
    return out;
}

// Increase over idle, grade and responsiveness, once both directions are done (docs/methodology.md): from
// each direction's loaded latency, or with --bidir from the latency under both.
void summarize_loaded_latency(test_report& report) {
    std::vector<double> all_foreign;
    std::vector<double> all_foreign_corrected;
    std::vector<double> all_self;
    std::vector<double> all_self_kernel;
    std::vector<direction_report*> loads;
    if (report.bidirectional) {
        loads.push_back(&report.bidirectional->load);
    } else {
        for (auto* direction : {&report.download, &report.upload}) {
            if (*direction) {
                loads.push_back(&**direction);
            }
        }
    }
    for (auto* load : loads) {
        auto& d = *load;
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

// One direction of the test with its loaded latency, measured by its receiver. The runner sends the request
// made here and everything of the direction follows from it. With --bidir (`both`), the loaded latency is
// the one under both loads, which bidirectional_load::report() works out once both have completed.
asio::awaitable<direction_report> run_direction(run_state& run, direction_runner& runner,
                                                proto::direction dir, bidirectional_load* both = nullptr) {
    const proto::test_request request = runner.request_for(run.options, dir);
    direction_progress progress(run, request, both);
    direction_report result = co_await runner.run(request, progress);
    if (both != nullptr) {
        both->completed(dir, progress.window(0.0), progress.window(result.omitted_seconds));
        result.self_from_probes = !result.self_probe_sent_ns.empty();  // its RPM is the one under both
    } else {
        finish_loaded_latency(progress, result);
    }
    run.progress.direction_done(result);
    co_return result;
}

// HELLO, WELCOME and authentication on a connected control connection: a session of the server.
asio::awaitable<proto::welcome> open_session(const run_state& run, net::control_channel& control,
                                             client_auth& auth) {
    const auto& options = run.options;
    const proto::hello hello = make_hello(proto::connection_kind::control, {});
    co_await control.write(hello, clock::now() + kReplyTimeout);
    const auto greeting_deadline = clock::now() + units::seconds_to_ns(options.connect_timeout_seconds);
    if (co_await control.wait_readable(greeting_deadline)) {
        reject_iperf3_server(control.socket(), run.server);
    }
    // A speedsrv answers HELLO at once: a peer silent for the whole connect timeout is not one (another
    // service on the port, or a middlebox that accepted for it), so speedcli reports it as not reached.
    proto::welcome welcome;
    bool silent = false;
    try {
        welcome = co_await control.expect<proto::welcome>(greeting_deadline, "WELCOME");
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
    co_await authenticate(control, welcome, auth, clock::now() + kReplyTimeout);
    co_return welcome;
}

// --bidir: the download in the first session and the upload in a second one of the same server, at the same
// time, each measured by its receiver as alone; no protocol change, so any speedsrv serves it.
asio::awaitable<void> run_bidirectional(run_state& run, direction_runner& download_runner) {
    const auto& options = run.options;
    net::control_channel control(
        co_await connect(run.server, options.connect_timeout_seconds, options.sockets));
    client_auth auth;
    auth.key = run.auth.key;
    proto::welcome welcome;
    try {
        welcome = co_await open_session(run, control, auth);
    } catch (const session_error& e) {
        if (!e.from_peer() || e.code() != proto::error_code::server_busy) {
            throw;
        }
        throw session_error(
            e.code(),
            std::string("--bidir runs the upload in a second session, and the server refused it: ") +
                e.what() + " (its --max-sessions-per-host cap may be 1)",
            true);
    }
    server_limits caps;
    caps.max_bitrate = welcome.max_bitrate;
    caps.max_bytes = welcome.max_bytes;
    runner_session upload_session{
        control,        run.data_pool, run.server, welcome.token, auth, caps, options.connect_timeout_seconds,
        options.sockets};
    const auto upload_runner =
        options.udp ? make_udp_runner(upload_session) : make_tcp_runner(upload_session);
    bidirectional_load both(run, co_await asio::this_coro::executor);
    using namespace asio::experimental::awaitable_operators;
    net::first_failure failure;
    std::tuple<direction_report, direction_report> results;
    try {
        results =
            co_await (net::noting_failure(
                          run_direction(run, download_runner, proto::direction::download, &both), failure) &&
                      net::noting_failure(run_direction(run, *upload_runner, proto::direction::upload, &both),
                                          failure));
    } catch (...) {
        failure.rethrow();
    }
    auto& [download, upload] = results;
    run.report.bidirectional = both.report(download, upload);
    run.report.download = std::move(download);
    run.report.upload = std::move(upload);
}

asio::awaitable<void> run_all(run_state& run) {
    const auto& options = run.options;
    auto& report = run.report;
    net::control_channel control(co_await connect_first(
        co_await resolve(options.host, options.port, options.family), options, run.server));
    report.address = run.server.address().to_string();
    asio::error_code local_error;
    if (const auto local = control.socket().local_endpoint(local_error); !local_error) {
        report.local_address = local.address().to_string();
        report.local_port = local.port();
    }
    if (options.iperf3) {
        co_await run_iperf3_tests(control.release_socket(), run.server, options, run.progress, report,
                                  run.data_pool);
        co_return;
    }
    run.auth.key = options.auth_key ? &*options.auth_key : nullptr;
    const proto::welcome welcome = co_await open_session(run, control, run.auth);
    run.token = welcome.token;
    report.server_software = welcome.software;
    run.server_caps.max_bitrate = welcome.max_bitrate;
    run.server_caps.max_bytes = welcome.max_bytes;
    report.server_max_bitrate = welcome.max_bitrate;
    report.server_max_bytes = welcome.max_bytes;
    run.progress.connected(report);

    if (options.pings > 0 && options.udp) {
        report.idle_latency = co_await measure_udp_latency(options, run.server, control);
        run.progress.idle_latency_done(*report.idle_latency);
    }
    if ((options.pings > 0 && !options.udp) || options.loaded_ping_interval_seconds > 0) {
        net::control_channel probe(
            co_await connect(run.server, options.connect_timeout_seconds, options.sockets));
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
    // --udp: the same phases over UDP flows (client/runners/udp_runner.cpp); latency under load still uses
    // the TCP prober.
    runner_session session{control,
                           run.data_pool,
                           run.server,
                           run.token,
                           run.auth,
                           run.server_caps,
                           options.connect_timeout_seconds,
                           options.sockets};
    const auto runner = options.udp ? make_udp_runner(session) : make_tcp_runner(session);
    if (options.bidir) {
        co_await run_bidirectional(run, *runner);
        summarize_loaded_latency(report);
        co_return;
    }
    if (options.download) {
        report.download = co_await run_direction(run, *runner, proto::direction::download);
    }
    if (options.upload) {
        report.upload = co_await run_direction(run, *runner, proto::direction::upload);
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
    test_options chosen = options;
    if (!options.servers.empty()) {
        report.selection = select_server(options);
        progress.server_selected(*report.selection);
        if (!report.selection->chosen) {
            report.error = "none of the " + std::to_string(options.servers.size()) +
                           " servers of the list could be used (each one's reason is in the selection)";
            report.exit_code = kExitUnreachable;
            return report;
        }
        const auto& nearest = report.selection->candidates[*report.selection->chosen].address;
        chosen.host = report.host = nearest.host;
        chosen.port = report.port = nearest.port;
    }
    asio::io_context control_context(1);
    net::io_pool data_pool(threads);
    data_pool.start("speedcli-data");
    run_state run{chosen, progress, report, data_pool, {}, {}, {}, {}, {}};

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
