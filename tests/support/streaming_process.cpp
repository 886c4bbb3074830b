#include "tests/support/streaming_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <stdexcept>

#include "tests/support/process.hpp"

namespace speed::testing {

using steady = std::chrono::steady_clock;

namespace {

std::array<int, 2> nonblocking_pipe() {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    return fds;
}

int milliseconds_until(steady::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

streaming_process::streaming_process(const std::vector<std::string>& argv) {
    const auto out = nonblocking_pipe();
    const auto err = nonblocking_pipe();
    try {
        pid_ = spawn_process(argv, out[1], err[1]);
    } catch (...) {
        for (const int fd : {out[0], out[1], err[0], err[1]}) {
            ::close(fd);
        }
        throw;
    }
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
}

streaming_process::~streaming_process() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    for (const int fd : {out_fd_, err_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

bool streaming_process::pump(int timeout_ms) {
    std::array<pollfd, 2> fds{pollfd{out_fd_, POLLIN, 0}, pollfd{err_fd_, POLLIN, 0}};
    if (out_fd_ < 0 && err_fd_ < 0) {
        return false;
    }
    ::poll(fds.data(), fds.size(), timeout_ms);
    for (std::size_t i = 0; i < fds.size(); ++i) {
        int& fd = i == 0 ? out_fd_ : err_fd_;
        std::string& into = i == 0 ? out_ : err_;
        if (fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
            continue;
        }
        std::array<char, 65536> buffer{};
        for (;;) {
            const ssize_t n = ::read(fd, buffer.data(), buffer.size());
            if (n > 0) {
                into.append(buffer.data(), static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) {
                ::close(fd);
                fd = -1;
            }
            break;
        }
    }
    return out_fd_ >= 0 || err_fd_ >= 0;
}

std::optional<std::string> streaming_process::read_line(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    for (;;) {
        const std::size_t end = out_.find('\n', consumed_);
        if (end != std::string::npos) {
            std::string line = out_.substr(consumed_, end - consumed_);
            consumed_ = end + 1;
            return line;
        }
        if (steady::now() >= deadline || (out_fd_ < 0) || !pump(milliseconds_until(deadline))) {
            return std::nullopt;
        }
    }
}

void streaming_process::send_signal(int signal) {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, signal);
    }
}

int streaming_process::wait(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    while (pump(milliseconds_until(deadline)) && steady::now() < deadline) {
    }
    if (reaped_) {
        return exit_code_;
    }
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (steady::now() >= deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            reaped_ = true;
            return exit_code_ = -1;
        }
        ::usleep(10'000);
    }
    reaped_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
}

}  // namespace speed::testing
