#include "client/test_run.hpp"

#include <sys/socket.h>

#include <fmt/format.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
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

// What speedcli does around one direction's load, for TCP and UDP alike: shows its progress, runs the
// loaded-latency probes from ready to window_closed (probes sent in the warm-up do not count, so slow start
// does not flatter the figure), and notes when (this client's monotonic clock) the receiver's interval
// reports arrived: the receiver's window on the clock the latency probes use.
class direction_progress final : public direction_events {
  public:
    direction_progress(run_state& run, const proto::test_request& request) : run_(run), request_(request) {}

    void ready(const direction_report& report) override {
        run_.progress.direction_started(report.dir, report);
        if (loaded_probes()) {
            run_.probes->start_background(units::seconds_to_ns(run_.options.loaded_ping_interval_seconds),
                                          clock::now() + test_timing::of(request_).warm_up);
        }
    }
    void interval(const interval_report& closed) override {
        const std::int64_t now = net::now_ns();
        if (first_report_ns_ == 0) {
            first_report_ns_ = now;
            first_end_seconds_ = closed.end_seconds;
        }
        last_report_ns_ = now;
        run_.progress.interval_done(request_.dir, closed);
    }
    asio::awaitable<void> window_closed(direction_report& report) override {
        if (loaded_probes()) {
            report.latency = co_await run_.probes->stop_background();
        }
    }

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
    bool loaded_probes() const { return run_.probes && run_.options.loaded_ping_interval_seconds > 0; }

    run_state& run_;
    const proto::test_request& request_;
    std::int64_t first_report_ns_ = 0;
    double first_end_seconds_ = 0.0;
    std::int64_t last_report_ns_ = 0;
};

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

// One direction of the test with its loaded latency, measured by its receiver. The runner sends the request
// made here and everything of the direction follows from it.
asio::awaitable<direction_report> run_direction(run_state& run, direction_runner& runner,
                                                proto::direction dir) {
    const proto::test_request request = runner.request_for(run.options, dir);
    direction_progress progress(run, request);
    direction_report result = co_await runner.run(request, progress);
    finish_loaded_latency(progress, result);
    run.progress.direction_done(result);
    co_return result;
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
    run.token = welcome.token;
    report.server_software = welcome.software;
    run.server_caps.max_bitrate = welcome.max_bitrate;
    run.server_caps.max_bytes = welcome.max_bytes;
    report.server_max_bitrate = welcome.max_bitrate;
    report.server_max_bytes = welcome.max_bytes;
    run.auth.key = options.auth_key ? &*options.auth_key : nullptr;
    co_await authenticate(control, welcome, run.auth, clock::now() + kReplyTimeout);
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
