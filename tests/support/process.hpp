// Running the real binaries from integration tests: spawn, capture output, enforce a time limit.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace speed::testing {

struct process_result {
    int exit_code = -1;  // -1 when killed for running past its time limit or by a signal
    bool timed_out = false;
    std::string out;
    std::string err;
};

// Starts argv[0] (a path) with arguments, its stdout and stderr on `out_fd` and `err_fd`; throws when it
// cannot.
pid_t spawn_process(const std::vector<std::string>& argv, int out_fd, int err_fd);

// Runs argv[0] with arguments, waits at most `limit`, and returns its exit code and output.
process_result run_process(const std::vector<std::string>& argv, std::chrono::milliseconds limit);

//     // A speedsrv on 127.0.0.1 (unless extra_args has --bind) and a free port, stopped (SIGTERM) when the
//     object
// goes away.
class server_process {
  public:
    explicit server_process(std::vector<std::string> extra_args = {});
    ~server_process();
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;

    std::uint16_t port() const { return port_; }
    pid_t pid() const { return pid_; }
    bool running();
    // Sends SIGTERM and waits for the exit; returns the exit code (-1 on a signal or timeout).
    int stop(std::chrono::milliseconds limit = std::chrono::seconds(5));
    // Everything the server logged so far (stderr).
    std::string log();

  private:
    void drain_log(int timeout_ms);
    pid_t pid_ = -1;
    int log_fd_ = -1;
    std::uint16_t port_ = 0;
    std::string log_;
    int exit_code_ = -1;
    bool reaped_ = false;
};

// Paths of the binaries under test (set by CMake).
std::string speedsrv_path();
std::string speedcli_path();

}  // namespace speed::testing
