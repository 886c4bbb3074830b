// Key files and the HMAC-SHA256 tags of authentication. The expected tags were computed independently
// (Python's hmac module, or `openssl dgst -sha256 -mac HMAC -macopt hexkey:...`) over the transcripts
// docs/protocol.md defines.
#include <catch2/catch.hpp>

#include <variant>

#include "common/auth.hpp"
#include "tests/unit/hex.hpp"

using namespace speed;
using speed::testing::from_hex;

namespace {

auth::key lab_key() {
    std::vector<std::uint8_t> secret(32);
    for (std::size_t i = 0; i < secret.size(); ++i) {
        secret[i] = static_cast<std::uint8_t>(i);
    }
    return auth::key("lab", secret);
}

proto::auth_nonce counting_nonce(std::uint8_t first) {
    proto::auth_nonce nonce{};
    for (std::size_t i = 0; i < nonce.size(); ++i) {
        nonce[i] = static_cast<std::uint8_t>(first + i);
    }
    return nonce;
}

// Server nonce a0..bf, client nonce c0..df.
auth::session_nonces counting_nonces() {
    return auth::session_nonces{counting_nonce(0xa0), counting_nonce(0xc0)};
}

// test_protocol.cpp's golden WELCOME (authentication required).
std::vector<std::uint8_t> welcome_frame() {
    return from_hex(
        "02 0000002e 0002 0102030405060708090a0b0c0d0e0f10 0003 737276"
        "0020 0000ea60 00000002540be400 0000000040000000 01");
}

// test_protocol.cpp's golden RECEIVER_REPORT.
std::vector<std::uint8_t> report_frame() {
    return from_hex(
        "16 00000022 00000002540be400 0000000000000000 0000000000000000"
        "0001 00000000000003e8");
}

proto::auth_mac mac_from_hex(std::string_view text) {
    const auto bytes = from_hex(text);
    proto::auth_mac mac{};
    REQUIRE(bytes.size() == mac.size());
    std::copy(bytes.begin(), bytes.end(), mac.begin());
    return mac;
}

// The TEST_REQUEST of test_protocol.cpp's golden vector.
proto::test_request example_request() {
    proto::test_request request;
    request.dir = proto::direction::upload;
    request.streams = 4;
    request.duration_ms = 10000;
    request.omit_ms = 2000;
    request.interval_ms = 500;
    request.bitrate = 100'000'000;
    request.congestion = "bbr";
    return request;
}

std::string parse_error(std::string_view text) {
    auto parsed = auth::parse_key_file(text);
    REQUIRE_FALSE(parsed);
    return parsed.error();
}

}  // namespace

TEST_CASE("client proof: HMAC-SHA256 over label, both nonces, key name and the WELCOME frame", "[auth]") {
    CHECK(auth::client_proof(lab_key(), counting_nonces(), welcome_frame()) ==
          mac_from_hex("d781e3bc90786fc996f57e2169697f41b53b539a81cd22107c96a62ae4ee28ef"));
}

TEST_CASE("server proof: HMAC-SHA256 over its own label, both nonces and the WELCOME frame", "[auth]") {
    const auto proof = auth::server_proof(lab_key(), counting_nonces(), welcome_frame());
    CHECK(proof == mac_from_hex("0522fd6673ca4c5d84957ba703c4e3f96264de33fa1d97bd835ddd3560c0420a"));

    SECTION("another WELCOME, client nonce or key gives another proof; a client proof never passes") {
        auto flag_cleared = welcome_frame();
        flag_cleared.back() = 0;
        CHECK(auth::server_proof(lab_key(), counting_nonces(), flag_cleared) != proof);
        auto nonces = counting_nonces();
        nonces.client[0] ^= 1;
        CHECK(auth::server_proof(lab_key(), nonces, welcome_frame()) != proof);
        CHECK(auth::server_proof(auth::key("lab", std::vector<std::uint8_t>(32, 7)), counting_nonces(),
                                 welcome_frame()) != proof);
        CHECK(auth::client_proof(lab_key(), counting_nonces(), welcome_frame()) != proof);
    }
}

TEST_CASE("test tag: HMAC-SHA256 over label, both nonces, sequence and the TEST_REQUEST frame", "[auth]") {
    const auto key = lab_key();
    const auto nonces = counting_nonces();
    const auto request = example_request();
    const auto tag = auth::test_mac(key, nonces, 1, request);
    CHECK(tag == mac_from_hex("525ab50321b30d84f2bb0d236f2533305c65b116cc08c08dbd4cdba8cae01dca"));

    SECTION("another sequence number, request, nonce or key gives another tag") {
        CHECK(auth::test_mac(key, nonces, 2, request) != tag);
        auto longer = request;
        longer.duration_ms += 1;
        CHECK(auth::test_mac(key, nonces, 1, longer) != tag);
        auto other_nonces = nonces;
        other_nonces.server[31] ^= 1;
        CHECK(auth::test_mac(key, other_nonces, 1, request) != tag);
        CHECK(auth::test_mac(auth::key("lab", std::vector<std::uint8_t>(32, 7)), nonces, 1, request) != tag);
    }
}

TEST_CASE("report tags: HMAC-SHA256 over label, both nonces, the report's sequence and its frame", "[auth]") {
    CHECK(auth::report_mac(lab_key(), counting_nonces(), 1, report_frame()) ==
          mac_from_hex("55ea0e1b76c2dd551702636d5b9ce125d0f42636924575dc5d622f48861e6458"));

    SECTION("a tagger counts the session's reports from 1, so a replayed report gets another tag") {
        auth::report_tagger tagger(lab_key(), counting_nonces());
        CHECK(tagger.next(report_frame()) ==
              mac_from_hex("55ea0e1b76c2dd551702636d5b9ce125d0f42636924575dc5d622f48861e6458"));
        CHECK(tagger.next(report_frame()) ==
              mac_from_hex("05868eec2f93bb46087552e34cd89d6dd51aa3d334f5f819d818a9a2d495f7af"));
    }
}

TEST_CASE("tags compare by value", "[auth]") {
    const auto a = auth::server_proof(lab_key(), counting_nonces(), welcome_frame());
    auto b = a;
    CHECK(auth::macs_equal(a, b));
    b[0] ^= 0x80;
    CHECK_FALSE(auth::macs_equal(a, b));
    b = a;
    b[31] ^= 1;
    CHECK_FALSE(auth::macs_equal(a, b));
}

TEST_CASE("the server's check of AUTH_RESPONSE computes one HMAC whether the key name exists or not",
          "[auth]") {
    const std::vector<auth::key> keys{lab_key(), auth::key("ops", std::vector<std::uint8_t>(16, 0x22))};
    const auto nonces = counting_nonces();
    proto::auth_response response{"lab", nonces.client, auth::client_proof(keys[0], nonces, welcome_frame())};
    const auto check_counting = [&](const proto::auth_response& r, std::uint64_t& hmacs) {
        const std::uint64_t before = auth::hmacs_computed();
        const auto check = auth::check_client(keys, r, nonces.server, welcome_frame());
        hmacs = auth::hmacs_computed() - before;
        return check;
    };
    std::uint64_t hmacs = 0;

    auto check = check_counting(response, hmacs);
    CHECK(check.proven == &keys[0]);
    CHECK(hmacs == 1);

    response.mac[0] ^= 1;
    check = check_counting(response, hmacs);
    CHECK(check.proven == nullptr);
    CHECK(check.name_known);
    CHECK(hmacs == 1);

    response.key_name = "mallory";
    check = check_counting(response, hmacs);
    CHECK(check.proven == nullptr);
    CHECK_FALSE(check.name_known);
    CHECK(hmacs == 1);

    SECTION("an unknown name is refused even with a tag made with the dummy key") {
        std::vector<std::uint8_t> zeros(32, 0);
        response.mac = auth::client_proof(auth::key("mallory", zeros), nonces, welcome_frame());
        CHECK(check_counting(response, hmacs).proven == nullptr);
    }
}

TEST_CASE("the client's handshake: no silent downgrade, and the server must prove the key", "[auth]") {
    const auto key = lab_key();
    proto::welcome welcome;
    welcome.auth_required = true;
    const auto frame = proto::encode(welcome);
    using step = auth::client_handshake::next_step;

    CHECK(auth::client_handshake(nullptr).on_welcome(welcome, frame) == step::refuse_no_key);
    welcome.auth_required = false;
    CHECK(auth::client_handshake(nullptr).on_welcome(welcome, frame) == step::go_on);
    CHECK(auth::client_handshake(&key).on_welcome(welcome, frame) == step::refuse_downgrade);
    welcome.auth_required = true;

    auth::client_handshake handshake(&key);
    REQUIRE(handshake.on_welcome(welcome, frame) == step::authenticate);
    const auto nonces = counting_nonces();
    const auto response = handshake.on_challenge(proto::auth_challenge{nonces.server}, nonces.client);
    CHECK(response.key_name == "lab");
    CHECK(response.client_nonce == nonces.client);
    CHECK(response.mac == auth::client_proof(key, nonces, frame));

    CHECK(handshake.server_proven(proto::auth_ok{auth::server_proof(key, nonces, frame)}));
    CHECK_FALSE(handshake.server_proven(proto::auth_ok{}));
    CHECK_FALSE(handshake.server_proven(proto::auth_ok{auth::client_proof(key, nonces, frame)}));
}

TEST_CASE("a key file with comments, blank lines and several keys", "[auth]") {
    const std::string text =
        "# lab keys\n"
        "\n"
        "lab   000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  # the lab\n"
        "\tops-2.b_x\tFFEEDDCCBBAA99887766554433221100\r\n";
    auto parsed = auth::parse_key_file(text);
    REQUIRE(parsed);
    const auto& keys = *parsed;
    REQUIRE(keys.size() == 2);
    CHECK(keys[0].name() == "lab");
    const auto expected = lab_key();
    CHECK(std::equal(keys[0].secret().begin(), keys[0].secret().end(), expected.secret().begin(),
                     expected.secret().end()));
    CHECK(keys[1].name() == "ops-2.b_x");
    CHECK(keys[1].secret().size() == 16);
    CHECK(keys[1].secret()[0] == 0xff);
    CHECK(auth::find_key(keys, "ops-2.b_x") == &keys[1]);
    CHECK(auth::find_key(keys, "nobody") == nullptr);
}

TEST_CASE("key file mistakes are named with their line, never with the secret", "[auth]") {
    CHECK_THAT(parse_error("lab\n"), Catch::Contains("line 1") && Catch::Contains("NAME HEX-SECRET"));
    CHECK_THAT(parse_error("\nlab 00 11\n"), Catch::Contains("line 2"));
    CHECK_THAT(parse_error("la/b 000102030405060708090a0b0c0d0e0f\n"), Catch::Contains("key name"));
    CHECK_THAT(parse_error("lab 000102030405060708090a0b0c0d0e0\n"), Catch::Contains("even number of hex"));
    CHECK_THAT(parse_error("lab 00010203040506070809zz0b0c0d0e0f\n"), Catch::Contains("hex"));
    CHECK_THAT(parse_error("lab 000102030405060708090a0b0c0d0e\n"),
               Catch::Contains("15 bytes") && Catch::Contains("openssl rand -hex 32"));
    CHECK_THAT(parse_error("lab " + std::string(130, 'a') + "\n"), Catch::Contains("65 bytes"));
    CHECK_THAT(parse_error("a 000102030405060708090a0b0c0d0e0f\na 000102030405060708090a0b0c0d0e0f\n"),
               Catch::Contains("line 2") && Catch::Contains("twice"));
    CHECK_THAT(parse_error("# nothing here\n\n"), Catch::Contains("no key"));
    CHECK_FALSE(Catch::Contains("0102030405").match(parse_error("lab 000102030405060708090a0b0c0d0e\n")));
}

TEST_CASE("key names", "[auth]") {
    CHECK(auth::valid_key_name("a"));
    CHECK(auth::valid_key_name(std::string(64, 'k')));
    CHECK_FALSE(auth::valid_key_name(""));
    CHECK_FALSE(auth::valid_key_name(std::string(65, 'k')));
    CHECK_FALSE(auth::valid_key_name("a b"));
    CHECK_FALSE(auth::valid_key_name("ключ"));
}
