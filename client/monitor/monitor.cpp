#include "client/monitor/monitor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "client/exit_codes.hpp"
#include "client/monitor/monitor_output.hpp"
#include "client/monitor/monitor_report.hpp"
#include "client/monitor/netdev_reader.hpp"
#include "client/output_html.hpp"
#include "common/time_units.hpp"

namespace speed::client {

void add_monitor_options(CLI::App& command, monitor_options& options) {
    command.add_option("-I,--interface", options.interfaces,
                       "Interface to show (repeatable); default: every one that is up");
    command.add_option("-i,--interval", options.interval_seconds, "Seconds between rows (fractions work)")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 86400.0));
    auto* count = command.add_option("-c,--count", options.count, "Rows to print, 0 = until Ctrl-C")
                      ->capture_default_str();
    command.add_flag("-J,--json", options.json, "One JSON object per interval (NDJSON, docs/monitor.md)");
    command.add_option("--units", options.units, "Rates in bits (bit/s, SI) or bytes (B/s, IEC)")
        ->capture_default_str()
        ->check(CLI::IsMember({"bits", "bytes"}));
    command.add_flag("--once", options.once, "One interval, printed as download and upload speed")
        ->excludes(count);
    command.add_option("--report", options.report,
                       "Also write the run as a self-contained HTML page with charts to FILE when it ends");
}

namespace {

// SIGINT and SIGTERM end the run cleanly. The handler sets a flag and writes a byte to a pipe; the wait for
// the next sampling instant polls that pipe, so the run ends at once, not at the next deadline, and a signal
// that arrives just before the wait begins is not missed. One instance at a time (the handler's state is
// static).
//
// The handler stays installed until the process exits: a stop often comes as two signals (timeout(1) signals
// the monitor and then its whole process group; a user presses Ctrl-C twice), and restoring the default
// disposition after the first would let the second kill the process while or after it prints the summary,
// turning a clean stop into exit status 143.
class stop_signals {
  public:
    stop_signals() {
        int fds[2] = {-1, -1};
        if (::pipe(fds) == 0) {
            for (const int fd : fds) {
                ::fcntl(fd, F_SETFD, FD_CLOEXEC);
                ::fcntl(fd, F_SETFL, O_NONBLOCK);  // a full pipe never blocks the handler
            }
            read_fd_ = fds[0];
            write_fd_ = fds[1];
        }
        stop_requested_ = 0;
        struct sigaction action {};
        action.sa_handler = &stop_signals::handle;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;  // reads and writes carry on; poll() returns early regardless
        ::sigaction(SIGINT, &action, nullptr);
        ::sigaction(SIGTERM, &action, nullptr);
    }
    ~stop_signals() {
        // Closing the pipe with the signals blocked, so the handler never writes to a closed (or reused)
        // descriptor; one that arrives meanwhile runs after the unblock and only sets the flag.
        sigset_t stops;
        sigemptyset(&stops);
        sigaddset(&stops, SIGINT);
        sigaddset(&stops, SIGTERM);
        sigset_t previous;
        ::pthread_sigmask(SIG_BLOCK, &stops, &previous);
        const int write_fd = write_fd_;
        write_fd_ = -1;
        ::close(read_fd_);
        ::close(write_fd);
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    }
    stop_signals(const stop_signals&) = delete;
    stop_signals& operator=(const stop_signals&) = delete;

    // Waits until the monotonic clock reaches `deadline_ns`. False when a stop signal came first (or before).
    bool wait_until(std::int64_t deadline_ns) const {
        for (;;) {
            if (stop_requested_ != 0) {
                return false;
            }
            const std::int64_t left_ns = deadline_ns - monotonic_now_ns();
            if (left_ns <= 0) {
                return true;
            }
            // poll() takes milliseconds: round up, so the wait never ends before the deadline.
            const std::int64_t left_ms = std::min<std::int64_t>((left_ns + 999'999) / 1'000'000, 60'000);
            pollfd wake{read_fd_, POLLIN, 0};
            ::poll(&wake, read_fd_ >= 0 ? 1 : 0, static_cast<int>(left_ms));
        }
    }

  private:
    static void handle(int /*signal*/) {
        stop_requested_ = 1;
        const int saved_errno = errno;
        const char byte = 1;
        [[maybe_unused]] const auto written = ::write(write_fd_, &byte, 1);
        errno = saved_errno;
    }

    static inline volatile std::sig_atomic_t stop_requested_ = 0;
    static inline int write_fd_ = -1;  // set before the handler is installed, read only by it
    int read_fd_ = -1;
};

// The names asked for, each once, in the order first given.
std::vector<std::string> unique_names(const std::vector<std::string>& names) {
    std::vector<std::string> unique;
    for (const auto& name : names) {
        if (std::find(unique.begin(), unique.end(), name) == unique.end()) {
            unique.push_back(name);
        }
    }
    return unique;
}

// "lo, eth0, wlan0 (down)": every interface the kernel lists, for the unknown-interface error.
std::string available_list(const std::vector<netdev::interface_reading>& interfaces) {
    std::string text;
    for (const auto& i : interfaces) {
        text += (text.empty() ? "" : ", ") + i.name + (i.up ? "" : " (down)");
    }
    return text.empty() ? "none" : text;
}

std::string joined(const std::vector<std::string>& names) {
    std::string text;
    for (const auto& name : names) {
        text += (text.empty() ? "'" : ", '") + name + "'";
    }
    return text;
}

bool terminal_can_redraw(std::FILE* out) {
    const char* term = std::getenv("TERM");
    return ::isatty(::fileno(out)) == 1 && term != nullptr && std::strcmp(term, "dumb") != 0;
}

std::unique_ptr<monitor_printer> make_printer(const monitor_options& options, std::FILE* out) {
    if (options.json) {
        return make_json_printer(out, /*with_summary=*/!options.once);
    }
    table_style style;
    style.units = options.units == "bytes" ? rate_units::bytes : rate_units::bits;
    style.milliseconds = options.interval_seconds != std::floor(options.interval_seconds);
    if (options.once) {
        return make_once_printer(out, style);
    }
    return make_table_printer(out, style, terminal_can_redraw(out));
}

}  // namespace

int run_monitor(const monitor_options& options) {
    std::string error;
    const auto baseline = read_interfaces(error);
    if (!baseline) {
        std::fprintf(stderr, "speedcli monitor: %s\n", error.c_str());
        return kExitTestFailed;
    }
    const auto selected = unique_names(options.interfaces);
    const auto missing = netdev::missing_interfaces(selected, baseline->interfaces);
    if (!missing.empty()) {
        std::fprintf(stderr, "speedcli monitor: no interface named %s; available: %s\n",
                     joined(missing).c_str(), available_list(baseline->interfaces).c_str());
        return kExitUsage;
    }
    if (!options.report.empty()) {
        if (auto failure = check_report_path(options.report)) {
            std::fprintf(stderr, "speedcli monitor: --report %s: %s\n", options.report.c_str(),
                         failure->c_str());
            return kExitUsage;
        }
    }

    const stop_signals signals;
    netdev::traffic_monitor monitor(selected);
    monitor.add(*baseline);
    if (monitor.watched().empty()) {
        std::fprintf(
            stderr,
            "speedcli monitor: no interface is up yet; waiting for one (or name one with --interface)\n");
    }
    std::unique_ptr<monitor_printer> printer = make_printer(options, stdout);
    const monitor_report_recorder* report = nullptr;
    if (!options.report.empty()) {
        auto recorder = std::make_unique<monitor_report_recorder>(std::move(printer), options.report);
        report = recorder.get();
        printer = std::move(recorder);
    }
    printer->start(monitor.watched(), options.interval_seconds);

    // Sampling instants stay on the grid baseline + k * interval; each row's rates divide by the measured
    // time between its two readings.
    const std::int64_t interval_ns = units::seconds_to_ns(options.interval_seconds).count();
    const std::size_t rows = options.once ? 1 : options.count;
    int exit_code = kExitOk;
    std::int64_t deadline_ns = baseline->monotonic_ns + interval_ns;
    while (rows == 0 || monitor.intervals() < rows) {
        const bool stopped = !signals.wait_until(deadline_ns);
        const auto now = read_interfaces(error);
        if (!now) {
            std::fprintf(stderr, "speedcli monitor: %s\n", error.c_str());
            exit_code = kExitTestFailed;
            break;
        }
        // A stop signal cuts the interval in progress short: it is printed with its measured length.
        printer->interval(*monitor.add(*now, /*partial=*/stopped));
        if (std::ferror(stdout) != 0) {
            // The reader went away (a closed pipe, SIGPIPE ignored): nobody is left to print for.
            return kExitTestFailed;
        }
        if (stopped) {
            break;
        }
        deadline_ns = netdev::next_deadline(baseline->monotonic_ns, interval_ns, monotonic_now_ns());
    }
    printer->finish(monitor);
    if (report != nullptr && report->failure()) {
        std::fprintf(stderr, "speedcli monitor: --report %s: %s\n", options.report.c_str(),
                     report->failure()->c_str());
        return kExitTestFailed;
    }
    return exit_code;
}

}  // namespace speed::client
