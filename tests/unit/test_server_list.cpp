// speedcli --servers: the list's two formats and the choice of the nearest (client/server_list.hpp).
#include <catch2/catch.hpp>

#include "client/server_list.hpp"

using namespace speed::client;

namespace {

std::vector<server_address> parsed(std::string_view text) {
    auto list = parse_server_list(text, 5201);
    INFO((list ? std::string() : list.error()));
    REQUIRE(list.has_value());
    return *list;
}

std::string refused(std::string_view text) {
    auto list = parse_server_list(text, 5201);
    REQUIRE_FALSE(list.has_value());
    return list.error();
}

}  // namespace

TEST_CASE("a server list has one host[:port] a line, with comments and IPv6 in brackets", "[unit][servers]") {
    CHECK(parsed("# the fleet\n"
                 "speed1.example.net\n"
                 "\n"
                 "speed2.example.net:5300   # the other rack\n"
                 "  192.0.2.7:7000\r\n"
                 "[2001:db8::1]:5202\n"
                 "[2001:db8::2]\n"
                 "2001:db8::3\n") == std::vector<server_address>{{"speed1.example.net", 5201},
                                                                 {"speed2.example.net", 5300},
                                                                 {"192.0.2.7", 7000},
                                                                 {"2001:db8::1", 5202},
                                                                 {"2001:db8::2", 5201},
                                                                 {"2001:db8::3", 5201}});
    CHECK(refused("a.example\nb.example:0\n") == "line 2: '0' is not a port (1-65535)");
    CHECK(refused("a.example:99999") == "line 1: '99999' is not a port (1-65535)");
    CHECK(refused(":5201") == "line 1: ':5201' names a port but no host");
    CHECK(refused("[2001:db8::1:5201") ==
          "line 1: '[2001:db8::1:5201' opens a [ for an IPv6 address and does not close it");
    CHECK(refused("two names") == "line 1: 'two names' is not one server name");
    CHECK(refused("# only a comment\n\n") == "the list names no server");
}

TEST_CASE("a server list may be a JSON array of strings or objects", "[unit][servers]") {
    CHECK(
        parsed(
            R"(["a.example", "b.example:6000", {"host": "c.example"}, {"host": "d.example", "port": 7}])") ==
        std::vector<server_address>{
            {"a.example", 5201}, {"b.example", 6000}, {"c.example", 5201}, {"d.example", 7}});
    CHECK(parsed("[\n  \"[2001:db8::1]:5202\"\n]") == std::vector<server_address>{{"2001:db8::1", 5202}});
    CHECK(refused("[]") == "the list names no server");
    CHECK(refused(R"(["a.example", 5])") ==
          R"(each server in a JSON list is "host[:port]" or {"host": ..., "port": ...})");
    CHECK(refused(R"([{"host": "a.example", "port": 70000}])") ==
          R"(server a.example: "port" is not a port (1-65535))");
    CHECK(refused(R"(["a.example")") == "a server list that starts with [ must be a JSON array");
}

TEST_CASE("a server list holds at most 64 servers", "[unit][servers]") {
    std::string text;
    for (int i = 0; i < 65; ++i) {
        text += "host" + std::to_string(i) + ".example\n";
    }
    CHECK(refused(text) == "the list names 65 servers; at most 64 are timed");
}

TEST_CASE("the nearest server is the fastest that answered, the first among equals", "[unit][servers]") {
    const auto candidate = [](std::optional<double> rtt) {
        return server_candidate{{"h", 1}, rtt, rtt ? "" : "refused"};
    };
    CHECK(nearest({candidate(3.0), candidate(1.5), candidate(std::nullopt), candidate(1.5)}) ==
          std::size_t{1});
    CHECK(nearest({candidate(std::nullopt), candidate(9.0)}) == std::size_t{1});
    CHECK_FALSE(nearest({candidate(std::nullopt), candidate(std::nullopt)}).has_value());
    CHECK_FALSE(nearest({}).has_value());
}
