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

// A long-running child (a server, a packet forwarder) with its stdout and stderr collected into one log,
// stopped (SIGTERM, then SIGKILL) when the object goes away.
class background_process {
  public:
    explicit background_process(const std::vector<std::string>& argv);
    ~background_process();
    background_process(const background_process&) = delete;
    background_process& operator=(const background_process&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    // Waits until a complete line of the log contains `text` and returns that line (without its newline).
    // Throws, with the log, when the process exits or `limit` passes first.
    std::string wait_for_line(const std::string& text, std::chrono::milliseconds limit);
    void send_signal(int signal_number);
    // Sends SIGTERM and waits for the exit; returns the exit code (-1 on a signal or timeout).
    int stop(std::chrono::milliseconds limit = std::chrono::seconds(5));
    // Waits for the process to exit by itself; returns its exit code (-1 on a signal or when `limit` passed
    // first, the process still running).
    int wait(std::chrono::milliseconds limit);
    // Everything the process printed so far.
    std::string log();

  private:
    void drain_log(int timeout_ms);
    pid_t pid_ = -1;
    int log_fd_ = -1;
    std::string log_;
    int exit_code_ = -1;
    bool reaped_ = false;
};

// How to start a speedsrv: by default on 127.0.0.1 and a free port, in this network namespace.
struct server_launch {
    std::vector<std::string> extra_args;
    std::string bind_address = "127.0.0.1";
    // Put before speedsrv's command line, e.g. {"ip", "netns", "exec", NAME} to run it in a namespace.
    std::vector<std::string> launcher;
};

// A speedsrv listening on a free port, stopped (SIGTERM) when the object goes away.
class server_process {
  public:
    explicit server_process(std::vector<std::string> extra_args = {});
    explicit server_process(const server_launch& launch);

    std::uint16_t port() const { return port_; }
    // The browser test's HTTP port (--http-port); 0 when the server serves none.
    std::uint16_t http_port() const { return http_port_; }
    pid_t pid() const { return process_.pid(); }
    bool running() { return process_.running(); }
    // Sends SIGTERM and waits for the exit; returns the exit code (-1 on a signal or timeout).
    int stop(std::chrono::milliseconds limit = std::chrono::seconds(5)) { return process_.stop(limit); }
    // Everything the server logged so far.
    std::string log() { return process_.log(); }

  private:
    background_process process_;
    std::uint16_t port_ = 0;
    std::uint16_t http_port_ = 0;
};

// Whether the server's log shows `text` within `limit` (a server logs a session's end after its last byte to
// the client, which may be just after the client exits).
bool log_shows_within(server_process& server, const std::string& text,
                      std::chrono::milliseconds limit = std::chrono::seconds(5));

// Paths of the binaries under test (set by CMake).
std::string speedsrv_path();
// speedsrv refuses to run as root without --allow-root; the tests run as root in CI. {"--allow-root"} when
// this process is root, else nothing: put it on every speedsrv command line a test starts.
std::vector<std::string> speedsrv_root_args();
std::string speedcli_path();

}  // namespace speed::testing
