// iperf3's UDP sender (esnet/iperf, src/iperf_udp.c, iperf_udp_send) on one connected socket, for both ends
// that send iperf3's datagrams: speedsrv serving an iperf3 client's -u -R, and speedcli's --iperf3 --udp
// upload. Each datagram starts with iperf3's header (common/iperf3_udp.hpp: the send time and the sequence
// number, +1 per datagram), the rest is batch_sender's random filler; all have the plan's length. They leave
// in batches (net/udp_socket.hpp's batch_sender: sendmmsg, with UDP GSO when the kernel allows), as iperf3
// 3.21's own sender does with --gsro; the kernel splits GSO batches for a receiver without GRO. The pace is
// common/udp_pacer's.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/udp.hpp>
#include <atomic>
#include <cstdint>

#include "common/iperf3_udp.hpp"

namespace speed::net {

struct iperf3_send_plan {
    std::uint32_t datagram_bytes = 0;  // at least the header's size
    bool counters_64bit = false;
    double bits_per_second = 0;   // 0 = unpaced
    std::int64_t warm_up_ns = 0;  // the figures at its end are set apart, as iperf3's omitted_*
    std::int64_t length_ns = 0;   // warm-up and window, from the first datagram: nothing is sent after it
    std::uint64_t max_bytes = 0;  // the most bytes to send; 0 = no budget
};

// Sends by `plan` until its length has passed, its budget is spent, `stop` or `hold` is set, or the socket
// is closed or cancelled. `sent` is updated as datagrams leave; the caller reads it after the return.
asio::awaitable<void> send_iperf3_datagrams(asio::ip::udp::socket& socket, iperf3_send_plan plan,
                                            const std::atomic<bool>& stop, const std::atomic<bool>& hold,
                                            iperf3::udp_sender_figures& sent);

}  // namespace speed::net
