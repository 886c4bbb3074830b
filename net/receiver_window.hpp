// The receiving side of a time-based test, shared by speedcli (download) and speedsrv (upload).
//
// Time 0 is the moment the first payload byte of the test was read. The group's byte counters are sampled at
// every point of the plan; each sample closes an interval, handed to `on_interval` as it happens (speedcli
// prints it, speedsrv sends it to the client). A stream that fails before the window closes fails the test.
#pragma once

#include <asio/awaitable.hpp>
#include <functional>

#include "common/measurement.hpp"
#include "net/clock.hpp"
#include "net/stream_group.hpp"

namespace speed::net {

using interval_callback = std::function<asio::awaitable<void>(const measure::interval&)>;

asio::awaitable<measure::totals> measure_receiver_window(stream_group& group, const measure::plan& plan,
                                                         clock::time_point first_byte_deadline,
                                                         const interval_callback& on_interval);

}  // namespace speed::net
