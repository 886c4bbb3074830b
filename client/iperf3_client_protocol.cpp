#include "client/iperf3_client_protocol.hpp"

#include <array>
#include <utility>

#include "common/wire.hpp"

namespace speed::client {

namespace {

// iperf_strerror's texts (src/iperf_error.c) for the codes a server sends when it refuses or fails a test.
constexpr std::array<std::pair<std::int32_t, std::string_view>, 26> kErrorTexts{{
    {5, "test duration valid values are 0 to 86400 seconds"},
    {6, "invalid number of parallel streams (min = 1, max = 128)"},
    {7, "block size too large (maximum = 1048576 bytes)"},
    {8, "socket buffer size too large (maximum = 536870912 bytes)"},
    {10, "TCP MSS too large (maximum = 32767 bytes)"},
    {12, "bogus value for --omit (maximum = 600 seconds)"},
    {13, "an option you are trying to set is not implemented yet"},
    {20, "block size invalid (minimum = 16 bytes, maximum = 65507 bytes)"},
    {21, "bad TOS value (must be between 0 and 255 inclusive)"},
    {27, "total required bandwidth is larger than server limit"},
    {37, "client's requested duration exceeds the server's maximum permitted limit"},
    {101, "test initialization failed"},
    {102, "unable to start listener for connections"},
    {109, "control socket has closed unexpectedly"},
    {110, "received an unknown control message"},
    {114, "unable to receive parameters from client"},
    {116, "unable to send results"},
    {117, "unable to receive results"},
    {119, "the client has terminated"},
    {120, "the server has terminated"},
    {121, "the server is busy running a test. try again later"},
    {130, "unable to set socket window size"},
    {134, "unable to set TCP_CONGESTION"},
    {142, "test authorization failed"},
    {144, "idle timeout for receiving data"},
    {200, "unable to create a new stream"},
}};

}  // namespace

std::string iperf3_error_text(std::int32_t code) {
    for (const auto& [known, text] : kErrorTexts) {
        if (known == code) {
            return std::string(text);
        }
    }
    return "iperf3 error " + std::to_string(code);
}

iperf3_client_protocol::iperf3_client_protocol(const iperf3::parameters& parameters,
                                               std::span<const std::uint8_t, 36> random_bytes)
    : parameters_(parameters) {
    for (const std::uint8_t byte : random_bytes) {
        cookie_.push_back(
            static_cast<std::uint8_t>(iperf3::kCookieAlphabet[byte % iperf3::kCookieAlphabet.size()]));
    }
    cookie_.push_back(0);
}

std::string_view iperf3_client_protocol::awaiting() const {
    switch (phase_) {
        case iperf3_client_phase::awaiting_parameter_request:
            return "PARAM_EXCHANGE";
        case iperf3_client_phase::awaiting_create:
            return "CREATE_STREAMS";
        case iperf3_client_phase::awaiting_start:
            return "TEST_START";
        case iperf3_client_phase::awaiting_running:
            return "TEST_RUNNING";
        case iperf3_client_phase::running:
            return "the end of the test";
        case iperf3_client_phase::awaiting_exchange:
            return "EXCHANGE_RESULTS";
        case iperf3_client_phase::awaiting_results:
            return "the server's results";
        case iperf3_client_phase::awaiting_display:
            return "DISPLAY_RESULTS";
        case iperf3_client_phase::ended:
            return "nothing";
    }
    return "nothing";
}

void iperf3_client_protocol::on_bytes(std::span<const std::uint8_t> bytes) {
    if (phase_ != iperf3_client_phase::ended) {
        pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    }
}

iperf3_client_step iperf3_client_protocol::next_step() {
    iperf3_client_step step;
    step.what = iperf3_client_step::kind::read_more;
    if (pending_.empty() || phase_ == iperf3_client_phase::ended) {
        return step;
    }
    if (phase_ == iperf3_client_phase::awaiting_results && results_requested_ && pending_.front() == 0) {
        // A results document: its length's first byte is 0 (under 16 MiB); anything else is a state byte.
        iperf3::json_decode decoded = iperf3::decode_json(pending_, iperf3::kMaxResultsJson);
        if (decoded.result == iperf3::json_decode::status::need_more) {
            return step;
        }
        if (decoded.result == iperf3::json_decode::status::bad) {
            return fail("the server's results: " + decoded.reason, false);
        }
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(decoded.consumed));
        server_results_ = iperf3::parse_results(decoded.document);
        phase_ = iperf3_client_phase::awaiting_display;
        return next_step();  // nothing to do but read on: DISPLAY_RESULTS may be right behind
    }
    const auto state = iperf3::state_of(pending_.front());
    if (state == iperf3::state::server_error) {
        if (pending_.size() < 9) {
            return step;  // the error code and errno follow
        }
        const auto code = static_cast<std::int32_t>(wire::get_big_endian(pending_.data() + 1, 4));
        return fail("the iperf3 server refused the test: " + iperf3_error_text(code), true);
    }
    const std::uint8_t byte = pending_.front();
    pending_.erase(pending_.begin());
    return on_state(byte);
}

iperf3_client_step iperf3_client_protocol::on_state(std::uint8_t byte) {
    const auto state = iperf3::state_of(byte);
    if (state == iperf3::state::access_denied) {
        return fail("the iperf3 server is busy running a test (iperf3 servers run one test at a time)", true);
    }
    if (state == iperf3::state::server_terminate) {
        return fail("the iperf3 server ended the test", true);
    }
    iperf3_client_step step;
    step.what = iperf3_client_step::kind::read_more;
    switch (phase_) {
        case iperf3_client_phase::awaiting_parameter_request:
            if (state != iperf3::state::param_exchange) {
                break;
            }
            step.reply = iperf3::encode_json(iperf3::parameters_json(parameters_));
            phase_ = iperf3_client_phase::awaiting_create;
            return step;
        case iperf3_client_phase::awaiting_create:
            if (state != iperf3::state::create_streams) {
                break;
            }
            step.what = iperf3_client_step::kind::open_streams;
            step.streams = parameters_.streams;
            phase_ = iperf3_client_phase::awaiting_start;
            return step;
        case iperf3_client_phase::awaiting_start:
            if (state != iperf3::state::test_start) {
                break;
            }
            phase_ = iperf3_client_phase::awaiting_running;
            return next_step();  // nothing to do but read on: TEST_RUNNING follows at once
        case iperf3_client_phase::awaiting_running:
            if (state != iperf3::state::test_running) {
                break;
            }
            step.what = iperf3_client_step::kind::start_test;
            phase_ = iperf3_client_phase::running;
            return step;
        case iperf3_client_phase::awaiting_exchange:
            if (state != iperf3::state::exchange_results) {
                break;
            }
            step.what = iperf3_client_step::kind::send_results;
            phase_ = iperf3_client_phase::awaiting_results;
            return step;
        case iperf3_client_phase::awaiting_display:
            if (state != iperf3::state::display_results) {
                break;
            }
            step.what = iperf3_client_step::kind::finished;
            step.reply = {iperf3::byte_of(iperf3::state::iperf_done)};
            phase_ = iperf3_client_phase::ended;
            return step;
        case iperf3_client_phase::running:
        case iperf3_client_phase::awaiting_results:
        case iperf3_client_phase::ended:
            break;
    }
    return fail("the server sent control byte " + std::to_string(byte) + " while speedcli waited for " +
                    std::string(awaiting()),
                false);
}

iperf3_client_step iperf3_client_protocol::time_up() {
    if (phase_ != iperf3_client_phase::running) {
        return fail("the test's time ran out while speedcli waited for " + std::string(awaiting()), false);
    }
    phase_ = iperf3_client_phase::awaiting_exchange;
    iperf3_client_step step;
    step.what = iperf3_client_step::kind::read_more;
    step.reply = {iperf3::byte_of(iperf3::state::test_end)};
    return step;
}

iperf3_client_step iperf3_client_protocol::results_ready(const iperf3::results& mine) {
    if (phase_ != iperf3_client_phase::awaiting_results || results_requested_) {
        return fail("results ready while speedcli waited for " + std::string(awaiting()), false);
    }
    results_requested_ = true;
    iperf3_client_step step;
    step.what = iperf3_client_step::kind::read_more;
    step.reply = iperf3::encode_json(iperf3::results_json(mine));
    return step;
}

iperf3_client_step iperf3_client_protocol::on_closed() {
    return fail(
        "the iperf3 server closed the connection while speedcli waited for " + std::string(awaiting()), true);
}

iperf3_client_step iperf3_client_protocol::fail(std::string reason, bool from_server) {
    phase_ = iperf3_client_phase::ended;
    pending_.clear();
    iperf3_client_step step;
    step.what = iperf3_client_step::kind::failed;
    step.reason = std::move(reason);
    step.from_server = from_server;
    return step;
}

}  // namespace speed::client
