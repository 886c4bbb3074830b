// The UDP flows of one test: one connected UDP socket per stream, each on a data-plane thread.
//
// A flow is a sender (paced DATA out, FEEDBACK in) or a receiver (DATA in, FEEDBACK out every 10 ms). On the
// client, a flow first sends HELLO datagrams with backoff until the server answers (HELLO_ACK, or the first
// DATA of a download); on the server, a flow is created only once a HELLO with the test's token arrived from
// the control connection's address (server/udp_listener.hpp) and answers every HELLO it gets 1:1.
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
};

// How a sender paces each of its streams.
struct udp_send_plan {
    double bits_per_second = 0;      // per stream; 0 = adaptive (common/udp_rate_control.hpp)
    double max_bits_per_second = 0;  // per stream cap of the adaptive rate; 0 = none
};

struct udp_sent_counts {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// A receiver's accounting when it closed.
struct udp_receiver_final {
    udp::receiver_counters counters;
    udp::ipdv_histogram ipdv;
};

// Receivers send FEEDBACK this often; a sender that hears none for kFeedbackTimeout stops sending.
inline constexpr std::chrono::milliseconds kFeedbackInterval{10};
inline constexpr std::chrono::milliseconds kFeedbackTimeout{500};

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
    // HELLOs, a server flow answers the HELLO that created it. False when the index is out of range or taken.
    bool attach(std::size_t index, asio::ip::udp::socket socket);
    bool attached(std::size_t index) const;
    bool all_attached() const;
    // Streams whose handshake completed (client: a HELLO_ACK or DATA arrived; server: attached).
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

    // Waits until a flow reports something (established, first DATA, a failure, closed) or `deadline`.
    asio::awaitable<bool> wait_for_change(clock::time_point deadline);
    // Monotonic time (ns) at which the first DATA datagram of the test arrived, if any.
    std::optional<std::int64_t> first_data_ns() const;
    // The receivers' latest published counters.
    void read_counters(std::vector<udp::receiver_counters>& out) const;
    std::optional<std::string> first_failure() const;
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
