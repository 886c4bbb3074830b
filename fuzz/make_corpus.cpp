// Writes the seed corpus of the fuzzers (fuzz/corpus/<fuzzer>/) from real encoded messages, so the seeds
// follow the protocol when it changes: `cmake --build build/release --target fuzz_make_corpus` then
// `build/release/fuzz/fuzz_make_corpus fuzz/corpus`.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/auth.hpp"
#include "common/limits.hpp"
#include "common/protocol.hpp"
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
            {"report-auth", proto::report_auth{}}};
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
    auth_seeds(root / "auth");
    return 0;
}
