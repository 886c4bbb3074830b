// iperf3's control protocol (common/iperf3_protocol.hpp), against documents and bytes the real iperf3 clients
// sent: Debian's 3.12 and esnet/iperf master (3.21+), captured on loopback by a listener that answered
// PARAM_EXCHANGE and recorded what came back.
#include <catch2/catch.hpp>

#include "common/iperf3_protocol.hpp"

using namespace speed;
using nlohmann::json;

namespace {

std::vector<std::uint8_t> bytes_of(std::string_view text) {
    return {text.begin(), text.end()};
}

iperf3::parameters parameters_of(std::string_view text) {
    auto parsed = iperf3::parse_parameters(json::parse(text));
    REQUIRE(parsed.has_value());
    return *parsed;
}

struct refusal {
    iperf3::error_code code;
    std::string reason;
};

refusal refusal_of(std::string_view text) {
    auto parsed = iperf3::parse_parameters(json::parse(text));
    REQUIRE_FALSE(parsed.has_value());
    return {static_cast<iperf3::error_code>(parsed.error_code()), parsed.error()};
}

}  // namespace

TEST_CASE("iperf3 cookies are told apart from speedsrv frames by their first bytes", "[unit][iperf3]") {
    // Sent by iperf3 3.12 as the first 37 bytes of a control connection.
    std::vector<std::uint8_t> cookie = bytes_of("s636uvmzgyhkbntwpudlerbp47mcrkqwuomz");
    cookie.push_back(0);
    CHECK(iperf3::is_cookie(cookie));
    CHECK(iperf3::starts_like_iperf3(std::span<const std::uint8_t, 4>(cookie.data(), 4)));

    std::vector<std::uint8_t> uppercase = cookie;
    uppercase[3] = 'U';
    CHECK_FALSE(iperf3::is_cookie(uppercase));
    std::vector<std::uint8_t> unterminated = cookie;
    unterminated.back() = 'a';
    CHECK_FALSE(iperf3::is_cookie(unterminated));
    CHECK_FALSE(iperf3::is_cookie(std::span(cookie).first(36)));
    // '1', '8', '9' and '0' are outside base32's alphabet.
    std::vector<std::uint8_t> digit = cookie;
    digit[0] = '1';
    CHECK_FALSE(iperf3::is_cookie(digit));

    // A speedsrv frame begins with its type and its payload length, big-endian: a HELLO is type 1, and its
    // payload is a few dozen bytes.
    const std::array<std::uint8_t, 4> speedsrv_frame{0x01, 0x00, 0x00, 0x00};
    CHECK_FALSE(iperf3::starts_like_iperf3(speedsrv_frame));
    // A prefix is judged as far as it goes: a speedsrv HELLO's first byte alone settles it.
    CHECK_FALSE(iperf3::starts_like_iperf3(std::span(speedsrv_frame).first(1)));
    CHECK(iperf3::starts_like_iperf3(std::span<const std::uint8_t>(cookie.data(), 2)));
}

TEST_CASE("iperf3 control states are single signed bytes", "[unit][iperf3]") {
    CHECK(iperf3::byte_of(iperf3::state::param_exchange) == 9);
    CHECK(iperf3::byte_of(iperf3::state::access_denied) == 0xff);
    CHECK(iperf3::byte_of(iperf3::state::server_error) == 0xfe);
    CHECK(iperf3::state_of(16) == iperf3::state::iperf_done);
    CHECK(iperf3::state_of(0xfe) == iperf3::state::server_error);
    // 3 and 5-8 are defined but never sent by 3.x; 0 and 17 are not states at all.
    CHECK_FALSE(iperf3::state_of(0).has_value());
    CHECK_FALSE(iperf3::state_of(3).has_value());
    CHECK_FALSE(iperf3::state_of(17).has_value());
    CHECK(iperf3::name_of(iperf3::state::exchange_results) == "EXCHANGE_RESULTS");
    for (int byte = 0; byte < 256; ++byte) {
        const auto s = iperf3::state_of(static_cast<std::uint8_t>(byte));
        if (s) {
            CHECK(iperf3::byte_of(*s) == byte);
        }
    }
}

TEST_CASE("a refusal is SERVER_ERROR with iperf3's error code and errno 0, big-endian", "[unit][iperf3]") {
    // iperf3 3.12 and 3.21 both printed "an option you are trying to set is not implemented yet" for these
    // bytes.
    CHECK(iperf3::encode_server_error(iperf3::error_code::not_implemented) ==
          std::vector<std::uint8_t>{0xfe, 0, 0, 0, 13, 0, 0, 0, 0});
    CHECK(iperf3::encode_server_error(iperf3::error_code::receive_parameters) ==
          std::vector<std::uint8_t>{0xfe, 0, 0, 0, 114, 0, 0, 0, 0});
}

TEST_CASE("iperf3 UDP connect datagrams are the bytes x86 iperf3 puts on the wire", "[unit][iperf3]") {
    // "9876" from 3.17 on; the legacy greeting 123456789 and reply 987654321 as little-endian int32.
    CHECK(std::string(iperf3::kUdpConnectMessage.begin(), iperf3::kUdpConnectMessage.end()) == "9876");
    CHECK(std::string(iperf3::kUdpConnectReply.begin(), iperf3::kUdpConnectReply.end()) == "6789");
    const std::uint32_t legacy_message = 123456789;
    const std::uint32_t legacy_reply = 987654321;
    CHECK(std::memcmp(&legacy_message, iperf3::kLegacyUdpConnectMessage.data(), 4) == 0);
    CHECK(std::memcmp(&legacy_reply, iperf3::kLegacyUdpConnectReply.data(), 4) == 0);
}

TEST_CASE("iperf3 JSON documents are length-prefixed and bounded", "[unit][iperf3]") {
    const std::vector<std::uint8_t> encoded = iperf3::encode_json(json{{"tcp", true}});
    CHECK(encoded ==
          std::vector<std::uint8_t>{0, 0, 0, 12, '{', '"', 't', 'c', 'p', '"', ':', 't', 'r', 'u', 'e', '}'});

    iperf3::json_reader reader(iperf3::kMaxParametersJson);
    // One byte at a time, then a second document right behind the first.
    for (std::size_t i = 0; i + 1 < encoded.size(); ++i) {
        reader.append(std::span(encoded).subspan(i, 1));
        CHECK(std::holds_alternative<iperf3::json_reader::need_more>(reader.next()));
    }
    reader.append(std::span(encoded).last(1));
    reader.append(iperf3::encode_json(json{{"udp", true}}));
    auto first = reader.next();
    REQUIRE(std::holds_alternative<json>(first));
    CHECK(std::get<json>(first) == json{{"tcp", true}});
    auto second = reader.next();
    REQUIRE(std::holds_alternative<json>(second));
    CHECK(std::get<json>(second) == json{{"udp", true}});
    CHECK(reader.buffered() == 0);

    iperf3::json_reader too_long(iperf3::kMaxParametersJson);
    too_long.append(std::vector<std::uint8_t>{0, 0, 0x20, 0x01});  // 8193 bytes
    auto refused = too_long.next();
    REQUIRE(std::holds_alternative<iperf3::json_reader::bad>(refused));
    CHECK(std::get<iperf3::json_reader::bad>(refused).reason ==
          "a JSON document of 8193 bytes (at most 8192)");

    iperf3::json_reader empty(iperf3::kMaxParametersJson);
    empty.append(std::vector<std::uint8_t>{0, 0, 0, 0});
    CHECK(std::holds_alternative<iperf3::json_reader::bad>(empty.next()));

    iperf3::json_reader not_json(iperf3::kMaxParametersJson);
    not_json.append(std::vector<std::uint8_t>{0, 0, 0, 2, '{', '{'});
    auto garbage = not_json.next();
    REQUIRE(std::holds_alternative<iperf3::json_reader::bad>(garbage));
    CHECK(std::get<iperf3::json_reader::bad>(garbage).reason == "a document that is not JSON");
}

TEST_CASE("iperf3 3.12 and 3.21 parameter documents are read as sent", "[unit][iperf3]") {
    // iperf3 3.12: -u -b 10M -P 2 -R -t 3 -l 1400
    const auto udp = parameters_of(
        R"({"udp":true,"omit":0,"time":3,"num":0,"blockcount":0,"parallel":2,"reverse":true,"len":1400,)"
        R"("bandwidth":10000000,"pacing_timer":1000,"client_version":"3.12"})");
    CHECK(udp.protocol == iperf3::transport::udp);
    CHECK(udp.reverse);
    CHECK_FALSE(udp.bidirectional);
    CHECK(udp.streams == 2);
    CHECK(udp.duration_seconds == 3);
    CHECK(udp.block_length == 1400);
    CHECK(udp.bitrate == 10'000'000);
    CHECK(udp.client_version == "3.12");

    // iperf3 3.21+ (esnet/iperf master): -P 4 -t 5 -O 1 --bidir -C cubic
    const auto tcp = parameters_of(
        R"({"tcp":true,"omit":1,"time":5,"num":0,"blockcount":0,"parallel":4,"bidirectional":true,)"
        R"("len":131072,"pacing_timer":1000,"congestion":"cubic","client_version":"3.21+"})");
    CHECK(tcp.protocol == iperf3::transport::tcp);
    CHECK(tcp.bidirectional);
    CHECK(tcp.streams == 4);
    CHECK(tcp.omit_seconds == 1);
    CHECK(tcp.block_length == 131072);
    CHECK(tcp.congestion == "cubic");
    CHECK(tcp.client_version == "3.21+");

    // A newer client's members are ignored, and so is a known member of the wrong type, as iperf3 does.
    const auto tolerant = parameters_of(R"({"tcp":true,"time":"7","parallel":3,"future_option":[1,2]})");
    CHECK(tolerant.duration_seconds == 10);
    CHECK(tolerant.streams == 3);
}

TEST_CASE("iperf3 parameters outside iperf3's limits are refused with iperf3's own codes", "[unit][iperf3]") {
    CHECK(refusal_of(R"({"tcp":true,"parallel":0})").code == iperf3::error_code::streams);
    CHECK(refusal_of(R"({"tcp":true,"parallel":129})").code == iperf3::error_code::streams);
    CHECK(refusal_of(R"({"tcp":true,"time":86401})").code == iperf3::error_code::duration);
    CHECK(refusal_of(R"({"tcp":true,"time":-1})").code == iperf3::error_code::duration);
    CHECK(refusal_of(R"({"tcp":true,"time":2.5})").code == iperf3::error_code::duration);
    CHECK(refusal_of(R"({"tcp":true,"time":1e300})").code == iperf3::error_code::duration);
    CHECK(refusal_of(R"({"tcp":true,"omit":601})").code == iperf3::error_code::omit);
    CHECK(refusal_of(R"({"tcp":true,"len":1048577})").code == iperf3::error_code::tcp_block_size);
    CHECK(refusal_of(R"({"udp":true,"len":65508})").code == iperf3::error_code::udp_block_size);
    CHECK(refusal_of(R"({"udp":true,"len":15})").code == iperf3::error_code::udp_block_size);
    CHECK(refusal_of(R"({"tcp":true,"window":536870913})").code == iperf3::error_code::socket_buffer);
    CHECK(refusal_of(R"({"tcp":true,"MSS":32768})").code == iperf3::error_code::mss);
    CHECK(refusal_of(R"({"tcp":true,"TOS":256})").code == iperf3::error_code::tos);
    CHECK(refusal_of(R"({"tcp":true,"num":-5})").code == iperf3::error_code::receive_parameters);
    CHECK(refusal_of(R"({"tcp":true,"num":18014398509481984})").code ==
          iperf3::error_code::receive_parameters);
    CHECK(refusal_of(R"([1,2])").code == iperf3::error_code::receive_parameters);
    // What speedsrv does not do, with the reason for its log.
    const auto sctp = refusal_of(R"({"sctp":true})");
    CHECK(sctp.code == iperf3::error_code::not_implemented);
    CHECK(sctp.reason == "SCTP is not supported");
    CHECK(refusal_of(R"({"tcp":true,"mptcp":true})").code == iperf3::error_code::not_implemented);
    CHECK(refusal_of(R"({"tcp":true,"authtoken":"x"})").code == iperf3::error_code::authentication);
    // The largest values iperf3 allows are accepted.
    const auto largest =
        parameters_of(R"({"tcp":true,"parallel":128,"time":86400,"omit":600,"len":1048576})");
    CHECK(largest.streams == 128);
    CHECK(largest.duration_seconds == 86400);
}

TEST_CASE("iperf3 parameters written by speedcli read back the same", "[unit][iperf3]") {
    iperf3::parameters p;
    p.protocol = iperf3::transport::udp;
    p.reverse = true;
    p.streams = 4;
    p.duration_seconds = 7;
    p.omit_seconds = 2;
    p.block_length = 1400;
    p.bitrate = 250'000'000;
    p.socket_buffer = 4 << 20;
    p.tos = 0xb8;
    p.get_server_output = true;
    p.client_version = "speedcli 0.1.0";
    CHECK(
        iperf3::parameters_json(p).dump() ==
        R"({"TOS":184,"bandwidth":250000000,"blockcount":0,"client_version":"speedcli 0.1.0",)"
        R"("get_server_output":1,"len":1400,"num":0,"omit":2,"parallel":4,"reverse":true,"time":7,"udp":true,)"
        R"("window":4194304})");
    const auto back = parameters_of(iperf3::parameters_json(p).dump());
    CHECK(back.protocol == p.protocol);
    CHECK(back.reverse == p.reverse);
    CHECK(back.streams == p.streams);
    CHECK(back.duration_seconds == p.duration_seconds);
    CHECK(back.omit_seconds == p.omit_seconds);
    CHECK(back.block_length == p.block_length);
    CHECK(back.bitrate == p.bitrate);
    CHECK(back.socket_buffer == p.socket_buffer);
    CHECK(back.tos == p.tos);
    CHECK(back.get_server_output);
}

TEST_CASE("iperf3 results documents are written and read field by field", "[unit][iperf3]") {
    iperf3::results r;
    r.cpu_total_percent = 12.5;
    r.sender_has_retransmits = true;
    r.congestion_used = "cubic";
    iperf3::stream_result s;
    s.id = 5;
    s.bytes = 1'250'000'000;
    s.retransmits = 3;
    s.start_seconds = 0.0;
    s.end_seconds = 10.0;
    r.streams.push_back(s);
    CHECK(
        iperf3::results_json(r).dump() ==
        R"({"congestion_used":"cubic","cpu_util_system":0.0,"cpu_util_total":12.5,"cpu_util_user":0.0,)"
        R"("sender_has_retransmits":1,"streams":[{"bytes":1250000000,"end_time":10.0,"errors":0,"id":5,)"
        R"("jitter":0.0,"omitted_errors":0,"omitted_packets":0,"packets":0,"retransmits":3,"start_time":0.0}]})");

    const iperf3::results back = iperf3::parse_results(iperf3::results_json(r));
    CHECK(back.sender_has_retransmits);
    CHECK(back.congestion_used == "cubic");
    REQUIRE(back.streams.size() == 1);
    CHECK(back.streams[0].id == 5);
    CHECK(back.streams[0].bytes == 1'250'000'000);
    CHECK(back.streams[0].retransmits == 3);
    CHECK(back.streams[0].end_seconds == 10.0);

    // A hostile peer's document: wrong types, negative bytes, a non-object entry, too many entries.
    json hostile = {{"cpu_util_total", "lots"}, {"streams", json::array()}};
    hostile["streams"].push_back(42);
    hostile["streams"].push_back({{"id", 1e30}, {"bytes", -7}, {"jitter", "high"}});
    for (int i = 0; i < 300; ++i) {
        hostile["streams"].push_back({{"id", i}});
    }
    const iperf3::results read = iperf3::parse_results(hostile);
    CHECK(read.cpu_total_percent == 0.0);
    REQUIRE(read.streams.size() == 256);
    CHECK(read.streams[0].id == 0);  // 1e30 is not a whole number in range: the default
    CHECK(read.streams[0].bytes == 0);
    CHECK(read.streams[0].jitter_seconds == 0.0);
    CHECK(iperf3::parse_results(json("text")).streams.empty());
}

TEST_CASE("iperf3 stream ids skip 2, as iperf_add_stream numbers them", "[iperf3]") {
    CHECK(speed::iperf3::stream_id(0) == 1);
    CHECK(speed::iperf3::stream_id(1) == 3);
    CHECK(speed::iperf3::stream_id(2) == 4);
    CHECK(speed::iperf3::stream_id(127) == 129);
}

TEST_CASE("The server's CPU use in its results: percent of the wall time, as iperf3's cpu_util",
          "[unit][iperf3]") {
    iperf3::results r;
    // 2 s of wall time; 0.5 s user and 0.25 s system CPU: 25 %, 12.5 %, 37.5 %.
    iperf3::set_cpu_utilization(r, {1'000'000'000, 3'000'000'000, 1'000'000'000},
                                {3'000'000'000, 3'500'000'000, 1'250'000'000});
    CHECK(r.cpu_user_percent == 25.0);
    CHECK(r.cpu_system_percent == 12.5);
    CHECK(r.cpu_total_percent == 37.5);
    // Two busy cores over 1 s: 200 %.
    iperf3::set_cpu_utilization(r, {0, 0, 0}, {1'000'000'000, 1'500'000'000, 500'000'000});
    CHECK(r.cpu_total_percent == 200.0);
    // No time between the samples, a clock that went back, CPU time that went back: zeros, never negative.
    iperf3::set_cpu_utilization(r, {5, 0, 0}, {5, 10, 10});
    CHECK(r.cpu_total_percent == 0.0);
    iperf3::set_cpu_utilization(r, {9, 0, 0}, {5, 10, 10});
    CHECK(r.cpu_user_percent == 0.0);
    iperf3::set_cpu_utilization(r, {0, 100, 100}, {1'000, 50, 150});
    CHECK(r.cpu_user_percent == 0.0);
    CHECK(r.cpu_system_percent == 5.0);
    CHECK(r.cpu_total_percent == 5.0);
    CHECK(iperf3::results_json(r)["cpu_util_system"] == 5.0);
}
