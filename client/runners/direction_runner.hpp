// speedcli's test runners: one direction of a test (download or upload) over one transport (TCP or UDP),
// behind one interface. A runner sends the TEST_REQUEST it is given, runs the phases that request asks for
// (accept, data connections or flows, STREAMS_READY, the receiver's window, STOP, the final reports) and
// returns the direction's figures; everything it derives (plan, deadlines, pacing, streams) comes from that
// request, never from the command line. What the caller does around the load (progress output, the
// loaded-latency probes) it does through direction_events. docs/architecture.md, "Client runners".
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>

#include "client/auth.hpp"
#include "client/options.hpp"
#include "client/report.hpp"
#include "common/limits.hpp"
#include "common/measurement.hpp"
#include "common/protocol.hpp"
#include "net/control_channel.hpp"
#include "net/io_pool.hpp"

namespace speed::client {

// What a runner reports while its direction runs, in this order: may_request, (load_may_start,) ready,
// interval (one per closed interval, none when the request asks for none), window_closed, result. A direction
// that fails ends early with the runner's exception: events after the failure do not come.
class direction_events {
  public:
    virtual ~direction_events() = default;
    // Before the TEST_REQUEST goes out (it may throw to end the direction). --bidir holds the download here
    // until the upload's data connections are set up, so the two loads can start together.
    virtual asio::awaitable<void> may_request() { co_return; }
    // The server has every data connection or flow (STREAMS_READY) and the load starts now. `report` has the
    // direction's setup (congestion control, the server's cap).
    virtual void ready(const direction_report& report) = 0;
    // An upload's data connections or flows are open and the server has them all (STREAMS_READY); the client
    // starts sending when this returns (it may throw to end the direction). --bidir holds the upload here
    // until the download's load has started, so both start together.
    virtual asio::awaitable<void> load_may_start() { co_return; }
    // The receiver closed an interval: the client's own (download) or the server's INTERVAL_REPORT (upload).
    virtual void interval(const interval_report& closed) = 0;
    // The receiver's window has closed (the client sent STOP, or read the server's); the final reports
    // follow. The caller may add its own figures to `report` (the loaded-latency series).
    virtual asio::awaitable<void> window_closed(direction_report& report) = 0;
    // The direction's figures, as the runner returns them.
    virtual void result(const direction_report& /*report*/) {}
};

// The session a runner runs in: the control connection after WELCOME (and authentication), and what the
// server told about itself.
struct runner_session {
    net::control_channel& control;
    net::io_pool& data_pool;         // the data-plane threads for data connections and flows
    asio::ip::tcp::endpoint server;  // the control connection's peer: data connections go there too
    proto::session_token token;      // from WELCOME: data connections present it
    client_auth& auth;               // each TEST_REQUEST carries its TEST_AUTH on an authenticated session
    server_limits server_caps;       // from WELCOME: uploads are paced to fit them
    double connect_timeout_seconds = 5.0;  // --connect-timeout, for each data connection
    socket_settings sockets;               // -B, --cport, -w, -M, -S: what the data sockets are opened with
};

class direction_runner {
  public:
    virtual ~direction_runner() = default;
    // The TEST_REQUEST this runner sends for direction `dir` with these options.
    virtual proto::test_request request_for(const test_options& options, proto::direction dir) const = 0;
    // Sends `request`, runs the direction it asks for and returns its figures (events.result() sees them
    // first). Throws net::session_error (and udp_path_error for UDP that does not get through) when the
    // direction fails.
    asio::awaitable<direction_report> run(const proto::test_request& request, direction_events& events);

  protected:
    // The transport's phases of each direction, from sending `request` to the final reports, into `report`.
    virtual asio::awaitable<void> download(const proto::test_request& request, direction_events& events,
                                           direction_report& report) = 0;
    virtual asio::awaitable<void> upload(const proto::test_request& request, direction_events& events,
                                         direction_report& report) = 0;
};

// A receiver's closed interval as the report shows it.
interval_report to_report(const measure::interval& closed);
// A receiver's window totals (bytes, seconds, warm-up, per stream) into `report`.
void fill_totals(direction_report& report, const measure::totals& totals);
// The sender's figures per stream (bytes handed to the sockets, TCP_INFO) into `report`.
void fill_sender(direction_report& report, const std::vector<proto::stream_sender_stats>& sender);

std::unique_ptr<direction_runner> make_tcp_runner(runner_session& session);
std::unique_ptr<direction_runner> make_udp_runner(runner_session& session);

}  // namespace speed::client
