// speedsrv and systemd's notification protocol: READY=1 once it listens, WATCHDOG=1 while every data thread's
// heartbeat is fresh, and none once one is stuck (the test hook SPEED_TEST_WEDGE_DATA_THREAD_AFTER_MS blocks
// data thread 0). systemd is played by a unix datagram socket the test binds, named by NOTIFY_SOCKET, as a
// path and in the abstract namespace ('@').
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "tests/support/process.hpp"

using namespace speed::testing;
using namespace std::chrono_literals;

namespace {

class fake_systemd {
  public:
    // `name` starting with '@' is an abstract socket, otherwise a path.
    explicit fake_systemd(std::string name)
        : name_(std::move(name)), fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        REQUIRE(name_.size() < sizeof address.sun_path);
        std::memcpy(address.sun_path, name_.data(), name_.size());
        if (name_[0] == '@') {
            address.sun_path[0] = '\0';
        } else {
            std::filesystem::remove(name_);
        }
        const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0);
    }
    ~fake_systemd() {
        ::close(fd_);
        if (name_[0] != '@') {
            std::filesystem::remove(name_);
        }
    }
    fake_systemd(const fake_systemd&) = delete;
    fake_systemd& operator=(const fake_systemd&) = delete;

    const std::string& name() const { return name_; }

    // The next notification, or nothing when none arrives within `limit`.
    std::optional<std::string> next(std::chrono::milliseconds limit) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
            return std::nullopt;
        }
        char buffer[256];
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        return n < 0 ? std::nullopt
                     : std::optional<std::string>(std::string(buffer, static_cast<std::size_t>(n)));
    }

    // Notifications that arrive within `period`.
    std::vector<std::string> collect(std::chrono::milliseconds period) {
        std::vector<std::string> messages;
        const auto until = std::chrono::steady_clock::now() + period;
        for (auto now = std::chrono::steady_clock::now(); now < until;
             now = std::chrono::steady_clock::now()) {
            if (auto message =
                    next(std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + 1ms)) {
                messages.push_back(*message);
            }
        }
        return messages;
    }

  private:
    std::string name_;
    int fd_;
};

// Environment variables for the processes started while it lives (children inherit them at spawn).
class scoped_environment {
  public:
    scoped_environment(std::initializer_list<std::pair<const char*, std::string>> values) {
        for (const auto& [name, value] : values) {
            ::setenv(name, value.c_str(), 1);
            names_.push_back(name);
        }
    }
    ~scoped_environment() {
        for (const char* name : names_) {
            ::unsetenv(name);
        }
    }

  private:
    std::vector<const char*> names_;
};

std::size_t count_of(const std::vector<std::string>& messages, const std::string& what) {
    return static_cast<std::size_t>(std::count(messages.begin(), messages.end(), what));
}

// WATCHDOG_USEC of 200 ms: speedsrv checks its threads and notifies every 100 ms.
constexpr auto kWatchdogUsec = "200000";

}  // namespace

TEST_CASE("speedsrv sends READY=1 and then WATCHDOG=1 to NOTIFY_SOCKET, as a path and an abstract socket",
          "[integration][watchdog]") {
    const std::string pid = std::to_string(::getpid());
    for (const std::string& name : {"/tmp/speedsrv-notify-test-" + pid, "@speedsrv-notify-test-" + pid}) {
        INFO("NOTIFY_SOCKET=" << name);
        fake_systemd systemd(name);
        std::optional<server_process> server;
        {
            scoped_environment env({{"NOTIFY_SOCKET", name}, {"WATCHDOG_USEC", kWatchdogUsec}});
            server.emplace();
        }
        // READY=1 comes once it listens (server_process returns after the "listening" line).
        CHECK(systemd.next(5s) == "READY=1");
        // Every 100 ms, so at least 5 in 2 s even on a loaded machine (about 20 expected).
        const auto messages = systemd.collect(2s);
        CHECK(count_of(messages, "WATCHDOG=1") >= 5);
        CHECK(count_of(messages, "WATCHDOG=1") == messages.size());
        CHECK(server->stop() == 0);
        CHECK(systemd.collect(200ms) == std::vector<std::string>{"STOPPING=1"});
    }
}

TEST_CASE("a stuck data thread is detected: WATCHDOG=1 stops and speedsrv logs an error",
          "[integration][watchdog]") {
    const std::string name = "@speedsrv-watchdog-test-" + std::to_string(::getpid());
    fake_systemd systemd(name);
    std::optional<server_process> server;
    {
        scoped_environment env({{"NOTIFY_SOCKET", name},
                                {"WATCHDOG_USEC", kWatchdogUsec},
                                {"SPEED_TEST_WEDGE_DATA_THREAD_AFTER_MS", "500"}});
        server.emplace(std::vector<std::string>{"--threads", "2"});
    }
    CHECK(systemd.next(5s) == "READY=1");
    REQUIRE(systemd.next(5s) == "WATCHDOG=1");  // healthy before the hook blocks thread 0
    // Thread 0 blocks 500 ms after the start; 2 s later its heartbeat is stale.
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (server->log().find("data thread 0 stuck") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
    }
    INFO(server->log());
    REQUIRE(server->log().find("error data thread 0 stuck") != std::string::npos);
    // What was sent before the error line is queued already; nothing follows it.
    systemd.collect(0ms);
    while (systemd.next(0ms)) {
    }
    CHECK(count_of(systemd.collect(1500ms), "WATCHDOG=1") == 0);
    CHECK(server->stop() == 0);  // SIGTERM releases the hook's block
}
