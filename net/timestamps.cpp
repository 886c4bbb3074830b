#include "net/timestamps.hpp"

#include "net/clock.hpp"

#include <sys/socket.h>
#include <time.h>

#include <array>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <limits>

#ifdef __linux__
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#endif

namespace speed::net {

using asio::experimental::as_tuple;

bool enable_receive_timestamps(int fd) {
#ifdef SO_TIMESTAMPING
    const int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    return ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0;
#else
    (void)fd;
    return false;
#endif
}

timestamped_read read_with_timestamp(int fd, std::span<std::uint8_t> buffer) {
    timestamped_read result;
    iovec data{buffer.data(), buffer.size()};
    alignas(cmsghdr) std::array<char, 256> control{};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    const ssize_t got = ::recvmsg(fd, &message, MSG_DONTWAIT);
    if (got < 0) {
        result.error = std::error_code(errno, std::system_category());
        return result;
    }
    result.bytes = static_cast<std::size_t>(got);
#ifdef SO_TIMESTAMPING
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SO_TIMESTAMPING) {
            scm_timestamping stamps{};
            std::memcpy(&stamps, CMSG_DATA(header), sizeof stamps);
            const timespec& software = stamps.ts[0];
            if (software.tv_sec != 0 || software.tv_nsec != 0) {
                result.kernel_realtime_ns = std::int64_t{software.tv_sec} * 1'000'000'000 + software.tv_nsec;
            }
        }
    }
#endif
    return result;
}

asio::awaitable<timestamped_read> async_read_with_timestamp(asio::ip::tcp::socket& socket,
                                                            std::span<std::uint8_t> buffer) {
    for (;;) {
        timestamped_read result = read_with_timestamp(socket.native_handle(), buffer);
        if (result.error == std::errc::resource_unavailable_try_again ||
            result.error == std::errc::operation_would_block) {
            auto [ec] =
                co_await socket.async_wait(asio::ip::tcp::socket::wait_read, as_tuple(asio::use_awaitable));
            if (ec) {
                result.error = ec;
                co_return result;
            }
            continue;
        }
        if (!result.error && result.bytes == 0 && !buffer.empty()) {
            result.error = asio::error::eof;
        }
        co_return result;
    }
}

std::int64_t realtime_now_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

clock_pair read_clocks() {
    clock_pair best;
    std::int64_t best_bracket_ns = std::numeric_limits<std::int64_t>::max();
    for (int attempt = 0; attempt < 3; ++attempt) {
        const std::int64_t before = realtime_now_ns();
        const std::int64_t monotonic = now_ns();
        const std::int64_t after = realtime_now_ns();
        const std::int64_t bracket = after - before;
        if (bracket >= 0 && bracket < best_bracket_ns) {
            best = {monotonic, before + bracket / 2};
            best_bracket_ns = bracket;
        }
        if (bracket >= 0 && bracket < 1'000) {
            break;  // a microsecond is far below anything the pair is used for
        }
    }
    if (best_bracket_ns == std::numeric_limits<std::int64_t>::max()) {
        best = {now_ns(), realtime_now_ns()};  // the real-time clock stepped back in every attempt
    }
    return best;
}

}  // namespace speed::net
