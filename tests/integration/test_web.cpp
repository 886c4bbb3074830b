// speedsrv --http-port: the browser test's HTTP side (docs/protocol.md, "Browser test (HTTP)") against the
// real server: the page's headers, sessions under admission, exact byte counts of downloads and uploads.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"

using namespace speed::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct web_server {
    explicit web_server(std::vector<std::string> extra = {})
        : server([&] {
              extra.insert(extra.end(), {"--http-port", "0"});
              return extra;
          }()) {
        INFO(server.log());
        REQUIRE(server.http_port() != 0);
    }

    http_response call(const std::string& method, const std::string& target, const std::string& body = {},
                       const std::string& headers = {}) {
        return http_request(server.http_port(), method, target, body, headers, 10s);
    }

    // A new session's id (201 required).
    std::string create_session() {
        const auto created = call("POST", "/api/sessions");
        INFO(created.head << "\n" << created.body);
        REQUIRE(created.status == 201);
        return json::parse(created.body).at("session").get<std::string>();
    }

    server_process server;
};

}  // namespace

TEST_CASE("web: speedsrv serves the browser test's page with its CSP and only what is listed", "[web]") {
    web_server web;
    for (const auto& [path, type] :
         std::vector<std::pair<std::string, std::string>>{{"/", "text/html; charset=utf-8"},
                                                          {"/speedtest.js", "text/javascript"},
                                                          {"/speedtest.css", "text/css"},
                                                          {"/chart.min.js", "text/javascript"}}) {
        const auto response = web.call("GET", path);
        INFO(path << "\n" << response.head);
        CHECK(response.status == 200);
        CHECK(header_value(response, "Content-Type") == type);
        CHECK(header_value(response, "Content-Security-Policy") == kCsp);
        CHECK(header_value(response, "X-Content-Type-Options") == "nosniff");
        CHECK(header_value(response, "Referrer-Policy") == "no-referrer");
        CHECK_FALSE(response.body.empty());
    }
    CHECK(web.call("GET", "/").body.find("<html") != std::string::npos);
    CHECK(web.call("GET", "/index.html").status == 404);
    CHECK(web.call("GET", "/api/sessions/0123456789abcdef0123456789abcdef/ping").status == 404);
    CHECK(web.call("GET", "/api/sessions/nothex/ping").status == 404);
    const auto wrong_method = web.call("POST", "/");
    CHECK(wrong_method.status == 405);
    CHECK(header_value(wrong_method, "Allow") == "GET");
    CHECK(web.call("GET", "/api/sessions").status == 405);
}

TEST_CASE("web: a browser test session: download of N bytes, uploads counted exactly, DELETE", "[web]") {
    web_server web({"--max-bytes", "100M"});
    const auto created = web.call("POST", "/api/sessions");
    REQUIRE(created.status == 201);
    CHECK(header_value(created, "Cache-Control") == "no-store");
    CHECK_FALSE(header_value(created, "Access-Control-Allow-Origin"));
    const auto info = json::parse(created.body);
    const std::string id = info.at("session");
    CHECK(id.size() == 32);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(info.at("max_bytes") == 100 * 1024 * 1024);  // 100M: binary units (common/units.hpp)
    CHECK(info.at("upload_chunk_max_bytes") == 1048576);
    CHECK(info.at("download_request_max_bytes") == 67108864);
    CHECK(info.at("interval_seconds") == 0.1);
    CHECK(info.at("server").at("software") == "speedsrv");
    const std::string base = "/api/sessions/" + id;

    CHECK(web.call("GET", base + "/ping").status == 204);
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{32768}, std::size_t{3'000'001}}) {
        const auto download = web.call("GET", base + "/download?bytes=" + std::to_string(n));
        INFO(n << " " << download.head);
        CHECK(download.status == 200);
        CHECK(header_value(download, "Content-Type") == "application/octet-stream");
        CHECK(download.body.size() == n);
    }
    CHECK(web.call("GET", base + "/download?bytes=67108865").status == 400);
    CHECK(web.call("GET", base + "/download").status == 400);

    // Nothing uploaded yet: the figures are empty.
    const auto before = json::parse(web.call("GET", base + "/upload").body);
    CHECK(before.at("bytes_total") == 0);
    CHECK(before.at("intervals").empty());
    std::uint64_t sent = 0;
    const std::vector<std::size_t> bodies{1, 1000, 65536, 1048576, 300000};
    for (const std::size_t size : bodies) {
        const auto upload = web.call("POST", base + "/upload", std::string(size, 'u'),
                                     "Content-Type: application/octet-stream\r\n");
        CHECK(upload.status == 204);
        sent += size;
    }
    const auto figures = web.call("GET", base + "/upload");
    REQUIRE(figures.status == 200);
    CHECK(header_value(figures, "Cache-Control") == "no-store");
    const auto upload = json::parse(figures.body);
    CHECK(upload.at("bytes_total") == sent);
    CHECK(upload.at("bodies") == bodies.size());
    CHECK(upload.at("interval_seconds") == 0.1);
    std::uint64_t binned = 0;
    double previous_end = 0;
    for (const auto& interval : upload.at("intervals")) {
        CHECK(interval.at("start").get<double>() == Approx(previous_end));
        previous_end = interval.at("end").get<double>();
        binned += interval.at("bytes").get<std::uint64_t>();
    }
    CHECK(binned == sent);

    CHECK(web.call("DELETE", base).status == 204);
    CHECK(web.call("GET", base + "/ping").status == 404);
    CHECK(web.call("DELETE", base).status == 404);
    CHECK(log_shows_within(web.server, "web session " + id.substr(0, 8) + " from 127.0.0.1 ended (deleted)"));
}

TEST_CASE("web: browser test sessions take the admission slots of native sessions, and DELETE frees them",
          "[web]") {
    web_server web({"--max-sessions", "1"});
    const std::string first = web.create_session();
    const auto refused = web.call("POST", "/api/sessions");
    CHECK(refused.status == 503);
    CHECK(json::parse(refused.body).contains("error"));
    CHECK(web.call("DELETE", "/api/sessions/" + first).status == 204);
    CHECK(web.call("POST", "/api/sessions").status == 201);
}

TEST_CASE("web: a browser test session is used only from the address that created it", "[web]") {
    // The server listens on every loopback address; the session is made from 127.0.0.1 and named from
    // 127.0.0.2 through a raw request.
    web_server web;
    const std::string id = web.create_session();
    CHECK(web.call("GET", "/api/sessions/" + id + "/ping").status == 204);
    const auto other = http_exchange_from(
        "127.0.0.2", web.server.http_port(),
        "GET /api/sessions/" + id + "/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
    CHECK(other.status == 404);
}

TEST_CASE("web: CORS headers only with --http-cors, and then exactly its origin", "[web]") {
    {
        web_server web;
        const auto preflight = web.call("OPTIONS", "/api/sessions", {}, "Origin: https://example.org\r\n");
        CHECK_FALSE(header_value(preflight, "Access-Control-Allow-Origin"));
        CHECK_FALSE(header_value(web.call("POST", "/api/sessions"), "Access-Control-Allow-Origin"));
    }
    web_server web({"--http-cors", "https://example.org"});
    const auto created = web.call("POST", "/api/sessions", {}, "Origin: https://example.org\r\n");
    CHECK(header_value(created, "Access-Control-Allow-Origin") == "https://example.org");
    const auto preflight = web.call("OPTIONS", "/api/sessions", {}, "Origin: https://example.org\r\n");
    CHECK(preflight.status == 204);
    CHECK(header_value(preflight, "Access-Control-Allow-Origin") == "https://example.org");
    CHECK(header_value(preflight, "Access-Control-Allow-Methods") == "GET, POST, DELETE");
}

TEST_CASE("web: browser test sessions end at their idle timeout and free their slot", "[web]") {
    web_server web({"--max-sessions", "1", "--idle-timeout", "0.5"});
    const std::string id = web.create_session();
    CHECK(
        log_shows_within(web.server, "web session " + id.substr(0, 8) + " from 127.0.0.1 ended (idle)", 3s));
    CHECK(web.call("GET", "/api/sessions/" + id + "/ping").status == 404);
    CHECK(web.call("POST", "/api/sessions").status == 201);
}
