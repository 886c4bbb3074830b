// Kernel receive timestamps on TCP sockets (Linux SO_TIMESTAMPING, software).
//
// A probe's round trip measured from the application includes the time each end's thread took to wake up and
// read the reply, which on a virtual machine alone can be hundreds of microseconds and varies. The kernel
// stamps every segment when it arrives; reading that stamp with the data lets both ends subtract their own
// wake-up time, as ping does with SO_TIMESTAMP and TWAMP (RFC 5357) does with its reflector timestamps.
//
// Kernel stamps are CLOCK_REALTIME. They are only ever subtracted from another CLOCK_REALTIME reading on the
// same host a few milliseconds later, so the difference is a short duration on one clock; the round trip
// itself stays on the monotonic clock.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>

namespace speed::net {

// Asks the kernel to stamp received data on `fd`. False where the system cannot (then reads carry no stamp).
bool enable_receive_timestamps(int fd);

struct timestamped_read {
    std::size_t bytes = 0;
    std::error_code error;                           // would_block when nothing is there yet
    std::optional<std::int64_t> kernel_realtime_ns;  // when the (last) segment read arrived
};

// One non-blocking recvmsg into `buffer`, with the kernel's receive timestamp when there is one.
timestamped_read read_with_timestamp(int fd, std::span<std::uint8_t> buffer);

// Waits until `socket` has data and reads what it has, with the kernel's receive timestamp. A closed
// connection gives asio::error::eof.
asio::awaitable<timestamped_read> async_read_with_timestamp(asio::ip::tcp::socket& socket,
                                                            std::span<std::uint8_t> buffer);

// CLOCK_REALTIME now, in ns: only for differences with kernel stamps.
std::int64_t realtime_now_ns();

// The same instant on both clocks: net::now_ns() (monotonic) and CLOCK_REALTIME.
struct clock_pair {
    std::int64_t monotonic_ns = 0;
    std::int64_t realtime_ns = 0;
};

// Reads both clocks as one instant. A round trip timed on the monotonic clock minus a kernel wait timed on
// the real-time clock is only right when both readings are of the same moment: read one after the other, a
// thread preempted between them (a loaded machine does that) shortens the round trip by the whole preemption,
// and a loopback round trip of 15 us then fell below the server's reported hold (seen once in about ten
// runs). So the real-time clock is read before and after the monotonic one, up to three times, and the
// tightest bracket's midpoint is kept: the pair is off by at most half that bracket.
clock_pair read_clocks();

}  // namespace speed::net
