#include "common/udp_handshake.hpp"

#include <limits>

namespace speed::udp {

hello_drop judge_hello(std::size_t bytes, const std::optional<hello_owner>& owner) {
    if (!owner) {
        return hello_drop::unknown_token;
    }
    if (!owner->from_control_peer) {
        // Someone who knows the token but is not the control connection's host, e.g. a spoofed source
        // aiming our data at a third party.
        return hello_drop::wrong_address;
    }
    if (bytes < kHandshakeSize) {
        // Too short to carry a cookie, so too short for a HELLO_ACK in answer.
        return hello_drop::malformed;
    }
    if (owner->hellos_passed >= kMaxHellosPerToken) {
        return hello_drop::excess;
    }
    return hello_drop::none;
}

hello_drop judge_iperf3_connect(const std::optional<iperf3_connect_owner>& owner) {
    if (!owner) {
        return hello_drop::unknown_token;
    }
    if (owner->connects_passed >= owner->streams) {
        return hello_drop::excess;
    }
    return hello_drop::none;
}

void server_path::on_datagram(std::size_t bytes) {
    if (established_) {
        return;
    }
    // A flood at the stream's socket could add up without bound: the credit stops at the largest number.
    const std::uint64_t room = std::numeric_limits<std::uint64_t>::max() - credit_bytes_;
    credit_bytes_ += bytes < room ? bytes : room;
}

bool server_path::on_hello(std::uint64_t echoed) {
    if (established_ || echoed == 0 || echoed != cookie_) {
        return false;
    }
    established_ = true;
    return true;
}

bool server_path::may_send(std::size_t bytes) {
    if (established_) {
        return true;
    }
    if (bytes > credit_bytes_ - sent_unvalidated_bytes_) {
        return false;
    }
    sent_unvalidated_bytes_ += bytes;
    return true;
}

client_path::ack_effect client_path::on_hello_ack(std::uint64_t cookie) {
    if (cookie == 0) {
        if (established_) {
            return ack_effect::none;
        }
        established_ = true;
        return ack_effect::established;
    }
    if (established_ || cookie == echo_cookie_) {
        return ack_effect::none;
    }
    echo_cookie_ = cookie;
    return ack_effect::echo_now;
}

bool client_path::on_data() {
    if (established_) {
        return false;
    }
    established_ = true;
    return true;
}

}  // namespace speed::udp
