// The decisions a session makes about what its client sends, as a pure state machine: no sockets, no
// clocks. server/session.cpp does the I/O and asks this class what each control frame means; the fuzzer
// (fuzz/fuzz_session.cpp) feeds it raw bytes.
//
// Phases, and what each accepts (an ERROR from the client ends the session in any phase):
//
//   authenticating           AUTH_RESPONSE (only when the server has keys; AUTH_OK back) -> idle
//   idle                     TEST_REQUEST                          -> test_authenticating or setting_up
//                            UDP_ECHO_REQUEST (opens a UDP echo for UDP probes; counts as a test, so a
//                            client cannot hold its session with echo requests alone)   -> idle
//                            a clean close: the client is done                        -> ended
//   test_authenticating      TEST_AUTH (only when the server has keys)                -> setting_up
//   setting_up               nothing: the server sets up the data connections/flows   -> sending or receiving
//   sending (download)       STOP                                                     -> idle
//   receiving (upload)       SELF_PROBE_MARK (TCP): the answer to a self probe        -> receiving
//                            the server measures until its window closes          -> awaiting_sender_report
//   awaiting_sender_report   SENDER_REPORT (TCP) or UDP_SENDER_REPORT (UDP)           -> idle
//                            SELF_PROBE_MARK (TCP): sent before the client saw STOP; ignored
//
// A TCP upload takes at most proto::kMaxSelfProbes SELF_PROBE_MARKs (the most the client answers), each
// naming one of the test's streams; one more, or another stream, ends the session (docs/protocol.md).
//
// Anything else is a protocol error that ends the session, as does a refused request (validate_request, the
// tests-per-session cap, a wrong key). Each phase that reads has a deadline (read_timeout()).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/auth.hpp"
#include "common/limits.hpp"
#include "common/protocol.hpp"

namespace speed::server {

enum class session_phase {
    authenticating,
    idle,
    test_authenticating,
    setting_up,
    sending,
    receiving,
    awaiting_sender_report,
    ended,
};

std::string_view name_of(session_phase phase);

// How long the client has for each frame the session waits for.
struct session_timeouts {
    std::chrono::milliseconds auth{5'000};   // AUTH_RESPONSE; TEST_AUTH after its TEST_REQUEST
    std::chrono::milliseconds idle{30'000};  // the next TEST_REQUEST
    // STOP: the test's warm-up + window, plus the longer of this and the window. Bounded, so that a client
    // that never sends STOP gets little more than the test it asked for.
    std::chrono::milliseconds least_stop_grace{1'000};
    std::chrono::milliseconds results{5'000};  // SENDER_REPORT after the server's STOP
};

// What the session does after a client frame.
struct session_step {
    enum class kind {
        read_more,        // nothing to do; read the next frame (in the new phase)
        reply,            // send `reply`, then read the next frame
        start_test,       // set up `request` (validated, authenticated): phase setting_up
        start_udp_echo,   // the client's UDP_ECHO_REQUEST: open a UDP echo for its probes; phase stays idle
        stop_sending,     // the client's STOP: stop the streams and send the SENDER_REPORT; phase idle
        self_probe_mark,  // an upload's SELF_PROBE_MARK (`mark`) while the window is open: time the probe
        test_complete,    // the client's SENDER_REPORT arrived: the upload is done; phase idle
        client_done,      // a clean close between tests: the session ends normally
        end_session,      // the session ends with `failure` (sent to the client unless from_peer)
    };
    kind what = kind::end_session;
    proto::message reply;
    proto::test_request request;
    proto::sender_report sender_report;          // test_complete of a TCP upload
    proto::udp_sender_report udp_sender_report;  // test_complete of a UDP upload
    proto::self_probe_mark mark;                 // self_probe_mark
    proto::error failure;
    bool from_peer = false;  // end_session: the client sent the ERROR
    std::string log_detail;  // end_session: more than the client is told (e.g. which key failed)
};

class session_protocol {
  public:
    // `keys` is null when the server does not require authentication; otherwise it must outlive this object.
    session_protocol(const server_limits& limits, const session_timeouts& timeouts,
                     const std::vector<auth::key>* keys, proto::auth_nonce nonce);

    // The server's first frames: WELCOME (caps, token), then AUTH_CHALLENGE when keys are configured. Keeps
    // the WELCOME's bytes, which both sides' proofs cover.
    std::vector<proto::message> opening(const proto::session_token& token, const std::string& software);

    session_phase phase() const { return phase_; }
    // The deadline for the frame this phase reads, counted from when the server starts waiting.
    std::chrono::milliseconds read_timeout() const;
    // The frame this phase waits for, for error messages ("a test request").
    std::string_view awaiting() const;

    session_step on_message(const proto::message& msg);
    // The client closed the connection between frames.
    session_step on_closed();

    // Events from the session's I/O side.
    void streams_ready();  // setting_up -> sending (download) or receiving (upload)
    void window_closed();  // receiving -> awaiting_sender_report
    void end();            // a failure outside this class (I/O, deadline): ended

    // The current (or last) accepted test.
    const proto::test_request& test() const { return test_; }
    std::uint32_t requests_received() const { return requests_; }
    // Test requests and UDP echo requests so far: what --max-tests-per-session caps.
    std::uint32_t tests_started() const { return tests_; }
    // SELF_PROBE_MARKs the client sent in the current (or last) test.
    std::uint32_t self_probe_marks() const { return marks_; }
    // Whether the client may open probe and data connections: authenticated, or no authentication needed.
    bool admitted() const { return keys_ == nullptr || !key_name_.empty(); }
    // The key the client proved it holds ("" without authentication).
    const std::string& key_name() const { return key_name_; }
    // The key the client proved it holds (null without authentication) and the session's nonces: what the
    // session tags its reports with (auth::report_tagger).
    const auth::key* key() const { return key_; }
    const auth::session_nonces& nonces() const { return nonces_; }

  private:
    session_step accept_request(const proto::test_request& request);
    session_step fail(proto::error_code code, std::string message, std::string log_detail = {});
    session_step too_many_tests();
    session_step unexpected(const proto::message& msg);
    // A SELF_PROBE_MARK of a TCP upload: counted and checked; `step` when it is fine.
    session_step on_mark(const proto::self_probe_mark& mark, session_step::kind step);

    server_limits limits_;
    session_timeouts timeouts_;
    const std::vector<auth::key>* keys_;
    auth::session_nonces nonces_;  // the client's once its AUTH_RESPONSE is in
    std::vector<std::uint8_t> welcome_frame_;
    session_phase phase_;
    std::string key_name_;
    const auth::key* key_ = nullptr;
    proto::test_request test_;
    std::uint32_t requests_ = 0;
    std::uint32_t tests_ = 0;
    std::uint32_t marks_ = 0;
};

}  // namespace speed::server
