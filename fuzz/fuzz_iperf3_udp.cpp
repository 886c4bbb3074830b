// libFuzzer harness: iperf3's UDP data path (common/iperf3_udp.hpp) and the listener's verdict on iperf3's
// connect datagram (common/udp_handshake.hpp), with a peer that picks every byte: the sequence numbers
// (2^32-1, 2^64-1 included), the sender's clock, the lengths, the arrival times, and when the warm-up ends.
//
// Input: flags (u8: bit 0 = --udp-counters-64bit), the index of the datagram before which the warm-up ends
// (u8), then records: length (u16 % 2049), arrival step (u32, microseconds), that many bytes.
// Invariants: every datagram is counted once (datagrams); packets is the highest sequence number seen, never
// going back; lost never exceeds packets nor wraps; out-of-order never goes back and never exceeds the
// datagrams counted; bytes are the datagrams' lengths since the warm-up; the warm-up's figures are those at
// its end; jitter is finite and not negative; a header written back gives the datagram's first bytes; a
// datagram is an iperf3 connect only when it is exactly one of the two greetings, and then never a HELLO.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/iperf3_protocol.hpp"
#include "common/iperf3_udp.hpp"
#include "common/udp_handshake.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    wire::reader in(std::span<const std::uint8_t>(data, size));
    const bool wide = (in.u8() & 1) != 0;
    const std::uint8_t warm_up_before = in.u8();
    if (!in.ok()) {
        return 0;
    }
    iperf3::udp_receiver receiver;
    std::int64_t arrival_ns = 0;
    std::uint64_t datagrams = 0;
    std::uint64_t bytes_since_warm_up = 0;
    std::uint64_t highest = 0;
    std::optional<iperf3::udp_receiver_figures> at_warm_up;
    iperf3::udp_receiver_figures previous;
    for (std::size_t index = 0;; ++index) {
        const std::size_t length = in.u16() % 2049U;
        const std::uint32_t step_us = in.u32();
        std::vector<std::uint8_t> bytes(length);
        in.bytes(bytes);
        if (!in.ok()) {
            break;
        }
        if (index == warm_up_before) {
            receiver.end_warm_up();
            at_warm_up = receiver.figures();
            bytes_since_warm_up = 0;
            previous = receiver.figures();
        }
        arrival_ns += std::int64_t{step_us} * 1000;

        // The connect's verdict: only the exact 4 bytes, and never also a HELLO.
        const auto connect = iperf3::classify_udp_connect(bytes);
        const bool is_current =
            bytes.size() == 4 && std::equal(bytes.begin(), bytes.end(), iperf3::kUdpConnectMessage.begin());
        const bool is_legacy = bytes.size() == 4 && std::equal(bytes.begin(), bytes.end(),
                                                               iperf3::kLegacyUdpConnectMessage.begin());
        FUZZ_CHECK((connect == iperf3::udp_connect::current) == is_current);
        FUZZ_CHECK((connect == iperf3::udp_connect::legacy) == is_legacy);
        const auto verdict = udp::judge_listener_datagram(
            bytes,
            [](std::uint64_t) {
                return std::optional<udp::hello_owner>(udp::hello_owner{true, 0});
            },
            [] {
                return std::optional<udp::iperf3_connect_owner>(udp::iperf3_connect_owner{1, 0});
            });
        FUZZ_CHECK(verdict.iperf3_connect == connect);
        FUZZ_CHECK(!(verdict.hello && connect != iperf3::udp_connect::none));
        FUZZ_CHECK(
            (connect != iperf3::udp_connect::none) ==
            (verdict.iperf3_connect != iperf3::udp_connect::none && verdict.drop == udp::hello_drop::none));

        const auto header = iperf3::read_udp_header(bytes, wide);
        FUZZ_CHECK(header.has_value() == (bytes.size() >= iperf3::udp_header_size(wide)));
        if (header) {
            std::vector<std::uint8_t> written(iperf3::udp_header_size(wide));
            FUZZ_CHECK(iperf3::write_udp_header(written, *header, wide));
            FUZZ_CHECK(std::equal(written.begin(), written.end(), bytes.begin()));
            highest = std::max(highest, header->count);
        }
        receiver.on_datagram(bytes.size(), header, arrival_ns);
        ++datagrams;
        bytes_since_warm_up += bytes.size();

        const auto& now = receiver.figures();
        FUZZ_CHECK(now.datagrams == datagrams);
        FUZZ_CHECK(now.bytes == bytes_since_warm_up);
        FUZZ_CHECK(now.packets == highest);
        FUZZ_CHECK(now.packets >= previous.packets);
        FUZZ_CHECK(now.errors <= now.packets);
        FUZZ_CHECK(now.out_of_order >= previous.out_of_order);
        FUZZ_CHECK(now.out_of_order <= now.datagrams);
        FUZZ_CHECK(std::isfinite(now.jitter_seconds) && now.jitter_seconds >= 0.0);
        if (at_warm_up) {
            FUZZ_CHECK(now.omitted_packets == at_warm_up->omitted_packets);
            FUZZ_CHECK(now.omitted_errors == at_warm_up->omitted_errors);
            FUZZ_CHECK(now.omitted_packets <= now.packets);
            FUZZ_CHECK(now.omitted_out_of_order <= now.out_of_order);
        }
        previous = now;
    }
    return 0;
}
