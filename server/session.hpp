// One client's control connection in the speedsrv protocol: the adapter between that protocol and the
// server's test runners (server/runners/test_runner.hpp), as the connection is to the request handler in
// Asio's http/server example.
//
// Phases, each with its own deadline: HELLO (server.cpp), WELCOME and, with keys, the authentication
// exchange -> per test: TEST_REQUEST (+ TEST_AUTH), validation, then the runner's phases, each mapped to the
// protocol's frames by session::events (TEST_ACCEPT, STREAMS_READY, reports, STOP). What each client frame
// means is decided by session_protocol (pure, fuzzed); this class does the I/O. A failure in any phase ends
// this session only: it is logged, reported to the client as an ERROR frame when the connection still works,
// and the session's data and probe connections are closed.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "net/clock.hpp"
#include "net/control_channel.hpp"
#include "net/errors.hpp"
#include "server/admission.hpp"
#include "server/probe_echo.hpp"
#include "server/runners/test_result.hpp"
#include "server/runners/test_runner.hpp"
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
    class events;  // the speedsrv protocol's side of test_events

    asio::awaitable<void> serve_tests();
    // Reads the frame the current phase waits for (within its deadline) and returns what it means; throws
    // session_error when it ends the session; never waits past `not_after`.
    asio::awaitable<session_step> next_step(net::clock::time_point not_after = net::clock::time_point::max());
    asio::awaitable<void> run_requested_test(const proto::test_request& request);
    void close_probes();
    // The error that ends a session at --max-session-time.
    net::session_error lifetime_over() const;

    asio::awaitable<void> start_udp_echo();
    // Ends the running test's runner (a failure, the session's end).
    void end_runner();
    // Ends the previous UDP test's flows or echo (they outlive their test until the next UDP request).
    void end_udp();
    // Adds a UDP runner's flow counters to its test's result (`result_index`), or as a result of their own.
    void note_flow_counters(const udp_flow_counters& counters, std::optional<std::size_t> result_index);
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
    std::uint32_t test_id_ = 0;                    // the running (or last) test's
    std::unique_ptr<test_runner> runner_;          // the running test's
    std::unique_ptr<test_runner> udp_runner_;      // the last UDP test's, whose flows linger
    std::optional<std::size_t> udp_result_index_;  // its entry in results_
    std::vector<std::weak_ptr<probe_connection>> probes_;
    std::string failure_detail_;        // more than the client is told, for the log
    std::vector<test_result> results_;  // one per finished test, for the end-of-session log line
    std::uint64_t udp_echo_token_ = 0;
    std::shared_ptr<udp_echo> udp_echo_;
};

}  // namespace speed::server
