// The receiving side of a UDP test, shared by speedcli (download) and speedsrv (upload): the measured window
// (as for TCP: time 0 is the first DATA datagram's arrival, intervals sampled at planned instants), the
// drain after the sender's count arrived, and the final accounting (docs/methodology.md, "UDP").
#pragma once

#include <asio/awaitable.hpp>
#include <functional>
#include <vector>

#include "common/measurement.hpp"
#include "common/protocol.hpp"
#include "net/clock.hpp"
#include "net/udp_flow.hpp"

namespace speed::net {

struct udp_window_result {
    measure::totals totals;  // bytes within the window, as for TCP
    std::vector<udp::receiver_counters> at_window_end;
};

// Called for each closed interval, with the UDP figures of each stream in it.
using udp_interval_callback = std::function<asio::awaitable<void>(const proto::udp_interval_report&)>;

asio::awaitable<udp_window_result> measure_udp_receiver_window(udp_flow_group& group,
                                                               const measure::plan& plan,
                                                               clock::time_point first_data_deadline,
                                                               const udp_interval_callback& on_interval);

// After the sender's counts arrived: waits until every stream has received everything that was sent, or
// until `deadline` (datagrams still in flight then are lost), then closes the flows. Throws session_error
// (timeout) when a flow does not close within kDrainTimeout: its final counts never arrived.
asio::awaitable<void> drain_and_close(udp_flow_group& group, const proto::udp_sender_report& sent,
                                      clock::time_point deadline);

// The receiver's final report: window totals, exact per-stream accounting against the sender's counts, jitter
// and IPDV percentiles. Throws session_error when the counts contradict what arrived.
proto::udp_receiver_report make_udp_receiver_report(const udp_window_result& window,
                                                    const std::vector<udp_receiver_final>& finals,
                                                    const proto::udp_sender_report& sent);

// How long an interval's sample waits after its planned instant for every receiver to read past it (see
// docs/methodology.md, "Goodput": longer than the socket waits measured at 1 Gbit/s on a busy 2-core machine,
// shorter than the 100 ms shortest interval, so the next boundary is armed before it comes).
inline constexpr std::chrono::milliseconds kBoundaryGrace{25};

// How long a receiver waits for datagrams still in flight after the sender's count arrived.
inline constexpr std::chrono::milliseconds kDrainTimeout{250};

}  // namespace speed::net
