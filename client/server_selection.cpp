#include "client/server_selection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <exception>

#include "client/connect.hpp"
#include "common/time_units.hpp"
#include "net/clock.hpp"
#include "net/control_channel.hpp"

namespace speed::client {

namespace {

using net::clock;

asio::awaitable<void> time_candidate(const test_options& options, server_candidate& candidate) {
    try {
        const auto endpoints =
            co_await resolve(candidate.address.host, candidate.address.port, options.family);
        const auto wait = units::seconds_to_ns(options.connect_timeout_seconds);
        std::optional<double> fastest;
        for (int round = 0; round < kSelectionRounds; ++round) {
            net::control_channel control(
                co_await connect(endpoints.front(), options.connect_timeout_seconds, options.sockets));
            const proto::hello hello = make_hello(proto::connection_kind::control, {});
            const auto sent = clock::now();
            co_await control.write(hello, sent + wait);
            co_await control.expect<proto::welcome>(sent + wait, "WELCOME");
            const double ms = std::chrono::duration<double, std::milli>(clock::now() - sent).count();
            fastest = fastest ? std::min(*fastest, ms) : ms;
            // Closing now ends the session as a client that is done: the server logs it, nothing more.
        }
        candidate.rtt_ms = fastest;
    } catch (const net::session_error& e) {
        candidate.error = e.from_peer() ? std::string("server: ") + e.what() : std::string(e.what());
    } catch (const std::exception& e) {
        candidate.error = e.what();
    }
}

}  // namespace

server_selection select_server(const test_options& options) {
    server_selection selection;
    for (const auto& address : options.servers) {
        selection.candidates.push_back({address, std::nullopt, {}});
    }
    asio::io_context context(1);
    for (auto& candidate : selection.candidates) {
        // time_candidate catches everything: the handler has nothing left to report.
        asio::co_spawn(context, time_candidate(options, candidate), [](const std::exception_ptr&) {});
    }
    context.run();
    selection.chosen = nearest(selection.candidates);
    return selection;
}

}  // namespace speed::client
