// Error paths: each gives one clear line (or the JSON error field) and a documented exit code.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "common/protocol.hpp"
#include "tests/integration/client_json.hpp"

using namespace speed::testing;

namespace {

constexpr int kExitTestFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitRefused = 4;

// A listening socket on 127.0.0.1 whose port nothing else uses.
struct listener {
    listener() {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
        ::listen(fd, 16);
        socklen_t length = sizeof address;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        port = ntohs(address.sin_port);
    }
    ~listener() { ::close(fd); }
    int fd = -1;
    std::uint16_t port = 0;
};

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    return fd;
}

void send_all(int fd, const std::vector<std::uint8_t>& bytes) {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Reads one frame (with a 5 s limit) and decodes it.
speed::proto::decode_result read_frame(int fd) {
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::vector<std::uint8_t> buffer;
    for (;;) {
        auto result = speed::proto::decode_frame(buffer);
        if (result.status != speed::proto::decode_status::need_more) {
            return result;
        }
        std::uint8_t byte = 0;
        if (::recv(fd, &byte, 1, 0) != 1) {
            return result;
        }
        buffer.push_back(byte);
    }
}

// A HELLO from a hypothetical protocol version 99: magic, version, and bytes this version cannot know.
std::vector<std::uint8_t> from_hex_hello_v99() {
    return {0x01, 0x00, 0x00, 0x00, 0x0a, 0x53, 0x50, 0x44, 0x54, 0x00, 0x63, 0xff, 0xff, 0xff, 0xff};
}

}  // namespace

TEST_CASE("a closed port: unreachable, with the error in the JSON", "[integration][errors]") {
    std::uint16_t port = 0;
    {
        listener closed;  // bound, then closed: nothing listens there now
        port = closed.port;
    }
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(port), "-J"});
    CHECK(run.process.exit_code == kExitUnreachable);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("refused"));
    CHECK(run.json["download"].is_null());
    CHECK(run.json.contains("latency"));

    const auto human = run_client({"127.0.0.1", "-p", std::to_string(port)});
    CHECK(human.process.exit_code == kExitUnreachable);
    CHECK_THAT(human.process.err, Catch::StartsWith("speedcli: error: cannot connect"));
}

TEST_CASE("an unresolvable name", "[integration][errors]") {
    const auto run = run_client({"no-such-host.invalid", "-J"}, std::chrono::seconds(30));
    CHECK(run.process.exit_code == kExitUnreachable);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("cannot resolve"));
}

TEST_CASE("a server that answers with garbage", "[integration][errors]") {
    listener garbage;
    std::thread server([&garbage] {
        const int client = ::accept(garbage.fd, nullptr, nullptr);
        const std::string junk = "HTTP/1.1 400 Bad Request\r\n\r\n";
        ::send(client, junk.data(), junk.size(), MSG_NOSIGNAL);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        ::close(client);
    });
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(garbage.port), "-J"}, std::chrono::seconds(20));
    server.join();
    CHECK(run.process.exit_code == kExitTestFailed);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("malformed"));
}

TEST_CASE("a server that accepts and then says nothing is not reached: the client gives up",
          "[integration][errors]") {
    listener silent;
    const auto started = std::chrono::steady_clock::now();
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(silent.port), "--connect-timeout", "1", "-J"},
                   std::chrono::seconds(30));
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(run.process.exit_code == kExitUnreachable);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(),
               Catch::Contains("no speedsrv answered") && Catch::Contains("within 1 s"));
    // The WELCOME wait is the connect timeout (1 s here), not a fixed 10 s; the rest is process start-up.
    CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("requests beyond the server's caps are refused with the reason", "[integration][errors]") {
    server_process server({"--max-streams", "2"});
    const auto started = std::chrono::steady_clock::now();
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-P", "4", "-J"});
    // Refused after the idle latency phase: the open probe connection must not keep speedcli waiting.
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    CHECK(run.process.exit_code == kExitRefused);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("at most 2"));
}

TEST_CASE("a direction the server cuts short is null in the report, not 0 bit/s", "[integration][errors]") {
    // The session ends 1 s into a 3 s download: that download has no window figures to report.
    server_process server({"--max-session-time", "1"});
    const std::vector<std::string> args{
        "127.0.0.1", "-p", std::to_string(server.port()), "-t", "3", "-O", "0", "--pings", "0"};
    auto json_args = args;
    json_args.push_back("-J");
    const auto run = run_client(json_args);
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == kExitTestFailed);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("--max-session-time"));
    CHECK(run.json["download"].is_null());
    CHECK(run.json["upload"].is_null());

    std::vector<std::string> text_argv{speedcli_path()};
    text_argv.insert(text_argv.end(), args.begin(), args.end());
    const auto text = run_process(text_argv, std::chrono::seconds(30));
    INFO(text.out << text.err);
    CHECK(text.exit_code == kExitTestFailed);
    CHECK(text.out.find("Summary") == std::string::npos);  // nothing completed, so nothing to sum up
    CHECK_THAT(text.err, Catch::Contains("--max-session-time"));
}

// The server's ERROR in the middle of a download arrives while the client measures and relays self probe
// marks side by side; the measurement's cancellation must not replace it (it used to show as "multiple
// exceptions").
TEST_CASE("a server's ERROR during a download reaches the user with its text", "[integration][errors]") {
    // 1 MB of budget: the download goes over it within a fraction of a second on loopback.
    server_process server({"--max-bytes", "1M"});
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "3", "--no-upload", "--pings", "0", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.json.is_object());
    const auto error = run.json["error"].get<std::string>();
    // The bug this guards against: "multiple exceptions" instead of any reason.
    CHECK(error.find("multiple exceptions") == std::string::npos);
    // At the byte cap the server reports limit_exceeded before it closes the data connections, so the
    // client shows the server's reason (a refusal, exit 4), never a lost data connection.
    CHECK(run.process.exit_code == kExitRefused);
    CHECK_THAT(error, Catch::Contains("server: the data arrived faster than") ||
                          Catch::Contains("server: the test moved more than"));
}

TEST_CASE("a server at its session limit says it is busy", "[integration][errors]") {
    server_process server({"--max-sessions", "1"});
    const int holder = connect_to(server.port());
    speed::proto::hello hello;
    send_all(holder, speed::proto::encode(hello));
    REQUIRE(read_frame(holder).status ==
            speed::proto::decode_status::ok);  // WELCOME: the one session is held

    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-J"});
    CHECK(run.process.exit_code == kExitRefused);
    REQUIRE(run.json.is_object());
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("busy"));
    ::close(holder);
}

TEST_CASE("the server answers another protocol version with a clear error", "[integration][errors]") {
    server_process server;
    const int fd = connect_to(server.port());
    send_all(fd, from_hex_hello_v99());
    const auto reply = read_frame(fd);
    REQUIRE(reply.status == speed::proto::decode_status::ok);
    REQUIRE(std::holds_alternative<speed::proto::error>(reply.msg));
    const auto& error = std::get<speed::proto::error>(reply.msg);
    CHECK(error.code == speed::proto::error_code::version_mismatch);
    CHECK_THAT(error.message, Catch::Contains("version " + std::to_string(speed::proto::kProtocolVersion)) &&
                                  Catch::Contains("version 99"));
    ::close(fd);
}

TEST_CASE("malformed input ends one session, never the server", "[integration][errors]") {
    server_process server;
    for (const auto& junk : {std::string("GET / HTTP/1.1\r\n\r\n"), std::string("\x01\xff\xff\xff\xff", 5),
                             std::string("\x7f\x00\x00\x00\x00", 5)}) {
        const int fd = connect_to(server.port());
        send_all(fd, std::vector<std::uint8_t>(junk.begin(), junk.end()));
        const auto reply = read_frame(fd);
        if (reply.status == speed::proto::decode_status::ok) {
            CHECK(std::holds_alternative<speed::proto::error>(reply.msg));
        }
        ::close(fd);
    }
    CHECK(server.running());
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "-J"});
    CHECK(run.process.exit_code == 0);
    CHECK_THAT(server.log(), Catch::Contains("dropped during handshake"));
}

TEST_CASE("invalid flags give CLI usage and exit 2", "[integration][errors]") {
    auto run = run_client({"127.0.0.1", "--streams", "0"});
    CHECK(run.process.exit_code == kExitUsage);
    CHECK_THAT(run.process.err, Catch::Contains("--streams"));
    run = run_client({"127.0.0.1", "--bitrate", "fast"});
    CHECK(run.process.exit_code == kExitUsage);
    CHECK_THAT(run.process.err, Catch::Contains("not a rate"));
    run = run_client({"--no-such-flag"});
    CHECK(run.process.exit_code == kExitUsage);
    run = run_client({});
    CHECK(run.process.exit_code == kExitUsage);
    CHECK_THAT(run.process.err, Catch::Contains("HOST is required"));
    CHECK(run.process.out.empty());
    run = run_client({"127.0.0.1", "-4", "-6"});
    CHECK(run.process.exit_code == kExitUsage);
    CHECK_THAT(run.process.err, Catch::Contains("excludes"));
}

TEST_CASE("usage errors with --json still print the one JSON document", "[integration][errors]") {
    // Errors CLI11 finds while parsing, and errors found after it; -J alone or in a cluster of short flags.
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"127.0.0.1", "--streams", "0", "-J"}, "--streams"},
        {{"-J", "--no-such-flag"}, "--no-such-flag"},
        {{"127.0.0.1", "-4J", "-6"}, "excludes"},
        {{"--json"}, "HOST is required"},
        {{"127.0.0.1", "--bitrate", "fast", "--json"}, "not a rate"},
        {{"127.0.0.1", "--interval", "0.05", "-J"}, "--interval"},
    };
    for (const auto& [args, reason] : cases) {
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == kExitUsage);
        REQUIRE(run.json.is_object());
        CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains(reason));
        CHECK(run.json["download"].is_null());
        CHECK_THAT(run.process.err, Catch::Contains(reason));
    }
}

TEST_CASE("help and version flags", "[integration]") {
    for (const auto& binary : {speedcli_path(), speedsrv_path()}) {
        auto help = run_process({binary, "--help"}, std::chrono::seconds(5));
        CHECK(help.exit_code == 0);
        CHECK_THAT(help.out, Catch::Contains("--port"));
        auto version = run_process({binary, "--version"}, std::chrono::seconds(5));
        CHECK(version.exit_code == 0);
        CHECK_THAT(version.out, Catch::Contains(SPEED_VERSION));
    }
}

TEST_CASE("speedsrv: every command-line error exits 2", "[integration][errors]") {
    for (const std::vector<std::string>& args : {std::vector<std::string>{"--bogus"},
                                                 {"--port", "70000"},
                                                 {"--max-streams", "0"},
                                                 {"extra"},
                                                 {"--bind", ""}}) {
        std::vector<std::string> argv{speedsrv_path()};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto run = run_process(argv, std::chrono::seconds(5));
        INFO(args.front() << ": " << run.err);
        CHECK(run.exit_code == kExitUsage);
        CHECK_THAT(run.err, Catch::Contains(args.front()));
    }
}

TEST_CASE("speedsrv stops cleanly on SIGTERM", "[integration]") {
    server_process server;
    CHECK(server.stop() == 0);
    CHECK_THAT(server.log(), Catch::Contains("speedsrv stopped"));
}
