// Tools for the robustness suite: raw TCP connections from chosen loopback addresses (127.0.0.0/8 is all
// loopback, so each address is a different "host" for the server's per-host caps), frame helpers, and the
// server's resource use read from /proc.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.hpp"
#include "tests/support/process.hpp"

namespace speed::testing {

using namespace std::chrono_literals;
using steady_clock = std::chrono::steady_clock;

// A TCP connection from `source` (an IPv4 or IPv6 address) to `server`:`port`; closed when it goes away.
class raw_connection {
  public:
    raw_connection(const std::string& source, std::uint16_t port, const std::string& server = "127.0.0.1");
    ~raw_connection();
    raw_connection(raw_connection&& other) noexcept;
    raw_connection& operator=(raw_connection&&) = delete;
    raw_connection(const raw_connection&) = delete;
    raw_connection& operator=(const raw_connection&) = delete;

    bool connected() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    // Sends everything; false once the server has closed (EPIPE, ECONNRESET).
    bool send(const std::vector<std::uint8_t>& bytes);
    bool send(const proto::message& msg);
    // The next frame, or a decode_result with status need_more when nothing complete arrived within `limit`
    // (or the connection closed first), or bad for garbage.
    proto::decode_result read_frame(std::chrono::milliseconds limit = 3s);
    // Reads (and discards) until the server closes the connection; returns how long that took from now, or
    // nothing if it is still open after `limit`.
    std::optional<std::chrono::milliseconds> wait_closed(std::chrono::milliseconds limit);
    // Sends EOF (shutdown of the sending side); the connection stays open for reading.
    void shutdown_sending();
    // True when the server has closed the connection (reads EOF or reset) without waiting.
    bool closed_by_server();
    void close();

  private:
    int fd_ = -1;
    std::vector<std::uint8_t> buffer_;
};

// The server's reply to a connection, read within `limit`: the ERROR code if it sent an ERROR frame.
std::optional<proto::error_code> error_reply(raw_connection& connection,
                                             std::chrono::milliseconds limit = 3s);

// A control HELLO, a WELCOME read back: a session held open. Throws when the server does not welcome it.
proto::welcome open_session(raw_connection& connection);

// On a session opened with open_session: asks for a one-stream UDP test of 1000-byte datagrams and returns
// the server's UDP_SETUP (its token is then live, waiting for a HELLO from the control connection's address).
proto::udp_setup request_udp_test(raw_connection& connection, proto::direction direction,
                                  std::uint32_t duration_ms, std::uint64_t bitrate);

// The HELLO of a control connection, encoded.
std::vector<std::uint8_t> control_hello();
// A frame with any type byte, length field and payload (the length need not match).
std::vector<std::uint8_t> raw_frame(std::uint8_t type, std::uint32_t length,
                                    const std::vector<std::uint8_t>& payload = {});

struct resource_use {
    std::size_t fds = 0;
    std::size_t rss_kib = 0;
};
resource_use resources_of(pid_t pid);
// Waits until the process has at most `fds` descriptors open; returns what it has then.
resource_use wait_for_fds_at_most(pid_t pid, std::size_t fds, std::chrono::milliseconds limit);

// A short full test (download and upload) from 127.0.0.1; true when it succeeded.
bool legitimate_test_passes(std::uint16_t port, const std::string& host = "127.0.0.1");

// The port of a server started with --metrics 127.0.0.1:0, from its start line.
std::uint16_t metrics_port_of(server_process& server);
// The value of `series` in the server's metrics once it equals `expected`, or what it is after 3 s (-1 when
// the series is missing): a counter a thread other than the scrape's adds to may lag the event a moment.
double scraped_value(std::uint16_t metrics_port, const std::string& series, double expected);

// A fresh loopback address per use, 127.0.N.M, so tests do not share "hosts" by accident.
std::string attacker_address(unsigned index);

// How much the server's RSS may exceed its baseline after an attack is over: heap high water that glibc
// keeps, and under AddressSanitizer its quarantine of freed memory.
std::size_t rss_tolerance_kib();

// Moves the calling thread (and every process it starts from now on) into a new, empty network namespace
// with lo up and the given addresses on it; moves back when destroyed. The namespace has no name: it
// disappears with its last process, so nothing is left behind even if a test fails. Root only.
class private_network {
  public:
    explicit private_network(const std::vector<std::string>& addresses);
    ~private_network();
    private_network(const private_network&) = delete;
    private_network& operator=(const private_network&) = delete;

    // Runs /usr/sbin/ip (or tc) with `args` inside the namespace; throws when it fails.
    static void run(const std::string& tool, const std::vector<std::string>& args);

  private:
    int original_ = -1;
};

// Whether this host can run the namespace tests; when not, prints "SKIP: <reason>", which ctest reports as
// skipped.
bool can_run_network_tests();

// A speedsrv under attack: started with `args`, warmed up by one legitimate test, its descriptors and memory
// recorded as the baseline the attack must leave it at.
class watched_server {
  public:
    explicit watched_server(std::vector<std::string> args);
    std::uint16_t port() const { return server_.port(); }
    server_process& process() { return server_; }
    const resource_use& baseline() const { return baseline_; }
    // After an attack: the server is up, a legitimate test passes, descriptors return to the baseline within
    // `limit` and memory stays within rss_tolerance_kib() of it. Reports the figures (Catch INFO/WARN).
    void check_recovered(std::chrono::milliseconds limit = 10s);

  private:
    server_process server_;
    resource_use baseline_;
};

}  // namespace speed::testing
