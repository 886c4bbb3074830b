// What an iperf3 server's control bytes mean to speedcli (`speedcli HOST --iperf3`), as a pure state machine:
// no sockets, no clocks. The client's I/O does what each step says; the unit tests and the fuzzer feed it
// bytes. The exchange is iperf3's own (src/iperf_client_api.c), seen from the client:
//
//   opening              speedcli sends its cookie                -> awaiting_parameter_request
//   awaiting_parameter_request  PARAM_EXCHANGE                    -> reply the parameters document
//   awaiting_create      CREATE_STREAMS                            -> open_streams (each opens with the
//   cookie) awaiting_start       TEST_START (the streams are connected)    -> awaiting_running
//   awaiting_running     TEST_RUNNING                              -> start_test (the client times the test)
//   running              the client's time is up: time_up()        -> reply TEST_END
//   awaiting_exchange    EXCHANGE_RESULTS                          -> send_results (the front-end calls
//                                                                     results_ready() with this end's
//                                                                     figures)
//   awaiting_results     the server's results document             -> awaiting_display
//   awaiting_display     DISPLAY_RESULTS                           -> reply IPERF_DONE, finished
//
// In any phase ACCESS_DENIED ("the server is busy"), SERVER_ERROR (and the server's error code) and
// SERVER_TERMINATE end the test with the server's reason; anything else ends it as a protocol error.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/iperf3_protocol.hpp"

namespace speed::client {

enum class iperf3_client_phase {
    awaiting_parameter_request,
    awaiting_create,
    awaiting_start,
    awaiting_running,
    running,
    awaiting_exchange,
    awaiting_results,
    awaiting_display,
    ended,
};

struct iperf3_client_step {
    enum class kind {
        read_more,     // send `reply` (if any) and read on
        open_streams,  // open `streams` data connections, each starting with cookie()
        start_test,    // the test runs from now: send or receive, and call time_up() when its time is over
        send_results,  // stop the streams and call results_ready() with this end's figures
        finished,      // send `reply` (IPERF_DONE); the server's results are in server_results()
        failed,        // the test ends: `reason` says why (the server's own words where it gave any)
    };
    kind what = kind::failed;
    std::vector<std::uint8_t> reply;
    std::uint32_t streams = 0;
    std::string reason;
    bool from_server = false;  // failed: the server refused or ended the test
};

// iperf3's own text for an error code a server sends after SERVER_ERROR (iperf_strerror), or a plain
// "iperf3 error N" for the codes this table does not know.
std::string iperf3_error_text(std::int32_t code);

class iperf3_client_protocol {
  public:
    // `random_bytes`: 36 bytes from a CSPRNG, for the cookie.
    iperf3_client_protocol(const iperf3::parameters& parameters,
                           std::span<const std::uint8_t, 36> random_bytes);

    // The first bytes to send: the cookie.
    const std::vector<std::uint8_t>& cookie() const { return cookie_; }
    iperf3_client_phase phase() const { return phase_; }
    // What this phase waits for from the server, for error messages.
    std::string_view awaiting() const;

    void on_bytes(std::span<const std::uint8_t> bytes);
    // At most one step that asks for something per call (transitions that ask for nothing are taken on the
    // way); call until it answers read_more without a reply.
    iperf3_client_step next_step();
    // The server closed the control connection.
    iperf3_client_step on_closed();

    // Events from the I/O side.
    iperf3_client_step time_up();                                   // running -> awaiting_exchange
    iperf3_client_step results_ready(const iperf3::results& mine);  // after send_results -> awaiting_results

    const iperf3::results& server_results() const { return server_results_; }

  private:
    iperf3_client_step fail(std::string reason, bool from_server);
    iperf3_client_step on_state(std::uint8_t byte);

    iperf3::parameters parameters_;
    std::vector<std::uint8_t> cookie_;
    iperf3_client_phase phase_ = iperf3_client_phase::awaiting_parameter_request;
    bool results_requested_ = false;
    std::vector<std::uint8_t> pending_;
    iperf3::results server_results_;
};

}  // namespace speed::client
