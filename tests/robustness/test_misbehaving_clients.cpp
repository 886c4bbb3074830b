// Clients that start a test and then misbehave: one stopped with SIGSTOP mid-test (its session must be freed
// within the stall timeout, in either direction), one that sends faster than the server's cap. (A client that
// never sends STOP: test_server_caps.cpp.)
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

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

TEST_CASE("a client stopped mid-download frees its session within the stall timeout", "[robustness]") {
    check_stopped_client_is_dropped("--no-upload", "acknowledged no data for 2.0 s");
}

TEST_CASE("a client stopped mid-upload frees its session within the stall timeout", "[robustness]") {
    check_stopped_client_is_dropped("--no-download", "no test data arrived for 2.0 s");
}

TEST_CASE("an upload faster than the server's cap is ended with limit_exceeded", "[robustness]") {
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
          "[robustness]") {
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
