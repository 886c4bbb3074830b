// The session's decisions about what its client sends (server/session_protocol.hpp), phase by phase.
#include <catch2/catch.hpp>

#include "server/session_protocol.hpp"

using namespace speed;
using namespace speed::server;
using kind = session_step::kind;

namespace {

std::vector<auth::key> lab_keys() {
    return {auth::key("lab", std::vector<std::uint8_t>(32, 0x11)),
            auth::key("ops", std::vector<std::uint8_t>(16, 0x22))};
}

proto::auth_nonce fixed_nonce() {
    proto::auth_nonce nonce{};
    nonce.fill(0x42);
    return nonce;
}

proto::test_request download(std::uint16_t streams = 1) {
    proto::test_request request;
    request.dir = proto::direction::download;
    request.streams = streams;
    request.duration_ms = 2'000;
    request.omit_ms = 500;
    return request;
}

proto::test_request upload(std::uint16_t streams = 1) {
    auto request = download(streams);
    request.dir = proto::direction::upload;
    return request;
}

proto::test_request udp_upload(std::uint16_t streams) {
    auto request = upload(streams);
    request.proto = proto::transport::udp;
    request.udp_payload_bytes = 1400;
    return request;
}

proto::sender_report report_of(std::size_t streams) {
    proto::sender_report report;
    report.streams.resize(streams);
    return report;
}

session_protocol open_session(const std::vector<auth::key>* keys = nullptr, server_limits limits = {}) {
    return session_protocol(limits, session_timeouts{}, keys, fixed_nonce());
}

auth::session_nonces fixed_nonces() {
    auth::session_nonces nonces{fixed_nonce(), {}};
    nonces.client.fill(0x24);
    return nonces;
}

// A client's AUTH_RESPONSE with `k`'s secret under the name `name`, for the session's WELCOME.
proto::auth_response respond(const auth::key& k, const std::string& name, const proto::message& welcome) {
    const auth::key named(name, std::vector<std::uint8_t>(k.secret().begin(), k.secret().end()));
    return proto::auth_response{name, fixed_nonces().client,
                                auth::client_proof(named, fixed_nonces(), proto::encode(welcome))};
}

proto::test_auth tag_of(const auth::key& k, std::uint32_t sequence, const proto::test_request& request) {
    return proto::test_auth{auth::test_mac(k, fixed_nonces(), sequence, request)};
}

}  // namespace

TEST_CASE("a session without authentication: download then upload, then a clean close", "[session]") {
    auto protocol = open_session();
    const auto opening = protocol.opening(proto::session_token{}, "speedsrv test");
    REQUIRE(opening.size() == 1);
    const auto& welcome = std::get<proto::welcome>(opening[0]);
    CHECK_FALSE(welcome.auth_required);
    CHECK(welcome.max_streams == server_limits{}.max_streams);
    CHECK(protocol.admitted());
    CHECK(protocol.phase() == session_phase::idle);
    CHECK(protocol.read_timeout() == std::chrono::seconds(30));

    auto step = protocol.on_message(download());
    REQUIRE(step.what == kind::start_test);
    CHECK(step.request == download());
    CHECK(protocol.phase() == session_phase::setting_up);
    protocol.streams_ready();
    CHECK(protocol.phase() == session_phase::sending);
    // STOP may come up to the test's warm-up + window + the longer of 1 s and the window after the server
    // starts sending.
    CHECK(protocol.read_timeout() == std::chrono::milliseconds(2'500 + 2'000));
    CHECK(protocol.on_message(proto::stop{}).what == kind::stop_sending);
    CHECK(protocol.phase() == session_phase::idle);

    REQUIRE(protocol.on_message(upload(2)).what == kind::start_test);
    protocol.streams_ready();
    CHECK(protocol.phase() == session_phase::receiving);
    protocol.window_closed();
    CHECK(protocol.phase() == session_phase::awaiting_sender_report);
    CHECK(protocol.read_timeout() == std::chrono::seconds(5));
    step = protocol.on_message(report_of(2));
    CHECK(step.what == kind::test_complete);
    CHECK(protocol.phase() == session_phase::idle);

    CHECK(protocol.on_closed().what == kind::client_done);
    CHECK(protocol.phase() == session_phase::ended);
}

TEST_CASE("messages out of place end the session with a protocol error", "[session]") {
    auto protocol = open_session();
    SECTION("STOP before any test") {
        const auto step = protocol.on_message(proto::stop{});
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::protocol_error);
        CHECK_THAT(step.failure.message, Catch::Contains("unexpected STOP while waiting for a test request"));
    }
    SECTION("a server message from the client") {
        CHECK(protocol.on_message(proto::welcome{}).failure.code == proto::error_code::protocol_error);
    }
    SECTION("a SELF_PROBE_MARK from the client, even while the server sends") {
        REQUIRE(protocol.on_message(download()).what == kind::start_test);
        protocol.streams_ready();
        const auto step = protocol.on_message(proto::self_probe_mark{0, 0, 0});
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::protocol_error);
        CHECK_THAT(step.failure.message, Catch::Contains("unexpected SELF_PROBE_MARK"));
    }
    SECTION("a SELF_PROBE_MARK while a UDP upload runs") {
        REQUIRE(protocol.on_message(udp_upload(1)).what == kind::start_test);
        protocol.streams_ready();
        CHECK_THAT(protocol.on_message(proto::self_probe_mark{0, 0, 0}).failure.message,
                   Catch::Contains("unexpected SELF_PROBE_MARK"));
    }
    SECTION("a SELF_PROBE_MARK between tests") {
        REQUIRE(protocol.on_message(upload()).what == kind::start_test);
        protocol.streams_ready();
        protocol.window_closed();
        REQUIRE(protocol.on_message(report_of(1)).what == kind::test_complete);
        CHECK_THAT(protocol.on_message(proto::self_probe_mark{0, 0, 0}).failure.message,
                   Catch::Contains("unexpected SELF_PROBE_MARK while waiting for a test request"));
    }
    SECTION("authentication messages on a server without keys") {
        CHECK(protocol.on_message(proto::auth_response{}).what == kind::end_session);
    }
    SECTION("a second TEST_REQUEST while a download runs") {
        protocol.on_message(download());
        protocol.streams_ready();
        CHECK(protocol.on_message(download()).what == kind::end_session);
    }
    SECTION("a SENDER_REPORT with the wrong number of streams") {
        protocol.on_message(upload(3));
        protocol.streams_ready();
        protocol.window_closed();
        const auto step = protocol.on_message(report_of(2));
        CHECK(step.what == kind::end_session);
        CHECK_THAT(step.failure.message, Catch::Contains("2 streams; the test has 3"));
    }
    SECTION("a close in the middle of a test") {
        protocol.on_message(download());
        protocol.streams_ready();
        const auto step = protocol.on_closed();
        CHECK(step.what == kind::end_session);
        CHECK_THAT(step.failure.message, Catch::Contains("STOP"));
    }
    CHECK(protocol.phase() == session_phase::ended);
    // Once ended, nothing revives it.
    CHECK(protocol.on_message(download()).what == kind::end_session);
}

TEST_CASE("an upload takes SELF_PROBE_MARKs while it runs and until SENDER_REPORT", "[session]") {
    auto protocol = open_session();
    REQUIRE(protocol.on_message(upload(2)).what == kind::start_test);
    protocol.streams_ready();
    auto step = protocol.on_message(proto::self_probe_mark{1, 4, 123'456});
    REQUIRE(step.what == kind::self_probe_mark);
    CHECK(step.mark == proto::self_probe_mark{1, 4, 123'456});
    CHECK(protocol.phase() == session_phase::receiving);
    CHECK(protocol.self_probe_marks() == 1);
    protocol.window_closed();
    // Sent before the client read STOP: read and ignored.
    step = protocol.on_message(proto::self_probe_mark{0, 5, 99});
    CHECK(step.what == kind::read_more);
    CHECK(protocol.phase() == session_phase::awaiting_sender_report);
    CHECK(protocol.self_probe_marks() == 2);
    CHECK(protocol.on_message(report_of(2)).what == kind::test_complete);
    // The next test counts its own.
    REQUIRE(protocol.on_message(upload(2)).what == kind::start_test);
    CHECK(protocol.self_probe_marks() == 0);
}

TEST_CASE("SELF_PROBE_MARKs beyond an upload's bounds end the session", "[session]") {
    auto protocol = open_session();
    REQUIRE(protocol.on_message(upload(2)).what == kind::start_test);
    protocol.streams_ready();
    SECTION("a stream the test does not have") {
        const auto step = protocol.on_message(proto::self_probe_mark{2, 0, 0});
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::protocol_error);
        CHECK(step.failure.message == "SELF_PROBE_MARK names stream 2 of a 2-stream test");
        CHECK(protocol.phase() == session_phase::ended);
    }
    SECTION("more marks than a client answers probes, in the window or after it") {
        const bool after_window = GENERATE(false, true);
        for (std::uint32_t i = 0; i < proto::kMaxSelfProbes / 2; ++i) {
            REQUIRE(protocol.on_message(proto::self_probe_mark{0, i, 0}).what == kind::self_probe_mark);
        }
        if (after_window) {
            protocol.window_closed();
        }
        const auto accepted = after_window ? kind::read_more : kind::self_probe_mark;
        for (std::uint32_t i = proto::kMaxSelfProbes / 2; i < proto::kMaxSelfProbes; ++i) {
            REQUIRE(protocol.on_message(proto::self_probe_mark{1, i, 0}).what == accepted);
        }
        const auto step = protocol.on_message(proto::self_probe_mark{1, 0, 0});
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::protocol_error);
        CHECK_THAT(step.failure.message, Catch::Contains("more than 4096 SELF_PROBE_MARKs in one test"));
    }
}

TEST_CASE("the client's ERROR ends the session in any phase, and is not sent back", "[session]") {
    auto protocol = open_session();
    const auto step = protocol.on_message(proto::error{proto::error_code::internal, "client gave up"});
    CHECK(step.what == kind::end_session);
    CHECK(step.from_peer);
    CHECK(step.failure.message == "client gave up");
}

TEST_CASE("requests beyond the caps are refused with the limit named", "[session]") {
    server_limits limits;
    limits.max_streams = 2;
    limits.max_tests_per_session = 2;
    auto protocol = open_session(nullptr, limits);
    SECTION("too many streams") {
        const auto step = protocol.on_message(download(3));
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::limit_exceeded);
        CHECK_THAT(step.failure.message, Catch::Contains("at most 2"));
    }
    SECTION("too many tests in one session") {
        for (int i = 0; i < 2; ++i) {
            REQUIRE(protocol.on_message(download()).what == kind::start_test);
            protocol.streams_ready();
            REQUIRE(protocol.on_message(proto::stop{}).what == kind::stop_sending);
        }
        const auto step = protocol.on_message(download());
        CHECK(step.failure.code == proto::error_code::limit_exceeded);
        CHECK_THAT(step.failure.message, Catch::Contains("at most 2 tests per session"));
    }
}

TEST_CASE("the grace for a missing STOP is max(1 s, the window)", "[session]") {
    auto protocol = open_session();
    auto request = download();
    request.duration_ms = 100;
    request.omit_ms = 0;
    REQUIRE(protocol.on_message(request).what == kind::start_test);
    protocol.streams_ready();
    CHECK(protocol.read_timeout() == std::chrono::milliseconds(100 + 1'000));
    REQUIRE(protocol.on_message(proto::stop{}).what == kind::stop_sending);
    request.duration_ms = 20'000;
    request.omit_ms = 3'000;
    REQUIRE(protocol.on_message(request).what == kind::start_test);
    protocol.streams_ready();
    CHECK(protocol.read_timeout() == std::chrono::milliseconds(3'000 + 20'000 + 20'000));
}

TEST_CASE("UDP echo requests count as tests: they cannot hold a session open", "[session]") {
    server_limits limits;
    limits.max_tests_per_session = 3;
    auto protocol = open_session(nullptr, limits);
    REQUIRE(protocol.on_message(proto::udp_echo_request{}).what == kind::start_udp_echo);
    REQUIRE(protocol.on_message(proto::udp_echo_request{}).what == kind::start_udp_echo);
    REQUIRE(protocol.on_message(download()).what == kind::start_test);
    protocol.streams_ready();
    REQUIRE(protocol.on_message(proto::stop{}).what == kind::stop_sending);
    CHECK(protocol.tests_started() == 3);
    SECTION("a fourth echo request") {
        const auto step = protocol.on_message(proto::udp_echo_request{});
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::limit_exceeded);
        CHECK_THAT(step.failure.message, Catch::Contains("at most 3 tests per session"));
    }
    SECTION("a fourth test") {
        const auto step = protocol.on_message(download());
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::limit_exceeded);
    }
    // The test request's sequence number for TEST_AUTH counts test requests only.
    CHECK(protocol.requests_received() <= 2);
}

TEST_CASE("authentication: the right key, then a tag per test", "[session][auth]") {
    const auto keys = lab_keys();
    auto protocol = open_session(&keys);
    const auto opening = protocol.opening(proto::session_token{}, "speedsrv test");
    REQUIRE(opening.size() == 2);
    CHECK(std::get<proto::welcome>(opening[0]).auth_required);
    CHECK(std::get<proto::auth_challenge>(opening[1]).nonce == fixed_nonce());
    CHECK_FALSE(protocol.admitted());
    CHECK(protocol.phase() == session_phase::authenticating);
    CHECK(protocol.read_timeout() == std::chrono::seconds(5));

    const proto::auth_response response = respond(keys[1], "ops", opening[0]);
    auto step = protocol.on_message(response);
    REQUIRE(step.what == kind::reply);
    // AUTH_OK proves the server holds the key: its own label over both nonces and the WELCOME it sent.
    REQUIRE(std::holds_alternative<proto::auth_ok>(step.reply));
    CHECK(std::get<proto::auth_ok>(step.reply).server_proof ==
          auth::server_proof(keys[1], fixed_nonces(), proto::encode(opening[0])));
    CHECK(protocol.key() == &keys[1]);
    CHECK(protocol.nonces().client == fixed_nonces().client);
    CHECK(protocol.admitted());
    CHECK(protocol.key_name() == "ops");

    const auto request = download();
    CHECK(protocol.on_message(request).what == kind::read_more);
    CHECK(protocol.phase() == session_phase::test_authenticating);
    step = protocol.on_message(tag_of(keys[1], 1, request));
    REQUIRE(step.what == kind::start_test);
    CHECK(step.request == request);

    SECTION("the next test needs a tag with the next sequence number: a replayed tag fails") {
        protocol.streams_ready();
        protocol.on_message(proto::stop{});
        protocol.on_message(request);
        step = protocol.on_message(tag_of(keys[1], 1, request));
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::auth_failed);
    }
    SECTION("the next test with its own tag") {
        protocol.streams_ready();
        protocol.on_message(proto::stop{});
        protocol.on_message(request);
        step = protocol.on_message(tag_of(keys[1], 2, request));
        CHECK(step.what == kind::start_test);
    }
}

TEST_CASE("authentication failures: the client is told little, the log more", "[session][auth]") {
    const auto keys = lab_keys();
    auto protocol = open_session(&keys);
    const auto opening = protocol.opening(proto::session_token{}, "speedsrv test");
    SECTION("unknown key name") {
        const proto::auth_response response = respond(keys[0], "mallory", opening[0]);
        const auto step = protocol.on_message(response);
        CHECK(step.failure.code == proto::error_code::auth_failed);
        CHECK_THAT(step.failure.message, Catch::Contains("unknown key name or wrong key"));
        CHECK_THAT(step.log_detail, Catch::Contains("unknown key name 'mallory'"));
    }
    SECTION("wrong key") {
        const proto::auth_response response = respond(keys[1], "lab", opening[0]);
        const auto step = protocol.on_message(response);
        CHECK(step.failure.code == proto::error_code::auth_failed);
        CHECK_THAT(step.log_detail, Catch::Contains("wrong key for key name 'lab'"));
    }
    SECTION("a proof for another WELCOME (e.g. one whose caps were altered on the way)") {
        auto altered = std::get<proto::welcome>(opening[0]);
        altered.max_streams += 1;
        const auto step = protocol.on_message(respond(keys[0], "lab", altered));
        CHECK(step.failure.code == proto::error_code::auth_failed);
    }
    SECTION("a test request before authenticating") {
        CHECK(protocol.on_message(download()).failure.code == proto::error_code::protocol_error);
    }
    SECTION("a tampered request") {
        protocol.on_message(respond(keys[0], "lab", opening[0]));
        auto request = download();
        const proto::test_auth tag = tag_of(keys[0], 1, request);
        request.duration_ms *= 10;  // changed after it was tagged
        protocol.on_message(request);
        CHECK(protocol.on_message(tag).failure.code == proto::error_code::auth_failed);
    }
    SECTION("a request without its tag") {
        protocol.on_message(respond(keys[0], "lab", opening[0]));
        protocol.on_message(download());
        CHECK(protocol.on_message(download()).failure.code == proto::error_code::protocol_error);
    }
    CHECK(protocol.phase() == session_phase::ended);
}

namespace {

proto::udp_sender_report udp_report_of(std::size_t streams) {
    proto::udp_sender_report report;
    report.streams.resize(streams);
    return report;
}

}  // namespace

TEST_CASE("UDP: an echo request between tests opens the echo, and a UDP upload ends with UDP_SENDER_REPORT",
          "[session][udp]") {
    auto protocol = open_session();
    auto step = protocol.on_message(proto::udp_echo_request{});
    CHECK(step.what == kind::start_udp_echo);
    CHECK(protocol.phase() == session_phase::idle);

    REQUIRE(protocol.on_message(udp_upload(2)).what == kind::start_test);
    protocol.streams_ready();
    CHECK(protocol.phase() == session_phase::receiving);
    protocol.window_closed();
    CHECK(protocol.awaiting() == "the client's UDP_SENDER_REPORT");
    step = protocol.on_message(udp_report_of(2));
    REQUIRE(step.what == kind::test_complete);
    CHECK(step.udp_sender_report.streams.size() == 2);
    CHECK(protocol.phase() == session_phase::idle);
}

TEST_CASE("UDP: the wrong kind or count of sender report ends the session", "[session][udp]") {
    SECTION("a TCP SENDER_REPORT for a UDP upload") {
        auto protocol = open_session();
        REQUIRE(protocol.on_message(udp_upload(1)).what == kind::start_test);
        protocol.streams_ready();
        protocol.window_closed();
        const auto step = protocol.on_message(report_of(1));
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.code == proto::error_code::protocol_error);
        CHECK(step.failure.message ==
              "unexpected SENDER_REPORT while waiting for the client's UDP_SENDER_REPORT");
    }
    SECTION("a UDP_SENDER_REPORT for a TCP upload") {
        auto protocol = open_session();
        REQUIRE(protocol.on_message(upload(1)).what == kind::start_test);
        protocol.streams_ready();
        protocol.window_closed();
        CHECK(protocol.on_message(udp_report_of(1)).what == kind::end_session);
    }
    SECTION("a stream count that is not the test's") {
        auto protocol = open_session();
        REQUIRE(protocol.on_message(udp_upload(2)).what == kind::start_test);
        protocol.streams_ready();
        protocol.window_closed();
        const auto step = protocol.on_message(udp_report_of(3));
        CHECK(step.what == kind::end_session);
        CHECK(step.failure.message == "UDP_SENDER_REPORT has 3 streams; the test has 2");
    }
}

TEST_CASE("UDP: a server without UDP refuses an echo request", "[session][udp]") {
    server_limits limits;
    limits.udp = false;
    auto protocol = open_session(nullptr, limits);
    const auto step = protocol.on_message(proto::udp_echo_request{});
    CHECK(step.what == kind::end_session);
    CHECK(step.failure.code == proto::error_code::unsupported);
    CHECK(protocol.phase() == session_phase::ended);
}
