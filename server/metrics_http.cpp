#include "server/metrics_http.hpp"

#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <charconv>
#include <vector>

#include "net/spawn.hpp"

namespace speed::server {

using asio::experimental::as_tuple;
using asio::ip::tcp;

struct metrics_endpoint::state {
    state(asio::io_context& io, std::function<std::string()> render_fn, metrics_endpoint_limits lim)
        : context(io), acceptor(io), render(std::move(render_fn)), limits(lim) {}
    asio::io_context& context;
    tcp::acceptor acceptor;
    std::function<std::string()> render;
    metrics_endpoint_limits limits;
    std::size_t open_connections = 0;
    std::vector<std::weak_ptr<tcp::socket>> sockets;  // to close at shutdown
    bool closed = false;
};

namespace {

std::string_view reason_of(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 431:
            return "Request Header Fields Too Large";
        default:
            return "Error";
    }
}

std::string response(int status, std::string_view content_type, const std::string& body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_of(status)) + "\r\n";
    out += "Content-Type: ";
    out += content_type;
    out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    if (status == 405) {
        out += "Allow: GET\r\n";
    }
    out += "Connection: close\r\n\r\n";
    out += body;
    return out;
}

// Serves one connection: reads one request head (bounded), answers, closes. The deadline timer closes the
// socket if the peer dawdles, which ends the pending read or write.
asio::awaitable<void> serve(std::shared_ptr<metrics_endpoint::state> state,
                            std::shared_ptr<tcp::socket> socket) {
    struct connection_count {
        std::size_t& open;
        ~connection_count() { --open; }
    } count{state->open_connections};
    asio::steady_timer deadline(state->context, state->limits.deadline);
    deadline.async_wait([socket](const asio::error_code& ec) {
        if (!ec) {
            asio::error_code ignored;
            socket->close(ignored);
        }
    });
    std::string received;
    std::array<char, 1024> buffer{};
    http::request_head head;
    for (;;) {
        auto [ec, n] = co_await socket->async_read_some(asio::buffer(buffer), as_tuple(asio::use_awaitable));
        if (ec) {
            deadline.cancel();
            co_return;  // closed by the peer or by the deadline
        }
        received.append(buffer.data(), n);
        head = http::parse_request_head(received, state->limits.request);
        if (head.state != http::request_head::verdict::incomplete) {
            break;
        }
    }
    int status = 400;
    std::string body;
    switch (head.state) {
        case http::request_head::verdict::complete:
            status = http::status_for(head, "/metrics");
            body = status == 200 ? state->render() : std::string(reason_of(status)) + "\n";
            break;
        case http::request_head::verdict::too_large:
            status = 431;
            body = "request head too large\n";
            break;
        default:
            body = "bad request\n";
            break;
    }
    const std::string answer =
        response(status, status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain", body);
    co_await asio::async_write(*socket, asio::buffer(answer), as_tuple(asio::use_awaitable));
    deadline.cancel();
    asio::error_code ignored;
    socket->shutdown(tcp::socket::shutdown_both, ignored);
    socket->close(ignored);
}

asio::awaitable<void> accept_scrapes(std::shared_ptr<metrics_endpoint::state> state) {
    while (!state->closed) {
        auto [ec, accepted] = co_await state->acceptor.async_accept(as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !state->acceptor.is_open()) {
                co_return;
            }
            asio::steady_timer pause(state->context, std::chrono::milliseconds(50));
            co_await pause.async_wait(as_tuple(asio::use_awaitable));
            continue;
        }
        if (state->open_connections >= state->limits.max_connections) {
            continue;  // over the cap: `accepted` closes here, unread
        }
        ++state->open_connections;
        auto socket = std::make_shared<tcp::socket>(std::move(accepted));
        std::erase_if(state->sockets, [](const auto& weak) { return weak.expired(); });
        state->sockets.push_back(socket);
        asio::co_spawn(state->context, serve(state, std::move(socket)), net::log_if_failed("metrics scrape"));
    }
}

}  // namespace

result<tcp::endpoint> parse_listen_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
        return failure{"'" + text + "' is not ADDRESS:PORT (for IPv6, [ADDRESS]:PORT)"};
    }
    std::string host = text.substr(0, colon);
    const std::string port_text = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string::npos) {
        return failure{"write an IPv6 address in brackets: [" + host + "]:" + port_text};
    }
    unsigned port = 0;
    const auto parsed = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (parsed.ec != std::errc() || parsed.ptr != port_text.data() + port_text.size() || port > 65535) {
        return failure{"'" + port_text + "' is not a port number (0-65535)"};
    }
    asio::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) {
        return failure{"'" + host + "' is not an IP address"};
    }
    return tcp::endpoint(address, static_cast<std::uint16_t>(port));
}

metrics_endpoint::metrics_endpoint(asio::io_context& context, std::function<std::string()> render,
                                   metrics_endpoint_limits limits)
    : state_(std::make_shared<state>(context, std::move(render), limits)) {}

metrics_endpoint::~metrics_endpoint() {
    close();
}

void metrics_endpoint::listen(const tcp::endpoint& endpoint) {
    state_->acceptor.open(endpoint.protocol());
    state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    state_->acceptor.bind(endpoint);
    state_->acceptor.listen(static_cast<int>(state_->limits.max_connections * 4));
    asio::co_spawn(state_->context, accept_scrapes(state_), net::log_if_failed("metrics endpoint"));
}

tcp::endpoint metrics_endpoint::local_endpoint() const {
    return state_->acceptor.local_endpoint();
}

void metrics_endpoint::close() {
    state_->closed = true;
    asio::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& weak : state_->sockets) {
        if (auto socket = weak.lock()) {
            socket->close(ignored);
        }
    }
    state_->sockets.clear();
}

}  // namespace speed::server
