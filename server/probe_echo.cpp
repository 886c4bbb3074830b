#include "server/probe_echo.hpp"

#include <spdlog/spdlog.h>

#include "net/socket_options.hpp"

namespace speed::server {

namespace {
// A probe connection that sends nothing for this long is closed.
constexpr auto kProbeIdleTimeout = std::chrono::seconds(30);
}  // namespace

asio::awaitable<void> run_probe_echo(net::control_channel channel) {
    net::set_no_delay(channel.socket().native_handle());
    try {
        for (;;) {
            auto msg = co_await channel.read_unless_closed(net::clock::now() + kProbeIdleTimeout, "a PING");
            if (!msg) {
                co_return;
            }
            const auto* probe = std::get_if<proto::ping>(&*msg);
            if (probe == nullptr) {
                throw net::control_channel::unexpected(*msg, "a PING");
            }
            const proto::pong reply{probe->sequence, probe->client_time_ns};
            co_await channel.write(reply, net::clock::now() + kProbeIdleTimeout);
        }
    } catch (const net::session_error& e) {
        spdlog::debug("probe connection ended: {}", e.what());
    }
}

}  // namespace speed::server
