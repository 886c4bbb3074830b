// Clients that start a test and then misbehave: one stopped with SIGSTOP mid-test (its session must be freed
// within the stall timeout, in either direction), one that sends faster than the server's cap. (A client that
// never sends STOP: test_server_caps.cpp.)
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <thread>

#include "common/self_probe.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

// Waits until the server's log contains `text`; returns when it appeared (or nothing after `limit`).
std::optional<steady_clock::time_point> wait_for_log(server_process& server, const std::string& text,
                                                     std::chrono::milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    while (steady_clock::now() < deadline) {
        if (server.log().find(text) != std::string::npos) {
            return steady_clock::now();
        }
        std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
}

// Writes payload as fast as the connection takes it until told to stop or the connection ends.
void blast(int fd, const std::atomic<bool>& stop) {
    const std::vector<std::uint8_t> buffer(1 << 20, 0x5a);
    timeval timeout{0, 200'000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    while (!stop) {
        const ssize_t n = ::send(fd, buffer.data(), buffer.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            return;
        }
    }
}

// A test set up by hand: control session, request, one data connection, STREAMS_READY read.
struct raw_test {
    raw_connection control;
    raw_connection data;
};

raw_test start_raw_test(std::uint16_t port, const std::string& host, const proto::test_request& request) {
    raw_test test{raw_connection(host, port), raw_connection(host, port)};
    const auto welcome = open_session(test.control);
    REQUIRE(test.control.send(request));
    const auto accept = test.control.read_frame();
    REQUIRE(accept.status == proto::decode_status::ok);
    REQUIRE(std::holds_alternative<proto::test_accept>(accept.msg));
    proto::hello hello;
    hello.kind = proto::connection_kind::data;
    hello.token = welcome.token;
    hello.test_id = std::get<proto::test_accept>(accept.msg).test_id;
    REQUIRE(test.data.send(hello));
    const auto ready = test.control.read_frame();
    REQUIRE(ready.status == proto::decode_status::ok);
    REQUIRE(std::holds_alternative<proto::streams_ready>(ready.msg));
    return test;
}

// Reads control frames until an ERROR arrives (skipping interval reports); its code and text.
std::optional<proto::error> next_error(raw_connection& control, std::chrono::milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    while (steady_clock::now() < deadline) {
        const auto frame = control.read_frame(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now()));
        if (frame.status != proto::decode_status::ok) {
            return std::nullopt;
        }
        if (const auto* error = std::get_if<proto::error>(&frame.msg)) {
            return *error;
        }
    }
    return std::nullopt;
}

void check_stopped_client_is_dropped(const std::string& direction_flag, const std::string& expected_log) {
    watched_server server({"--stall-timeout", "2"});
    background_process client({speedcli_path(), "127.0.0.1", "-p", std::to_string(server.port()), "-t", "30",
                               direction_flag, "--pings", "0"});
    REQUIRE(wait_for_log(server.process(), "started (speedcli", 10s));
    std::this_thread::sleep_for(1500ms);  // well into the test
    client.send_signal(SIGSTOP);
    const auto stopped_at = steady_clock::now();
    const auto ended_at = wait_for_log(server.process(), expected_log, 15s);
    REQUIRE(ended_at);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(*ended_at - stopped_at);
    WARN("session of the stopped client ended " << took.count() << " ms after SIGSTOP (stall timeout 2 s)");
    CHECK(took >= 1500ms);
    CHECK(took < 6s);
    // Its connections are gone while the client is still stopped.
    server.check_recovered();
    client.send_signal(SIGKILL);
}

}  // namespace

TEST_CASE("a client stopped mid-download frees its session within the stall timeout",
          "[robustness][concurrent]") {
    check_stopped_client_is_dropped("--no-upload", "acknowledged no data for 2.0 s");
}

TEST_CASE("a client stopped mid-upload frees its session within the stall timeout",
          "[robustness][concurrent]") {
    check_stopped_client_is_dropped("--no-download", "no test data arrived for 2.0 s");
}

TEST_CASE("an upload faster than the server's cap is ended with limit_exceeded", "[robustness][concurrent]") {
    watched_server server({"--max-bitrate", "20M"});
    proto::test_request request;
    request.dir = proto::direction::upload;
    request.duration_ms = 10'000;
    auto test = start_raw_test(server.port(), attacker_address(400), request);
    std::atomic<bool> stop{false};
    std::thread sender(blast, test.data.fd(), std::cref(stop));
    const auto error = next_error(test.control, 5s);
    stop = true;
    sender.join();
    REQUIRE(error);
    CHECK(error->code == proto::error_code::limit_exceeded);
    CHECK_THAT(error->message, Catch::Contains("faster than this server's cap of 20.00 Mbit/s"));
    test.control.close();
    test.data.close();
    server.check_recovered();
}

// Self probes (docs/protocol.md, "Self probes"): the reverse direction of a download's data connection
// carries one byte per probe. A client that floods it gets at most kMaxSelfProbes marks for the whole test,
// in order, after which the server stops reading that direction (TCP's flow control holds the rest back): the
// download and its STOP and SENDER_REPORT go on as usual, and another client's test passes meanwhile.
TEST_CASE("a client flooding self probe bytes on a download gets at most kMaxSelfProbes marks",
          "[robustness][concurrent]") {
    watched_server server({});
    proto::test_request request;
    request.dir = proto::direction::download;
    request.duration_ms = 20'000;
    auto test = start_raw_test(server.port(), attacker_address(401), request);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> downloaded{0};
    std::thread flooder(blast, test.data.fd(), std::cref(stop));
    std::thread reader([&] {
        std::vector<std::uint8_t> buffer(1 << 20);
        while (!stop) {
            const ssize_t n = ::recv(test.data.fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
            if (n > 0) {
                downloaded += static_cast<std::uint64_t>(n);
            } else if (n == 0 || errno != EAGAIN) {
                return;
            } else {
                std::this_thread::sleep_for(1ms);
            }
        }
    });
    // Marks and whatever else the server says on the control connection, until its SENDER_REPORT.
    std::uint32_t marks = 0;
    bool in_order = true;
    std::uint64_t last_offset = 0;
    std::optional<proto::sender_report> report;
    std::optional<proto::error> error;
    std::thread control_reader([&] {
        const auto deadline = steady_clock::now() + 30s;
        while (steady_clock::now() < deadline) {
            const auto frame = test.control.read_frame(5s);
            if (frame.status != proto::decode_status::ok) {
                return;
            }
            if (const auto* mark = std::get_if<proto::self_probe_mark>(&frame.msg)) {
                in_order = in_order && mark->stream_index == 0 && mark->probe == marks &&
                           mark->payload_offset >= last_offset;
                last_offset = mark->payload_offset;
                ++marks;
            } else if (const auto* sender = std::get_if<proto::sender_report>(&frame.msg)) {
                report = *sender;
                return;
            } else if (const auto* e = std::get_if<proto::error>(&frame.msg)) {
                error = *e;
                return;
            }
        }
    });
    // Another client's whole test while the flood goes on.
    CHECK(legitimate_test_passes(server.port()));
    REQUIRE(test.control.send(proto::stop{}));
    control_reader.join();
    stop = true;
    flooder.join();
    reader.join();
    INFO("error from the server: " << (error ? error->message : "none"));
    CHECK_FALSE(error);
    REQUIRE(report);
    CHECK(marks == proto::kMaxSelfProbes);
    CHECK(in_order);
    CHECK(downloaded > 0);
    test.control.close();
    test.data.close();
    server.check_recovered();
}

namespace {

proto::test_request upload_request(std::uint32_t duration_ms) {
    proto::test_request request;
    request.dir = proto::direction::upload;
    request.duration_ms = duration_ms;
    return request;
}

proto::sender_report one_stream_sender_report() {
    proto::sender_report report;
    report.streams.resize(1);
    return report;
}

// Reads control frames, skipping interval reports, until one that is not; an empty result when none came.
std::optional<proto::message> next_non_interval(raw_connection& control, std::chrono::milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    while (steady_clock::now() < deadline) {
        auto frame = control.read_frame(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now()));
        if (frame.status != proto::decode_status::ok) {
            return std::nullopt;
        }
        if (!std::holds_alternative<proto::interval_report>(frame.msg)) {
            return std::move(frame.msg);
        }
    }
    return std::nullopt;
}

std::string name_of(const std::optional<proto::message>& msg) {
    return msg ? std::string(proto::name_of(proto::type_of(*msg))) : std::string("nothing");
}

}  // namespace

// Upload self probes (docs/protocol.md, "Self probes"): the server writes probe bytes on the upload's data
// connection. A client that never answers them (one that predates them) is probed at most kMaxInFlight times
// at once, its window ends as usual (nothing waits for marks) and it gets RECEIVER_REPORT right after STOP,
// without a SELF_PROBE_SAMPLES it would not understand.
TEST_CASE("an upload client that answers no self probes gets its test as before",
          "[robustness][concurrent]") {
    watched_server server({});
    // 3 s: the 16 probes in flight are out by 1.7 s, and none is given up (4 s) before STOP.
    auto test = start_raw_test(server.port(), attacker_address(402), upload_request(3'000));
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> probe_bytes{0};
    std::thread sender(blast, test.data.fd(), std::cref(stop));
    std::thread reader([&] {
        std::array<std::uint8_t, 256> buffer{};
        while (!stop) {
            const ssize_t n = ::recv(test.data.fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
            if (n > 0) {
                probe_bytes += static_cast<std::uint64_t>(n);
            } else if (n == 0 || errno != EAGAIN) {
                return;
            } else {
                std::this_thread::sleep_for(5ms);
            }
        }
    });
    const auto stop_frame = next_non_interval(test.control, 10s);
    const auto after_stop = next_non_interval(test.control, 5s);
    stop = true;
    sender.join();
    reader.join();
    INFO("after the intervals: " << name_of(stop_frame) << ", then " << name_of(after_stop));
    REQUIRE(stop_frame);
    CHECK(std::holds_alternative<proto::stop>(*stop_frame));
    REQUIRE(after_stop);
    CHECK(std::holds_alternative<proto::receiver_report>(*after_stop));
    CHECK(probe_bytes == latency::self_probe_matcher::kMaxInFlight);
    REQUIRE(test.control.send(one_stream_sender_report()));
    test.control.close();
    test.data.close();
    server.check_recovered();
    CHECK_THAT(server.process().log(), Catch::Contains("upload 1 stream: received"));
}

// SELF_PROBE_MARKs for probes the server never sent are ignored, in the window and after it (sent before the
// client saw STOP): the test completes, with no samples from them.
TEST_CASE("an upload client's SELF_PROBE_MARKs for unknown probes are ignored", "[robustness][concurrent]") {
    watched_server server({});
    auto test = start_raw_test(server.port(), attacker_address(403), upload_request(1'000));
    std::atomic<bool> stop{false};
    std::thread sender(blast, test.data.fd(), std::cref(stop));
    for (std::uint32_t i = 0; i < 100; ++i) {
        REQUIRE(test.control.send(proto::self_probe_mark{0, 1'000'000 + i, i}));
    }
    const auto stop_frame = next_non_interval(test.control, 10s);
    stop = true;
    sender.join();
    for (std::uint32_t i = 0; i < 5; ++i) {
        REQUIRE(test.control.send(proto::self_probe_mark{0, 2'000'000 + i, 0}));
    }
    const auto samples = next_non_interval(test.control, 5s);
    const auto received = next_non_interval(test.control, 5s);
    REQUIRE(test.control.send(one_stream_sender_report()));
    INFO("after the intervals: " << name_of(stop_frame) << ", " << name_of(samples) << ", "
                                 << name_of(received));
    REQUIRE(stop_frame);
    CHECK(std::holds_alternative<proto::stop>(*stop_frame));
    REQUIRE(samples);
    REQUIRE(std::holds_alternative<proto::self_probe_samples>(*samples));
    CHECK(std::get<proto::self_probe_samples>(*samples).sent > 0);
    CHECK(std::get<proto::self_probe_samples>(*samples).samples.empty());
    REQUIRE(received);
    CHECK(std::holds_alternative<proto::receiver_report>(*received));
    // The session takes the SENDER_REPORT after the late marks and waits for the next test: a clean close.
    test.control.shutdown_sending();
    CHECK(test.control.wait_closed(5s));
    test.data.close();
    server.check_recovered();
    CHECK_THAT(server.process().log(), Catch::Contains("upload 1 stream: received"));
}

// A client flooding SELF_PROBE_MARKs: kMaxSelfProbes are taken (each costs a look-up among at most 16
// outstanding probes), one more ends its session with a protocol error, and another client's test passes
// meanwhile.
TEST_CASE("an upload client flooding SELF_PROBE_MARKs is ended after kMaxSelfProbes",
          "[robustness][concurrent]") {
    watched_server server({});
    auto test = start_raw_test(server.port(), attacker_address(404), upload_request(20'000));
    std::atomic<bool> stop{false};
    std::thread sender(blast, test.data.fd(), std::cref(stop));
    std::vector<std::uint8_t> flood;
    for (std::uint32_t i = 0; i < proto::kMaxSelfProbes; ++i) {
        const auto frame = proto::encode(proto::self_probe_mark{0, i, std::uint64_t{i} * 1'000});
        flood.insert(flood.end(), frame.begin(), frame.end());
    }
    REQUIRE(test.control.send(flood));
    CHECK(legitimate_test_passes(server.port()));
    REQUIRE(test.control.send(proto::self_probe_mark{0, 0, 0}));
    const auto error = next_error(test.control, 5s);
    stop = true;
    sender.join();
    REQUIRE(error);
    CHECK(error->code == proto::error_code::protocol_error);
    CHECK_THAT(error->message, Catch::Contains("more than 4096 SELF_PROBE_MARKs in one test"));
    test.control.close();
    test.data.close();
    server.check_recovered();
}
