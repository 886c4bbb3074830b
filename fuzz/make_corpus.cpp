// Writes the seed corpus of the fuzzers (fuzz/corpus/<fuzzer>/) from real encoded messages, so the seeds
// follow the protocol when it changes: `cmake --build build/release --target fuzz_make_corpus` then
// `build/release/fuzz/fuzz_make_corpus fuzz/corpus`.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/auth.hpp"
#include "common/limits.hpp"
#include "common/protocol.hpp"
#include "common/udp_messages.hpp"
#include "common/udp_wire.hpp"
#include "common/wire.hpp"

using namespace speed;
using bytes = std::vector<std::uint8_t>;

namespace {

void write(const std::filesystem::path& directory, const std::string& name, const bytes& content) {
    std::filesystem::create_directories(directory);
    std::ofstream(directory / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
}

proto::test_request request(proto::direction dir, std::uint16_t streams) {
    proto::test_request r;
    r.dir = dir;
    r.streams = streams;
    r.duration_ms = 2000;
    r.omit_ms = 500;
    r.interval_ms = 1000;
    return r;
}

std::vector<std::pair<std::string, proto::message>> every_message() {
    proto::hello data_hello;
    data_hello.kind = proto::connection_kind::data;
    data_hello.test_id = 7;
    data_hello.stream_index = 3;
    data_hello.software = "speedcli 0.1.0";
    proto::welcome welcome;
    welcome.software = "speedsrv 0.1.0";
    welcome.max_streams = 32;
    welcome.max_duration_ms = 60000;
    welcome.max_bytes = 1 << 30;
    welcome.auth_required = true;
    proto::interval_report interval;
    interval.end_ns = 1'000'000'000;
    interval.stream_bytes = {1, 2, 3};
    proto::sender_report sender;
    sender.streams.resize(2);
    sender.streams[0].has_tcp_info = true;
    sender.rtt_samples_us = {100, 200, 300};
    proto::receiver_report receiver;
    receiver.window_ns = 10;
    receiver.stream_bytes = {42};
    proto::auth_response response;
    response.key_name = "lab";
    return {{"hello", proto::hello{}},
            {"hello-data", data_hello},
            {"welcome", welcome},
            {"error", proto::error{proto::error_code::server_busy, "busy"}},
            {"test-request", request(proto::direction::upload, 4)},
            {"test-accept", proto::test_accept{1, "cubic"}},
            {"streams-ready", proto::streams_ready{}},
            {"stop", proto::stop{}},
            {"interval-report", interval},
            {"sender-report", sender},
            {"receiver-report", receiver},
            {"ping", proto::ping{1, 2}},
            {"pong", proto::pong{1, 2}},
            {"auth-challenge", proto::auth_challenge{}},
            {"auth-response", response},
            {"auth-ok", proto::auth_ok{}},
            {"test-auth", proto::test_auth{}},
            {"report-auth", proto::report_auth{}},
            {"self-probe-mark", proto::self_probe_mark{1, 2, 3}},
            {"self-probe-samples", proto::self_probe_samples{3, 1, {{100'000, 1'500}, {200'000, 2'500}}}}};
}

void frame_decoder_seeds(const std::filesystem::path& directory) {
    bytes all;
    for (const auto& [name, msg] : every_message()) {
        const auto frame = proto::encode(msg);
        write(directory, name, frame);
        all.insert(all.end(), frame.begin(), frame.end());
    }
    write(directory, "all-back-to-back", all);
    write(directory, "oversized", bytes{0x10, 0xff, 0xff, 0xff, 0xff});
    write(directory, "other-version-hello",
          bytes{0x01, 0, 0, 0, 10, 0x53, 0x50, 0x44, 0x54, 0x00, 0x63, 1, 2, 3, 4});
}

bytes limits_input(const server_limits& limits, std::uint64_t elapsed_ns, std::uint64_t moved,
                   const proto::test_request& r) {
    bytes out;
    wire::writer w(out);
    w.u16(limits.max_streams);
    w.u32(limits.max_duration_ms);
    w.u32(limits.max_omit_ms);
    w.u32(limits.min_interval_ms);
    w.u64(limits.max_bitrate);
    w.u64(limits.max_bytes);
    w.u32(limits.max_tests_per_session);
    w.u64(elapsed_ns);
    w.u64(moved);
    const auto frame = proto::encode(r);
    out.insert(out.end(), frame.begin() + proto::kFrameHeaderSize, frame.end());
    return out;
}

void limits_seeds(const std::filesystem::path& directory) {
    server_limits defaults;
    write(directory, "defaults",
          limits_input(defaults, 1'000'000'000, 1'000'000, request(proto::direction::download, 1)));
    server_limits capped;
    capped.max_bitrate = 100'000'000;
    capped.max_bytes = 50'000'000;
    auto fast = request(proto::direction::upload, 8);
    fast.bitrate = 90'000'000;
    write(directory, "capped", limits_input(capped, 2'000'000'000, 30'000'000, fast));
    auto udp = request(proto::direction::download, 1);
    udp.proto = proto::transport::udp;
    udp.udp_payload_bytes = 1200;
    write(directory, "udp", limits_input(defaults, 0, 0, udp));
}

bytes session_input(std::uint8_t mode, const std::vector<proto::message>& frames) {
    bytes out{mode};
    for (const auto& msg : frames) {
        const auto frame = proto::encode(msg);
        out.insert(out.end(), frame.begin(), frame.end());
    }
    return out;
}

void session_seeds(const std::filesystem::path& directory) {
    const auto download = request(proto::direction::download, 2);
    const auto upload = request(proto::direction::upload, 2);
    proto::sender_report report;
    report.streams.resize(2);
    // Mode 0: no authentication. A whole speedcli session.
    write(directory, "download-upload", session_input(0, {download, proto::stop{}, upload, report}));
    // Mode 3: authentication, the harness answers as a key holder.
    write(directory, "authenticated", session_input(3, {download, proto::stop{}, upload, report}));
    // Mode 1: authentication with whatever the input says (a wrong key).
    proto::auth_response wrong;
    wrong.key_name = "lab";
    write(directory, "wrong-key", session_input(1, {wrong, download}));
    // Mode 12: small caps.
    write(directory, "caps", session_input(12, {download, proto::stop{}, download, proto::stop{}, download}));
    // A client that sends the server's own SELF_PROBE_MARK while the server sends: a protocol error.
    write(directory, "client-self-probe-mark", session_input(0, {download, proto::self_probe_mark{1, 0, 0}}));
    // An upload whose client answers self probes: marks while the window is open, one after it (before the
    // SENDER_REPORT), then marks that name a stream the test does not have.
    write(directory, "upload-self-probe-marks",
          session_input(0, {upload, proto::self_probe_mark{0, 0, 10}, proto::self_probe_mark{1, 0, 20},
                            report, upload, proto::self_probe_mark{2, 0, 0}}));
    // Mode 32: the window closes at once, so the marks come late, before the SENDER_REPORT.
    write(directory, "upload-late-self-probe-marks",
          session_input(
              32, {upload, proto::self_probe_mark{0, 0, 10}, proto::self_probe_mark{1, 0, 20}, report}));
    write(directory, "peer-error", session_input(0, {proto::error{proto::error_code::internal, "gave up"}}));
    // A speedcli --udp session: the UDP echo for idle latency, then a UDP download and a UDP upload.
    auto udp_download = download;
    udp_download.proto = proto::transport::udp;
    udp_download.udp_payload_bytes = 1472;
    auto udp_upload = udp_download;
    udp_upload.dir = proto::direction::upload;
    proto::udp_sender_report udp_report;
    udp_report.streams.resize(2);
    write(directory, "udp",
          session_input(0, {proto::udp_echo_request{}, udp_download, proto::stop{}, udp_upload, udp_report}));
    // Mode 16: a server without UDP.
    write(directory, "no-udp", session_input(16, {proto::udp_echo_request{}}));
}

template <typename Message>
bytes udp_message_input(std::uint8_t selector, const Message& m) {
    bytes out{selector};
    wire::writer w(out);
    proto::encode_payload(w, m);
    return out;
}

void udp_datagram_seeds(const std::filesystem::path& directory) {
    bytes data(1 + 1472);
    data[0] = 0;
    udp::write_header(std::span<std::uint8_t>(data).subspan(1),
                      {udp::datagram_type::data, 3, 0x1122334455667788, 42, 1'000'000});
    write(directory, "data", data);
    bytes last_sequence(1 + udp::kHeaderSize);
    udp::write_header(std::span<std::uint8_t>(last_sequence).subspan(1),
                      {udp::datagram_type::data, 0, 7, std::numeric_limits<std::uint64_t>::max(),
                       std::numeric_limits<std::uint64_t>::max()});
    write(directory, "data-last-sequence", last_sequence);
    bytes feedback(1 + udp::kFeedbackSize);
    udp::feedback body{100, 120, 147200, 2, 300, 999, 50};
    udp::write_feedback(std::span<std::uint8_t>(feedback).subspan(1),
                        {udp::datagram_type::feedback, 1, 7, 5, 2'000'000}, body);
    write(directory, "feedback", feedback);
    write(directory, "short-feedback", bytes(feedback.begin(), feedback.end() - 1));
    write(directory, "udp-setup", udp_message_input(1, proto::udp_setup{7, 5201, 1'000'000'000}));
    write(directory, "udp-echo-request", udp_message_input(2, proto::udp_echo_request{}));
    proto::udp_sender_report sent;
    sent.streams = {{10, 14720}, {11, 16192}};
    write(directory, "udp-sender-report", udp_message_input(3, sent));
    proto::udp_receiver_report received;
    received.window_ns = 1'000'000'000;
    received.streams.resize(2);
    received.streams[1].lost_packets = 3;
    write(directory, "udp-receiver-report", udp_message_input(4, received));
    proto::udp_interval_report interval;
    interval.end_ns = 1'000'000'000;
    interval.streams.resize(3);
    write(directory, "udp-interval-report", udp_message_input(5, interval));
}

struct data_record {
    std::uint64_t sequence = 0;
    std::uint16_t length = 1000;
    std::int64_t sent_ns = 0;
    std::int64_t arrival_ns = 1000;
    std::uint8_t mode = 0;
};

bytes accounting_input(std::uint16_t window_words, std::uint16_t datagram_bytes, bool wait_for_ready,
                       std::uint8_t ready_before, std::uint32_t rate_kbps,
                       const std::vector<data_record>& records) {
    bytes out;
    wire::writer w(out);
    w.u16(window_words);
    w.u16(datagram_bytes);
    w.u8(wait_for_ready ? 1 : 0);
    w.u8(ready_before);
    w.u32(rate_kbps);
    for (const auto& r : records) {
        w.u8(r.mode);
        w.u64(r.sequence);
        w.u16(r.length);
        w.u64(static_cast<std::uint64_t>(r.sent_ns));
        w.u64(static_cast<std::uint64_t>(r.arrival_ns));
    }
    return out;
}

void udp_accounting_seeds(const std::filesystem::path& directory) {
    constexpr std::uint64_t kLast = std::numeric_limits<std::uint64_t>::max();
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
    std::vector<data_record> in_order;
    for (std::uint64_t s = 0; s < 10; ++s) {
        in_order.push_back(
            {s, 1000, static_cast<std::int64_t>(s) * 1000, static_cast<std::int64_t>(s) * 1000 + 500});
    }
    write(directory, "in-order", accounting_input(1, 1000, true, 0, 8000, in_order));
    // Issue 10: the first DATA of a stream with sequence 2^64-1 wedged the thread for good.
    write(directory, "last-sequence-first", accounting_input(16384, 0, false, 255, 0, {{kLast}, {0}, {1}}));
    // 0 first, then 2^64-1: expected wrapped to 0 and the next datagram wedged the thread.
    write(directory, "zero-then-last-sequence",
          accounting_input(16384, 0, false, 255, 0, {{0}, {kLast}, {kLast}, {1}}));
    write(directory, "largest-usable-sequences",
          accounting_input(1, 0, false, 255, 0,
                           {{std::uint64_t{1} << 63}, {kLast - 1}, {kLast - 70}, {kLast - 2}}));
    write(directory, "reorder-duplicates",
          accounting_input(1, 1000, false, 0, 8000, {{0}, {1}, {3}, {2}, {2}, {5}, {4}, {100}, {70}, {37}}));
    write(directory, "before-ready-wrong-length-implausible",
          accounting_input(1, 1000, true, 2, 8000,
                           {{0},
                            {1, 999},
                            {0},
                            {65},
                            {64},
                            {2065, 1000, 0, 1'000'001'000},
                            {2064, 1000, 0, 1'000'001'000}}));
    write(
        directory, "extreme-timestamps",
        accounting_input(1, 0, false, 0, 1,
                         {{0, 100, kMin, 0}, {1, 100, kMax, 0}, {2, 100, kMax, kMin}, {3, 100, kMin, kMax}}));
    // Relative mode: each sequence is the previous one plus a signed byte.
    write(directory, "relative-steps",
          accounting_input(1, 0, false, 0, 0,
                           {{0}, {1, 1000, 0, 1000, 1}, {0xff, 1000, 0, 1000, 1}, {0x7f, 1000, 0, 1000, 1}}));
}

struct rate_event {
    std::uint8_t kind = 0;  // even: FEEDBACK, odd: silence
    udp::feedback body;
    std::int64_t receiver_ns = 0;
    std::int64_t now_ns = 0;
};

bytes rate_control_input(std::uint32_t cap_kbps, const std::vector<rate_event>& events) {
    bytes out;
    wire::writer w(out);
    w.u32(cap_kbps);
    for (const auto& e : events) {
        w.u8(e.kind);
        bytes datagram(udp::kFeedbackSize);
        udp::write_feedback(datagram, {udp::datagram_type::feedback, 0, 0, 0, 0}, e.body);
        w.bytes(std::span<const std::uint8_t>(datagram).subspan(udp::kHeaderSize));
        w.u64(static_cast<std::uint64_t>(e.receiver_ns));
        w.u64(static_cast<std::uint64_t>(e.now_ns));
    }
    return out;
}

void udp_rate_control_seeds(const std::filesystem::path& directory) {
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
    std::vector<rate_event> startup;
    udp::feedback fb;
    for (std::int64_t i = 1; i <= 20; ++i) {
        const std::int64_t now = i * 10'000'000;
        fb.packets_received += 100;
        fb.expected += 100;
        fb.bytes_received += 147200;
        fb.echo_timestamp_ns = static_cast<std::uint64_t>(now - 1'000'000);
        if (i == 15) {
            ++fb.socket_drops;
        }
        startup.push_back({0, fb, now, now});
    }
    startup.push_back({1, fb, 200'000'000, 400'000'000});
    write(directory, "startup-congestion-silence", rate_control_input(0, startup));
    write(directory, "capped", rate_control_input(50'000, startup));
    udp::feedback hostile{std::numeric_limits<std::uint64_t>::max(),
                          0,
                          std::numeric_limits<std::uint64_t>::max(),
                          0xffffffff,
                          0xffffffff,
                          std::numeric_limits<std::uint64_t>::max(),
                          0xffffffff};
    write(directory, "extreme-timestamps",
          rate_control_input(
              0, {{0, {}, kMin, kMax}, {0, hostile, kMax, kMax}, {1, {}, kMin, kMax}, {0, fb, kMin, kMin}}));
}

// fuzz_udp_handshake's events (see the harness for the layout).
struct handshake_events {
    bytes out;

    handshake_events(std::uint8_t config, std::uint64_t cookie_seed) {
        wire::writer w(out);
        w.u8(config);
        w.u64(cookie_seed);
    }
    static std::uint8_t op(std::uint8_t kind, std::uint8_t endpoint, bool lose = false) {
        return static_cast<std::uint8_t>(kind | endpoint << 3 | (lose ? 0x20 : 0));
    }
    handshake_events& raw(std::uint8_t endpoint, const bytes& datagram, bool live_token = false) {
        wire::writer w(out);
        w.u8(static_cast<std::uint8_t>(op(0, endpoint) | (live_token ? 0x40 : 0)));
        w.u16(static_cast<std::uint16_t>(datagram.size()));
        w.bytes(datagram);
        return *this;
    }
    // token: 0, 1 live, 2 unknown; type: 0 HELLO, 1 DATA, 2 HELLO_ACK, ..., 7 invalid; cookie: 0 none, 1 the
    // cookie of stream `value`, 2 `value`, 3 the client's echo.
    handshake_events& crafted(std::uint8_t endpoint, std::uint8_t token, std::uint8_t type,
                              std::uint8_t cookie, std::uint8_t stream, std::uint16_t length,
                              std::uint64_t value, std::uint8_t repeat = 1) {
        wire::writer w(out);
        w.u8(op(1, endpoint));
        w.u8(static_cast<std::uint8_t>(token | type << 2 | cookie << 5));
        w.u8(stream);
        w.u16(length);
        w.u64(value);
        w.u8(static_cast<std::uint8_t>(repeat - 1));
        return *this;
    }
    handshake_events& client_hello(bool lose = false) {
        out.push_back(op(2, 0, lose));
        return *this;
    }
    handshake_events& ack_to_client(std::uint64_t cookie) {
        wire::writer w(out);
        w.u8(op(3, 0));
        w.u64(cookie);
        return *this;
    }
    handshake_events& data_to_client() {
        out.push_back(op(4, 0));
        return *this;
    }
};

void udp_handshake_seeds(const std::filesystem::path& directory) {
    constexpr std::uint64_t kSeed = 0x5eed5eed5eed5eed;
    constexpr std::uint16_t kHello = udp::kHandshakeSize;
    write(directory, "honest-handshake", handshake_events(0, kSeed).client_hello().client_hello().out);
    // The client echoes the stream's cookie before the stream exists: the HELLO that creates the stream
    // validates nothing (its cookie is drawn after it), the next one does.
    write(directory, "cookie-known-before-the-stream",
          handshake_events(0, kSeed).ack_to_client(kSeed).client_hello().client_hello().out);
    write(directory, "lost-confirmation-then-data",
          handshake_events(0, kSeed).client_hello().client_hello(true).data_to_client().out);
    // Four streams; HELLOs for stream 9 (out of range) from the control host's other port, 9 x 64 of them:
    // the last 64 are beyond the token's budget.
    handshake_events excess(6, kSeed);
    for (int i = 0; i < 9; ++i) {
        excess.crafted(1, 0, 0, 0, 9, kHello, 0, 64);
    }
    write(directory, "excess-hellos", excess.out);
    // Token 1's control connection is from the other host, which validates its own path; token 0 from the
    // other host is refused; token 0's cookie echoed from another port of its host validates nothing.
    write(directory, "wrong-address-and-other-port",
          handshake_events(1, kSeed)
              .client_hello()
              .crafted(2, 0, 0, 0, 0, kHello, 0)
              .crafted(2, 1, 0, 0, 0, kHello, 0)
              .crafted(2, 1, 0, 1, 0, kHello, 4)
              .crafted(1, 0, 0, 1, 0, kHello, 0)
              .client_hello()
              .out);
    write(directory, "malformed",
          handshake_events(0, kSeed)
              .raw(0, bytes(5, 0xff))
              .raw(0, bytes(kHello, 0x02), true)
              .crafted(0, 0, 0, 0, 0, kHello - 1, 0)
              .crafted(0, 0, 0, 0, 0, udp::kHeaderSize - 1, 0)
              .crafted(0, 0, 1, 0, 0, 1472, 0)
              .crafted(0, 0, 7, 0, 0, kHello, 0)
              .crafted(0, 2, 0, 0, 0, kHello, 0)
              .out);
    // Junk at a stream's own socket before the echo: each byte of it is credit for one more answer.
    write(directory, "credit-from-junk-at-the-stream",
          handshake_events(0, kSeed)
              .crafted(0, 0, 0, 0, 0, kHello, 0)
              .crafted(0, 0, 1, 0, 0, 1472, 0, 3)
              .crafted(0, 0, 0, 2, 0, kHello, 12345, 64)
              .ack_to_client(0)
              .out);
}

}  // namespace

void auth_seeds(const std::filesystem::path& directory) {
    proto::auth_challenge challenge;
    challenge.nonce.fill(0x31);
    proto::welcome required;
    required.max_streams = 4;
    required.auth_required = true;
    proto::welcome not_required = required;
    not_required.auth_required = false;
    proto::receiver_report receiver;
    receiver.window_ns = 10;
    receiver.stream_bytes = {42};
    proto::interval_report interval;
    interval.stream_bytes = {1, 2};
    proto::auth_response unknown;
    unknown.key_name = "mallory";
    proto::auth_response wrong;
    wrong.key_name = "lab";
    // The server's side (mode bit 0 clear).
    write(directory, "server-honest", session_input(2, {challenge, unknown}));
    write(directory, "server-unknown-name", session_input(0, {unknown}));
    write(directory, "server-wrong-key", session_input(0, {wrong}));
    write(directory, "server-not-a-response", session_input(0, {proto::stop{}}));
    // The client's side (mode bit 0 set; bit 1 a key, bit 2 an honest AUTH_OK, bit 3 honest report tags).
    write(directory, "client-no-key", session_input(1, {required}));
    write(directory, "client-downgrade", session_input(3, {not_required}));
    write(directory, "client-forged-ok", session_input(3, {required, challenge, proto::auth_ok{}}));
    write(directory, "client-reports", session_input(15, {required, challenge, interval, receiver}));
    write(directory, "client-wrong-report-tag",
          session_input(7, {required, challenge, receiver, proto::report_auth{}}));
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS-DIRECTORY\n", argv[0]);
        return 2;
    }
    const std::filesystem::path root(argv[1]);
    frame_decoder_seeds(root / "frame_decoder");
    limits_seeds(root / "limits");
    session_seeds(root / "session");
    udp_datagram_seeds(root / "udp_datagram");
    udp_accounting_seeds(root / "udp_accounting");
    udp_rate_control_seeds(root / "udp_rate_control");
    auth_seeds(root / "auth");
    udp_handshake_seeds(root / "udp_handshake");
    return 0;
}
