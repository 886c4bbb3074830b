// Authentication with pre-shared keys and the server's per-test caps, end to end with the real binaries.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/integration/client_json.hpp"

using namespace speed::testing;

namespace {

constexpr int kExitStartupFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRefused = 4;

constexpr const char* kLabSecret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char* kOpsSecret = "ffeeddccbbaa99887766554433221100";

// A directory of its own under /tmp, removed with everything in it.
class temp_dir {
  public:
    temp_dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "speedauth.XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    // Writes `text` to `name` with permissions `mode`; returns its path.
    std::string file(const std::string& name, const std::string& text, mode_t mode = 0600) const {
        const auto path = (path_ / name).string();
        std::ofstream(path) << text;
        ::chmod(path.c_str(), mode);
        return path;
    }

  private:
    std::filesystem::path path_;
};

std::string key_line(const char* name, const char* secret) {
    return std::string(name) + " " + secret + "\n";
}

std::vector<std::string> quick_test(std::uint16_t port) {
    return {"127.0.0.1", "-p", std::to_string(port), "-t", "0.5", "--pings", "2", "-J"};
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
        server.stop();
        CHECK_THAT(server.log(), Catch::Contains("key ops, ok"));
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
        server.stop();
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
        server.stop();
        CHECK_THAT(server.log(), Catch::Contains("wrong key for key name 'lab'"));
    }
    SECTION("an unknown key name") {
        const auto other = dir.file("other", key_line("mallory", kLabSecret));
        auto args = quick_test(server.port());
        args.insert(args.end(), {"--auth-key", other});
        const auto run = run_client(args);
        CHECK(run.process.exit_code == kExitRefused);
        server.stop();
        CHECK_THAT(server.log(), Catch::Contains("unknown key name 'mallory'"));
    }
    SECTION("no key at all") {
        const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--pings", "2"});
        CHECK(run.process.exit_code == kExitRefused);
        CHECK_THAT(run.process.err,
                   Catch::Contains("requires authentication") && Catch::Contains("--auth-key"));
        server.stop();
        CHECK_THAT(server.log(), Catch::Contains("the client has no key"));
    }
}

TEST_CASE("a key the server does not ask for is not used", "[integration][auth]") {
    temp_dir dir;
    server_process server;
    auto args = quick_test(server.port());
    args.insert(args.end(), {"--auth-key", dir.file("keys", key_line("lab", kLabSecret))});
    const auto run = run_client(args);
    CHECK(run.process.exit_code == 0);
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
