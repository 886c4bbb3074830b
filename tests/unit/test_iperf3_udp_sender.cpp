// The iperf3 UDP sender (net/iperf3_udp_sender.hpp) writes batches to a connected loopback socket; a socket
// of the test reads them back. Every datagram of a batch must carry its own sequence number (+1 each, from
// 1), the plan's length and a send time no earlier than the one before, and the figures must count exactly
// what left: a byte budget is never exceeded. The budgets keep every test under 190 datagrams of 1400 bytes,
// what a receive buffer at Linux's default net.core.rmem_max holds (measured), so nothing is lost before it
// is read.
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <vector>

#include "common/iperf3_udp.hpp"
#include "net/iperf3_udp_sender.hpp"
#include "net/udp_socket.hpp"

namespace {

using namespace speed;

#ifndef UDP_GRO
constexpr int UDP_GRO = 104;
#endif

constexpr std::int64_t kLongEnoughNs = 10'000'000'000;  // a plan's length no test reaches: the budget ends it

struct loopback_pair {
    asio::io_context context{1};
    asio::ip::udp::socket receiver{context, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0)};
    asio::ip::udp::socket sender{context, asio::ip::udp::v4()};

    loopback_pair() {
        const int buffer = 4 * 1024 * 1024;  // capped at net.core.rmem_max
        ::setsockopt(receiver.native_handle(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        sender.connect(receiver.local_endpoint());
    }

    // Runs the sender by `plan` to its end; returns its figures.
    iperf3::udp_sender_figures send(const net::iperf3_send_plan& plan) {
        std::atomic<bool> stop{false};
        std::atomic<bool> hold{false};
        iperf3::udp_sender_figures sent;
        std::exception_ptr failure;
        asio::co_spawn(context, net::send_iperf3_datagrams(sender, plan, stop, hold, sent),
                       [&](std::exception_ptr e) { failure = e; });
        context.run();
        REQUIRE_FALSE(failure);
        return sent;
    }
};

struct received_datagram {
    std::vector<std::uint8_t> bytes;
    std::size_t gro_segment = 0;  // with UDP_GRO on: the size of each datagram in the message, 0 = one
};

// Everything queued on `socket`, one message per read.
std::vector<received_datagram> drain(asio::ip::udp::socket& socket) {
    std::vector<received_datagram> out;
    std::vector<std::uint8_t> buffer(65536);
    alignas(cmsghdr) std::array<std::uint8_t, 128> control{};
    for (;;) {
        iovec iov{buffer.data(), buffer.size()};
        msghdr h{};
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = control.data();
        h.msg_controllen = control.size();
        const ssize_t n = ::recvmsg(socket.native_handle(), &h, MSG_DONTWAIT);
        if (n < 0) {
            return out;
        }
        received_datagram d;
        d.bytes.assign(buffer.begin(), buffer.begin() + n);
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                int segment = 0;
                std::memcpy(&segment, CMSG_DATA(c), sizeof segment);
                d.gro_segment = static_cast<std::size_t>(segment);
            }
        }
        out.push_back(std::move(d));
    }
}

// The datagrams as a receiver without GRO reads them (iperf3 3.12, or 3.21 without --gsro): one per read,
// numbered 1, 2, 3, ... with the plan's length, send times that never go back, and after the header the same
// random bytes in every one (a header written at the wrong place in the sender's buffer would show there).
void check_datagrams(const std::vector<received_datagram>& got, std::uint64_t expected, std::size_t length,
                     bool counters_64bit) {
    REQUIRE(got.size() == expected);
    std::optional<std::uint64_t> previous_time;
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("datagram " << i);
        REQUIRE(got[i].bytes.size() == length);
        const auto header = iperf3::read_udp_header(got[i].bytes, counters_64bit);
        REQUIRE(header);
        CHECK(header->count == i + 1);
        const std::uint64_t time = std::uint64_t{header->seconds} * 1'000'000 + header->microseconds;
        if (previous_time) {
            CHECK(time >= *previous_time);
        }
        previous_time = time;
        const auto body = std::span<const std::uint8_t>(got[i].bytes)
                              .subspan(std::min(length, iperf3::udp_header_size(counters_64bit)));
        const auto first_body = std::span<const std::uint8_t>(got[0].bytes).subspan(length - body.size());
        CHECK(std::equal(body.begin(), body.end(), first_body.begin(), first_body.end()));
        if (body.size() >= 16) {
            CHECK(std::count(body.begin(), body.end(), std::uint8_t{0}) <
                  static_cast<long>(body.size() / 16));
        }
    }
}

// Sends by `plan` (to the end of its budget) and checks that exactly `expected` datagrams left, counted and
// received.
void check_budget(net::iperf3_send_plan plan, std::uint64_t expected) {
    loopback_pair pair;
    plan.length_ns = kLongEnoughNs;
    const auto sent = pair.send(plan);
    CHECK(sent.packets == expected);
    CHECK(sent.bytes == expected * plan.datagram_bytes);
    CHECK(sent.bytes <= plan.max_bytes);
    check_datagrams(drain(pair.receiver), expected, plan.datagram_bytes, plan.counters_64bit);
}

}  // namespace

TEST_CASE(
    "the iperf3 UDP sender's batches: each datagram its own sequence number and the plan's length, "
    "a byte budget sent exactly",
    "[iperf3][udp][sender]") {
    net::iperf3_send_plan plan;
    plan.datagram_bytes = 1400;
    SECTION("unpaced, 32-bit counters: one batch of 150 datagrams") {
        plan.max_bytes = 150 * 1400 + 1399;  // not a whole datagram more: that one is not sent
        check_budget(plan, 150);
    }
    SECTION("unpaced, 64-bit counters, a datagram of only the header") {
        plan.datagram_bytes = 16;
        plan.counters_64bit = true;
        plan.max_bytes = 180 * 16;
        check_budget(plan, 180);
    }
    SECTION("paced at 400 Mbit/s: batches of what the pacer's bucket holds") {
        plan.bits_per_second = 400e6;
        plan.max_bytes = 170 * 1400 + 700;
        check_budget(plan, 170);
    }
    SECTION("a budget below one datagram sends nothing") {
        plan.max_bytes = 1399;
        check_budget(plan, 0);
    }
}

TEST_CASE("the iperf3 UDP sender hands the kernel GSO batches: a receiver with GRO reads them whole",
          "[iperf3][udp][sender]") {
    // Linux has had UDP GSO since 4.18 and UDP GRO since 5.0; on loopback a GSO batch reaches a socket with
    // GRO as one message. One send per datagram (the sender before batches) arrives as 100 messages.
    loopback_pair pair;
    const int on = 1;
    REQUIRE(::setsockopt(pair.receiver.native_handle(), SOL_UDP, UDP_GRO, &on, sizeof on) == 0);
    net::iperf3_send_plan plan;
    plan.length_ns = kLongEnoughNs;
    plan.datagram_bytes = 1400;
    plan.max_bytes = 100 * 1400;
    const auto sent = pair.send(plan);
    CHECK(sent.packets == 100);
    const auto got = drain(pair.receiver);
    // 46 datagrams of 1400 bytes fit in one 64 KiB GSO packet: 100 are three messages.
    REQUIRE(got.size() == 3);
    std::uint64_t next = 1;
    for (const auto& message : got) {
        REQUIRE(message.gro_segment == 1400);
        REQUIRE(message.bytes.size() % 1400 == 0);
        for (std::size_t offset = 0; offset < message.bytes.size(); offset += 1400) {
            const auto header = iperf3::read_udp_header(
                std::span<const std::uint8_t>(message.bytes).subspan(offset, 1400), false);
            REQUIRE(header);
            CHECK(header->count == next++);
        }
    }
    CHECK(next == 101);
}

TEST_CASE("a UDP batch sender holds at most 256 KiB of datagrams, whatever size the peer asked for",
          "[udp][sender]") {
    // Its datagrams lie in one buffer (a GSO message is one contiguous copy for the kernel), so the number
    // per call is bounded by bytes: a client asking for 64 KB datagrams on 32 streams must not make the
    // server hold 32 MiB.
    struct expected {
        std::uint32_t datagram_bytes;
        bool try_gso;
        std::size_t capacity;
    };
    for (const auto& e : {expected{1400, true, 4 * 46}, expected{1400, false, 16}, expected{16, true, 4 * 64},
                          expected{30'000, true, 4 * 2}, expected{30'000, false, 8},
                          expected{65'507, true, 4}, expected{65'507, false, 4}}) {
        INFO(e.datagram_bytes << " bytes, GSO " << e.try_gso);
        const net::batch_sender sender(e.datagram_bytes, 12, e.try_gso);
        CHECK(sender.capacity() == e.capacity);
        CHECK(sender.capacity() * sender.datagram_bytes() <= net::batch_sender::kMaxBatchBytes);
    }
}
