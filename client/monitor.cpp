#include "client/monitor.hpp"

#include <cstdio>

namespace speed::client {

void add_monitor_options(CLI::App& command, monitor_options& options) {
    command.add_option("-I,--interface", options.interfaces,
                       "Interface to show (repeatable); default: every one up");
    command.add_option("-i,--interval", options.interval_seconds, "Seconds between rows");
    command.add_option("-c,--count", options.count, "Rows to print, 0 = until Ctrl-C");
    command.add_flag("-J,--json", options.json, "One JSON object per interval (NDJSON)");
    command.add_option("--units", options.units, "bits or bytes");
    command.add_flag("--once", options.once, "One measurement, printed as download and upload speed");
}

int run_monitor(const monitor_options& /*options*/) {
    std::fprintf(stderr, "speedcli monitor: not implemented yet\n");
    return 1;
}

}  // namespace speed::client
