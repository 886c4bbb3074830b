// Control-connection messages of UDP tests (types 0x30..0x3f; docs/protocol.md has the byte tables).
//
// A UDP test is set up, ended and reported over the TCP control connection; only the data, the handshake,
// the receiver's feedback and latency probes travel as UDP datagrams (common/udp_wire.hpp).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/result.hpp"

namespace speed::wire {
class writer;
class reader;
}  // namespace speed::wire

namespace speed::proto {

// Server -> client, right after TEST_ACCEPT of a UDP test or in answer to UDP_ECHO_REQUEST: the token every
// datagram must carry and the UDP port to send the handshake to.
struct udp_setup {
    std::uint64_t token = 0;
    std::uint16_t port = 0;
    std::uint64_t max_bitrate = 0;  // bits/s the server allows in this test's direction, 0 = no cap
    bool operator==(const udp_setup&) const = default;
};

// Client -> server: open a UDP echo for latency probes (answered with UDP_SETUP). It lasts until the next
// request on the control connection.
struct udp_echo_request {
    bool operator==(const udp_echo_request&) const = default;
};

struct udp_stream_sent {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    bool operator==(const udp_stream_sent&) const = default;
};

// The sender's exact counts once it has stopped, so the receiver can compute loss exactly.
struct udp_sender_report {
    std::vector<udp_stream_sent> streams;
    bool operator==(const udp_sender_report&) const = default;
};

struct udp_stream_received {
    std::uint64_t bytes = 0;  // within the measured window
    std::uint64_t packets_received = 0;
    std::uint64_t lost_packets = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t late_packets = 0;
    std::uint64_t jitter_ns = 0;
    std::uint64_t ipdv_p50_ns = 0;
    std::uint64_t ipdv_p90_ns = 0;
    std::uint64_t ipdv_p99_ns = 0;
    bool operator==(const udp_stream_received&) const = default;
};

// The receiver's final figures of an upload (the server was the receiver).
struct udp_receiver_report {
    std::uint64_t window_ns = 0;
    std::uint64_t omitted_ns = 0;
    std::uint64_t omitted_bytes = 0;
    std::uint64_t ipdv_p50_ns = 0;  // over every stream's samples
    std::uint64_t ipdv_p90_ns = 0;
    std::uint64_t ipdv_p99_ns = 0;
    std::uint64_t ipdv_pairs = 0;           // pairs of consecutive sequence numbers the percentiles used
    std::uint64_t ipdv_pairs_excluded = 0;  // pairs left out: a side's arrival stamp was a GRO message's
    std::vector<udp_stream_received> streams;
    bool operator==(const udp_receiver_report&) const = default;
};

struct udp_stream_interval {
    std::uint64_t bytes = 0;
    std::uint64_t packets = 0;       // distinct datagrams received in the interval
    std::uint64_t lost_packets = 0;  // sequence numbers skipped in the interval (an estimate: late arrivals
                                     // fill gaps of earlier intervals)
    std::uint64_t jitter_ns = 0;     // the running jitter at the end of the interval
    bool operator==(const udp_stream_interval&) const = default;
};

// One receiver interval of an upload, so the client prints live lines.
struct udp_interval_report {
    std::uint32_t index = 0;
    std::uint64_t start_ns = 0;
    std::uint64_t end_ns = 0;
    bool omitted = false;
    std::vector<udp_stream_interval> streams;
    bool operator==(const udp_interval_report&) const = default;
};

void encode_payload(wire::writer& out, const udp_setup& m);
void encode_payload(wire::writer& out, const udp_echo_request& m);
void encode_payload(wire::writer& out, const udp_sender_report& m);
void encode_payload(wire::writer& out, const udp_receiver_report& m);
void encode_payload(wire::writer& out, const udp_interval_report& m);

// Each fails with the reason when the payload is truncated or malformed.
result<udp_setup> decode_payload(wire::reader& in, std::type_identity<udp_setup>);
result<udp_echo_request> decode_payload(wire::reader& in, std::type_identity<udp_echo_request>);
result<udp_sender_report> decode_payload(wire::reader& in, std::type_identity<udp_sender_report>);
result<udp_receiver_report> decode_payload(wire::reader& in, std::type_identity<udp_receiver_report>);
result<udp_interval_report> decode_payload(wire::reader& in, std::type_identity<udp_interval_report>);

}  // namespace speed::proto
