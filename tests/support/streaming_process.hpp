// A child process whose stdout is read line by line while it runs, for tests that act on what it prints
// (start traffic after its first line, signal it, read the rest).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace speed::testing {

class streaming_process {
  public:
    explicit streaming_process(const std::vector<std::string>& argv);
    // Kills (SIGKILL) and reaps the child if it still runs.
    ~streaming_process();
    streaming_process(const streaming_process&) = delete;
    streaming_process& operator=(const streaming_process&) = delete;

    // The next line of stdout without its newline; nothing when stdout closed or `limit` passed first.
    std::optional<std::string> read_line(std::chrono::milliseconds limit);
    void send_signal(int signal);
    // Reads the rest of the output and waits for the exit; SIGKILL after `limit`. The exit code, -1 when
    // killed.
    int wait(std::chrono::milliseconds limit);
    // Everything stdout and stderr carried so far.
    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

  private:
    // Reads what is there within `timeout_ms`; false when both streams are closed.
    bool pump(int timeout_ms);

    pid_t pid_ = -1;
    int out_fd_ = -1;
    int err_fd_ = -1;
    std::string out_;
    std::string err_;
    std::size_t consumed_ = 0;  // of out_, by read_line
    bool reaped_ = false;
    int exit_code_ = -1;
};

}  // namespace speed::testing
