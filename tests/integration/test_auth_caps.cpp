// Authentication with pre-shared keys and the server's per-test caps, end to end with the real binaries.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "common/auth.hpp"
#include "common/protocol.hpp"
#include "tests/integration/client_json.hpp"
#include "tests/support/temp_dir.hpp"

using namespace speed::testing;
namespace proto = speed::proto;
namespace auth = speed::auth;

namespace {

constexpr int kExitStartupFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRefused = 4;

constexpr const char* kLabSecret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char* kOpsSecret = "ffeeddccbbaa99887766554433221100";

std::string key_line(const char* name, const char* secret) {
    return std::string(name) + " " + secret + "\n";
}

std::vector<std::string> quick_test(std::uint16_t port) {
    return {"127.0.0.1", "-p", std::to_string(port), "-t", "0.5", "--pings", "2", "-J"};
}

// Stops the server once it has logged the end of the session: the client may exit before the server has read
// its close, and a server stopped then logs the session as aborted.
void stop_after_session_end(server_process& server) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (server.log().find(" ended after ") == std::string::npos &&
           std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    server.stop();
}

auth::key lab_key() {
    std::vector<std::uint8_t> secret(32);
    for (std::size_t i = 0; i < secret.size(); ++i) {
        secret[i] = static_cast<std::uint8_t>(i);  // kLabSecret
    }
    return auth::key("lab", secret);
}

// One TCP connection of the fake server, frames with a deadline of a few seconds.
class fake_connection {
  public:
    explicit fake_connection(int fd) : fd_(fd) {}
    ~fake_connection() { ::close(fd_); }
    fake_connection(const fake_connection&) = delete;
    fake_connection& operator=(const fake_connection&) = delete;

    proto::message read() {
        std::vector<std::uint8_t> frame(proto::kFrameHeaderSize);
        read_exactly(frame.data(), frame.size());
        auto decoded = proto::decode_frame(frame);
        if (decoded.status == proto::decode_status::need_more) {
            const std::size_t have = frame.size();
            frame.resize(decoded.bytes_needed);
            read_exactly(frame.data() + have, frame.size() - have);
            decoded = proto::decode_frame(frame);
        }
        if (decoded.status != proto::decode_status::ok) {
            throw std::runtime_error("fake server: bad frame: " + decoded.reason);
        }
        return decoded.msg;
    }
    template <class T>
    T expect() {
        auto msg = read();
        if (auto* value = std::get_if<T>(&msg)) {
            return *value;
        }
        throw std::runtime_error("fake server: unexpected " +
                                 std::string(proto::name_of(proto::type_of(msg))));
    }
    void write(const proto::message& msg) { write_bytes(proto::encode(msg)); }
    void write_bytes(const std::vector<std::uint8_t>& bytes) {
        if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
            throw std::runtime_error("fake server: send failed");
        }
    }
    // Reads until the client closes (or a few seconds pass); the frames it sent, ERRORs included.
    std::vector<proto::message> drain() {
        std::vector<proto::message> frames;
        try {
            for (;;) {
                frames.push_back(read());
            }
        } catch (const std::exception&) {
        }
        return frames;
    }

  private:
    void read_exactly(std::uint8_t* out, std::size_t size) {
        std::size_t got = 0;
        while (got < size) {
            pollfd ready{fd_, POLLIN, 0};
            if (::poll(&ready, 1, 5000) != 1) {
                throw std::runtime_error("fake server: timed out");
            }
            const ssize_t n = ::recv(fd_, out + got, size - got, 0);
            if (n <= 0) {
                throw std::runtime_error("fake server: the client closed");
            }
            got += static_cast<std::size_t>(n);
        }
    }
    int fd_;
};

// A test-made server on 127.0.0.1 (port 0) that plays `script` on a thread: a server that is not speedsrv, to
// see what speedcli does with answers a real server never gives.
class fake_server {
  public:
    using script = std::function<void(fake_server&, fake_connection&)>;
    explicit fake_server(script play) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
            ::listen(listener_, 8) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            throw std::runtime_error("fake server: cannot listen");
        }
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this, play = std::move(play)] {
            try {
                fake_connection control(accept());
                play(*this, control);
            } catch (const std::exception& e) {
                failure_ = e.what();
            }
        });
    }
    ~fake_server() {
        finish();
        ::close(listener_);
    }
    fake_server(const fake_server&) = delete;
    fake_server& operator=(const fake_server&) = delete;

    std::uint16_t port() const { return port_; }
    // The next connection (a data connection of a test), within a few seconds.
    int accept() {
        pollfd ready{listener_, POLLIN, 0};
        if (::poll(&ready, 1, 10'000) != 1) {
            throw std::runtime_error("fake server: no connection");
        }
        return ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    // What went wrong in the script, "" if nothing. Waits for the script to end first: after the client has
    // exited the script may still be reading its last frames (and filling client_frames), so reading either
    // without the join raced with it (a test saw client_frames empty once under load).
    const std::string& failure() {
        finish();
        return failure_;
    }
    // The frames the client sent last, as the script recorded them; read after failure().
    std::vector<proto::message> client_frames;

  private:
    void finish() {
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::string failure_;
};

bool has_error(const std::vector<proto::message>& frames, proto::error_code code) {
    for (const auto& msg : frames) {
        if (const auto* e = std::get_if<proto::error>(&msg); e != nullptr && e->code == code) {
            return true;
        }
    }
    return false;
}

// The server's side of an honest authentication with `key`; returns the session's nonces.
auth::session_nonces fake_authenticate(fake_connection& control, const auth::key& key) {
    control.expect<proto::hello>();
    proto::welcome welcome;
    welcome.software = "fake";
    welcome.max_streams = 4;
    welcome.max_duration_ms = 60'000;
    welcome.auth_required = true;
    const auto welcome_frame = proto::encode(welcome);
    control.write_bytes(welcome_frame);
    auth::session_nonces nonces;
    nonces.server.fill(0x5e);
    control.write(proto::auth_challenge{nonces.server});
    const auto response = control.expect<proto::auth_response>();
    nonces.client = response.client_nonce;
    control.write(proto::auth_ok{auth::server_proof(key, nonces, welcome_frame)});
    return nonces;
}

std::vector<std::string> client_args(std::uint16_t port, const std::string& key_file) {
    return {"127.0.0.1",
            "-p",
            std::to_string(port),
            "-t",
            "0.5",
            "--pings",
            "0",
            "--loaded-ping-interval",
            "0",
            "--no-download",
            "--auth-key",
            key_file,
            "-J"};
}

}  // namespace

TEST_CASE("authentication: the right key passes, a wrong or missing one is refused on both sides",
          "[integration][auth]") {
    temp_dir dir;
    const auto server_keys = dir.file("keys", key_line("lab", kLabSecret) + key_line("ops", kOpsSecret));
    server_process server({"--auth-keys", server_keys});
    CHECK_THAT(server.log(), Catch::Contains("authentication required, 2 keys"));

    SECTION("the right key, chosen by name from a file of several") {
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--auth-key", server_keys, "--auth-key-name", "ops"});
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == 0);
        CHECK(run.json["download"]["bits_per_second"].get<double>() > 0);
        CHECK(run.json["upload"]["bits_per_second"].get<double>() > 0);
        // SELF_PROBE_MARKs are reports: each came with its REPORT_AUTH, in sequence with the other reports
        // (about 5 probes in the 0.5 s test).
        CHECK(run.json["download"]["latency"]["self_probes"]["samples"].get<int>() > 0);
        // The upload's come in SELF_PROBE_SAMPLES, a report too, before RECEIVER_REPORT.
        CHECK(run.json["upload"]["latency"]["self_probes"]["samples"].get<int>() > 0);
        stop_after_session_end(server);
        CHECK_THAT(server.log(), Catch::Contains("key ops, ok"));
    }
    SECTION("the right key with --bidir: the second session authenticates too") {
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--bidir", "--auth-key", server_keys, "--auth-key-name", "ops"});
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == 0);
        CHECK(run.json["download"]["bits_per_second"].get<double>() > 0);
        CHECK(run.json["upload"]["bits_per_second"].get<double>() > 0);
        CHECK(run.json["bidirectional"].is_object());
        // Both sessions proved the key (each logs it when it ends).
        const auto both_ended = [&server] {
            const std::string log = server.log();
            const auto first = log.find("key ops, ok");
            return first != std::string::npos && log.find("key ops, ok", first + 1) != std::string::npos;
        };
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!both_ended() && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        INFO(server.log());
        CHECK(both_ended());
    }
    SECTION("the right key for a UDP test: every UDP request carries its tag too") {
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--udp", "-b", "20M", "--auth-key", server_keys, "--auth-key-name", "lab"});
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == 0);
        CHECK(run.json["protocol"] == "udp");
        CHECK(run.json["download"]["bits_per_second"].get<double>() > 0);
        CHECK(run.json["upload"]["bits_per_second"].get<double>() > 0);
        stop_after_session_end(server);
        CHECK_THAT(server.log(), Catch::Contains("key lab, ok"));
    }
    SECTION("a wrong key") {
        const auto wrong = dir.file("wrong", key_line("lab", kOpsSecret));
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--auth-key", wrong});
        const auto run = run_client(args);
        CHECK(run.process.exit_code == kExitRefused);
        REQUIRE(run.json.is_object());
        CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("authentication failed"));
        CHECK(run.json["download"].is_null());
        stop_after_session_end(server);
        CHECK_THAT(server.log(), Catch::Contains("wrong key for key name 'lab'"));
    }
    SECTION("an unknown key name") {
        const auto other = dir.file("other", key_line("mallory", kLabSecret));
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--auth-key", other});
        const auto run = run_client(args);
        CHECK(run.process.exit_code == kExitRefused);
        stop_after_session_end(server);
        CHECK_THAT(server.log(), Catch::Contains("unknown key name 'mallory'"));
    }
    SECTION("no key at all") {
        const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--pings", "2"});
        CHECK(run.process.exit_code == kExitRefused);
        CHECK_THAT(run.process.err,
                   Catch::Contains("requires authentication") && Catch::Contains("--auth-key"));
        stop_after_session_end(server);
        CHECK_THAT(server.log(), Catch::Contains("the client has no key"));
    }
}

TEST_CASE("a client with a key refuses a server that asks for none: no silent downgrade",
          "[integration][auth]") {
    temp_dir dir;
    const auto key_file = dir.file("keys", key_line("lab", kLabSecret));
    SECTION("speedsrv without keys") {
        server_process server;
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--auth-key", key_file});
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == kExitRefused);
        CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("does not ask for authentication"));
        CHECK(run.json["download"].is_null());
    }
    SECTION("a fake server that clears the flag (a man in the middle would)") {
        fake_server server([](fake_server& self, fake_connection& control) {
            control.expect<proto::hello>();
            proto::welcome welcome;
            welcome.max_streams = 4;
            welcome.max_duration_ms = 60'000;
            control.write(welcome);
            self.client_frames = control.drain();
        });
        const auto run = run_client(client_args(server.port(), key_file));
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == kExitRefused);
        CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("does not ask for authentication"));
        REQUIRE(server.failure().empty());
        // Told why, and nothing else: no test request reached the server.
        CHECK(has_error(server.client_frames, proto::error_code::auth_failed));
        CHECK(server.client_frames.size() == 1);
    }
}

TEST_CASE("a server whose AUTH_OK does not prove the key is refused", "[integration][auth]") {
    temp_dir dir;
    const auto key_file = dir.file("keys", key_line("lab", kLabSecret));
    // The proof over a WELCOME other than the one sent (caps altered on the way), then a forged one.
    for (const bool other_welcome : {true, false}) {
        fake_server server([other_welcome](fake_server& self, fake_connection& control) {
            control.expect<proto::hello>();
            proto::welcome welcome;
            welcome.max_streams = 4;
            welcome.max_duration_ms = 60'000;
            welcome.auth_required = true;
            control.write(welcome);
            auth::session_nonces nonces;
            nonces.server.fill(0x5e);
            control.write(proto::auth_challenge{nonces.server});
            nonces.client = control.expect<proto::auth_response>().client_nonce;
            welcome.max_streams = 128;
            proto::auth_ok forged{auth::server_proof(lab_key(), nonces, proto::encode(welcome))};
            if (!other_welcome) {
                forged.server_proof.fill(0x77);
            }
            control.write(forged);
            self.client_frames = control.drain();
        });
        const auto run = run_client(client_args(server.port(), key_file));
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == kExitRefused);
        CHECK_THAT(run.json["error"].get<std::string>(),
                   Catch::Contains("does not prove that it holds the key 'lab'"));
        REQUIRE(server.failure().empty());
        CHECK(has_error(server.client_frames, proto::error_code::auth_failed));
        CHECK(server.client_frames.size() == 1);
    }
}

TEST_CASE("reports on an authenticated session carry the session's tag, and a wrong tag is refused",
          "[integration][auth]") {
    temp_dir dir;
    const auto key_file = dir.file("keys", key_line("lab", kLabSecret));
    constexpr std::uint64_t kReportedBytes = 12'345'678;
    // An upload: the fake server reports an interval (tagged right), then the final RECEIVER_REPORT, whose
    // tag is right or not.
    for (const bool tamper : {false, true}) {
        fake_server server([tamper](fake_server& self, fake_connection& control) {
            const auto key = lab_key();
            auth::report_tagger tags(key, fake_authenticate(control, key));
            const auto tagged = [&tags](const proto::message& report) {
                auto bytes = proto::encode(report);
                proto::encode(proto::report_auth{tags.next(bytes)}, bytes);
                return bytes;
            };
            const auto request = control.expect<proto::test_request>();
            control.expect<proto::test_auth>();
            control.write(proto::test_accept{1, "cubic"});
            fake_connection data(self.accept());
            data.expect<proto::hello>();
            control.write(proto::streams_ready{});
            proto::interval_report interval;
            interval.end_ns = 250'000'000;
            interval.stream_bytes = {kReportedBytes / 2};
            control.write_bytes(tagged(interval));
            control.write(proto::stop{});
            control.expect<proto::sender_report>();
            proto::receiver_report report;
            report.window_ns = request.duration_ms * 1'000'000ULL;
            report.stream_bytes = {kReportedBytes};
            auto final_report = tagged(report);
            if (tamper) {
                final_report.back() ^= 1;  // the tag's last byte
            }
            control.write_bytes(final_report);
            self.client_frames = control.drain();
        });
        const auto run = run_client(client_args(server.port(), key_file));
        INFO(run.process.out << run.process.err);
        REQUIRE(server.failure().empty());
        if (tamper) {
            CHECK(run.process.exit_code == kExitRefused);
            CHECK_THAT(run.json["error"].get<std::string>(),
                       Catch::Contains("RECEIVER_REPORT does not carry the session key's tag"));
            // The final figures were not taken: the upload did not complete, so it reports null.
            CHECK(run.json["upload"].is_null());
            CHECK(has_error(server.client_frames, proto::error_code::auth_failed));
        } else {
            CHECK(run.process.exit_code == 0);
            CHECK(run.json["upload"]["bytes"].get<std::uint64_t>() == kReportedBytes);
        }
    }
}

TEST_CASE("key files must be private and well formed", "[integration][auth]") {
    temp_dir dir;
    const auto open_to_all = dir.file("open", key_line("lab", kLabSecret), 0644);
    std::vector<std::string> argv{speedsrv_path(), "--port", "0", "--auth-keys", open_to_all};
    const auto root = speedsrv_root_args();
    argv.insert(argv.end(), root.begin(), root.end());
    const auto started = run_process(argv, std::chrono::seconds(5));
    CHECK(started.exit_code == kExitStartupFailure);
    CHECK_THAT(started.err, Catch::Contains("mode 0644") && Catch::Contains("chmod 600"));

    auto client = run_client({"127.0.0.1", "--auth-key", open_to_all});
    CHECK(client.process.exit_code == kExitUsage);
    CHECK_THAT(client.process.err, Catch::Contains("chmod 600"));

    const auto short_secret = dir.file("short", "lab 00112233\n");
    client = run_client({"127.0.0.1", "--auth-key", short_secret});
    CHECK(client.process.exit_code == kExitUsage);
    CHECK_THAT(client.process.err, Catch::Contains("line 1") && !Catch::Contains("00112233"));

    const auto two = dir.file("two", key_line("lab", kLabSecret) + key_line("ops", kOpsSecret));
    client = run_client({"127.0.0.1", "--auth-key", two});
    CHECK(client.process.exit_code == kExitUsage);
    CHECK_THAT(client.process.err, Catch::Contains("--auth-key-name"));

    client =
        run_client({"127.0.0.1", "--auth-key", (std::filesystem::path(two).parent_path() / "none").string()});
    CHECK(client.process.exit_code == kExitUsage);
    CHECK_THAT(client.process.err, Catch::Contains("cannot open"));
}

TEST_CASE("a bitrate cap: the server paces downloads, speedcli paces uploads to it", "[integration][caps]") {
    server_process server({"--max-bitrate", "40M"});
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "--pings", "2", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["server"]["max_bitrate"].get<std::uint64_t>() == 40'000'000);
    for (const char* direction : {"download", "upload"}) {
        const double rate = run.json[direction]["bits_per_second"].get<double>();
        CHECK(rate > 20e6);
        CHECK(rate < 40e6 * 1.1);
        CHECK(run.json[direction]["server_cap_bits_per_second"].get<std::uint64_t>() == 40'000'000);
    }
    // Asking for more than the cap is refused at admission, with the reason.
    const auto refused =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-b", "100M", "--pings", "0", "-J"});
    CHECK(refused.process.exit_code == kExitRefused);
    CHECK_THAT(refused.json["error"].get<std::string>(), Catch::Contains("at most 40000000 bit/s"));
}

TEST_CASE("a byte cap: tests fit it, and requests that cannot are refused", "[integration][caps]") {
    server_process server({"--max-bytes", "8M"});
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "--pings", "0", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["server"]["max_bytes"].get<std::uint64_t>() == 8 * 1024 * 1024);
    for (const char* direction : {"download", "upload"}) {
        const auto moved = run.json[direction]["bytes"].get<std::uint64_t>() +
                           run.json[direction]["omitted_bytes"].get<std::uint64_t>();
        CHECK(moved > 4 * 1024 * 1024);
        CHECK(moved <= 8 * 1024 * 1024 * 11 / 10);
        // 8 MiB over the test's 1 s: the rate the cap allows, reported with the figure it bounds.
        CHECK(run.json[direction]["server_cap_bits_per_second"].get<std::uint64_t>() ==
              8ULL * 1024 * 1024 * 8);
    }
    const auto human =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "--pings", "0"});
    CHECK_THAT(human.process.out, Catch::Contains("capped by the server at 8.000 MiB per test"));

    const auto refused = run_client(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "-b", "100M", "--pings", "0", "-J"});
    CHECK(refused.process.exit_code == kExitRefused);
    CHECK_THAT(refused.json["error"].get<std::string>(), Catch::Contains("at most 8.000 MiB per test"));
}

TEST_CASE("tests per session are capped", "[integration][caps]") {
    server_process server({"--max-tests-per-session", "1"});
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "--pings", "0", "-J"});
    CHECK(run.process.exit_code == kExitRefused);
    CHECK(run.json["download"]["bits_per_second"].get<double>() > 0);
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("at most 1 tests per session"));
}
