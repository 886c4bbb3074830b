// State every connection handler of the server shares: configuration, the data-plane pool and the live
// sessions by token. Used only on the control context, so it needs no lock.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <asio/io_context.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "common/protocol.hpp"
#include "net/clock.hpp"
#include "net/io_pool.hpp"
#include "server/admission.hpp"
#include "server/config.hpp"
#include "server/log_limiter.hpp"
#include "server/metrics.hpp"

namespace speed::server {

class session;
class iperf3_session;
class udp_listener;

struct token_hash {
    std::size_t operator()(const proto::session_token& token) const;
};
struct token_equal {
    bool operator()(const proto::session_token& a, const proto::session_token& b) const {
        return proto::tokens_equal(a, b);
    }
};

class session_registry {
  public:
    void add(const proto::session_token& token, const std::shared_ptr<session>& s);
    void remove(const proto::session_token& token);
    std::shared_ptr<session> find(const proto::session_token& token) const;
    std::size_t size() const { return sessions_.size(); }
    // Every live session, for shutdown.
    std::vector<std::shared_ptr<session>> all() const;

  private:
    std::unordered_map<proto::session_token, std::weak_ptr<session>, token_hash, token_equal> sessions_;
};

struct server_context {
    server_context(asio::io_context& control, net::io_pool& pool, server_config cfg)
        : control_context(control), data_pool(pool), config(std::move(cfg)), admission(config.admission) {}

    asio::io_context& control_context;
    net::io_pool& data_pool;
    server_config config;
    session_registry sessions;
    admission_control admission;
    log_limiter logs;
    server_metrics metrics;  // --metrics (server/metrics.hpp); counted whether exposed or not
    // The live iperf3 sessions by cookie (server/iperf3_session.hpp): their data connections name them.
    std::unordered_map<std::string, std::weak_ptr<iperf3_session>> iperf3_sessions;
    udp_listener* udp = nullptr;                // the UDP port of UDP tests; null when UDP is off
    asio::io_context* probe_context = nullptr;  // the probe echo's thread (server/probe_echo.hpp)
    asio::io_context* web_context = nullptr;    // the browser test's thread (server/web_server.hpp)
    bool shutting_down = false;
};

// Logs a line about something a peer did through a rate limiter (server/log_limiter.hpp) of the calling
// thread.
template <class... Args>
void log_limited(log_limiter& logs, log_kind kind, spdlog::level::level_enum level,
                 fmt::format_string<Args...> format, Args&&... args) {
    if (!spdlog::should_log(level)) {
        return;
    }
    std::uint64_t suppressed = 0;
    if (!logs.allow(kind, net::now_ns(), suppressed)) {
        return;
    }
    std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (suppressed > 0) {
        line += fmt::format(" ({} similar message{} suppressed)", suppressed, suppressed == 1 ? "" : "s");
    }
    spdlog::log(level, "{}", line);
}

// The same through the context's rate limiter, on the control thread.
template <class... Args>
void log_limited(server_context& context, log_kind kind, spdlog::level::level_enum level,
                 fmt::format_string<Args...> format, Args&&... args) {
    log_limited(context.logs, kind, level, format, std::forward<Args>(args)...);
}

// A fresh, unguessable session token.
proto::session_token make_session_token();

}  // namespace speed::server
