// speedcli monitor: live per-interface traffic from the kernel's counters.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace speed::client {

struct monitor_options {
    std::vector<std::string> interfaces;
    double interval_seconds = 1.0;
    unsigned count = 0;
    bool json = false;
    std::string units = "bits";
    bool once = false;
    std::string report;  // --report: the HTML page, written when the run ends
};

// Declares the monitor subcommand's flags on `command`.
void add_monitor_options(CLI::App& command, monitor_options& options);
// Runs the monitor; returns the process exit code.
int run_monitor(const monitor_options& options);

}  // namespace speed::client
