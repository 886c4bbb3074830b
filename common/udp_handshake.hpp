// The decisions of the UDP handshake (docs/protocol.md, "Why the server cannot be made into an amplifier"),
// pure so that unit tests and a fuzzer reach them; server/udp_listener.cpp and net/udp_flow.cpp act on them.
//
// - The listener's verdict on one datagram at the shared UDP port: only a HELLO long enough to carry a
//   cookie, with a live token, from the IP address of that token's control connection, within the token's
//   HELLO budget, is passed on; everything else is dropped with one of the listener's drop reasons.
// - A server stream's path validation (RFC 9000 section 8.1) for the one address:port its socket is
//   connected to: until a HELLO from there echoes the cookie, the stream sends at most as many bytes as it
//   received from there; the exact cookie makes the path valid for good.
// - A client stream's side: echo the server's cookie in every HELLO; established once the server confirms
//   (a HELLO_ACK with cookie 0) or, in a download, once DATA arrives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "common/iperf3_udp.hpp"
#include "common/udp_wire.hpp"

namespace speed::udp {

// ---- the listener ----

// HELLOs one token may pass to its owner. A client sends one per stream and retransmits with backoff only
// until that stream's socket exists (later ones go straight to it): at most 32 streams times 12 attempts.
// More can only be someone holding the token who floods the control thread with it.
inline constexpr std::uint64_t kMaxHellosPerToken = 512;

// Why the listener dropped a datagram; each reason is one of its drop counters.
enum class hello_drop : std::uint8_t {
    none,           // passed: a HELLO for the token's owner
    malformed,      // not a speedsrv datagram, not a HELLO, or a HELLO too short to carry a cookie
    unknown_token,  // a token no live test owns; an iperf3 connect from an address no iperf3 session waits on
    wrong_address,  // a live token from an IP address other than its control connection's
    excess,         // more HELLOs for one token than any client sends; more iperf3 connects than streams
};

// A HELLO and an iperf3 connect can never be taken for one another.
static_assert(kHeaderSize > iperf3::kUdpConnectSize);

// What the listener knows of a live token's owner when a HELLO names it.
struct hello_owner {
    bool from_control_peer = false;   // the datagram came from the control connection's IP address (any port)
    std::uint64_t hellos_passed = 0;  // HELLOs with this token passed before this one
};

struct hello_verdict {
    hello_drop drop = hello_drop::malformed;
    std::optional<header> hello;  // the HELLO's header, when the datagram is one
    // iperf3's 4-byte UDP connect (common/iperf3_udp.hpp), when the datagram is one; never a HELLO too (a
    // speedsrv datagram is at least kHeaderSize bytes).
    iperf3::udp_connect iperf3_connect = iperf3::udp_connect::none;
};

// iperf3 clients open each UDP stream with a 4-byte connect datagram that carries no token: only its source
// IP address ties it to a session. What the listener knows of the iperf3 session from that address that
// waits for its UDP streams (after CREATE_STREAMS, within its stream deadline).
struct iperf3_connect_owner {
    std::uint32_t streams = 0;          // the UDP streams the session asked for (-P)
    std::uint32_t connects_passed = 0;  // connects passed to it before this one
};

// The verdict on an iperf3 connect whose source address has this waiting session (nothing: none waits):
// unknown_token without one, excess once it has as many streams as it asked for.
hello_drop judge_iperf3_connect(const std::optional<iperf3_connect_owner>& owner);

// The verdict once the datagram is known to be a HELLO of `bytes` bytes whose token has this owner (nothing:
// no live owner). The checks run in this order: owner, address, length, budget.
hello_drop judge_hello(std::size_t bytes, const std::optional<hello_owner>& owner);

// The listener's verdict on `datagram`. `find_owner(token)` answers std::optional<hello_owner>; it is asked
// only for a HELLO, after its header was read. `find_iperf3_owner()` answers
// std::optional<iperf3_connect_owner> for the datagram's source address; it is asked only for an iperf3
// connect.
template <typename FindOwner, typename FindIperf3Owner>
hello_verdict judge_listener_datagram(std::span<const std::uint8_t> datagram, FindOwner&& find_owner,
                                      FindIperf3Owner&& find_iperf3_owner) {
    static_assert(std::is_invocable_r_v<std::optional<hello_owner>, FindOwner&, std::uint64_t>);
    static_assert(std::is_invocable_r_v<std::optional<iperf3_connect_owner>, FindIperf3Owner&>);
    hello_verdict verdict;
    verdict.iperf3_connect = iperf3::classify_udp_connect(datagram);
    if (verdict.iperf3_connect != iperf3::udp_connect::none) {
        verdict.drop = judge_iperf3_connect(find_iperf3_owner());
        return verdict;
    }
    const auto h = read_header(datagram);
    if (!h || h->type != datagram_type::hello) {
        return verdict;
    }
    verdict.hello = h;
    verdict.drop = judge_hello(datagram.size(), find_owner(h->token));
    return verdict;
}

// The verdict where no iperf3 session waits for UDP streams.
template <typename FindOwner>
hello_verdict judge_listener_datagram(std::span<const std::uint8_t> datagram, FindOwner&& find_owner) {
    return judge_listener_datagram(datagram, std::forward<FindOwner>(find_owner),
                                   [] { return std::optional<iperf3_connect_owner>(); });
}

// ---- a server stream ----

// The path to the one address:port a server stream's socket is connected to. The cookie is never 0 (a HELLO
// carries 0 before it has a cookie to echo): a cookie of 0 validates nothing.
class server_path {
  public:
    // `first_hello_bytes`: the HELLO the listener passed, which created the stream: the first credit.
    server_path(std::uint64_t cookie, std::size_t first_hello_bytes) : cookie_(cookie) {
        on_datagram(first_hello_bytes);
    }

    // Any datagram from the peer, whatever it holds: until the path is valid, its bytes may be answered.
    void on_datagram(std::size_t bytes);
    // A HELLO from the peer carrying `echoed`: the exact cookie validates the path (true: just now).
    bool on_hello(std::uint64_t echoed);
    // The cookie a HELLO_ACK carries: the one to echo, or 0 once the echo arrived.
    std::uint64_t answer_cookie() const { return established_ ? 0 : cookie_; }
    // Whether `bytes` more may go to the peer now; while the path is not valid, they are counted against the
    // credit (1:1: never more than the peer sent).
    bool may_send(std::size_t bytes);

    bool established() const { return established_; }
    std::uint64_t cookie() const { return cookie_; }
    std::uint64_t credit_bytes() const { return credit_bytes_; }
    std::uint64_t sent_unvalidated_bytes() const { return sent_unvalidated_bytes_; }

  private:
    std::uint64_t cookie_;
    bool established_ = false;
    std::uint64_t credit_bytes_ = 0;  // received from the peer before the path was valid
    std::uint64_t sent_unvalidated_bytes_ = 0;
};

// ---- a client stream ----

class client_path {
  public:
    enum class ack_effect : std::uint8_t {
        none,         // nothing new
        echo_now,     // a new cookie: send the HELLO that echoes it now rather than at the next retry
        established,  // the server confirmed the echo (cookie 0)
    };

    // A HELLO_ACK carrying `cookie` from the server's address:port.
    ack_effect on_hello_ack(std::uint64_t cookie);
    // DATA from the server (a download): the path works, though its confirming HELLO_ACK may have been
    // lost. True when this established it.
    bool on_data();

    // What every HELLO carries: the server's cookie, 0 until a HELLO_ACK brought one.
    std::uint64_t echo_cookie() const { return echo_cookie_; }
    bool established() const { return established_; }

  private:
    std::uint64_t echo_cookie_ = 0;
    bool established_ = false;
};

}  // namespace speed::udp
