// speedcli's side of iperf3's control protocol (client/iperf3_client_protocol.hpp): against the server's
// state machine (server/iperf3_session_protocol.hpp) with no sockets between them, and against the bytes an
// iperf3 server sends when it refuses.
#include <catch2/catch.hpp>

#include "client/iperf3_client_protocol.hpp"
#include "server/iperf3_session_protocol.hpp"

using namespace speed;
using client_kind = client::iperf3_client_step::kind;
using server_kind = server::iperf3_step::kind;

namespace {

std::array<std::uint8_t, 36> some_random_bytes() {
    std::array<std::uint8_t, 36> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<std::uint8_t>(i * 37 + 11);
    }
    return bytes;
}

// Delivers `bytes` to the client and returns its steps until it wants more.
std::vector<client::iperf3_client_step> to_client(client::iperf3_client_protocol& c,
                                                  const std::vector<std::uint8_t>& bytes) {
    c.on_bytes(bytes);
    std::vector<client::iperf3_client_step> steps;
    for (int guard = 0; guard < 16; ++guard) {
        auto step = c.next_step();
        if (step.what == client_kind::read_more && step.reply.empty()) {
            break;
        }
        steps.push_back(std::move(step));
        if (c.phase() == client::iperf3_client_phase::ended) {
            break;
        }
    }
    return steps;
}

std::vector<server::iperf3_step> to_server(server::iperf3_session_protocol& s,
                                           const std::vector<std::uint8_t>& bytes) {
    s.on_bytes(bytes);
    std::vector<server::iperf3_step> steps;
    for (int guard = 0; guard < 16; ++guard) {
        auto step = s.next_step();
        if (step.what == server_kind::read_more && step.reply.empty()) {
            break;
        }
        steps.push_back(std::move(step));
        if (s.phase() == server::iperf3_phase::ended) {
            break;
        }
    }
    return steps;
}

}  // namespace

TEST_CASE("speedcli's iperf3 client and speedsrv's iperf3 front-end complete a test together",
          "[unit][iperf3]") {
    iperf3::parameters asked;
    asked.reverse = true;
    asked.streams = 3;
    asked.duration_seconds = 4;
    asked.omit_seconds = 1;
    asked.client_version = "speedcli 0.1.0";
    client::iperf3_client_protocol c(asked, some_random_bytes());
    REQUIRE(iperf3::is_cookie(c.cookie()));
    server::iperf3_session_protocol s(server_limits{}, server::iperf3_timeouts{});

    auto server_steps = to_server(s, c.cookie());
    REQUIRE(server_steps.size() == 1);
    auto client_steps = to_client(c, server_steps[0].reply);  // PARAM_EXCHANGE
    REQUIRE(client_steps.size() == 1);
    server_steps = to_server(s, client_steps[0].reply);  // the parameters
    REQUIRE(server_steps.size() == 1);
    REQUIRE(server_steps[0].what == server_kind::start_streams);
    CHECK(server_steps[0].request.dir == proto::direction::download);
    CHECK(server_steps[0].request.streams == 3);
    CHECK(server_steps[0].request.omit_ms == 1'000);
    CHECK(server_steps[0].request.duration_ms == 4'000);
    CHECK(s.parameters().client_version == "speedcli 0.1.0");
    CHECK(std::equal(s.cookie().begin(), s.cookie().end(), c.cookie().begin(), c.cookie().end()));

    client_steps = to_client(c, server_steps[0].reply);  // CREATE_STREAMS
    REQUIRE(client_steps.size() == 1);
    CHECK(client_steps[0].what == client_kind::open_streams);
    CHECK(client_steps[0].streams == 3);

    client_steps = to_client(c, s.streams_attached().reply);  // TEST_START, TEST_RUNNING
    REQUIRE(client_steps.size() == 1);
    CHECK(client_steps[0].what == client_kind::start_test);

    server_steps = to_server(s, c.time_up().reply);  // TEST_END
    REQUIRE(server_steps.size() == 1);
    CHECK(server_steps[0].what == server_kind::stop_test);

    iperf3::results sent_by_server;
    sent_by_server.sender_has_retransmits = true;
    sent_by_server.streams.push_back({.id = 1, .bytes = 5'000'000, .retransmits = 2, .end_seconds = 4.0});
    client_steps = to_client(c, s.test_stopped(sent_by_server).reply);  // EXCHANGE_RESULTS
    REQUIRE(client_steps.size() == 1);
    CHECK(client_steps[0].what == client_kind::send_results);

    iperf3::results received_by_client;
    received_by_client.streams.push_back({.id = 1, .bytes = 4'999'000, .end_seconds = 4.0});
    server_steps = to_server(s, c.results_ready(received_by_client).reply);
    REQUIRE(server_steps.size() == 1);
    CHECK(s.client_results().streams.at(0).bytes == 4'999'000);

    client_steps = to_client(c, server_steps[0].reply);  // the server's results, DISPLAY_RESULTS
    REQUIRE(client_steps.size() == 1);
    CHECK(client_steps[0].what == client_kind::finished);
    CHECK(c.server_results().streams.at(0).bytes == 5'000'000);
    CHECK(c.server_results().streams.at(0).retransmits == 2);
    CHECK(c.server_results().sender_has_retransmits);

    server_steps = to_server(s, client_steps[0].reply);  // IPERF_DONE
    REQUIRE(server_steps.size() == 1);
    CHECK(server_steps[0].what == server_kind::finished);
}

TEST_CASE("an iperf3 server's refusals reach speedcli in iperf3's words", "[unit][iperf3]") {
    const auto refusal = [](const std::vector<std::uint8_t>& bytes) {
        client::iperf3_client_protocol c(iperf3::parameters{}, some_random_bytes());
        auto steps = to_client(c, bytes);
        REQUIRE(steps.size() == 1);
        CHECK(steps[0].what == client_kind::failed);
        CHECK(steps[0].from_server);
        return steps[0].reason;
    };
    // iperf3's busy server answers a second client with ACCESS_DENIED alone.
    CHECK(refusal({0xff}) ==
          "the iperf3 server is busy running a test (iperf3 servers run one test at a time)");
    CHECK(refusal(iperf3::encode_server_error(iperf3::error_code::not_implemented)) ==
          "the iperf3 server refused the test: an option you are trying to set is not implemented yet");
    CHECK(refusal({0xfe, 0, 0, 0x03, 0xe7, 0, 0, 0, 0}) ==
          "the iperf3 server refused the test: iperf3 error 999");

    // SERVER_ERROR's code arrives in pieces: nothing is decided until all 8 bytes are in.
    client::iperf3_client_protocol c(iperf3::parameters{}, some_random_bytes());
    CHECK(to_client(c, {0xfe, 0, 0}).empty());
    const auto steps = to_client(c, {0, 27, 0, 0, 0, 0});
    REQUIRE(steps.size() == 1);
    CHECK(steps[0].reason ==
          "the iperf3 server refused the test: total required bandwidth is larger than server limit");

    // Out of order: TEST_RUNNING before CREATE_STREAMS is the server's protocol error, not a refusal.
    client::iperf3_client_protocol d(iperf3::parameters{}, some_random_bytes());
    to_client(d, {9});
    const auto odd = to_client(d, {2});
    REQUIRE(odd.size() == 1);
    CHECK_FALSE(odd[0].from_server);
    CHECK(odd[0].reason == "the server sent control byte 2 while speedcli waited for CREATE_STREAMS");
}
