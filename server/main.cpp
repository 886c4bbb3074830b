// speedsrv: the server side of the speed test. See README.md and docs/operations.md.
#include <fmt/ostream.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "common/time_units.hpp"
#include "common/units.hpp"
#include "config/key_file.hpp"
#include "net/io_pool.hpp"
#include "server/config.hpp"
#include "server/metrics_http.hpp"
#include "server/server.hpp"
#include "server/systemd_notify.hpp"
#include "server/web_server.hpp"

namespace {

// Exit codes (documented in README.md): 0 after a clean shutdown, 1 when the server cannot start, 2 for an
// invalid command line, 3 after a shutdown that had to leave a stuck data thread behind.
constexpr int kExitStartupFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitStuckThread = 3;  // stopped, but a data thread was stuck and left behind

// A data thread whose heartbeat is older than this is stuck: its handlers run for microseconds (a receive
// batch, a send burst), so 2 s is far beyond any legitimate pause, yet well inside the unit's WatchdogSec.
constexpr auto kStuckThreadBound = std::chrono::seconds(2);
// How often the control thread checks the data threads' heartbeats (more often when systemd's watchdog asks).
constexpr auto kHealthCheckInterval = std::chrono::seconds(1);
// At SIGTERM: sessions get this long to log their end, then the data threads this long to leave their
// handlers; the two stay well inside the 2 s a stop may take (docs/operations.md).
constexpr auto kSessionDrain = std::chrono::milliseconds(300);
constexpr auto kDataThreadStop = std::chrono::seconds(1);

// Checks the data threads' heartbeats; sends systemd WATCHDOG=1 only while every one is fresh, so a stuck
// thread gets the service restarted instead of hiding behind a live control thread.
class health_monitor {
  public:
    health_monitor(asio::io_context& control, speed::net::io_pool& pool,
                   const speed::server::systemd_notifier& notifier)
        : timer_(control), pool_(pool), notifier_(notifier) {
        interval_ = kHealthCheckInterval;
        if (auto watchdog = notifier_.watchdog_interval()) {
            interval_ = std::min<std::chrono::steady_clock::duration>(interval_, *watchdog);
        }
    }

    void start() { check(); }
    void stop() { timer_.cancel(); }

  private:
    void check() {
        const auto stuck = pool_.stuck_threads(kStuckThreadBound);
        if (stuck.empty()) {
            if (reported_stuck_) {
                spdlog::info("every data thread runs again");
                reported_stuck_ = false;
            }
            if (notifier_.watchdog_interval()) {
                notifier_.notify("WATCHDOG=1");
            }
        } else if (!reported_stuck_) {
            spdlog::error("data thread{} {} stuck (no heartbeat for more than {} s): not reporting healthy",
                          stuck.size() == 1 ? "" : "s", fmt::join(stuck, ", "), kStuckThreadBound.count());
            reported_stuck_ = true;
        }
        timer_.expires_after(interval_);
        timer_.async_wait([this](const asio::error_code& ec) {
            if (!ec) {
                check();
            }
        });
    }

    asio::steady_timer timer_;
    speed::net::io_pool& pool_;
    const speed::server::systemd_notifier& notifier_;
    std::chrono::steady_clock::duration interval_;
    bool reported_stuck_ = false;
};

// Test hook (tests/integration, the watchdog tests): SPEED_TEST_WEDGE_DATA_THREAD_AFTER_MS=N blocks data
// thread 0 in a handler N ms after the start, until `release` is set (at shutdown).
void wedge_data_thread_for_test(speed::net::io_pool& pool, std::atomic<bool>& release) {
    const char* text = std::getenv("SPEED_TEST_WEDGE_DATA_THREAD_AFTER_MS");
    if (text == nullptr) {
        return;
    }
    const auto after = std::chrono::milliseconds(std::strtol(text, nullptr, 10));
    std::thread([&pool, &release, after] {
        std::this_thread::sleep_for(after);
        asio::post(pool.context(0), [&release] {
            while (!release.load()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        });
    }).detach();
}

// File descriptors the caps can require at once: every connection in handshake, and per session its control
// and probe connections plus a full test's data connections; plus listeners, logs and slack.
std::uint64_t descriptors_needed(const speed::server::server_config& config) {
    const auto& admission = config.admission;
    return admission.max_handshakes + admission.max_sessions * (config.limits.max_streams + 3) + 64;
}

// Raises the soft RLIMIT_NOFILE to the hard limit (the default soft limit, 1024, is too low for the default
// caps) and warns when even that cannot hold what the caps allow.
void raise_descriptor_limit(const speed::server::server_config& config) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
        ::getrlimit(RLIMIT_NOFILE, &limit);
    }
    const std::uint64_t needed = descriptors_needed(config);
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        spdlog::warn(
            "the file descriptor limit ({}) is below the {} the caps may need; raise it (ulimit -n, "
            "LimitNOFILE=) or lower --max-sessions, --max-streams or --max-handshakes",
            limit.rlim_cur, needed);
    }
}

}  // namespace

int main(int argc, char** argv) {
    speed::server::server_config config;
    auto& admission = config.admission;
    std::string log_level = "info";
    double max_duration_seconds = config.limits.max_duration_ms / 1000.0;
    double handshake_timeout_seconds = std::chrono::duration<double>(config.handshake_timeout).count();
    double idle_timeout_seconds = std::chrono::duration<double>(config.idle_timeout).count();
    double stall_timeout_seconds = std::chrono::duration<double>(config.stall_timeout).count();
    std::string max_bitrate_text = "0";
    std::string max_bytes_text = "0";
    std::string auth_keys_path;

    CLI::App app{"speedsrv: serves speed tests to speedcli clients, measuring uploads at the receiver"};
    app.set_version_flag("-v,--version", std::string("speedsrv ") + SPEED_VERSION);
    app.add_option("-B,--bind", config.bind_address,
                   "Address to listen on (IPv4 or IPv6); default: every address, IPv6 and IPv4")
        // An empty value (say, an unset variable in a unit file) must not quietly mean "every address".
        ->check(CLI::Validator(
            [](const std::string& value) {
                return value.empty()
                           ? std::string("an empty address; leave --bind out to listen on every address")
                           : std::string();
            },
            "ADDRESS"));
    app.add_option("-p,--port", config.port, "TCP port to listen on (0 picks a free one)")
        ->capture_default_str()
        ->check(CLI::Range(0, 65535));
    app.add_option("-t,--threads", config.threads, "Data-plane threads (0 = one per core)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->capture_default_str()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

    app.add_option("--max-sessions", admission.max_sessions,
                   "Sessions served at once; more are told the server is busy")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--max-sessions-per-host", admission.max_sessions_per_host,
                   "Sessions served at once from one host (see --ipv4-host-prefix, --ipv6-host-prefix)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--max-handshakes", admission.max_handshakes,
                   "Connections accepted whose HELLO has not arrived yet; more are turned away at once")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    app.add_option("--max-handshakes-per-host", admission.max_handshakes_per_host,
                   "Connections from one host whose HELLO has not arrived yet")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    app.add_option(
           "--ipv4-host-prefix", admission.ipv4_prefix_bits,
           "IPv4 addresses sharing this many leading bits count as one host (32: each address; 24: a /24)")
        ->capture_default_str()
        ->check(CLI::Range(8, 32));
    app.add_option(
           "--ipv6-host-prefix", admission.ipv6_prefix_bits,
           "IPv6 addresses sharing this many leading bits count as one host (64: one subscriber's /64)")
        ->capture_default_str()
        ->check(CLI::Range(16, 128));
    app.add_option(
           "--handshake-timeout", handshake_timeout_seconds,
           "Seconds a new connection has to send its HELLO (and, with --auth-keys, to authenticate); also a "
           "--metrics request's deadline from accept to the answer")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    app.add_option("--idle-timeout", idle_timeout_seconds,
                   "Seconds a session may wait between tests before it is closed")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
    app.add_option("--stall-timeout", stall_timeout_seconds,
                   "Seconds a test's data may stop moving (client stopped or vanished) before the test ends")
        ->capture_default_str()
        ->check(CLI::Range(0.5, 600.0));

    app.add_option("--max-streams", config.limits.max_streams, "Most parallel streams one test may use")
        ->capture_default_str()
        ->check(CLI::Range(1, static_cast<int>(speed::proto::kMaxStreams)));
    app.add_option("--max-duration", max_duration_seconds,
                   "Longest measured window a test may ask for, seconds")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 86400.0));
    auto* max_bitrate_option = app.add_option(
        "--max-bitrate", max_bitrate_text,
        "Most bits/s one test may move, either direction (100M, 2.5G; 0 = no cap). Default: no cap for "
        "TCP, 1G for UDP (the server shapes what it sends to it)");
    app.add_option("--max-bytes", max_bytes_text,
                   "Most payload bytes one test may move, warm-up included (500M, 10G; 0 = no cap)")
        ->capture_default_str();
    bool no_udp = false;
    app.add_flag("--no-udp", no_udp, "Refuse UDP tests and do not open the UDP port");
    bool no_iperf3 = false;
    app.add_flag("--no-iperf3", no_iperf3,
                 "Do not serve iperf3 clients on the port (their connections are closed as unknown)");
    app.add_option("--max-tests-per-session", config.limits.max_tests_per_session,
                   "Tests one session may run (speedcli runs one download and one upload)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    app.add_option("--auth-keys", auth_keys_path,
                   "Require authentication with the named keys in FILE ('NAME HEX-SECRET' lines, mode 0600)");
    // Session lifetime, minimum bitrate, aggregate admission caps, root (docs/operations.md).
    double max_session_seconds = std::chrono::duration<double>(config.max_session_time).count();
    std::string min_bitrate_text = "100k";
    std::size_t reserved_handshakes = 0;
    bool allow_root = false;
    std::string metrics_text;
    app.add_option("--max-session-time", max_session_seconds,
                   "Seconds after which a session ends, whatever it does (tests that would not finish by "
                   "then are refused)")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 86400.0));
    app.add_option("--min-bitrate", min_bitrate_text,
                   "Slowest paced test (-b) the server runs, bits/s (100k, 1M; 0 = any); unpaced tests are "
                   "always allowed")
        ->capture_default_str();
    app.add_option("--max-sessions-per-ipv4-24", admission.max_sessions_per_ipv4_24,
                   "Sessions served at once from one IPv4 /24, all its hosts together")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--max-sessions-per-ipv6-56", admission.max_sessions_per_ipv6_56,
                   "Sessions served at once from one IPv6 /56 (a subscriber's delegation)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--max-sessions-per-ipv6-48", admission.max_sessions_per_ipv6_48,
                   "Sessions served at once from one IPv6 /48 (a site)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--max-handshakes-per-network", admission.max_handshakes_per_network,
                   "Connections being set up at once from one IPv4 /24, IPv6 /56 or IPv6 /48")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    auto* reserved_option =
        app.add_option("--reserved-handshakes", reserved_handshakes,
                       "Of --max-handshakes, how many only hosts with a live session may use (their data "
                       "and probe connections); default: a quarter")
            ->check(CLI::Range(0, 1000000));
    auto* metrics_option = app.add_option(
        "--metrics", metrics_text,
        "Serve Prometheus metrics at http://ADDR:PORT/metrics (off unless given; e.g. 127.0.0.1:9464)");
    std::uint16_t http_port = 0;
    auto* http_port_option =
        app.add_option(
               "--http-port", http_port,
               "Serve the browser speed test over HTTP on this port of the --bind address (off unless "
               "given; 0 picks a free one)")
            ->check(CLI::Range(0, 65535));
    double http_request_timeout_seconds =
        std::chrono::duration<double>(speed::server::web_limits{}.request_timeout).count();
    app.add_option("--http-request-timeout", http_request_timeout_seconds,
                   "Seconds a browser test request (head and body) may take to arrive, and a kept-alive HTTP "
                   "connection may wait for its next one")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    app.add_option("--http-max-connections", config.web.max_connections,
                   "Browser test HTTP connections open at once; more wait in the listen backlog")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--http-max-connections-per-host", config.web.max_connections_per_host,
                   "Browser test HTTP connections open at once from one host (see --ipv4-host-prefix, "
                   "--ipv6-host-prefix); more are closed at accept")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--http-cors", config.http_cors_origin,
                   "Let the web page of this one origin (https://example.org) call the browser test's API; "
                   "default: no CORS headers")
        ->needs(http_port_option)
        ->check(CLI::Validator(
            [](const std::string& value) {
                return value.empty() || value.find_first_of(" \t\r\n,*") != std::string::npos
                           ? std::string("one origin, as scheme://host[:port], without spaces or '*'")
                           : std::string();
            },
            "ORIGIN"));
    app.add_flag(
        "--allow-root", allow_root,
        "Run even as root (speedsrv needs no privilege; root lets clients' requests reach the kernel "
        "with it)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; every command-line error exits 2, as documented (CLI11's own codes
        // would be 105, 109, ...).
        return app.exit(e) == 0 ? 0 : kExitUsage;
    }
    // CLI::Range lets NaN through (every comparison with it is false).
    for (const double seconds : {max_duration_seconds, handshake_timeout_seconds, idle_timeout_seconds,
                                 stall_timeout_seconds, max_session_seconds, http_request_timeout_seconds}) {
        if (!std::isfinite(seconds)) {
            std::fprintf(stderr, "speedsrv: durations must be finite numbers of seconds\n");
            return kExitUsage;
        }
    }

    auto max_bitrate = speed::units::parse_bits_per_second(max_bitrate_text);
    if (!max_bitrate) {
        std::fprintf(stderr, "speedsrv: --max-bitrate: %s\n", max_bitrate.error().c_str());
        return kExitUsage;
    }
    auto max_bytes = speed::units::parse_bytes(max_bytes_text);
    if (!max_bytes) {
        std::fprintf(stderr, "speedsrv: --max-bytes: %s\n", max_bytes.error().c_str());
        return kExitUsage;
    }
    auto min_bitrate = speed::units::parse_bits_per_second(min_bitrate_text);
    if (!min_bitrate) {
        std::fprintf(stderr, "speedsrv: --min-bitrate: %s\n", min_bitrate.error().c_str());
        return kExitUsage;
    }
    config.limits.min_bitrate = static_cast<std::uint64_t>(std::llround(*min_bitrate));
    config.max_session_time = speed::units::seconds_to_ms(max_session_seconds);
    if (reserved_option->count() > 0) {
        if (reserved_handshakes >= admission.max_handshakes) {
            std::fprintf(stderr, "speedsrv: --reserved-handshakes must be below --max-handshakes\n");
            return kExitUsage;
        }
        admission.reserved_handshakes = reserved_handshakes;
    }
    std::optional<asio::ip::tcp::endpoint> metrics_at;
    // An empty value (an unset variable in a unit file) is refused, not read as "off".
    if (metrics_option->count() > 0) {
        auto parsed = speed::server::parse_listen_endpoint(metrics_text);
        if (!parsed) {
            std::fprintf(stderr, "speedsrv: --metrics: %s\n", parsed.error().c_str());
            return kExitUsage;
        }
        metrics_at = *parsed;
    }
    if (::geteuid() == 0 && !allow_root) {
        std::fprintf(stderr,
                     "speedsrv: refusing to run as root: it needs no privilege, and as root a client's "
                     "congestion-control name could make the kernel load a module. Run it as an unprivileged "
                     "user (dist/speedsrv.service does), or pass --allow-root\n");
        return kExitStartupFailure;
    }
    if (max_bitrate_option->count() > 0) {
        config.limits.max_bitrate = static_cast<std::uint64_t>(std::llround(*max_bitrate));
        config.limits.max_udp_bitrate = config.limits.max_bitrate;
    }
    if (http_port_option->count() > 0) {
        config.http_port = http_port;
    }
    config.web.request_timeout = speed::units::seconds_to_ms(http_request_timeout_seconds);
    config.limits.udp = !no_udp;
    config.iperf3 = !no_iperf3;
    config.limits.max_bytes = *max_bytes;
    config.limits.max_duration_ms = speed::units::seconds_to_wire_ms(max_duration_seconds);
    config.handshake_timeout = speed::units::seconds_to_ms(handshake_timeout_seconds);
    config.idle_timeout = speed::units::seconds_to_ms(idle_timeout_seconds);
    config.stall_timeout = speed::units::seconds_to_ms(stall_timeout_seconds);
    if (config.threads == 0) {
        config.threads = speed::net::default_thread_count();
    }
    if (!auth_keys_path.empty()) {
        auto keys = speed::config::load_key_file(auth_keys_path);
        if (!keys) {
            std::fprintf(stderr, "speedsrv: --auth-keys: %s\n", keys.error().c_str());
            return kExitStartupFailure;
        }
        config.auth_keys = std::make_shared<const std::vector<speed::auth::key>>(std::move(*keys));
    }

    auto logger = spdlog::stderr_color_mt("speedsrv");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_level(spdlog::level::from_str(log_level));
    raise_descriptor_limit(config);

    // The data pool outlives the control context: sessions on the control context hold sockets of the pool.
    speed::net::io_pool data_pool(config.threads);
    // Probe echoes get a thread of their own (server/probe_echo.hpp): PINGs neither wait for the control
    // thread nor, flooded, slow it down.
    speed::net::io_pool probe_echo(1);
    // The browser test (--http-port) has a thread of its own too: its downloads are bulk writes, which the
    // control thread must not do (docs/architecture.md, "Threads").
    speed::net::io_pool web(1);
    asio::io_context control_context(1);
    speed::server::server srv(control_context, data_pool, probe_echo.next(), web.next(), config);
    // Listens only with --metrics: an HTTP listener is more surface on a public server (docs/operations.md).
    // A scrape's request head has the deadline of any new connection's first message: one home for it.
    speed::server::metrics_endpoint_limits metrics_limits;
    metrics_limits.deadline = config.handshake_timeout;
    speed::server::metrics_endpoint metrics(
        control_context, [&srv] { return srv.render_metrics(); }, metrics_limits);
    // Signals are caught from here on: "listening" below tells scripts and tests that SIGTERM stops us
    // cleanly.
    asio::signal_set signals(control_context, SIGINT, SIGTERM);
    asio::steady_timer drain(control_context);
    const auto notifier = speed::server::systemd_notifier::from_environment();
    health_monitor health(control_context, data_pool, notifier);
    std::atomic<bool> release_wedge{false};
    signals.async_wait([&](const asio::error_code& ec, int signal_number) {
        if (ec) {
            return;
        }
        spdlog::info("signal {} received: shutting down", signal_number);
        notifier.notify("STOPPING=1");
        health.stop();
        release_wedge = true;
        srv.shutdown();
        metrics.close();
        // Give aborted sessions a moment to log their end, then stop.
        drain.expires_after(kSessionDrain);
        drain.async_wait([&](const asio::error_code&) { control_context.stop(); });
    });

    try {
        srv.start();
    } catch (const std::exception& e) {
        spdlog::critical("cannot listen on {} port {}: {}",
                         config.bind_address.empty() ? "*" : config.bind_address, config.port, e.what());
        return kExitStartupFailure;
    }
    if (metrics_at) {
        try {
            metrics.listen(*metrics_at);
        } catch (const std::exception& e) {
            spdlog::critical("cannot serve metrics on {}: {}", metrics_text, e.what());
            return kExitStartupFailure;
        }
        const auto at = metrics.local_endpoint();
        spdlog::info("metrics: serving http://{}:{}/metrics",
                     at.address().is_v6() ? "[" + at.address().to_string() + "]" : at.address().to_string(),
                     at.port());
    }
    const auto endpoint = srv.local_endpoint();
    const auto http_at = srv.http_endpoint();
    spdlog::info(
        "speedsrv {} listening on {} port {} ({} data threads{}{}{})", SPEED_VERSION,
        endpoint.address().to_string(), endpoint.port(), config.threads, config.limits.udp ? "" : ", UDP off",
        // Tests started with --http-port 0 read the port from here.
        http_at ? fmt::format(", browser test on http port {}", http_at->port()) : std::string(),
        config.auth_keys ? fmt::format(", authentication required, {} key{}", config.auth_keys->size(),
                                       config.auth_keys->size() == 1 ? "" : "s")
                         : std::string());

    data_pool.start("speedsrv-data");
    probe_echo.start("speedsrv-probe");
    web.start("speedsrv-web");
    notifier.notify("READY=1");
    health.start();
    wedge_data_thread_for_test(data_pool, release_wedge);
    control_context.run();
    web.stop();
    probe_echo.stop();
    if (!data_pool.stop(std::chrono::steady_clock::now() + kDataThreadStop)) {
        // Joining a thread stuck in a handler would hang the stop for good; the kernel reclaims everything.
        spdlog::error("a data thread did not stop within {} s: exiting without it", kDataThreadStop.count());
        spdlog::shutdown();
        std::_Exit(kExitStuckThread);
    }
    spdlog::info("speedsrv stopped");
    return 0;
}
