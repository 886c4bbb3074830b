// speedsrv: the server side of the speed test. See README.md and docs/operations.md.
#include <fmt/ostream.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <cmath>
#include <cstdlib>

#include "common/units.hpp"
#include "net/io_pool.hpp"
#include "server/config.hpp"
#include "server/server.hpp"

namespace {

// Exit codes (documented in README.md): 0 after a clean shutdown, 1 when the server cannot start.
constexpr int kExitStartupFailure = 1;

std::uint32_t seconds_to_ms(double seconds) {
    return static_cast<std::uint32_t>(std::llround(seconds * 1000.0));
}

}  // namespace

int main(int argc, char** argv) {
    speed::server::server_config config;
    std::string log_level = "info";
    double max_duration_seconds = config.limits.max_duration_ms / 1000.0;
    double handshake_timeout_seconds = 10.0;
    std::string max_bitrate_text = "0";

    CLI::App app{"speedsrv: serves speed tests to speedcli clients, measuring uploads at the receiver"};
    app.set_version_flag("-v,--version", std::string("speedsrv ") + SPEED_VERSION);
    app.add_option("-B,--bind", config.bind_address,
                   "Address to listen on (IPv4 or IPv6); default: every address, IPv6 and IPv4");
    app.add_option("-p,--port", config.port, "TCP port to listen on (0 picks a free one)")
        ->capture_default_str()
        ->check(CLI::Range(0, 65535));
    app.add_option("-t,--threads", config.threads, "Data-plane threads (0 = one per core)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->capture_default_str()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.add_option("--max-sessions", config.max_sessions,
                   "Sessions served at once; more are told the server is busy")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    app.add_option("--max-streams", config.limits.max_streams, "Most parallel streams one test may use")
        ->capture_default_str()
        ->check(CLI::Range(1, static_cast<int>(speed::proto::kMaxStreams)));
    app.add_option("--max-duration", max_duration_seconds,
                   "Longest measured window a test may ask for, seconds")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 86400.0));
    auto* max_bitrate_option = app.add_option(
        "--max-bitrate", max_bitrate_text,
        "Most a test may send, bits/s (100M, 2.5G); 0 = no cap. Default: no cap for TCP, 1G for "
        "UDP (the server shapes what it sends to it)");
    bool no_udp = false;
    app.add_flag("--no-udp", no_udp, "Refuse UDP tests and do not open the UDP port");
    app.add_option("--handshake-timeout", handshake_timeout_seconds,
                   "Seconds a new connection has to send its HELLO")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    CLI11_PARSE(app, argc, argv);

    std::string rate_error;
    auto max_bitrate = speed::units::parse_bits_per_second(max_bitrate_text, &rate_error);
    if (!max_bitrate) {
        std::fprintf(stderr, "speedsrv: --max-bitrate: %s\n", rate_error.c_str());
        return 2;
    }
    if (max_bitrate_option->count() > 0) {
        config.limits.max_bitrate = static_cast<std::uint64_t>(*max_bitrate);
        config.limits.max_udp_bitrate = config.limits.max_bitrate;
    }
    config.limits.udp = !no_udp;
    config.limits.max_duration_ms = seconds_to_ms(max_duration_seconds);
    config.handshake_timeout = std::chrono::milliseconds(seconds_to_ms(handshake_timeout_seconds));
    if (config.threads == 0) {
        config.threads = speed::net::default_thread_count();
    }

    auto logger = spdlog::stderr_color_mt("speedsrv");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_level(spdlog::level::from_str(log_level));

    // The data pool outlives the control context: sessions on the control context hold sockets of the pool.
    speed::net::io_pool data_pool(config.threads);
    asio::io_context control_context(1);
    speed::server::server srv(control_context, data_pool, config);
    // Signals are caught from here on: "listening" below tells scripts and tests that SIGTERM stops us
    // cleanly.
    asio::signal_set signals(control_context, SIGINT, SIGTERM);
    asio::steady_timer drain(control_context);
    signals.async_wait([&](const asio::error_code& ec, int signal_number) {
        if (ec) {
            return;
        }
        spdlog::info("signal {} received: shutting down", signal_number);
        srv.shutdown();
        // Give aborted sessions a moment to log their end, then stop.
        drain.expires_after(std::chrono::milliseconds(300));
        drain.async_wait([&](const asio::error_code&) { control_context.stop(); });
    });

    try {
        srv.start();
    } catch (const std::exception& e) {
        spdlog::critical("cannot listen on {} port {}: {}",
                         config.bind_address.empty() ? "*" : config.bind_address, config.port, e.what());
        return kExitStartupFailure;
    }
    const auto endpoint = srv.local_endpoint();
    spdlog::info("speedsrv {} listening on {} port {} ({} data threads)", SPEED_VERSION,
                 endpoint.address().to_string(), endpoint.port(), config.threads);

    data_pool.start("speedsrv-data");
    control_context.run();
    data_pool.stop();
    spdlog::info("speedsrv stopped");
    return 0;
}
