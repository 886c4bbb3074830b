// Key files and the HMAC-SHA256 tags of authentication. The expected tags were computed independently with
// `openssl dgst -sha256 -mac HMAC -macopt hexkey:...` over the transcripts docs/protocol.md defines.
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

proto::auth_nonce counting_nonce() {
    proto::auth_nonce nonce{};
    for (std::size_t i = 0; i < nonce.size(); ++i) {
        nonce[i] = static_cast<std::uint8_t>(0xa0 + i);
    }
    return nonce;
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
    REQUIRE(std::holds_alternative<std::string>(parsed));
    return std::get<std::string>(parsed);
}

}  // namespace

TEST_CASE("session tag: HMAC-SHA256 over label, nonce and key name", "[auth]") {
    CHECK(auth::session_mac(lab_key(), counting_nonce()) ==
          mac_from_hex("0ceddfb8614f2b4bcd6579f271aadeda822cab3abee489320d3fe868179d3176"));
}

TEST_CASE("test tag: HMAC-SHA256 over label, nonce, sequence and the TEST_REQUEST frame", "[auth]") {
    const auto key = lab_key();
    const auto nonce = counting_nonce();
    const auto request = example_request();
    const auto tag = auth::test_mac(key, nonce, 1, request);
    CHECK(tag == mac_from_hex("e0ba01e11175cb6ba14f6ae3c3ced939134ed23de3e9a573bca4ca4459effbcc"));

    SECTION("another sequence number, request, nonce or key gives another tag") {
        CHECK(auth::test_mac(key, nonce, 2, request) != tag);
        auto longer = request;
        longer.duration_ms += 1;
        CHECK(auth::test_mac(key, nonce, 1, longer) != tag);
        auto other_nonce = nonce;
        other_nonce[31] ^= 1;
        CHECK(auth::test_mac(key, other_nonce, 1, request) != tag);
        CHECK(auth::test_mac(auth::key("lab", std::vector<std::uint8_t>(32, 7)), nonce, 1, request) != tag);
    }
}

TEST_CASE("tags compare by value", "[auth]") {
    const auto a = auth::session_mac(lab_key(), counting_nonce());
    auto b = a;
    CHECK(auth::macs_equal(a, b));
    b[0] ^= 0x80;
    CHECK_FALSE(auth::macs_equal(a, b));
    b = a;
    b[31] ^= 1;
    CHECK_FALSE(auth::macs_equal(a, b));
}

TEST_CASE("a key file with comments, blank lines and several keys", "[auth]") {
    const std::string text =
        "# lab keys\n"
        "\n"
        "lab   000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  # the lab\n"
        "\tops-2.b_x\tFFEEDDCCBBAA99887766554433221100\r\n";
    auto parsed = auth::parse_key_file(text);
    REQUIRE(std::holds_alternative<std::vector<auth::key>>(parsed));
    const auto& keys = std::get<std::vector<auth::key>>(parsed);
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
