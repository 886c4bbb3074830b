#include "server/iperf3_session_protocol.hpp"

#include <algorithm>

namespace speed::server {

namespace {

std::vector<std::uint8_t> state_bytes(std::initializer_list<iperf3::state> states) {
    std::vector<std::uint8_t> out;
    for (const iperf3::state s : states) {
        out.push_back(iperf3::byte_of(s));
    }
    return out;
}

}  // namespace

std::string_view name_of(iperf3_phase phase) {
    switch (phase) {
        case iperf3_phase::awaiting_cookie:
            return "awaiting_cookie";
        case iperf3_phase::awaiting_parameters:
            return "awaiting_parameters";
        case iperf3_phase::creating_streams:
            return "creating_streams";
        case iperf3_phase::running:
            return "running";
        case iperf3_phase::stopping:
            return "stopping";
        case iperf3_phase::awaiting_results:
            return "awaiting_results";
        case iperf3_phase::awaiting_done:
            return "awaiting_done";
        case iperf3_phase::ended:
            return "ended";
    }
    return "unknown";
}

proto::test_request request_for(const iperf3::parameters& p, const server_limits& limits) {
    proto::test_request request;
    request.dir = p.reverse ? proto::direction::download : proto::direction::upload;
    request.proto = p.protocol == iperf3::transport::udp ? proto::transport::udp : proto::transport::tcp;
    request.streams = static_cast<std::uint16_t>(p.streams);
    request.omit_ms = p.omit_seconds * 1000;
    const bool by_amount = p.bytes != 0 || p.blocks != 0;
    request.duration_ms =
        p.duration_seconds == 0 || by_amount ? limits.max_duration_ms : p.duration_seconds * 1000;
    request.interval_ms = 0;  // iperf3 clients time their own intervals
    // Saturating: 128 streams at iperf3's largest rate do not fit in 64 bits.
    const std::uint64_t most = UINT64_MAX / std::max<std::uint64_t>(1, p.streams);
    request.bitrate = std::min(p.bitrate, most) * p.streams;
    if (request.proto == proto::transport::udp) {
        request.udp_payload_bytes = p.block_length;
    }
    request.congestion = p.congestion;
    return request;
}

std::uint64_t amount_of(const iperf3::parameters& p) {
    if (p.bytes != 0) {
        return p.bytes;
    }
    // iperf3's default block for TCP (DEFAULT_TCP_BLKSIZE); a UDP test always states its datagram size.
    constexpr std::uint64_t kDefaultTcpBlock = 128 * 1024;
    const std::uint64_t block = p.block_length != 0 ? p.block_length : kDefaultTcpBlock;
    return p.blocks > UINT64_MAX / block ? UINT64_MAX : p.blocks * block;
}

iperf3_session_protocol::iperf3_session_protocol(const server_limits& limits, const iperf3_timeouts& timeouts)
    : limits_(limits), timeouts_(timeouts) {}

std::chrono::milliseconds iperf3_session_protocol::read_timeout() const {
    switch (phase_) {
        case iperf3_phase::awaiting_cookie:
        case iperf3_phase::awaiting_parameters:
            return timeouts_.handshake;
        case iperf3_phase::creating_streams:
            return timeouts_.streams;
        case iperf3_phase::running: {
            const std::chrono::milliseconds test{std::uint64_t{request_.omit_ms} + request_.duration_ms};
            return test +
                   std::max(timeouts_.least_stop_grace, std::chrono::milliseconds{request_.duration_ms / 10});
        }
        case iperf3_phase::stopping:
        case iperf3_phase::awaiting_results:
        case iperf3_phase::awaiting_done:
            return timeouts_.results;
        case iperf3_phase::ended:
            return std::chrono::milliseconds{0};
    }
    return timeouts_.handshake;
}

std::string_view iperf3_session_protocol::awaiting() const {
    switch (phase_) {
        case iperf3_phase::awaiting_cookie:
            return "the iperf3 cookie";
        case iperf3_phase::awaiting_parameters:
            return "the test parameters";
        case iperf3_phase::creating_streams:
            return "the data connections";
        case iperf3_phase::running:
            return "TEST_END";
        case iperf3_phase::stopping:
            return "the test to stop";
        case iperf3_phase::awaiting_results:
            return "the client's results";
        case iperf3_phase::awaiting_done:
            return "IPERF_DONE";
        case iperf3_phase::ended:
            return "nothing";
    }
    return "nothing";
}

void iperf3_session_protocol::on_bytes(std::span<const std::uint8_t> bytes) {
    if (phase_ == iperf3_phase::ended) {
        return;
    }
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
}

iperf3_step iperf3_session_protocol::next_step() {
    iperf3_step step;
    step.what = iperf3_step::kind::read_more;
    switch (phase_) {
        case iperf3_phase::awaiting_cookie: {
            if (pending_.size() < iperf3::kCookieSize) {
                return step;
            }
            const std::span<const std::uint8_t> cookie(pending_.data(), iperf3::kCookieSize);
            if (!iperf3::is_cookie(cookie)) {
                return fail("the first 37 bytes are not an iperf3 cookie");
            }
            cookie_.assign(cookie.begin(), cookie.end());
            pending_.erase(pending_.begin(), pending_.begin() + iperf3::kCookieSize);
            phase_ = iperf3_phase::awaiting_parameters;
            step.reply = state_bytes({iperf3::state::param_exchange});
            return step;
        }
        case iperf3_phase::awaiting_parameters: {
            iperf3::json_decode decoded = iperf3::decode_json(pending_, iperf3::kMaxParametersJson);
            if (decoded.result == iperf3::json_decode::status::need_more) {
                return step;
            }
            if (decoded.result == iperf3::json_decode::status::bad) {
                return refuse(iperf3::error_code::receive_parameters, "parameters: " + decoded.reason);
            }
            pending_.erase(pending_.begin(),
                           pending_.begin() + static_cast<std::ptrdiff_t>(decoded.consumed));
            auto parsed = iperf3::parse_parameters(decoded.document);
            if (!parsed) {
                return refuse(static_cast<iperf3::error_code>(parsed.error_code()), parsed.error());
            }
            return accept(*parsed);
        }
        case iperf3_phase::creating_streams:
        case iperf3_phase::running:
        case iperf3_phase::stopping:
        case iperf3_phase::awaiting_done: {
            if (pending_.empty()) {
                return step;
            }
            const std::uint8_t byte = pending_.front();
            pending_.erase(pending_.begin());
            return on_state_byte(byte);
        }
        case iperf3_phase::awaiting_results: {
            // A results document is under 1 MiB, so its length starts with a 0 byte: anything else is a state
            // byte (CLIENT_TERMINATE from a client that gives up).
            if (!pending_.empty() && pending_.front() != 0) {
                const std::uint8_t byte = pending_.front();
                pending_.erase(pending_.begin());
                return on_state_byte(byte);
            }
            iperf3::json_decode decoded = iperf3::decode_json(pending_, iperf3::kMaxResultsJson);
            if (decoded.result == iperf3::json_decode::status::need_more) {
                return step;
            }
            if (decoded.result == iperf3::json_decode::status::bad) {
                return fail("the client's results: " + decoded.reason);
            }
            pending_.erase(pending_.begin(),
                           pending_.begin() + static_cast<std::ptrdiff_t>(decoded.consumed));
            client_results_ = iperf3::parse_results(decoded.document);
            phase_ = iperf3_phase::awaiting_done;
            step.reply = server_results_;
            step.reply.push_back(iperf3::byte_of(iperf3::state::display_results));
            return step;
        }
        case iperf3_phase::ended:
            return step;
    }
    return step;
}

iperf3_step iperf3_session_protocol::on_state_byte(std::uint8_t byte) {
    const auto state = iperf3::state_of(byte);
    if (state == iperf3::state::client_terminate) {
        phase_ = iperf3_phase::ended;
        iperf3_step step;
        step.what = iperf3_step::kind::end_session;
        step.reason = "the iperf3 client terminated the test";
        step.from_peer = true;
        return step;
    }
    if (phase_ == iperf3_phase::running && state == iperf3::state::test_end) {
        phase_ = iperf3_phase::stopping;
        iperf3_step step;
        step.what = iperf3_step::kind::stop_test;
        return step;
    }
    if (phase_ == iperf3_phase::awaiting_done && state == iperf3::state::iperf_done) {
        phase_ = iperf3_phase::ended;
        iperf3_step step;
        step.what = iperf3_step::kind::finished;
        return step;
    }
    return refuse(iperf3::error_code::unknown_message,
                  "control byte " + std::to_string(byte) + " while waiting for " + std::string(awaiting()));
}

iperf3_step iperf3_session_protocol::accept(const iperf3::parameters& parameters) {
    const proto::test_request request = request_for(parameters, limits_);
    // --bidir opens the streams twice, once each way: all of them count against the cap.
    const std::uint32_t connections = parameters.bidirectional ? 2u * request.streams : request.streams;
    if (connections > limits_.max_streams) {
        return refuse(iperf3::error_code::streams, std::to_string(connections) +
                                                       " streams, the server allows " +
                                                       std::to_string(limits_.max_streams));
    }
    if (request.duration_ms > limits_.max_duration_ms || request.omit_ms > limits_.max_omit_ms) {
        return refuse(iperf3::error_code::max_duration, "a test of " + std::to_string(request.omit_ms) +
                                                            " + " + std::to_string(request.duration_ms) +
                                                            " ms, the server allows " +
                                                            std::to_string(limits_.max_omit_ms) + " + " +
                                                            std::to_string(limits_.max_duration_ms));
    }
    if (limits_.max_bytes != 0 && amount_of(parameters) > limits_.max_bytes) {
        // iperf3 has no error code for a byte cap: the client prints "not implemented", the log says why.
        return refuse(iperf3::error_code::not_implemented,
                      "a test of " + std::to_string(amount_of(parameters)) + " bytes, the server allows " +
                          std::to_string(limits_.max_bytes));
    }
    const std::uint64_t rate_cap =
        request.proto == proto::transport::udp ? limits_.max_udp_bitrate : limits_.max_bitrate;
    if (rate_cap != 0 && request.bitrate > rate_cap) {
        return refuse(iperf3::error_code::total_rate, "a total of " + std::to_string(request.bitrate) +
                                                          " bit/s, the server allows " +
                                                          std::to_string(rate_cap));
    }
    if (auto refusal = validate_request(request, limits_)) {
        // What is left has no iperf3 error code of its own (UDP turned off, a rate below the server's
        // slowest, more bytes than the server allows): the client prints "not implemented", the log says why.
        return refuse(iperf3::error_code::not_implemented, refusal->message);
    }
    parameters_ = parameters;
    request_ = request;
    phase_ = iperf3_phase::creating_streams;
    iperf3_step step;
    step.what = iperf3_step::kind::start_streams;
    step.reply = state_bytes({iperf3::state::create_streams});
    step.request = request;
    step.parameters = parameters;
    step.data_connections = connections;
    return step;
}

iperf3_step iperf3_session_protocol::streams_attached() {
    if (phase_ != iperf3_phase::creating_streams) {
        return fail("data connections attached in phase " + std::string(name_of(phase_)));
    }
    phase_ = iperf3_phase::running;
    iperf3_step step;
    step.what = iperf3_step::kind::start_test;
    step.reply = state_bytes({iperf3::state::test_start, iperf3::state::test_running});
    return step;
}

iperf3_step iperf3_session_protocol::test_stopped(const iperf3::results& results) {
    if (phase_ != iperf3_phase::stopping) {
        return fail("the test stopped in phase " + std::string(name_of(phase_)));
    }
    server_results_ = iperf3::encode_json(iperf3::results_json(results));
    phase_ = iperf3_phase::awaiting_results;
    iperf3_step step;
    step.what = iperf3_step::kind::read_more;
    step.reply = state_bytes({iperf3::state::exchange_results});
    return step;
}

iperf3_step iperf3_session_protocol::on_closed() {
    iperf3_step step;
    if (phase_ == iperf3_phase::awaiting_done) {
        step.what =
            iperf3_step::kind::finished;  // 3.x clients close right after IPERF_DONE, or instead of it
    } else {
        step.what = iperf3_step::kind::end_session;
        step.reason =
            "the iperf3 client closed the connection while the server waited for " + std::string(awaiting());
        step.from_peer = true;
    }
    phase_ = iperf3_phase::ended;
    return step;
}

void iperf3_session_protocol::end() {
    phase_ = iperf3_phase::ended;
}

iperf3_step iperf3_session_protocol::refuse(iperf3::error_code code, std::string reason) {
    iperf3_step step = fail(std::move(reason));
    step.reply = iperf3::encode_server_error(code);
    return step;
}

iperf3_step iperf3_session_protocol::fail(std::string reason) {
    phase_ = iperf3_phase::ended;
    pending_.clear();
    iperf3_step step;
    step.what = iperf3_step::kind::end_session;
    step.reason = std::move(reason);
    return step;
}

}  // namespace speed::server
