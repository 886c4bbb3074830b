// The client side of a speed test: connect, idle latency, download, upload, each phase with a deadline.
#pragma once

#include "client/options.hpp"
#include "client/progress.hpp"
#include "client/report.hpp"

namespace speed::client {

// Runs the whole test and returns what it found. Never throws: failures end up in report.error and
// report.exit_code, with whatever phases completed before the failure kept.
test_report run_speed_test(const test_options& options, progress_sink& progress);

}  // namespace speed::client
