// What an iperf3 client's control bytes mean to speedsrv, as a pure state machine: no sockets, no clocks.
// The iperf3 front-end does the I/O over the same runners as speedsrv's own protocol and asks this class what
// to do; the fuzzer (fuzz/fuzz_iperf3_session.cpp) feeds it raw bytes. The wire format is in
// common/iperf3_protocol.hpp; the order of the exchange is iperf3's own (src/iperf_server_api.c):
//
//   awaiting_cookie      the client's 37-byte cookie              -> reply PARAM_EXCHANGE
//   awaiting_parameters  the parameters document (JSON, <= 8 KiB)  -> validated against iperf3's limits and
//   the
//                        server's caps: refused with SERVER_ERROR and iperf3's error code, or
//                        start_streams (reply CREATE_STREAMS; the front-end expects the data connections)
//   creating_streams     nothing from the client; the front-end reports streams_attached()
//                                                                 -> start_test (reply TEST_START,
//                                                                 TEST_RUNNING)
//   running              TEST_END: the client's time is up         -> stop_test (the front-end stops the
//   runner)
//                        CLIENT_TERMINATE                          -> end_session (the client gave up)
//   stopping             nothing; the front-end reports test_stopped(its results)
//                                                                 -> reply EXCHANGE_RESULTS
//   awaiting_results     the client's results document (JSON)     -> reply the server's results,
//   DISPLAY_RESULTS awaiting_done        IPERF_DONE, or a close                    -> finished
//
// Anything else ends the session (SERVER_ERROR with "received an unknown control message" where iperf3 would
// send one). Each phase that reads has a deadline (read_timeout()); the running phase's is the test's warm-up
// and length plus a grace, so a client that never sends TEST_END gets little more than the test it asked for.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/iperf3_protocol.hpp"
#include "common/limits.hpp"
#include "common/protocol.hpp"

namespace speed::server {

enum class iperf3_phase {
    awaiting_cookie,
    awaiting_parameters,
    creating_streams,
    running,
    stopping,
    awaiting_results,
    awaiting_done,
    ended,
};

std::string_view name_of(iperf3_phase phase);

struct iperf3_timeouts {
    std::chrono::milliseconds handshake{5'000};  // the cookie and the parameters, each
    std::chrono::milliseconds streams{5'000};    // every data connection, after CREATE_STREAMS
    // TEST_END: the test's warm-up + length, plus the longer of this and a tenth of the length.
    std::chrono::milliseconds least_stop_grace{2'000};
    std::chrono::milliseconds results{5'000};  // the client's results, then IPERF_DONE
};

struct iperf3_step {
    enum class kind {
        read_more,      // nothing to do but send `reply` (if any); read on
        start_streams,  // send `reply` (CREATE_STREAMS), then accept `data_connections` for `request`
        start_test,     // send `reply` (TEST_START, TEST_RUNNING) and start the test
        stop_test,      // the client's TEST_END: stop the test and call test_stopped() with its results
        finished,       // the exchange is complete: close the session normally
        end_session,    // send `reply` (may be empty), then close; `reason` says why, for the log
    };
    kind what = kind::end_session;
    std::vector<std::uint8_t> reply;
    proto::test_request request;  // start_streams: the test as speedsrv's runners know it
    iperf3::parameters parameters;
    std::uint32_t data_connections = 0;  // start_streams: how many the client opens
    std::string reason;                  // end_session
    bool from_peer = false;              // end_session: the client ended it (closed, CLIENT_TERMINATE)
};

class iperf3_session_protocol {
  public:
    iperf3_session_protocol(const server_limits& limits, const iperf3_timeouts& timeouts);

    iperf3_phase phase() const { return phase_; }
    // The deadline for what this phase waits for, counted from when the front-end starts waiting.
    std::chrono::milliseconds read_timeout() const;
    // What this phase waits for, for the log ("the client's results").
    std::string_view awaiting() const;

    // Control bytes from the client; then call next_step() until it answers read_more without a reply.
    void on_bytes(std::span<const std::uint8_t> bytes);
    // What the bytes received so far mean. At most one step per call; bytes past it stay buffered.
    iperf3_step next_step();
    // The client closed the control connection.
    iperf3_step on_closed();

    // Events from the front-end's I/O side.
    iperf3_step streams_attached();                            // creating_streams -> running
    iperf3_step test_stopped(const iperf3::results& results);  // stopping -> awaiting_results
    void end();                                                // a failure outside this class: ended

    // The client's cookie (valid from awaiting_parameters on): its data connections open with it.
    std::span<const std::uint8_t> cookie() const { return cookie_; }
    // The accepted test (valid from start_streams on).
    const iperf3::parameters& parameters() const { return parameters_; }
    const proto::test_request& request() const { return request_; }
    // The client's results document, once it arrived (valid in awaiting_done).
    const iperf3::results& client_results() const { return client_results_; }

  private:
    iperf3_step refuse(iperf3::error_code code, std::string reason);
    iperf3_step fail(std::string reason);
    iperf3_step accept(const iperf3::parameters& parameters);
    iperf3_step on_state_byte(std::uint8_t byte);

    server_limits limits_;
    iperf3_timeouts timeouts_;
    iperf3_phase phase_ = iperf3_phase::awaiting_cookie;
    std::vector<std::uint8_t> cookie_;
    std::vector<std::uint8_t> pending_;  // received and not yet understood
    iperf3::parameters parameters_;
    proto::test_request request_;
    iperf3::results client_results_;
    std::vector<std::uint8_t> server_results_;  // the server's results document, encoded
};

// The speedsrv test an iperf3 client's parameters ask for: -R is a download (the server sends), otherwise an
// upload; -b is per stream in iperf3 and for the whole direction here; a test that ends by bytes (-n, -k)
// runs for at most the server's longest window, until the client's TEST_END.
proto::test_request request_for(const iperf3::parameters& parameters, const server_limits& limits);

// What a client that ends its test by amount sends at least, warm-up excluded: -n's bytes, or -k's blocks of
// -l bytes (iperf3's default for TCP when -l is absent); saturating. 0 for a test by time.
std::uint64_t amount_of(const iperf3::parameters& parameters);

}  // namespace speed::server
