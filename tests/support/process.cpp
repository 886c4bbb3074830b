#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace speed::testing {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

std::string speedsrv_path() {
    return SPEEDSRV_PATH;
}
std::string speedcli_path() {
    return SPEEDCLI_PATH;
}
std::vector<std::string> speedsrv_root_args() {
    if (::geteuid() == 0) {
        return {"--allow-root"};
    }
    return {};
}

namespace {

struct pipe_pair {
    int read_end = -1;
    int write_end = -1;
};

pipe_pair make_pipe() {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    return {fds[0], fds[1]};
}

pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    std::vector<char*> args;
    for (const auto& arg : argv) {
        args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = -1;
    // posix_spawnp: tools such as ip and iperf3 are found through PATH.
    const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        throw std::runtime_error("cannot start " + argv[0]);
    }
    return pid;
}

bool read_available(int fd, std::string& into) {
    std::array<char, 65536> buffer{};
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n > 0) {
        into.append(buffer.data(), static_cast<std::size_t>(n));
        return true;
    }
    return false;
}

int decode_status(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return -1;
}

}  // namespace

pid_t spawn_process(const std::vector<std::string>& argv, int out_fd, int err_fd) {
    return spawn(argv, out_fd, err_fd);
}

process_result run_process(const std::vector<std::string>& argv, milliseconds limit) {
    pipe_pair out = make_pipe();
    pipe_pair err = make_pipe();
    const pid_t pid = spawn(argv, out.write_end, err.write_end);
    ::close(out.write_end);
    ::close(err.write_end);

    process_result result;
    const auto deadline = steady::now() + limit;
    std::array<pollfd, 2> fds{pollfd{out.read_end, POLLIN, 0}, pollfd{err.read_end, POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
        if (left <= 0) {
            result.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        if (::poll(fds.data(), fds.size(), static_cast<int>(left)) < 0 && errno != EINTR) {
            break;
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP)) != 0) {
                if (!read_available(fds[i].fd, i == 0 ? result.out : result.err)) {
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_fds;
                }
            }
        }
    }
    for (auto& fd : fds) {
        if (fd.fd >= 0) {
            ::close(fd.fd);
        }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.exit_code = result.timed_out ? -1 : decode_status(status);
    return result;
}

background_process::background_process(const std::vector<std::string>& argv) {
    pipe_pair log = make_pipe();
    pid_ = spawn(argv, log.write_end, log.write_end);
    ::close(log.write_end);
    log_fd_ = log.read_end;
    ::fcntl(log_fd_, F_SETFL, O_NONBLOCK);
}

background_process::~background_process() {
    stop();
}

bool background_process::running() {
    if (pid_ <= 0 || reaped_) {
        return false;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = decode_status(status);
        reaped_ = true;
        return false;
    }
    return true;
}

std::string background_process::wait_for_line(const std::string& text, milliseconds limit) {
    const auto deadline = steady::now() + limit;
    for (;;) {
        drain_log(20);
        const auto at = log_.find(text);
        const auto line_end = at == std::string::npos ? at : log_.find('\n', at);
        if (line_end != std::string::npos) {
            const auto line_start = log_.rfind('\n', at);
            const auto from = line_start == std::string::npos ? 0 : line_start + 1;
            return log_.substr(from, line_end - from);
        }
        if (!running()) {
            drain_log(0);
            throw std::runtime_error("the process exited before printing '" + text + "'; its output:\n" +
                                     log_);
        }
        if (steady::now() >= deadline) {
            throw std::runtime_error("no '" + text + "' within the time limit; the output so far:\n" + log_);
        }
    }
}

void background_process::send_signal(int signal_number) {
    if (running()) {
        ::kill(pid_, signal_number);
    }
}

void background_process::drain_log(int timeout_ms) {
    if (log_fd_ < 0) {
        return;
    }
    pollfd fd{log_fd_, POLLIN, 0};
    if (::poll(&fd, 1, timeout_ms) > 0) {
        while (read_available(log_fd_, log_)) {
        }
    }
}

std::string background_process::log() {
    drain_log(0);
    return log_;
}

int background_process::wait(milliseconds limit) {
    const auto deadline = steady::now() + limit;
    while (running()) {
        if (steady::now() >= deadline) {
            return -1;
        }
        drain_log(10);
    }
    return exit_code_;
}

int background_process::stop(milliseconds limit) {
    if (pid_ <= 0) {
        return exit_code_;
    }
    if (!reaped_) {
        ::kill(pid_, SIGTERM);
    }
    const auto deadline = steady::now() + limit;
    int status = 0;
    while (!reaped_) {
        const pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == pid_) {
            exit_code_ = decode_status(status);
            reaped_ = true;
            break;
        }
        if (steady::now() >= deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            exit_code_ = -1;
            break;
        }
        drain_log(20);
    }
    drain_log(0);
    ::close(log_fd_);
    log_fd_ = -1;
    pid_ = -1;
    return exit_code_;
}

namespace {

std::vector<std::string> server_command(const server_launch& launch) {
    std::vector<std::string> argv = launch.launcher;
    argv.insert(argv.end(), {speedsrv_path(), "--bind", launch.bind_address, "--port", "0"});
    const auto root = speedsrv_root_args();
    argv.insert(argv.end(), root.begin(), root.end());
    argv.insert(argv.end(), launch.extra_args.begin(), launch.extra_args.end());
    return argv;
}

}  // namespace

server_process::server_process(std::vector<std::string> extra_args)
    : server_process(server_launch{std::move(extra_args), "127.0.0.1", {}}) {}

server_process::server_process(const server_launch& launch) : process_(server_command(launch)) {
    // speedsrv logs "listening on ADDRESS port N (...)" once it accepts connections.
    const std::string line = process_.wait_for_line("listening on ", std::chrono::seconds(10));
    const auto at = line.find(" port ");
    if (at == std::string::npos) {
        throw std::runtime_error("speedsrv's listening line has no port: " + line);
    }
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(at + 6)));
    // With --http-port: "..., browser test on http port N)".
    if (const auto http = line.find(" http port "); http != std::string::npos) {
        http_port_ = static_cast<std::uint16_t>(std::stoi(line.substr(http + 11)));
    }
}

bool log_shows_within(server_process& server, const std::string& text, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (server.log().find(text) != std::string::npos) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

}  // namespace speed::testing
