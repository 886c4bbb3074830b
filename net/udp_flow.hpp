// The UDP flows of one test: one connected UDP socket per stream, each on a data-plane thread.
//
// A flow is a sender (paced DATA out, FEEDBACK in) or a receiver (DATA in, FEEDBACK out every 10 ms). On the
// server, a flow is created once a HELLO with the test's token arrived from the control connection's address
// (server/udp_listener.hpp); its socket is connected to that exact address:port. It answers HELLOs with a
// HELLO_ACK carrying its cookie, never sending more bytes than that address:port sent it, until a HELLO
// echoes the cookie: only then is the path valid and the flow established (RFC 9000 section 8.1). On the
// client, a flow sends HELLOs with backoff, echoes the cookie of the first HELLO_ACK, and is established when
// the server confirms (a HELLO_ACK with cookie 0) or the first DATA of a download arrives. Those decisions
// are common/udp_handshake.hpp's (server_path, client_path); the flow sends and receives.
//
// A sender keeps going only while FEEDBACK echoes a nonce its recent DATA carried, so only whoever receives
// the data can keep it flowing; a receiver whose data stops for the stall timeout stops its FEEDBACK and
// fails the test.
//
// Like stream_group, the group is driven from the control executor; flows share state with it only through
// atomics, mutex-guarded snapshots published after every receive batch, and a "something changed" wake-up.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/udp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/udp_accounting.hpp"
#include "common/udp_wire.hpp"
#include "net/change_signal.hpp"
#include "net/clock.hpp"

namespace speed::net {

enum class udp_role { sender, receiver };

struct udp_flow_settings {
    std::uint64_t token = 0;
    std::uint32_t datagram_bytes = udp::kDefaultIpv4DatagramBytes;
    udp_role role = udp_role::receiver;
    bool client = true;  // the client sends HELLOs until answered; the server answers them
    // A receiver whose data stops this long after it started stops sending FEEDBACK and fails (0 = never).
    std::chrono::nanoseconds stall_timeout{0};
};

// A server flow's path validation: the cookie its HELLO_ACKs carry, and the size of the HELLO that created
// it (the listener's), its first credit for answers.
struct udp_path_cookie {
    std::uint64_t cookie = 0;
    std::size_t hello_bytes = 0;
};

// How a sender paces each of its streams.
struct udp_send_plan {
    double bits_per_second = 0;      // per stream; 0 = adaptive (common/udp_rate_control.hpp)
    double max_bits_per_second = 0;  // per stream cap of the adaptive rate; 0 = none
    std::uint64_t max_bytes = 0;     // per stream: the sender stops for good after this many (0 = no cap)
};

struct udp_sent_counts {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// A receiver's accounting when it closed.
struct udp_receiver_final {
    udp::receiver_counters counters;
    udp::ipdv_histogram ipdv;
    // Packets (a datagram, or a GRO message of several) the receiving socket dropped because its buffer was
    // full (SO_RXQ_OVFL), as of the last one read: the loss that happened on the receiving host.
    std::uint32_t socket_drops = 0;
};

// Receivers send FEEDBACK this often; a sender that hears none that echoes its nonce for kFeedbackTimeout
// stops sending.
inline constexpr std::chrono::milliseconds kFeedbackInterval{10};
inline constexpr std::chrono::milliseconds kFeedbackTimeout{500};
// A sender draws a fresh nonce this often and accepts echoes of its last kNonceHistory: FEEDBACK may come
// back up to 3.2 s after the DATA it answers (a round trip that long fails kFeedbackTimeout first).
inline constexpr std::chrono::milliseconds kNonceLifetime{100};
inline constexpr std::size_t kNonceHistory = 32;

class udp_flow;
struct udp_group_state;

class udp_flow_group {
  public:
    udp_flow_group(asio::any_io_executor control_executor, std::size_t stream_count,
                   udp_flow_settings settings);
    ~udp_flow_group();
    udp_flow_group(const udp_flow_group&) = delete;
    udp_flow_group& operator=(const udp_flow_group&) = delete;

    std::size_t size() const { return flows_.size(); }
    const udp_flow_settings& settings() const;

    // Makes `socket` stream `index`. The socket is connected to the peer and was created on the io_context
    // it will run on (a data-plane thread). Its receive loop starts at once; a client flow starts sending
    // HELLOs, a server flow answers the HELLO that created it with `path`'s cookie. False when the index is
    // out of range or taken.
    bool attach(std::size_t index, asio::ip::udp::socket socket, const udp_path_cookie& path = {});
    bool attached(std::size_t index) const;
    bool all_attached() const;
    // Streams whose handshake completed (client: the server confirmed the cookie, or DATA arrived; server:
    // the cookie came back from the address:port it was sent to).
    std::size_t established_count() const;

    // Receivers: count DATA from now on (what arrives before is dropped), each stream's sender held to
    // `max_bits_per_second` (0: no rate bound); see udp::receiver_accounting::ready.
    void accept_data(double max_bits_per_second);
    // The receivers' dropped DATA, per reason, summed over the streams.
    udp::drop_counters data_drops() const;

    // Senders: start pacing DATA; stop (their counts are final once senders_stopped()).
    void start_sending(const udp_send_plan& plan);
    void stop_sending();
    asio::awaitable<bool> wait_senders_stopped(clock::time_point deadline);
    std::vector<udp_sent_counts> sent_counts() const;
    // Senders: the receiving sockets' overflow counts (SO_RXQ_OVFL) as the peer's latest FEEDBACK per stream
    // gave them, summed. The peer's word, for display: nothing is decided on it.
    std::uint64_t receiver_socket_drops() const;

    // Waits until a flow reports something (established, first DATA, a failure, closed) or `deadline`.
    asio::awaitable<bool> wait_for_change(clock::time_point deadline);
    // Monotonic time (ns) at which the first DATA datagram of the test arrived, if any.
    std::optional<std::int64_t> first_data_ns() const;
    // The receivers' latest published counters.
    void read_counters(std::vector<udp::receiver_counters>& out) const;
    // Arrival-time binning (docs/methodology.md, "Goodput"): arms the interval boundary `boundary_ns`
    // (net::now_ns() clock; 0: none) in every receiver. A receiver has read past it once it handled a
    // datagram that arrived at or after it, or found its socket empty at or after it.
    void set_boundary(std::int64_t boundary_ns);
    // Each receiver's counters at `boundary_ns` if it has read past it, else its latest counters; true when
    // every receiver has.
    bool read_boundary_counters(std::int64_t boundary_ns, std::vector<udp::receiver_counters>& out) const;
    std::optional<std::string> first_failure() const;
    // Whether a receiver failed because its data stopped for the stall timeout.
    bool stalled() const;
    // Datagrams that reached a flow's socket without the test's token or with a wrong stream id: dropped.
    std::uint64_t rejected_datagrams() const;

    // Closes every flow; receivers publish their final accounting. Idempotent.
    void close_all();
    asio::awaitable<bool> wait_all_closed(clock::time_point deadline);
    // After wait_all_closed(): each receiver's final accounting.
    std::vector<udp_receiver_final> receiver_finals() const;

  private:
    std::shared_ptr<change_signal> change_;  // declared first: the state refers to it
    std::shared_ptr<udp_group_state> state_;
    std::vector<std::shared_ptr<udp_flow>> flows_;
};

}  // namespace speed::net
