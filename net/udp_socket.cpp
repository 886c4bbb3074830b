#include "net/udp_socket.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

namespace speed::net {
namespace {

#ifndef UDP_SEGMENT
constexpr int UDP_SEGMENT = 103;
#endif
#ifndef UDP_GRO
constexpr int UDP_GRO = 104;
#endif

// Big enough that a receiver descheduled for a few milliseconds at 10 Gbit/s loses nothing. The kernel caps
// them at net.core.rmem_max / wmem_max; the *FORCE options that would exceed those caps are not used (a
// privileged server would pin 16 MiB of kernel memory per flow on a client's request): an operator who wants
// fast UDP tests raises the sysctls.
constexpr int kReceiveBufferBytes = 16 * 1024 * 1024;
constexpr int kSendBufferBytes = 4 * 1024 * 1024;
// The largest UDP payload of one IPv4 packet; a GSO super-datagram must fit in one.
constexpr std::size_t kMaxGsoBytes = 65507;
constexpr std::size_t kControlBytesPerMessage = 128;

std::error_code last_error() {
    return {errno, std::system_category()};
}

void set_int(int fd, int level, int name, int value) {
    ::setsockopt(fd, level, name, &value, sizeof value);
}

// Random bytes: the body of every batch_sender datagram after its prefix.
const std::vector<std::uint8_t>& filler() {
    static const std::vector<std::uint8_t> bytes = [] {
        std::vector<std::uint8_t> out(udp::kMaxDatagramBytes);
        std::mt19937_64 generator(0x5544505350454544ULL);
        for (auto& byte : out) {
            byte = static_cast<std::uint8_t>(generator());
        }
        return out;
    }();
    return bytes;
}

std::int64_t to_ns(const timespec& t) {
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

std::int64_t clock_ns(clockid_t id) {
    timespec t{};
    ::clock_gettime(id, &t);
    return to_ns(t);
}

// One non-blocking recvmmsg into `headers`: the number of messages read, 0 when nothing was queued, or -1
// with `error` set.
int receive_messages(int fd, std::vector<mmsghdr>& headers, std::error_code& error) {
    int count = -1;
    do {
        count = ::recvmmsg(fd, headers.data(), static_cast<unsigned>(headers.size()), MSG_DONTWAIT, nullptr);
    } while (count < 0 && errno == EINTR);
    if (count < 0) {
        if (errno == EAGAIN) {  // EWOULDBLOCK is the same value on Linux
            return 0;
        }
        error = last_error();
    }
    return count;
}

}  // namespace

int configure_udp_data_socket(int fd) {
    set_int(fd, SOL_SOCKET, SO_RCVBUF, kReceiveBufferBytes);
    set_int(fd, SOL_SOCKET, SO_SNDBUF, kSendBufferBytes);
    set_int(fd, SOL_UDP, UDP_GRO, 1);
    set_int(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    set_int(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
    // The kernel reports twice what it grants for data (the other half is its bookkeeping).
    int effective = 0;
    socklen_t length = sizeof effective;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effective, &length) != 0) {
        return 0;
    }
    return effective / 2;
}

std::error_code set_reuse_port(int fd) {
    const int on = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
        return last_error();
    }
    return {};
}

std::error_code send_datagram(int fd, std::span<const std::uint8_t> datagram) {
    for (;;) {
        if (::send(fd, datagram.data(), datagram.size(), MSG_DONTWAIT) >= 0) {
            return {};
        }
        if (errno != EINTR) {
            return last_error();
        }
    }
}

bool drop_handshake_for_test() {
    static std::atomic<long> remaining = [] {
        const char* text = std::getenv("SPEED_TEST_DROP_UDP_HANDSHAKES");
        return text == nullptr ? 0L : std::strtol(text, nullptr, 10);
    }();
    if (remaining.load(std::memory_order_relaxed) <= 0) {
        return false;
    }
    return remaining.fetch_sub(1, std::memory_order_relaxed) > 0;
}

std::chrono::milliseconds handshake_retry_delay(unsigned attempt) {
    constexpr std::chrono::milliseconds kFirst{100};
    constexpr std::chrono::milliseconds kMost{500};
    return attempt >= 3 ? kMost : std::min(kMost, kFirst * (1 << attempt));
}

// ---- batch_receiver ----

batch_receiver::batch_receiver()
    : buffers_(kMessages * kMessageBytes),
      control_(kMessages * kControlBytesPerMessage),
      headers_(kMessages),
      iovecs_(kMessages),
      info_(kMessages) {
    for (std::size_t m = 0; m < kMessages; ++m) {
        iovecs_[m] = iovec{buffers_.data() + m * kMessageBytes, kMessageBytes};
    }
}

std::size_t batch_receiver::receive(int fd, std::error_code& error) {
    error.clear();
    received_ = 0;
    socket_drops_.reset();
    for (std::size_t m = 0; m < kMessages; ++m) {
        msghdr& h = headers_[m].msg_hdr;
        h = msghdr{};
        h.msg_iov = &iovecs_[m];
        h.msg_iovlen = 1;
        h.msg_control = control_.data() + m * kControlBytesPerMessage;
        h.msg_controllen = kControlBytesPerMessage;
        headers_[m].msg_len = 0;
    }
    const int count = receive_messages(fd, headers_, error);
    if (count <= 0) {
        return 0;
    }
    // The kernel stamps with CLOCK_REALTIME; the project measures with CLOCK_MONOTONIC. Their offset, taken
    // now, converts (a clock step between the two reads shifts one batch, not the test).
    const std::int64_t monotonic_now = clock_ns(CLOCK_MONOTONIC);
    const std::int64_t realtime_offset = clock_ns(CLOCK_REALTIME) - monotonic_now;
    received_ = static_cast<std::size_t>(count);
    for (std::size_t m = 0; m < received_; ++m) {
        message_info& info = info_[m];
        info = message_info{headers_[m].msg_len, 0, monotonic_now, false};
        msghdr& h = headers_[m].msg_hdr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                int segment = 0;
                std::memcpy(&segment, CMSG_DATA(c), sizeof segment);
                info.segment_bytes = segment > 0 ? static_cast<std::size_t>(segment) : 0;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                timespec stamp{};
                std::memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
                const std::int64_t kernel_ns = to_ns(stamp);
                info.arrival_ns = kernel_ns - realtime_offset;
                info.own_stamp = kernel_ns != previous_stamp_ns_;
                previous_stamp_ns_ = kernel_ns;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                std::uint32_t drops = 0;
                std::memcpy(&drops, CMSG_DATA(c), sizeof drops);
                socket_drops_ = drops;
            }
        }
    }
    return received_;
}

// ---- sourced_batch_receiver ----

sourced_batch_receiver::sourced_batch_receiver()
    : buffers_(kMessages * kMessageBytes), sources_(kMessages), headers_(kMessages), iovecs_(kMessages) {
    for (std::size_t m = 0; m < kMessages; ++m) {
        iovecs_[m] = iovec{buffers_.data() + m * kMessageBytes, kMessageBytes};
    }
}

std::size_t sourced_batch_receiver::receive(int fd, std::error_code& error) {
    error.clear();
    received_ = 0;
    for (std::size_t m = 0; m < kMessages; ++m) {
        msghdr& h = headers_[m].msg_hdr;
        h = msghdr{};
        h.msg_name = &sources_[m];
        h.msg_namelen = sizeof(sockaddr_storage);
        h.msg_iov = &iovecs_[m];
        h.msg_iovlen = 1;
        headers_[m].msg_len = 0;
    }
    received_ = static_cast<std::size_t>(std::max(receive_messages(fd, headers_, error), 0));
    return received_;
}

// ---- batch_sender ----

batch_sender::batch_sender(std::uint32_t datagram_bytes, std::size_t prefix_bytes, bool try_gso)
    : prefix_bytes_(std::min<std::size_t>(prefix_bytes, udp::kMaxDatagramBytes)),
      datagram_bytes_(std::clamp<std::uint32_t>(datagram_bytes, static_cast<std::uint32_t>(prefix_bytes_),
                                                udp::kMaxDatagramBytes)),
      max_gso_segments_(std::min(kMaxSegments, kMaxGsoBytes / datagram_bytes_)) {
    gso_ = try_gso && max_gso_segments_ > 1;
    // Sized for the larger of the two layouts, since a kernel that refuses GSO turns it off mid-test.
    const std::size_t most =
        std::max(single_datagram_messages(), gso_ ? kMaxGsoMessages * max_gso_segments_ : 0);
    datagrams_.resize(most * datagram_bytes_);
    const std::size_t body_bytes = datagram_bytes_ - prefix_bytes_;
    for (std::size_t d = 0; d < most; ++d) {
        std::memcpy(datagrams_.data() + d * datagram_bytes_ + prefix_bytes_, filler().data(), body_bytes);
    }
    iovecs_.resize(std::max(kMaxMessages, kMaxGsoMessages));
    messages_.resize(iovecs_.size());
    control_.resize(iovecs_.size() * CMSG_SPACE(sizeof(std::uint16_t)));
    message_datagrams_.resize(iovecs_.size());
}

std::size_t batch_sender::segments_per_message() const {
    return gso_ ? max_gso_segments_ : 1;
}

std::size_t batch_sender::single_datagram_messages() const {
    return std::clamp<std::size_t>(kMaxBatchBytes / datagram_bytes_, 1, kMaxMessages);
}

std::size_t batch_sender::messages_per_call() const {
    return gso_ ? kMaxGsoMessages : single_datagram_messages();
}

std::size_t batch_sender::capacity() const {
    return messages_per_call() * segments_per_message();
}

// Builds the messages for datagrams [first, count) and returns how many messages that takes (at most
// messages_per_call()).
std::size_t batch_sender::prepare(std::size_t first, std::size_t count) {
    const std::size_t per_message = segments_per_message();
    const std::size_t most_messages = messages_per_call();
    std::size_t messages = 0;
    for (std::size_t d = first; d < count && messages < most_messages; ++messages) {
        const std::size_t segments = std::min(per_message, count - d);
        iovecs_[messages] = iovec{datagrams_.data() + d * datagram_bytes_, segments * datagram_bytes_};
        d += segments;
        msghdr& h = messages_[messages].msg_hdr;
        h = msghdr{};
        h.msg_iov = &iovecs_[messages];
        h.msg_iovlen = 1;
        if (segments > 1) {
            std::uint8_t* control = control_.data() + messages * CMSG_SPACE(sizeof(std::uint16_t));
            h.msg_control = control;
            h.msg_controllen = CMSG_SPACE(sizeof(std::uint16_t));
            cmsghdr* c = CMSG_FIRSTHDR(&h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
            const auto segment_size = static_cast<std::uint16_t>(datagram_bytes_);
            std::memcpy(CMSG_DATA(c), &segment_size, sizeof segment_size);
        }
        message_datagrams_[messages] = segments;
    }
    return messages;
}

batch_sender::result batch_sender::send_filled(int fd, std::size_t count) {
    result out;
    while (out.sent < count) {
        const std::size_t messages = prepare(out.sent, count);
        const int sent = ::sendmmsg(fd, messages_.data(), static_cast<unsigned>(messages), MSG_DONTWAIT);
        if (sent > 0) {
            for (int m = 0; m < sent; ++m) {
                out.sent += message_datagrams_[static_cast<std::size_t>(m)];
            }
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == ENOBUFS) {
            out.would_block = true;
            return out;
        }
        if (errno == EPERM) {
            out.refused_locally = true;
            return out;
        }
        // The kernel or the route refuses segmentation offload (no checksum offload on the device, a
        // datagram larger than the path MTU, an old kernel): send the same datagrams one by one from now on.
        if (gso_ && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOPROTOOPT ||
                     errno == EMSGSIZE)) {
            gso_ = false;
            continue;
        }
        out.error = last_error();
        return out;
    }
    return out;
}

}  // namespace speed::net
