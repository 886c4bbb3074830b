// speedcli: runs a speed test against speedsrv, or monitors this host's interfaces. See README.md.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "client/auth.hpp"
#include "client/exit_codes.hpp"
#include "client/monitor/monitor.hpp"
#include "client/options.hpp"
#include "client/output.hpp"
#include "client/test_run.hpp"
#include "common/udp_wire.hpp"
#include "common/units.hpp"

namespace {

using speed::client::kExitUsage;

// Adds the speed test's flags, iperf3's names where the two overlap.
// Authentication flags, kept apart from the test options: they name a file, loaded after parsing.
struct auth_flags {
    std::string key_file;
    std::string key_name;
};

void add_test_options(CLI::App& app, speed::client::test_options& options, std::string& bitrate_text,
                      auth_flags& auth) {
    app.add_option("host", options.host, "Server to test against (name, IPv4 or IPv6 address)");
    app.add_option("-p,--port", options.port, "Server port")
        ->capture_default_str()
        ->check(CLI::Range(1, 65535));
    app.add_option("-t,--duration,--time", options.duration_seconds, "Seconds measured per direction")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 86400.0));
    app.add_option("-O,--omit", options.omit_seconds,
                   "Warm-up seconds excluded from the figures (reported apart)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 3600.0));
    app.add_option("-i,--interval", options.interval_seconds, "Seconds between interval reports, 0 for none")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 3600.0));
    app.add_option("-P,--streams,--parallel", options.streams, "Parallel streams per direction")
        ->capture_default_str()
        ->check(CLI::Range(1, static_cast<int>(speed::proto::kMaxStreams)));
    app.add_option(
           "-b,--bitrate", bitrate_text,
           "Target rate per direction in bits/s, split over the streams (100M, 2.5G, 800k; 0 = as fast "
           "as the path allows; with --udp, 0 is an adaptive rate driven by the receiver's feedback)")
        ->capture_default_str();
    app.add_flag("-u,--udp", options.udp, "Test over UDP: loss, jitter and reordering (latency probes too)");
    app.add_option("-l,--length", options.udp_length,
                   "UDP payload bytes per datagram (default 1472 for IPv4, 1452 for IPv6: a 1500-byte MTU)")
        ->check(CLI::Range(speed::udp::kMinDatagramBytes, speed::udp::kMaxDatagramBytes));
    app.add_option("-C,--congestion", options.congestion,
                   "TCP congestion control for the data streams (e.g. cubic, bbr)");
    app.add_flag_callback(
        "--no-download", [&options] { options.download = false; }, "Skip the download test");
    app.add_flag_callback(
        "--no-upload", [&options] { options.upload = false; }, "Skip the upload test");
    app.add_option("--pings", options.pings, "Idle latency probes, 0 to skip")
        ->capture_default_str()
        ->check(CLI::Range(0, 100000));
    app.add_option("--loaded-ping-interval", options.loaded_ping_interval_seconds,
                   "Seconds between latency probes while download and upload run, 0 for none")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 60.0));
    app.add_option("--ping-interval", options.ping_interval_seconds, "Seconds between idle latency probes")
        ->capture_default_str()
        ->check(CLI::Range(0.001, 60.0));
    app.add_option("--connect-timeout", options.connect_timeout_seconds,
                   "Seconds to wait for each connection")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    app.add_option("--threads", options.threads,
                   "Data-plane threads (0 = one per stream, up to one per core)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    app.add_flag_callback(
        "-4,--ipv4", [&options] { options.family = speed::client::address_family::ipv4; }, "Use IPv4 only");
    app.add_flag_callback(
        "-6,--ipv6", [&options] { options.family = speed::client::address_family::ipv6; }, "Use IPv6 only");
    app.add_flag("-J,--json", options.json, "Print one JSON document (docs/json.md) instead of text");
    app.add_option("--auth-key", auth.key_file,
                   "Key file for servers that require authentication ('NAME HEX-SECRET' lines, mode 0600)");
    app.add_option("--auth-key-name", auth.key_name,
                   "Which key of the --auth-key file to use (if it has several)");
}

int run_test_command(speed::client::test_options& options) {
    using namespace speed::client;
    human_output human(stdout);
    progress_sink silent;
    progress_sink& progress = options.json ? silent : static_cast<progress_sink&>(human);
    const test_report report = run_speed_test(options, progress);
    if (options.json) {
        std::cout << to_json(report).dump(2) << std::endl;
    } else {
        if (report.download || report.upload || report.idle_latency) {
            human.summary(report);
        }
        if (report.error) {
            std::fprintf(stderr, "speedcli: error: %s\n", report.error->c_str());
        }
    }
    return report.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    speed::client::test_options options;
    std::string bitrate_text = "0";
    auth_flags auth;
    speed::client::monitor_options monitor;

    CLI::App app{
        "speedcli: measures download, upload and latency against a speedsrv server,\n"
        "or shows this host's per-interface traffic (speedcli monitor)."};
    app.set_version_flag("-v,--version", std::string("speedcli ") + SPEED_VERSION);
    add_test_options(app, options, bitrate_text, auth);
    CLI::App* monitor_command = app.add_subcommand("monitor", "Show this host's per-interface traffic, live");
    speed::client::add_monitor_options(*monitor_command, monitor);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : kExitUsage;
    }
    // CLI::Range lets NaN through (every comparison with it is false).
    for (const double seconds : {options.duration_seconds, options.omit_seconds, options.interval_seconds,
                                 options.ping_interval_seconds, options.loaded_ping_interval_seconds,
                                 options.connect_timeout_seconds}) {
        if (!std::isfinite(seconds)) {
            std::fprintf(stderr, "speedcli: durations must be finite numbers of seconds\n");
            return kExitUsage;
        }
    }

    if (*monitor_command) {
        return speed::client::run_monitor(monitor);
    }
    if (options.host.empty()) {
        std::fprintf(stderr,
                     "speedcli: HOST is required (or use 'speedcli monitor')\nRun with --help for more "
                     "information.\n");
        return kExitUsage;
    }
    std::string error;
    auto bitrate = speed::units::parse_bits_per_second(bitrate_text, &error);
    if (!bitrate) {
        std::fprintf(stderr, "speedcli: --bitrate: %s\n", error.c_str());
        return kExitUsage;
    }
    options.bitrate = static_cast<std::uint64_t>(std::llround(*bitrate));
    if (!options.download && !options.upload && options.pings == 0) {
        std::fprintf(stderr, "speedcli: nothing to do: --no-download, --no-upload and --pings 0 together\n");
        return kExitUsage;
    }
    if (options.interval_seconds != 0.0 && options.interval_seconds < 0.1) {
        std::fprintf(stderr, "speedcli: --interval must be 0 (no intervals) or at least 0.1 s\n");
        return kExitUsage;
    }
    if (!auth.key_name.empty() && auth.key_file.empty()) {
        std::fprintf(stderr, "speedcli: --auth-key-name needs --auth-key FILE\n");
        return kExitUsage;
    }
    if (!auth.key_file.empty()) {
        auto key = speed::client::load_client_key(auth.key_file, auth.key_name);
        if (auto* failure = std::get_if<std::string>(&key)) {
            std::fprintf(stderr, "speedcli: --auth-key: %s\n", failure->c_str());
            return kExitUsage;
        }
        options.auth_key = std::move(std::get<speed::auth::key>(key));
    }
    return run_test_command(options);
}
