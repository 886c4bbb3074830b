// The iperf3 front-end's decisions (server/iperf3_session_protocol.hpp), fed the bytes an iperf3 client sends
// in the order iperf3 3.12 and 3.21 send them (captured on loopback: docs/protocol.md, "iperf3's control
// protocol").
#include <catch2/catch.hpp>

#include "server/iperf3_session_protocol.hpp"

using namespace speed;
using namespace speed::server;
using nlohmann::json;
using kind = iperf3_step::kind;

namespace {

const std::string kCookie = "s636uvmzgyhkbntwpudlerbp47mcrkqwuomz";

std::vector<std::uint8_t> cookie_bytes() {
    std::vector<std::uint8_t> bytes(kCookie.begin(), kCookie.end());
    bytes.push_back(0);
    return bytes;
}

std::vector<std::uint8_t> state(iperf3::state s) {
    return {iperf3::byte_of(s)};
}

// Feeds `bytes` and returns the steps until the machine wants more.
std::vector<iperf3_step> feed(iperf3_session_protocol& p, const std::vector<std::uint8_t>& bytes) {
    p.on_bytes(bytes);
    std::vector<iperf3_step> steps;
    for (int guard = 0; guard < 16; ++guard) {
        iperf3_step step = p.next_step();
        const bool more = step.what == kind::read_more && step.reply.empty();
        if (more) {
            break;
        }
        steps.push_back(std::move(step));
        if (p.phase() == iperf3_phase::ended) {
            break;
        }
    }
    return steps;
}

server_limits limits() {
    server_limits l;
    l.max_streams = 8;
    l.max_duration_ms = 30'000;
    l.max_omit_ms = 5'000;
    l.max_bitrate = 0;
    l.max_udp_bitrate = 1'000'000'000;
    return l;
}

// A session through PARAM_EXCHANGE and the parameters document `params`.
iperf3_step through_parameters(iperf3_session_protocol& p, const json& params) {
    const auto hello = feed(p, cookie_bytes());
    REQUIRE(hello.size() == 1);
    CHECK(hello[0].reply == state(iperf3::state::param_exchange));
    const auto steps = feed(p, iperf3::encode_json(params));
    REQUIRE(steps.size() == 1);
    return steps[0];
}

}  // namespace

TEST_CASE("an iperf3 upload runs from cookie to IPERF_DONE", "[unit][iperf3]") {
    iperf3_session_protocol p(limits(), iperf3_timeouts{});
    CHECK(p.phase() == iperf3_phase::awaiting_cookie);
    CHECK(p.read_timeout() == std::chrono::milliseconds(5'000));

    // The cookie in two pieces: nothing happens until all 37 bytes are in.
    auto cookie = cookie_bytes();
    CHECK(feed(p, {cookie.begin(), cookie.begin() + 20}).empty());
    const auto hello = feed(p, {cookie.begin() + 20, cookie.end()});
    REQUIRE(hello.size() == 1);
    CHECK(hello[0].reply == std::vector<std::uint8_t>{9});  // PARAM_EXCHANGE
    CHECK(std::string(p.cookie().begin(), p.cookie().end() - 1) == kCookie);

    // iperf3 3.12: -P 2 -t 3 -O 1 -C cubic.
    const auto params = json::parse(
        R"({"tcp":true,"omit":1,"time":3,"num":0,"blockcount":0,"parallel":2,"len":131072,"pacing_timer":1000,)"
        R"("congestion":"cubic","client_version":"3.12"})");
    const auto created = feed(p, iperf3::encode_json(params));
    REQUIRE(created.size() == 1);
    CHECK(created[0].what == kind::start_streams);
    CHECK(created[0].reply == std::vector<std::uint8_t>{10});  // CREATE_STREAMS
    CHECK(created[0].data_connections == 2);
    CHECK(created[0].request.dir == proto::direction::upload);
    CHECK(created[0].request.proto == proto::transport::tcp);
    CHECK(created[0].request.streams == 2);
    CHECK(created[0].request.omit_ms == 1'000);
    CHECK(created[0].request.duration_ms == 3'000);
    CHECK(created[0].request.interval_ms == 0);
    CHECK(created[0].request.congestion == "cubic");
    CHECK(p.phase() == iperf3_phase::creating_streams);

    const auto started = p.streams_attached();
    CHECK(started.what == kind::start_test);
    CHECK(started.reply == std::vector<std::uint8_t>{1, 2});  // TEST_START, TEST_RUNNING
    // TEST_END is due after the warm-up and the test, plus the least grace (2 s > a tenth of 3 s).
    CHECK(p.read_timeout() == std::chrono::milliseconds(1'000 + 3'000 + 2'000));

    const auto stop = feed(p, state(iperf3::state::test_end));
    REQUIRE(stop.size() == 1);
    CHECK(stop[0].what == kind::stop_test);
    CHECK(p.phase() == iperf3_phase::stopping);

    iperf3::results server_results;
    server_results.streams.push_back({.id = 1, .bytes = 1'000'000, .start_seconds = 0.0, .end_seconds = 3.0});
    server_results.streams.push_back({.id = 3, .bytes = 2'000'000, .start_seconds = 0.0, .end_seconds = 3.0});
    const auto exchange = p.test_stopped(server_results);
    CHECK(exchange.what == kind::read_more);
    CHECK(exchange.reply == std::vector<std::uint8_t>{13});  // EXCHANGE_RESULTS

    // The client's results and IPERF_DONE in one read: the server's results go out first, then it finishes.
    iperf3::results client_results;
    client_results.sender_has_retransmits = true;
    client_results.streams.push_back({.id = 1, .bytes = 1'000'100, .retransmits = 0});
    auto bytes = iperf3::encode_json(iperf3::results_json(client_results));
    bytes.push_back(iperf3::byte_of(iperf3::state::iperf_done));
    const auto end = feed(p, bytes);
    REQUIRE(end.size() == 2);
    std::vector<std::uint8_t> expected = iperf3::encode_json(iperf3::results_json(server_results));
    expected.push_back(14);  // DISPLAY_RESULTS
    CHECK(end[0].reply == expected);
    CHECK(end[1].what == kind::finished);
    CHECK(p.client_results().streams.at(0).bytes == 1'000'100);
    CHECK(p.phase() == iperf3_phase::ended);
}

TEST_CASE("iperf3 -R is a download, -b is per stream, and -n runs until TEST_END", "[unit][iperf3]") {
    iperf3_session_protocol p(limits(), iperf3_timeouts{});
    // iperf3 3.12: -u -b 10M -P 2 -R -t 3 -l 1400 (UDP's bandwidth is per stream in iperf3).
    const auto step = through_parameters(
        p, json::parse(R"({"udp":true,"omit":0,"time":3,"num":0,"blockcount":0,"parallel":2,"reverse":true,)"
                       R"("len":1400,"bandwidth":10000000,"pacing_timer":1000,"client_version":"3.12"})"));
    REQUIRE(step.what == kind::start_streams);
    CHECK(step.request.dir == proto::direction::download);
    CHECK(step.request.proto == proto::transport::udp);
    CHECK(step.request.bitrate == 20'000'000);
    CHECK(step.request.udp_payload_bytes == 1400);

    iperf3_session_protocol by_bytes(limits(), iperf3_timeouts{});
    const auto amount = through_parameters(by_bytes, json{{"tcp", true}, {"time", 0}, {"num", 100'000'000}});
    REQUIRE(amount.what == kind::start_streams);
    CHECK(amount.request.duration_ms == 30'000);  // the server's longest window
}

TEST_CASE("iperf3's -n and -k: the amount a client sends at least, and --max-bytes refuses more up front",
          "[unit][iperf3]") {
    iperf3::parameters p;
    CHECK(amount_of(p) == 0);  // by time
    p.bytes = 20'971'520;
    CHECK(amount_of(p) == 20'971'520);
    p.bytes = 0;
    p.blocks = 500;
    CHECK(amount_of(p) == 500ull * 131'072);  // iperf3's TCP block without -l
    p.block_length = 65'536;
    CHECK(amount_of(p) == 32'768'000);
    p.blocks = UINT64_MAX / 2;
    CHECK(amount_of(p) == UINT64_MAX);  // saturates

    server_limits capped = limits();
    capped.max_bytes = 8'388'608;
    iperf3_session_protocol within(capped, iperf3_timeouts{});
    CHECK(through_parameters(within, json{{"tcp", true}, {"time", 0}, {"num", 8'388'608}}).what ==
          kind::start_streams);
    iperf3_session_protocol above(capped, iperf3_timeouts{});
    const auto refused =
        through_parameters(above, json{{"tcp", true}, {"time", 0}, {"blockcount", 129}, {"len", 65'536}});
    CHECK(refused.what == kind::end_session);
    REQUIRE(refused.reply.size() == 9);
    CHECK(refused.reply[4] == 13);  // "not implemented": iperf3 has no code for a byte cap
    CHECK(refused.reason == "a test of 8454144 bytes, the server allows 8388608");
}

TEST_CASE("iperf3 --bidir over TCP is accepted: an upload whose client opens its streams twice",
          "[unit][iperf3]") {
    iperf3_session_protocol p(limits(), iperf3_timeouts{});
    const auto step =
        through_parameters(p, json{{"tcp", true}, {"time", 2}, {"parallel", 4}, {"bidirectional", true}});
    REQUIRE(step.what == kind::start_streams);
    CHECK(step.parameters.bidirectional);
    CHECK(step.request.dir == proto::direction::upload);
    CHECK(step.request.streams == 4);
    CHECK(step.data_connections == 8);
    CHECK(step.request.duration_ms == 2'000);
}

TEST_CASE("iperf3 --bidir -O over TCP is accepted with its warm-up", "[unit][iperf3]") {
    iperf3_session_protocol p(limits(), iperf3_timeouts{});
    const auto step = through_parameters(
        p, json{{"tcp", true}, {"time", 2}, {"omit", 1}, {"parallel", 1}, {"bidirectional", true}});
    REQUIRE(step.what == kind::start_streams);
    CHECK(step.parameters.bidirectional);
    CHECK(step.request.omit_ms == 1'000);
    CHECK(step.request.duration_ms == 2'000);
    CHECK(step.data_connections == 2);
}

TEST_CASE("iperf3 requests beyond the server's caps are refused with iperf3's codes", "[unit][iperf3]") {
    const auto refused = [](const json& params) {
        iperf3_session_protocol p(limits(), iperf3_timeouts{});
        const auto step = through_parameters(p, params);
        CHECK(step.what == kind::end_session);
        CHECK_FALSE(step.from_peer);
        CHECK(p.phase() == iperf3_phase::ended);
        REQUIRE(step.reply.size() == 9);
        CHECK(step.reply[0] == 0xfe);  // SERVER_ERROR
        return std::pair(static_cast<int>(step.reply[4]), step.reason);
    };
    CHECK(refused(json{{"tcp", true}, {"parallel", 9}}) ==
          std::pair(6, std::string("9 streams, the server allows 8")));
    CHECK(refused(json{{"tcp", true}, {"time", 31}}).first == 37);
    CHECK(refused(json{{"tcp", true}, {"omit", 6}}).first == 37);
    CHECK(refused(json{{"udp", true}, {"len", 1400}, {"bandwidth", 600'000'000}, {"parallel", 2}}).first ==
          27);
    // --bidir opens every stream twice: 5 of them are 10 connections.
    CHECK(refused(json{{"tcp", true}, {"bidirectional", true}, {"parallel", 5}}) ==
          std::pair(6, std::string("10 streams, the server allows 8")));
    CHECK(refused(json{{"udp", true}, {"len", 1400}, {"bidirectional", true}, {"parallel", 5}}) ==
          std::pair(6, std::string("10 streams, the server allows 8")));
    CHECK(refused(json{{"sctp", true}}).first == 13);
    CHECK(refused(json{{"tcp", true}, {"parallel", 0}}).first == 6);
    // A document that is not JSON, or is too long, is "unable to receive parameters".
    iperf3_session_protocol garbage(limits(), iperf3_timeouts{});
    feed(garbage, cookie_bytes());
    const auto not_json = feed(garbage, {0, 0, 0, 3, 'a', 'b', 'c'});
    REQUIRE(not_json.size() == 1);
    CHECK(not_json[0].reply == iperf3::encode_server_error(iperf3::error_code::receive_parameters));
    iperf3_session_protocol huge(limits(), iperf3_timeouts{});
    feed(huge, cookie_bytes());
    const auto too_long = feed(huge, {0, 0, 0x20, 0x01});
    REQUIRE(too_long.size() == 1);
    CHECK(too_long[0].reply == iperf3::encode_server_error(iperf3::error_code::receive_parameters));
}

TEST_CASE("an iperf3 session ends on what does not belong to its phase", "[unit][iperf3]") {
    // Not a cookie: a speedcli HELLO that reached the iperf3 front-end, or noise.
    iperf3_session_protocol noise(limits(), iperf3_timeouts{});
    std::vector<std::uint8_t> hello(37, 0);
    hello[0] = 1;
    const auto refused = feed(noise, hello);
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].what == kind::end_session);
    CHECK(refused[0].reply.empty());

    // A state byte no iperf3 client sends while the test runs.
    iperf3_session_protocol p(limits(), iperf3_timeouts{});
    through_parameters(p, json{{"tcp", true}, {"time", 2}});
    p.streams_attached();
    const auto odd = feed(p, state(iperf3::state::display_results));
    REQUIRE(odd.size() == 1);
    CHECK(odd[0].what == kind::end_session);
    CHECK(odd[0].reply == iperf3::encode_server_error(iperf3::error_code::unknown_message));
    CHECK(odd[0].reason == "control byte 14 while waiting for TEST_END");

    // CLIENT_TERMINATE (^C in iperf3) while streams are created, running, or instead of the results.
    for (int at = 0; at < 3; ++at) {
        iperf3_session_protocol q(limits(), iperf3_timeouts{});
        through_parameters(q, json{{"tcp", true}, {"time", 2}});
        if (at >= 1) {
            q.streams_attached();
        }
        if (at == 2) {
            feed(q, state(iperf3::state::test_end));
            q.test_stopped({});
        }
        const auto gone = feed(q, state(iperf3::state::client_terminate));
        REQUIRE(gone.size() == 1);
        CHECK(gone[0].what == kind::end_session);
        CHECK(gone[0].from_peer);
        CHECK(gone[0].reply.empty());
    }

    // Events out of order are the front-end's bug, not the client's: the session ends.
    iperf3_session_protocol early(limits(), iperf3_timeouts{});
    CHECK(early.streams_attached().what == kind::end_session);
    CHECK(early.phase() == iperf3_phase::ended);
}

TEST_CASE("an iperf3 client that closes after its results has finished", "[unit][iperf3]") {
    iperf3_session_protocol p(limits(), iperf3_timeouts{});
    through_parameters(p, json{{"tcp", true}, {"time", 2}});
    p.streams_attached();
    feed(p, state(iperf3::state::test_end));
    p.test_stopped({});
    feed(p, iperf3::encode_json(iperf3::results_json({})));
    CHECK(p.phase() == iperf3_phase::awaiting_done);
    CHECK(p.on_closed().what == kind::finished);

    iperf3_session_protocol early(limits(), iperf3_timeouts{});
    feed(early, cookie_bytes());
    const auto closed = early.on_closed();
    CHECK(closed.what == kind::end_session);
    CHECK(closed.from_peer);
    CHECK(closed.reason ==
          "the iperf3 client closed the connection while the server waited for the test parameters");
}
