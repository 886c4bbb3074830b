#include "common/iperf3_udp.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/iperf3_protocol.hpp"

namespace speed::iperf3 {

namespace {

constexpr std::uint64_t kMost = std::numeric_limits<std::uint64_t>::max();

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
    return b > kMost - a ? kMost : a + b;
}

void put_u32(std::uint8_t* out, std::uint32_t v) {
    out[0] = static_cast<std::uint8_t>(v >> 24);
    out[1] = static_cast<std::uint8_t>(v >> 16);
    out[2] = static_cast<std::uint8_t>(v >> 8);
    out[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_u32(const std::uint8_t* in) {
    return (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) |
           std::uint32_t{in[3]};
}

}  // namespace

udp_connect classify_udp_connect(std::span<const std::uint8_t> datagram) {
    if (std::ranges::equal(datagram, kUdpConnectMessage)) {
        return udp_connect::current;
    }
    if (std::ranges::equal(datagram, kLegacyUdpConnectMessage)) {
        return udp_connect::legacy;
    }
    return udp_connect::none;
}

std::array<std::uint8_t, 4> udp_connect_reply(udp_connect greeting) {
    return greeting == udp_connect::legacy ? kLegacyUdpConnectReply : kUdpConnectReply;
}

std::size_t udp_header_size(bool counters_64bit) {
    return counters_64bit ? kUdpHeaderSize64 : kUdpHeaderSize;
}

bool write_udp_header(std::span<std::uint8_t> out, const udp_header& h, bool counters_64bit) {
    if (out.size() < udp_header_size(counters_64bit)) {
        return false;
    }
    put_u32(out.data(), h.seconds);
    put_u32(out.data() + 4, h.microseconds);
    if (counters_64bit) {
        put_u32(out.data() + 8, static_cast<std::uint32_t>(h.count >> 32));
        put_u32(out.data() + 12, static_cast<std::uint32_t>(h.count));
    } else {
        put_u32(out.data() + 8, static_cast<std::uint32_t>(h.count));
    }
    return true;
}

std::optional<udp_header> read_udp_header(std::span<const std::uint8_t> datagram, bool counters_64bit) {
    if (datagram.size() < udp_header_size(counters_64bit)) {
        return std::nullopt;
    }
    udp_header h;
    h.seconds = get_u32(datagram.data());
    h.microseconds = get_u32(datagram.data() + 4);
    h.count = counters_64bit
                  ? (std::uint64_t{get_u32(datagram.data() + 8)} << 32) | get_u32(datagram.data() + 12)
                  : get_u32(datagram.data() + 8);
    return h;
}

udp_header udp_header_at(std::int64_t clock_ns, std::uint64_t count) {
    const std::int64_t ns = std::max<std::int64_t>(0, clock_ns);
    udp_header h;
    h.seconds = static_cast<std::uint32_t>(ns / 1'000'000'000);
    h.microseconds = static_cast<std::uint32_t>((ns % 1'000'000'000) / 1000);
    h.count = count;
    return h;
}

double udp_transit_seconds(const udp_header& h, std::int64_t arrival_ns) {
    // Both fit in an int64 of microseconds: the header's at most 2^32 s and 2^32 us, the clock's as it is.
    const std::int64_t sent_us = std::int64_t{h.seconds} * 1'000'000 + std::int64_t{h.microseconds};
    const std::int64_t arrival_us = std::max<std::int64_t>(0, arrival_ns) / 1000;
    const std::int64_t difference = arrival_us >= sent_us ? arrival_us - sent_us : sent_us - arrival_us;
    // As iperf_time_in_secs: whole seconds plus microseconds / 1e6.
    return static_cast<double>(difference / 1'000'000) + static_cast<double>(difference % 1'000'000) / 1e6;
}

void udp_receiver::on_datagram(std::size_t bytes, const std::optional<udp_header>& h,
                               std::int64_t arrival_ns) {
    figures_.bytes = saturating_add(figures_.bytes, bytes);
    figures_.datagrams = saturating_add(figures_.datagrams, 1);
    if (!h) {
        return;
    }
    // iperf_udp_recv: forward (with a gap counted as lost), or back (out of order, which fills a gap).
    if (figures_.packets != kMost && h->count >= figures_.packets + 1) {
        figures_.errors = saturating_add(figures_.errors, (h->count - 1) - figures_.packets);
        figures_.packets = h->count;
    } else {
        figures_.out_of_order = saturating_add(figures_.out_of_order, 1);
        if (figures_.errors > 0) {
            --figures_.errors;
        }
    }
    const double transit = udp_transit_seconds(*h, arrival_ns);
    if (!timed_) {
        previous_transit_ = transit;
        timed_ = true;
    }
    const double d = std::fabs(transit - previous_transit_);
    previous_transit_ = transit;
    figures_.jitter_seconds += (d - figures_.jitter_seconds) / 16.0;
}

void udp_receiver::end_warm_up() {
    figures_.omitted_packets = figures_.packets;
    figures_.omitted_errors = figures_.errors;
    figures_.omitted_out_of_order = figures_.out_of_order;
    figures_.jitter_seconds = 0.0;
    figures_.omitted_bytes = figures_.bytes;
    figures_.bytes = 0;
    timed_ = false;  // iperf3's first datagram after the reset starts the jitter afresh (bytes_received == 0)
}

}  // namespace speed::iperf3
