// One client's control connection and the tests it runs, one after another.
//
// Phases, each with its own deadline: HELLO (server.cpp), WELCOME and, with keys, the authentication
// exchange -> per test: TEST_REQUEST (+ TEST_AUTH), validation, TEST_ACCEPT, all data connections attached,
// the test itself (watched for stalls and the server's caps), results. What each client frame means is
// decided by session_protocol (pure, fuzzed); this class does the I/O. A failure in any phase ends this
// session only: it is logged, reported to the client as an ERROR frame when the connection still works, and
// the session's data and probe connections are closed.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/measurement.hpp"
#include "common/protocol.hpp"
#include "net/clock.hpp"
#include "net/control_channel.hpp"
#include "net/errors.hpp"
#include "net/stream_group.hpp"
#include "server/admission.hpp"
#include "server/probe_echo.hpp"
#include "server/session_protocol.hpp"
#include "server/session_registry.hpp"
#include "server/udp_session.hpp"

namespace speed::server {

class session : public std::enable_shared_from_this<session> {
  public:
    // `admission` is the session's place under --max-sessions and --max-sessions-per-host, given back when
    // the session ends.
    session(std::shared_ptr<server_context> context, net::control_channel channel,
            asio::ip::tcp::endpoint peer, std::string client_software, admission_control::slot admission);
    ~session();

    // Runs the session to its end. A static coroutine taking the shared_ptr by value keeps the session alive
    // while it runs (and sidesteps GCC 12's coroutine-lambda capture bug).
    static asio::awaitable<void> run(std::shared_ptr<session> self);

    // A data connection whose HELLO named this session; closed if it does not fit the current test.
    void attach_data(const proto::hello& hello, asio::ip::tcp::socket socket);
    // A probe connection whose HELLO named this session: the probe connection to run, or null (socket
    // closed) when the session is not authenticated yet, has ended, or already has its probe connections.
    std::shared_ptr<probe_connection> attach_probe(asio::ip::tcp::socket socket);
    // A data or probe connection with this session's token from another address than the control
    // connection's: refused by the caller, counted and logged here.
    void note_foreign_connection(std::string_view kind, const asio::ip::tcp::endpoint& from);
    // Ends the session from outside (server shutdown).
    void abort();

    const proto::session_token& token() const { return token_; }
    const asio::ip::tcp::endpoint& peer() const { return peer_; }

  private:
    struct active_test;

    asio::awaitable<void> serve_tests();
    // Reads the frame the current phase waits for (within its deadline) and returns what it means; throws
    // session_error when it ends the session; never waits past `not_after`.
    asio::awaitable<session_step> next_step(net::clock::time_point not_after = net::clock::time_point::max());
    asio::awaitable<void> run_test(const proto::test_request& request);
    asio::awaitable<void> wait_for_streams(active_test& test);
    asio::awaitable<void> send_download(active_test& test);
    asio::awaitable<void> watch_sending_until_readable(active_test& test);
    asio::awaitable<void> receive_upload(active_test& test);
    // An upload's receiver window; clears `window_open` when it ends, however it ends.
    asio::awaitable<measure::totals> measure_upload_window(active_test& test, bool& window_open);
    // Reads the client's SELF_PROBE_MARKs while `window_open` and hands them to the test's streams.
    asio::awaitable<void> read_self_probe_marks(active_test& test, const bool& window_open);
    void close_probes();
    // The error that ends a session at --max-session-time.
    net::session_error lifetime_over() const;
    // --stall-timeout, stretched for very slowly paced tests (common/limits.hpp).
    std::int64_t stall_timeout_for(const proto::test_request& request) const;

    // UDP tests and probes (server/udp_session.cpp).
    asio::awaitable<void> run_udp_test(const proto::test_request& request);
    asio::awaitable<void> send_udp_download(const proto::test_request& request);
    asio::awaitable<void> receive_udp_upload(const proto::test_request& request);
    asio::awaitable<void> start_udp_echo();
    // Ends the previous UDP test's flows or echo (they outlive their test until the next request).
    void end_udp();
    udp_local udp_local_endpoint();

    std::shared_ptr<server_context> context_;
    admission_control::slot admission_;  // declared after context_: given back before the context can go
    session_metrics metrics_;            // declared after context_, whose server_metrics it counts into
    net::control_channel channel_;
    asio::ip::tcp::endpoint peer_;
    std::string client_software_;  // escaped for the log (the client chose it)
    proto::session_token token_;
    net::clock::time_point ends_at_;  // --max-session-time after the session started
    std::size_t foreign_connections_ = 0;
    session_protocol protocol_;
    std::uint32_t next_test_id_ = 1;
    std::unique_ptr<active_test> test_;
    std::vector<std::weak_ptr<probe_connection>> probes_;
    std::string failure_detail_;          // more than the client is told, for the log
    std::vector<std::string> summaries_;  // one per finished test, for the end-of-session log line
    std::uint64_t udp_token_ = 0;
    std::shared_ptr<udp_test_flows> udp_flows_;
    std::shared_ptr<udp_echo> udp_echo_;
};

}  // namespace speed::server
