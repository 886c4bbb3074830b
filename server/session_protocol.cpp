#include "server/session_protocol.hpp"

#include <algorithm>
#include <variant>

#include "common/test_timing.hpp"

namespace speed::server {

namespace {
// What the client is told whatever went wrong: whether a key name exists is not the client's business.
constexpr std::string_view kAuthFailed = "authentication failed: unknown key name or wrong key";
}  // namespace

std::string_view name_of(session_phase phase) {
    switch (phase) {
        case session_phase::authenticating:
            return "authenticating";
        case session_phase::idle:
            return "idle";
        case session_phase::test_authenticating:
            return "test_authenticating";
        case session_phase::setting_up:
            return "setting_up";
        case session_phase::sending:
            return "sending";
        case session_phase::receiving:
            return "receiving";
        case session_phase::awaiting_sender_report:
            return "awaiting_sender_report";
        case session_phase::ended:
            return "ended";
    }
    return "unknown";
}

session_protocol::session_protocol(const server_limits& limits, const session_timeouts& timeouts,
                                   const std::vector<auth::key>* keys, proto::auth_nonce nonce)
    : limits_(limits),
      timeouts_(timeouts),
      keys_(keys),
      nonces_{nonce, {}},
      phase_(keys != nullptr ? session_phase::authenticating : session_phase::idle) {}

std::vector<proto::message> session_protocol::opening(const proto::session_token& token,
                                                      const std::string& software) {
    proto::welcome welcome;
    welcome.token = token;
    welcome.software = software;
    welcome.max_streams = limits_.max_streams;
    welcome.max_duration_ms = limits_.max_duration_ms;
    welcome.max_bitrate = limits_.max_bitrate;
    welcome.max_bytes = limits_.max_bytes;
    welcome.auth_required = keys_ != nullptr;
    // Both proofs cover the WELCOME exactly as sent; the channel writes proto::encode's bytes.
    welcome_frame_ = proto::encode(welcome);
    std::vector<proto::message> frames{welcome};
    if (keys_ != nullptr) {
        frames.emplace_back(proto::auth_challenge{nonces_.server});
    }
    return frames;
}

std::chrono::milliseconds session_protocol::read_timeout() const {
    switch (phase_) {
        case session_phase::authenticating:
        case session_phase::test_authenticating:
            return timeouts_.auth;
        case session_phase::idle:
            return timeouts_.idle;
        case session_phase::sending:
            return test_timing::of(test_).server_stop_wait(timeouts_.least_stop_grace);
        default:
            return timeouts_.results;
    }
}

std::string_view session_protocol::awaiting() const {
    switch (phase_) {
        case session_phase::authenticating:
            return "AUTH_RESPONSE";
        case session_phase::idle:
            return "a test request";
        case session_phase::test_authenticating:
            return "the TEST_AUTH of the test request";
        case session_phase::setting_up:
            return "nothing while the data connections are set up";
        case session_phase::sending:
            return "the client's STOP";
        case session_phase::receiving:
            return "only SELF_PROBE_MARKs while the upload runs";
        case session_phase::awaiting_sender_report:
            return test_.proto == proto::transport::udp ? "the client's UDP_SENDER_REPORT"
                                                        : "the client's SENDER_REPORT";
        case session_phase::ended:
            return "nothing: the session has ended";
    }
    return "nothing";
}

session_step session_protocol::on_message(const proto::message& msg) {
    if (const auto* peer_error = std::get_if<proto::error>(&msg)) {
        phase_ = session_phase::ended;
        session_step step;
        step.failure = *peer_error;
        step.from_peer = true;
        return step;
    }
    switch (phase_) {
        case session_phase::authenticating:
            if (const auto* response = std::get_if<proto::auth_response>(&msg)) {
                const auth::client_check check =
                    auth::check_client(*keys_, *response, nonces_.server, welcome_frame_);
                if (check.proven == nullptr) {
                    return fail(proto::error_code::auth_failed, std::string(kAuthFailed),
                                (check.name_known ? "wrong key for key name '" : "unknown key name '") +
                                    response->key_name + "'");
                }
                key_ = check.proven;
                key_name_ = key_->name();
                nonces_.client = response->client_nonce;
                phase_ = session_phase::idle;
                session_step step;
                step.what = session_step::kind::reply;
                step.reply = proto::auth_ok{auth::server_proof(*key_, nonces_, welcome_frame_)};
                return step;
            }
            break;
        case session_phase::idle:
            if (std::holds_alternative<proto::udp_echo_request>(msg)) {
                if (!limits_.udp) {
                    return fail(proto::error_code::unsupported, "this server does not offer UDP tests");
                }
                if (++tests_ > limits_.max_tests_per_session) {
                    return too_many_tests();
                }
                session_step step;
                step.what = session_step::kind::start_udp_echo;
                return step;
            }
            if (const auto* request = std::get_if<proto::test_request>(&msg)) {
                ++requests_;
                ++tests_;
                test_ = *request;
                if (keys_ != nullptr) {
                    // Decide only once the TEST_AUTH that follows is read, so a refusal never leaves it
                    // unread.
                    phase_ = session_phase::test_authenticating;
                    session_step step;
                    step.what = session_step::kind::read_more;
                    return step;
                }
                return accept_request(*request);
            }
            break;
        case session_phase::test_authenticating:
            if (const auto* tag = std::get_if<proto::test_auth>(&msg)) {
                if (!auth::macs_equal(auth::test_mac(*key_, nonces_, requests_, test_), tag->mac)) {
                    return fail(proto::error_code::auth_failed,
                                "authentication failed: the test request's tag does not match",
                                "wrong TEST_AUTH for request " + std::to_string(requests_) + " (key '" +
                                    key_name_ + "')");
                }
                const proto::test_request request = test_;
                return accept_request(request);
            }
            break;
        case session_phase::sending:
            if (std::holds_alternative<proto::stop>(msg)) {
                phase_ = session_phase::idle;
                session_step step;
                step.what = session_step::kind::stop_sending;
                return step;
            }
            break;
        case session_phase::receiving:
            if (const auto* mark = std::get_if<proto::self_probe_mark>(&msg);
                mark != nullptr && test_.proto == proto::transport::tcp) {
                return on_mark(*mark, session_step::kind::self_probe_mark);
            }
            break;
        case session_phase::awaiting_sender_report:
            if (const auto* mark = std::get_if<proto::self_probe_mark>(&msg);
                mark != nullptr && test_.proto == proto::transport::tcp) {
                return on_mark(*mark, session_step::kind::read_more);
            }
            if (const auto* report = std::get_if<proto::sender_report>(&msg);
                report != nullptr && test_.proto == proto::transport::tcp) {
                if (report->streams.size() != test_.streams) {
                    return fail(proto::error_code::protocol_error,
                                "SENDER_REPORT has " + std::to_string(report->streams.size()) +
                                    " streams; the test has " + std::to_string(test_.streams));
                }
                phase_ = session_phase::idle;
                session_step step;
                step.what = session_step::kind::test_complete;
                step.sender_report = *report;
                return step;
            }
            if (const auto* report = std::get_if<proto::udp_sender_report>(&msg);
                report != nullptr && test_.proto == proto::transport::udp) {
                if (report->streams.size() != test_.streams) {
                    return fail(proto::error_code::protocol_error,
                                "UDP_SENDER_REPORT has " + std::to_string(report->streams.size()) +
                                    " streams; the test has " + std::to_string(test_.streams));
                }
                phase_ = session_phase::idle;
                session_step step;
                step.what = session_step::kind::test_complete;
                step.udp_sender_report = *report;
                return step;
            }
            break;
        case session_phase::setting_up:
        case session_phase::ended:
            break;
    }
    return unexpected(msg);
}

session_step session_protocol::on_closed() {
    if (phase_ == session_phase::idle) {
        phase_ = session_phase::ended;
        session_step step;
        step.what = session_step::kind::client_done;
        return step;
    }
    return fail(proto::error_code::protocol_error,
                "the client closed the connection while the server waited for " + std::string(awaiting()));
}

void session_protocol::streams_ready() {
    if (phase_ == session_phase::setting_up) {
        phase_ = test_.dir == proto::direction::download ? session_phase::sending : session_phase::receiving;
    }
}

void session_protocol::window_closed() {
    if (phase_ == session_phase::receiving) {
        phase_ = session_phase::awaiting_sender_report;
    }
}

void session_protocol::end() {
    phase_ = session_phase::ended;
}

session_step session_protocol::accept_request(const proto::test_request& request) {
    if (tests_ > limits_.max_tests_per_session) {
        return too_many_tests();
    }
    if (auto refusal = validate_request(request, limits_)) {
        return fail(refusal->code, refusal->message);
    }
    test_ = request;
    marks_ = 0;
    phase_ = session_phase::setting_up;
    session_step step;
    step.what = session_step::kind::start_test;
    step.request = request;
    return step;
}

session_step session_protocol::on_mark(const proto::self_probe_mark& mark, session_step::kind step_kind) {
    if (mark.stream_index >= test_.streams) {
        return fail(proto::error_code::protocol_error, "SELF_PROBE_MARK names stream " +
                                                           std::to_string(mark.stream_index) + " of a " +
                                                           std::to_string(test_.streams) + "-stream test");
    }
    if (++marks_ > proto::kMaxSelfProbes) {
        return fail(proto::error_code::protocol_error,
                    "more than " + std::to_string(proto::kMaxSelfProbes) +
                        " SELF_PROBE_MARKs in one test (a client answers at most that many self probes)");
    }
    session_step step;
    step.what = step_kind;
    step.mark = mark;
    return step;
}

session_step session_protocol::too_many_tests() {
    return fail(proto::error_code::limit_exceeded,
                "this server runs at most " + std::to_string(limits_.max_tests_per_session) +
                    " tests per session (UDP echo requests count as tests)");
}

session_step session_protocol::fail(proto::error_code code, std::string message, std::string log_detail) {
    phase_ = session_phase::ended;
    session_step step;
    step.failure = proto::error{code, std::move(message)};
    step.log_detail = std::move(log_detail);
    return step;
}

session_step session_protocol::unexpected(const proto::message& msg) {
    return fail(proto::error_code::protocol_error, "unexpected " +
                                                       std::string(proto::name_of(proto::type_of(msg))) +
                                                       " while waiting for " + std::string(awaiting()));
}

}  // namespace speed::server
