// speedcli: runs a speed test against speedsrv, or monitors this host's interfaces. See README.md.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <asio/ip/address.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>

#include "client/auth.hpp"
#include "client/exit_codes.hpp"
#include "client/monitor/monitor.hpp"
#include "client/options.hpp"
#include "client/output.hpp"
#include "client/output_html.hpp"
#include "client/test_run.hpp"
#include "common/tos.hpp"
#include "common/udp_wire.hpp"
#include "common/units.hpp"

namespace {

using speed::client::kExitUsage;

// What kind of output: the text (optionally --quiet, -f unit), one JSON document, JSON lines, or CSV; and
// where it goes (--logfile).
enum class output_kind { text, json, json_stream, csv };
struct output_flags {
    bool json = false;
    bool json_stream = false;
    bool csv = false;
    bool quiet = false;
    std::string rate_unit = "a";
    std::string logfile;
    std::string report;  // --report: the HTML page, besides whichever output kind
    output_kind kind() const {
        return json ? output_kind::json
                    : (json_stream ? output_kind::json_stream : (csv ? output_kind::csv : output_kind::text));
    }
};

// Adds the speed test's flags, iperf3's names where the two overlap.
// Socket flags as typed (sizes and marks have units and names), checked after parsing.
struct socket_flags {
    std::string servers_file;  // --servers (not a socket flag, but read after parsing the same way)
    std::string window;
    std::string tos;
    std::string dscp;
};

// Authentication flags, kept apart from the test options: they name a file, loaded after parsing.
struct auth_flags {
    std::string key_file;
    std::string key_name;
};

void add_test_options(CLI::App& app, speed::client::test_options& options, std::string& bitrate_text,
                      socket_flags& sockets, auth_flags& auth, output_flags& output) {
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
    app.add_flag("--iperf3", options.iperf3,
                 "The server is an iperf3 server (iperf3 -s): download in its reverse mode measured here, "
                 "upload from its receiver's report (TCP only)");
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
    app.add_flag("--bidir", options.bidir,
                 "Download and upload at the same time (each measured by its receiver; loaded latency and "
                 "RPM under both; TCP or --udp; with --iperf3 one iperf3 --bidir test)");
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
                   "Seconds to wait for each connection and for the server's greeting")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    app.add_option(
        "--servers", sockets.servers_file,
        "Time every server of FILE (one host[:port] a line, or a JSON array) and test the nearest");
    app.add_option("-B,--bind", options.sockets.bind_address,
                   "Local IP address for every connection (control, probes, data; UDP too)");
    app.add_option("--cport", options.sockets.data_port,
                   "Local port of the first data stream; stream i uses PORT + i")
        ->check(CLI::Range(1, 65535));
    app.add_option(
        "-w,--window", sockets.window,
        "Socket buffer size of speedcli's TCP data sockets (64K, 4M; the kernel doubles it and caps it "
        "at net.core.rmem_max / wmem_max)");
    app.add_option("-M,--set-mss", options.sockets.mss, "TCP maximum segment size of speedcli's data sockets")
        ->check(CLI::Range(88, 32767));
    CLI::Option* tos = app.add_option(
        "-S,--tos", sockets.tos, "IP TOS byte of what speedcli sends on its data sockets (0-255; 0x hex)");
    app.add_option("--dscp", sockets.dscp,
                   "DSCP of what speedcli sends on its data sockets (0-63, or EF, AF11-AF43, CS0-CS7)")
        ->excludes(tos);
    app.add_option("--threads", options.threads,
                   "Data-plane threads (0 = one per stream, up to one per core)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    CLI::Option* ipv4 = app.add_flag_callback(
        "-4,--ipv4", [&options] { options.family = speed::client::address_family::ipv4; }, "Use IPv4 only");
    app.add_flag_callback(
           "-6,--ipv6", [&options] { options.family = speed::client::address_family::ipv6; }, "Use IPv6 only")
        ->excludes(ipv4);
    CLI::Option* json =
        app.add_flag("-J,--json", output.json, "Print one JSON document (docs/json.md) instead of text");
    CLI::Option* json_stream =
        app.add_flag(
               "--json-stream", output.json_stream,
               "Print JSON lines as the test runs: start, idle latency, each interval, each direction, end "
               "(docs/json.md)")
            ->excludes(json);
    app.add_flag("--csv", output.csv, "Print CSV: a header, a row per interval, summary rows (docs/json.md)")
        ->excludes(json)
        ->excludes(json_stream);
    app.add_flag("-q,--quiet", output.quiet, "Text output: only the summary");
    app.add_option(
           "-f,--format", output.rate_unit,
           "Text output: rates in a fixed unit, k m g t (kbit/s .. Tbit/s) or K M G T (KiB/s .. TiB/s); "
           "a adapts")
        ->capture_default_str()
        ->check(CLI::IsMember({"a", "k", "m", "g", "t", "K", "M", "G", "T"}));
    app.add_option("--logfile", output.logfile, "Append the output to FILE instead of printing it on stdout");
    app.add_option("--report", output.report,
                   "Also write the run as a self-contained HTML page with charts to FILE (opens offline)");
    app.add_option("--auth-key", auth.key_file,
                   "Key file for servers that require authentication ('NAME HEX-SECRET' lines, mode 0600)");
    app.add_option("--auth-key-name", auth.key_name,
                   "Which key of the --auth-key file to use (if it has several)");
}

// The output kind the command line asks for, read from argv itself: a usage error can come before (or
// instead of) a successful parse. "-J", "--json", or a cluster of short flags that contains J ("-4J");
// "--json-stream"; "--csv".
output_kind output_asked_for(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg(argv[i]);
        if (arg == "--") {
            break;
        }
        if (arg == "--json" || (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-' &&
                                arg.find_first_not_of("46Juqhv", 1) == std::string_view::npos &&
                                arg.find('J') != std::string_view::npos)) {
            return output_kind::json;
        }
        if (arg == "--json-stream") {
            return output_kind::json_stream;
        }
        if (arg == "--csv") {
            return output_kind::csv;
        }
    }
    return output_kind::text;
}

// A report that ended before anything ran, for usage errors.
speed::client::test_report failed_report(const std::string& message,
                                         const speed::client::test_options& options, int exit_code) {
    speed::client::test_report report;
    report.version = SPEED_VERSION;
    report.start_time = speed::units::format_utc_iso8601(std::chrono::system_clock::now());
    report.host = options.host;
    report.port = options.port;
    report.streams = options.streams;
    report.protocol = options.udp ? "udp" : "tcp";
    report.error = message;
    report.exit_code = exit_code;
    return report;
}

// Prints the end of a run in the chosen machine format (nothing for text): the JSON document, the stream's
// "end" line, or the CSV rows. Usage errors use it too, so a script reading stdout never gets nothing.
void print_machine_end(output_kind kind, std::FILE* out, const speed::client::test_report& report,
                       const speed::client::test_options& options) {
    using namespace speed::client;
    if (kind == output_kind::json) {
        fmt::print(out, "{}\n", to_json(report, options).dump(2));
    } else if (kind == output_kind::json_stream) {
        json_stream_output(out, options).end(report);
    } else if (kind == output_kind::csv) {
        csv_output(out).end(report);
    }
    std::fflush(out);
}

// A usage error: the message on stderr, and in a machine format also its document (`error` the same
// message, exit code 2).
int usage_error(output_kind kind, const std::string& message,
                const speed::client::test_options& options = {}) {
    std::fprintf(stderr, "speedcli: %s\n", message.c_str());
    print_machine_end(kind, stdout, failed_report(message, options, kExitUsage), options);
    return kExitUsage;
}

int run_test_command(const speed::client::test_options& options, const output_flags& output) {
    using namespace speed::client;
    const output_kind kind = output.kind();
    if (!output.report.empty()) {
        if (auto failure = check_report_path(output.report)) {
            return usage_error(kind, "--report " + output.report + ": " + *failure, options);
        }
    }
    std::FILE* out = stdout;
    if (!output.logfile.empty()) {
        // Appended, as iperf3's --logfile: a cron job's runs accumulate in one file.
        out = std::fopen(output.logfile.c_str(), "ae");
        if (out == nullptr) {
            return usage_error(kind, "--logfile " + output.logfile + ": " + std::strerror(errno), options);
        }
    }
    human_output human(out, output.quiet, output.rate_unit.front(), &options);
    json_stream_output stream(out, options);
    csv_output csv(out);
    progress_sink silent;
    progress_sink* progress = &human;
    if (kind == output_kind::json) {
        progress = &silent;
    } else if (kind == output_kind::json_stream) {
        progress = &stream;
    } else if (kind == output_kind::csv) {
        progress = &csv;
    }
    const test_report report = run_speed_test(options, *progress);
    if (kind == output_kind::json_stream) {
        stream.end(report);
    } else if (kind == output_kind::csv) {
        csv.end(report);
    } else if (kind == output_kind::json) {
        print_machine_end(kind, out, report, options);
    } else if (report.download || report.upload || report.idle_latency) {
        human.summary(report);
    }
    std::fflush(out);  // what was measured before the error line when both go to one log
    if (report.error) {
        std::fprintf(stderr, "speedcli: error: %s\n", report.error->c_str());
        if (out != stdout && kind == output_kind::text) {
            fmt::print(out, "speedcli: error: {}\n", *report.error);
        }
    }
    if (out != stdout) {
        std::fclose(out);
    }
    if (!output.report.empty()) {
        if (auto failure = write_html_report(output.report, to_json(report, options))) {
            std::fprintf(stderr, "speedcli: --report %s: %s\n", output.report.c_str(), failure->c_str());
            return report.exit_code == kExitOk ? kExitTestFailed : report.exit_code;
        }
    }
    return report.exit_code;
}

}  // namespace

// The --servers file, read and parsed (at most 1 MiB: a list of 64 servers is a few kilobytes).
speed::result<std::vector<speed::client::server_address>> read_server_list(const std::string& path,
                                                                           std::uint16_t default_port) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return speed::failure{std::strerror(errno)};
    }
    std::string text(1024 * 1024 + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > 1024 * 1024) {
        return speed::failure{"larger than 1 MiB"};
    }
    return speed::client::parse_server_list(text, default_port);
}

// Checks the socket flags and puts them into `options`; the usage error's text otherwise.
std::optional<std::string> apply_socket_flags(const socket_flags& sockets,
                                              speed::client::test_options& options) {
    auto& settings = options.sockets;
    if (!settings.bind_address.empty()) {
        asio::error_code ec;
        const auto address = asio::ip::make_address(settings.bind_address, ec);
        if (ec) {
            return "--bind: '" + settings.bind_address + "' is not an IP address";
        }
        const auto family =
            address.is_v4() ? speed::client::address_family::ipv4 : speed::client::address_family::ipv6;
        if (options.family != speed::client::address_family::any && options.family != family) {
            return std::string("--bind: ") + settings.bind_address + " is not of the family -4/-6 asks for";
        }
        options.family = family;  // the server is reached over the bound address's family
    }
    if (settings.data_port != 0 && settings.data_port + options.streams - 1 > 65535) {
        return "--cport: " + std::to_string(settings.data_port) + " + " + std::to_string(options.streams) +
               " streams goes past port 65535";
    }
    if (!sockets.window.empty()) {
        auto bytes = speed::units::parse_bytes(sockets.window);
        if (!bytes || *bytes < 1024 || *bytes > 512ULL * 1024 * 1024) {
            return "--window: '" + sockets.window + "' is not a size from 1K to 512M";
        }
        settings.window = *bytes;
    }
    if (!sockets.tos.empty()) {
        auto tos = speed::tos::parse_tos(sockets.tos);
        if (!tos) {
            return "--tos: " + tos.error();
        }
        settings.tos = *tos;
    }
    if (!sockets.dscp.empty()) {
        auto tos = speed::tos::parse_dscp(sockets.dscp);
        if (!tos) {
            return "--dscp: " + tos.error();
        }
        settings.tos = *tos;
    }
    return std::nullopt;
}

int main(int argc, char** argv) {
    speed::client::test_options options;
    std::string bitrate_text = "0";
    socket_flags sockets;
    auth_flags auth;
    output_flags output;
    speed::client::monitor_options monitor;

    CLI::App app{
        "speedcli: measures download, upload and latency against a speedsrv server,\n"
        "or shows this host's per-interface traffic (speedcli monitor)."};
    app.set_version_flag("-v,--version", std::string("speedcli ") + SPEED_VERSION);
    add_test_options(app, options, bitrate_text, sockets, auth, output);
    CLI::App* monitor_command = app.add_subcommand("monitor", "Show this host's per-interface traffic, live");
    speed::client::add_monitor_options(*monitor_command, monitor);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const bool for_monitor = argc > 1 && std::string_view(argv[1]) == "monitor";
        if (e.get_exit_code() != 0 && !for_monitor) {
            if (const auto kind = output_asked_for(argc, argv); kind != output_kind::text) {
                return usage_error(kind, e.what());
            }
        }
        const int code = app.exit(e);
        return code == 0 ? 0 : kExitUsage;
    }
    // CLI::Range lets NaN through (every comparison with it is false).
    for (const double seconds : {options.duration_seconds, options.omit_seconds, options.interval_seconds,
                                 options.ping_interval_seconds, options.loaded_ping_interval_seconds,
                                 options.connect_timeout_seconds}) {
        if (!std::isfinite(seconds)) {
            return usage_error(*monitor_command ? output_kind::text : output.kind(),
                               "durations must be finite numbers of seconds");
        }
    }

    if (*monitor_command) {
        return speed::client::run_monitor(monitor);
    }
    options.json = output.json;
    const output_kind json = output.kind();
    if (!sockets.servers_file.empty()) {
        if (!options.host.empty()) {
            return usage_error(json, "give HOST or --servers, not both", options);
        }
        auto servers = read_server_list(sockets.servers_file, options.port);
        if (!servers) {
            return usage_error(json, "--servers " + sockets.servers_file + ": " + servers.error(), options);
        }
        options.servers = std::move(*servers);
    } else if (options.host.empty()) {
        return usage_error(json,
                           "HOST is required (or --servers FILE, or 'speedcli monitor'); run with --help for "
                           "more information");
    }
    auto bitrate = speed::units::parse_bits_per_second(bitrate_text);
    if (!bitrate) {
        return usage_error(json, "--bitrate: " + bitrate.error(), options);
    }
    options.bitrate = static_cast<std::uint64_t>(std::llround(*bitrate));
    if (auto failure = apply_socket_flags(sockets, options)) {
        return usage_error(json, *failure, options);
    }
    if (options.iperf3 && options.udp && options.bitrate == 0) {
        // An iperf3 server sends no feedback for speedcli's adaptive rate, and iperf3's own default (1
        // Mbit/s) would measure nothing.
        return usage_error(json, "--iperf3 with --udp needs --bitrate (the rate to send at, e.g. 100M)",
                           options);
    }
    if (options.iperf3 && !options.download && !options.upload) {
        return usage_error(json, "nothing to do: --iperf3 with --no-download and --no-upload", options);
    }
    if (options.bidir && (!options.download || !options.upload)) {
        return usage_error(
            json, "--bidir runs download and upload at once: not with --no-download or --no-upload", options);
    }
    if (!options.download && !options.upload && options.pings == 0) {
        return usage_error(json, "nothing to do: --no-download, --no-upload and --pings 0 together", options);
    }
    if (options.interval_seconds != 0.0 && options.interval_seconds < 0.1) {
        return usage_error(json, "--interval must be 0 (no intervals) or at least 0.1 s", options);
    }
    if (!auth.key_name.empty() && auth.key_file.empty()) {
        return usage_error(json, "--auth-key-name needs --auth-key FILE", options);
    }
    if (!auth.key_file.empty()) {
        auto key = speed::client::load_client_key(auth.key_file, auth.key_name);
        if (!key) {
            return usage_error(json, "--auth-key: " + key.error(), options);
        }
        options.auth_key = std::move(*key);
    }
    return run_test_command(options, output);
}
