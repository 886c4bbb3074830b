// speedcli's UDP streams to an iperf3 server (`speedcli HOST --iperf3 --udp`): iperf3's own data path
// (common/iperf3_udp.hpp), not speedsrv's flows. Each stream is a UDP socket connected to the server's port
// that opens with iperf3's 4-byte connect datagram and waits for the 4-byte reply (src/iperf_udp.c,
// iperf_udp_connect). A download (-R) is measured here with iperf3's receiver accounting (loss from gaps in
// the sequence numbers, RFC 1889 jitter) over speedcli's own window; an upload sends iperf3's datagrams paced
// at --bitrate and the server measures. Everything runs on the caller's (single-threaded) executor.
// docs/methodology.md, "Against an iperf3 server".
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/udp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "client/options.hpp"
#include "client/report.hpp"
#include "common/iperf3_udp.hpp"
#include "common/measurement.hpp"
#include "net/clock.hpp"

namespace speed::client {

// A download's figures per stream at the end of speedcli's window: iperf3's receiver figures (bytes and
// counts after the warm-up, as iperf3 resets them when -O ends).
struct iperf3_udp_received {
    std::vector<iperf3::udp_receiver_figures> streams;
    std::uint64_t omitted_bytes = 0;  // all streams, in the warm-up
    // All streams: packets the sockets dropped on a full receive buffer (SO_RXQ_OVFL), as of the last one
    // read.
    std::uint64_t socket_drops = 0;
};

class iperf3_udp_streams {
  public:
    struct state;  // the sockets and figures, shared with each stream's loop

    // `plan`: a download's window, from the first datagram (an upload's is the server's).
    iperf3_udp_streams(asio::any_io_executor executor, std::size_t count, std::uint32_t datagram_bytes,
                       bool counters_64bit, const measure::plan& plan);
    ~iperf3_udp_streams();
    iperf3_udp_streams(const iperf3_udp_streams&) = delete;
    iperf3_udp_streams& operator=(const iperf3_udp_streams&) = delete;

    // Opens every stream, one after the other: a socket connected to `server` (with `sockets`' bind address,
    // port and TOS), the connect datagram, and the server's reply by `deadline` (a datagram that is not the
    // reply is taken as data, as iperf3's client tolerates a few before it). `first` is the index in the test
    // of the first stream (its --cport offset and its name in errors): --bidir's receiving streams follow the
    // sending ones. Throws net::session_error when a reply does not come, udp_path_error when the server's
    // port refuses UDP.
    asio::awaitable<void> open(const asio::ip::udp::endpoint& server, const socket_settings& sockets,
                               net::clock::time_point deadline, std::size_t first);

    // ---- download ----
    // Receives on every stream (datagrams queued since open() included); measures the plan from the first
    // datagram on any stream (which must come by `first_deadline`), calling `on_interval` with each closed
    // interval. Throws net::session_error when nothing arrives, or when no datagram arrives for `stall`
    // during the window.
    using interval_callback = std::function<asio::awaitable<void>(const interval_report&)>;
    asio::awaitable<iperf3_udp_received> measure(net::clock::time_point first_deadline,
                                                 std::chrono::nanoseconds stall,
                                                 const interval_callback& on_interval);

    // ---- upload ----
    // Sends on every stream at `stream_bits_per_second` for `warm_up` and then `window`, or until
    // hold_sending(); returns each stream's sender figures (the warm-up's set apart, as iperf3's sender
    // does).
    asio::awaitable<std::vector<iperf3::udp_sender_figures>> send(double stream_bits_per_second,
                                                                  std::chrono::nanoseconds warm_up,
                                                                  std::chrono::nanoseconds window);
    // Ends send()'s sending early (--bidir: the upload sends until the download's window has closed).
    void hold_sending();

    // Stops every loop and closes the sockets.
    void close();

  private:
    std::shared_ptr<state> state_;
};

}  // namespace speed::client
