#include <catch2/catch.hpp>

#include "common/peer_text.hpp"

using speed::escape_for_log;

TEST_CASE("escape_for_log keeps printable ASCII", "[peer_text]") {
    CHECK(escape_for_log("speedcli 0.1.0 (x86_64)") == "speedcli 0.1.0 (x86_64)");
    CHECK(escape_for_log("") == "");
}

TEST_CASE("escape_for_log escapes line breaks, terminal escapes and other bytes", "[peer_text]") {
    CHECK(escape_for_log("a\nb\r\tc") == "a\\x0ab\\x0d\\x09c");
    // ESC [ 3 1 m (red text) and a forged log line.
    CHECK(escape_for_log("\x1b[31mred\n2026-11-29T00:00:00 info forged") ==
          "\\x1b[31mred\\x0a2026-11-29T00:00:00 info forged");
    CHECK(escape_for_log(std::string("nul\0end", 7)) == "nul\\x00end");
    CHECK(escape_for_log("\x7f\x80\xff") == "\\x7f\\x80\\xff");
    // UTF-8 is shown byte by byte: "é" is c3 a9.
    CHECK(escape_for_log("caf\xc3\xa9") == "caf\\xc3\\xa9");
}

TEST_CASE("escape_for_log doubles backslashes so escapes cannot be forged", "[peer_text]") {
    CHECK(escape_for_log("\\x0a") == "\\\\x0a");
    CHECK(escape_for_log("a\\b") == "a\\\\b");
}
