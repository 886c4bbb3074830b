// net::stream_group on loopback sockets: what its receiving streams count against known bytes.
#include <catch2/catch.hpp>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "common/receive_mark.hpp"
#include "net/io_pool.hpp"
#include "net/stream_group.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::uint64_t received(const speed::net::stream_group& group) {
    std::vector<std::uint64_t> counters;
    group.read_counters(counters);
    return counters.at(0);
}

// Waits until the count stops changing for `quiet`, or reaches `target`; returns the count.
std::uint64_t settled(const speed::net::stream_group& group, std::uint64_t target,
                      std::chrono::milliseconds quiet, std::chrono::seconds limit) {
    const auto give_up = steady::now() + limit;
    std::uint64_t last = received(group);
    auto changed = steady::now();
    while (steady::now() < give_up && last != target && steady::now() - changed < quiet) {
        std::this_thread::sleep_for(5ms);
        if (const auto now = received(group); now != last) {
            last = now;
            changed = steady::now();
        }
    }
    return last;
}

}  // namespace

TEST_CASE(
    "A fast stream's receive mark holds back the last bytes until it is released, then every byte counts",
    "[stream_group][receive_mark]") {
    asio::io_context control(1);
    speed::net::io_pool data(1);
    data.start("test-data");
    asio::ip::tcp::acceptor acceptor(control, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket sender(control);
    sender.connect(acceptor.local_endpoint());
    speed::net::stream_group group(control.get_executor(), 1);
    REQUIRE(group.attach(0, acceptor.accept(), data.next()));
    group.start_receiving();

    // Unpaced 1 MiB writes for 300 ms: loopback carries gigabytes per second, far above the 1.3 Gbit/s from
    // which a stream gets a mark. Then one byte more stays below the mark (unless the rest of the bulk sat
    // exactly one byte short of it). A writer stalled for most of the last 10 ms window (a loaded machine)
    // leaves the stream without a mark, so that takes up to three tries.
    const std::vector<char> block(1 << 20);
    const char last = 'x';
    std::uint64_t sent = 0;
    bool held_back = false;
    for (int attempt = 0; attempt < 3 && !held_back; ++attempt) {
        for (const auto until = steady::now() + 300ms; steady::now() < until;) {
            sent += asio::write(sender, asio::buffer(block));
        }
        const std::uint64_t after_bulk = settled(group, sent, 200ms, 10s);
        INFO(sent << " bytes sent, " << after_bulk << " counted; largest mark "
                  << group.largest_receive_mark());
        REQUIRE(group.largest_receive_mark() >= speed::receive_mark::kStep);
        sent += asio::write(sender, asio::buffer(&last, 1));
        std::this_thread::sleep_for(300ms);
        held_back = received(group) < sent;
    }
    CHECK(held_back);

    group.release_receive_marks();
    CHECK(settled(group, sent, 5s, 5s) == sent);
    group.stop_all();
}
