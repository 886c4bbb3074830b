#include "server/udp_listener.hpp"

#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cstring>
#include <functional>
#include <optional>
#include <span>

#include "common/udp_handshake.hpp"
#include "common/udp_wire.hpp"
#include "net/socket_options.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"

namespace speed::server {

using asio::experimental::as_tuple;

namespace {
// Drops are summed up in one log line at most this often, so a flood cannot flood the log.
constexpr std::chrono::seconds kDropLogInterval{10};
// Receive batches before the read loop lets the listener's other work (closing, other sockets) run.
constexpr int kBatchesBeforeYield = 16;
}  // namespace

asio::ip::address unmapped(const asio::ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    return address;
}

udp_listener::udp_listener(asio::io_context& control)
    : control_(control), work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}

udp_listener::~udp_listener() {
    close();
}

namespace {

asio::awaitable<void> read_loop(
    std::shared_ptr<asio::ip::udp::socket> socket,
    std::function<void(std::span<const std::uint8_t>, const asio::ip::udp::endpoint&)> handle) {
    auto batch = std::make_unique<net::sourced_batch_receiver>();
    asio::ip::udp::endpoint source;
    for (int batches = 1;; ++batches) {
        std::error_code error;
        const std::size_t received = batch->receive(socket->native_handle(), error);
        if (!socket->is_open()) {
            co_return;
        }
        if (error || received == 0) {
            // Nothing queued (or an error for something we never sent: ignored): wait for more.
            auto [ec] =
                co_await socket->async_wait(asio::socket_base::wait_read, as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;  // closed
            }
            continue;
        }
        batch->for_each([&](std::span<const std::uint8_t> datagram, const sockaddr* from, socklen_t length) {
            if (length > source.capacity()) {
                return;
            }
            std::memcpy(source.data(), from, length);
            source.resize(length);
            handle(datagram, source);
        });
        if (batches % kBatchesBeforeYield == 0) {
            co_await asio::post(socket->get_executor(), asio::use_awaitable);
        }
    }
}

}  // namespace

void udp_listener::listen(const asio::ip::udp::endpoint& endpoint) {
    auto entry = std::make_shared<asio::ip::udp::socket>(io_);
    auto& socket = *entry;
    socket.open(endpoint.protocol());
    if (auto ec = net::set_reuse_port(socket.native_handle())) {
        throw std::system_error(ec, "SO_REUSEPORT");
    }
    if (endpoint.protocol() == asio::ip::udp::v6()) {
        // The wildcard serves IPv4-mapped clients too, as the TCP listener does.
        socket.set_option(asio::ip::v6_only(!endpoint.address().is_unspecified()));
    }
    socket.bind(endpoint);
    port_ = socket.local_endpoint().port();
    sockets_.push_back(entry);
    asio::co_spawn(io_,
                   read_loop(std::move(entry),
                             [this](std::span<const std::uint8_t> datagram,
                                    const asio::ip::udp::endpoint& source) { handle(datagram, source); }),
                   net::log_if_failed("udp listener"));
}

void udp_listener::close() {
    if (!thread_.joinable()) {
        return;
    }
    // The sockets belong to the listener's thread: closed there, between two batches.
    asio::post(io_, [this] {
        for (auto& entry : sockets_) {
            asio::error_code ignored;
            entry->close(ignored);
        }
    });
    work_.reset();
    thread_.join();
    std::lock_guard lock(mutex_);
    handlers_.clear();
    iperf3_waiting_.clear();
}

void udp_listener::add(std::uint64_t token, std::weak_ptr<udp_hello_handler> handler) {
    std::lock_guard lock(mutex_);
    handlers_[token] = std::move(handler);
}

void udp_listener::remove(std::uint64_t token) {
    std::lock_guard lock(mutex_);
    handlers_.erase(token);
}

void udp_listener::add_iperf3(const std::shared_ptr<iperf3_connect_handler>& handler) {
    std::lock_guard lock(mutex_);
    iperf3_waiting_.emplace_back(handler.get(), handler);
}

bool udp_listener::iperf3_waiting_from(const asio::ip::address& address) const {
    const auto from = unmapped(address);
    std::lock_guard lock(mutex_);
    return std::any_of(iperf3_waiting_.begin(), iperf3_waiting_.end(), [&](const auto& entry) {
        const auto live = entry.second.lock();
        return live && live->control_peer() == from;
    });
}

void udp_listener::remove_iperf3(const iperf3_connect_handler* handler) {
    std::lock_guard lock(mutex_);
    std::erase_if(iperf3_waiting_, [handler](const auto& entry) { return entry.first == handler; });
}

udp_listener::drop_counts udp_listener::drops() const {
    return {drops_.malformed.load(std::memory_order_relaxed),
            drops_.unknown_token.load(std::memory_order_relaxed),
            drops_.wrong_address.load(std::memory_order_relaxed),
            drops_.excess.load(std::memory_order_relaxed)};
}

void udp_listener::handle(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source) {
    std::shared_ptr<udp_hello_handler> handler;
    std::shared_ptr<iperf3_connect_handler> iperf3_handler;
    const auto verdict = udp::judge_listener_datagram(
        datagram,
        [&](std::uint64_t token) {
            {
                std::lock_guard lock(mutex_);
                auto it = handlers_.find(token);
                if (it != handlers_.end()) {
                    handler = it->second.lock();
                }
            }
            std::optional<udp::hello_owner> owner;
            if (handler) {
                // Only this thread adds to hellos_passed.
                owner = udp::hello_owner{unmapped(source.address()) == handler->control_peer(),
                                         handler->hellos_passed.load(std::memory_order_relaxed)};
            }
            return owner;
        },
        [&] {
            // The first session from this address with a stream still to come; several from one address (one
            // host running two iperf3 clients at once) take the connects in the order they registered.
            const auto from = unmapped(source.address());
            std::optional<udp::iperf3_connect_owner> owner;
            std::lock_guard lock(mutex_);
            for (const auto& entry : iperf3_waiting_) {
                auto live = entry.second.lock();
                if (!live || live->control_peer() != from) {
                    continue;
                }
                const udp::iperf3_connect_owner candidate{
                    live->streams(), live->connects_passed.load(std::memory_order_relaxed)};
                if (!owner || candidate.connects_passed < candidate.streams) {
                    owner = candidate;
                    iperf3_handler = std::move(live);
                }
                if (candidate.connects_passed < candidate.streams) {
                    break;
                }
            }
            return owner;
        });
    if (verdict.iperf3_connect != iperf3::udp_connect::none) {
        pass_iperf3_connect(verdict, iperf3_handler, source);
        return;
    }
    switch (verdict.drop) {
        case udp::hello_drop::none:
            break;
        case udp::hello_drop::malformed:
            if (verdict.hello) {
                spdlog::debug("udp: dropped a HELLO from {}: {} bytes", fmt::streamed(source.address()),
                              datagram.size());
            } else {
                spdlog::debug("udp: dropped a datagram from {}: not a HELLO",
                              fmt::streamed(source.address()));
            }
            drops_.malformed.fetch_add(1, std::memory_order_relaxed);
            note_drop();
            return;
        case udp::hello_drop::unknown_token:
            spdlog::debug("udp: dropped a HELLO from {}: unknown token", fmt::streamed(source.address()));
            drops_.unknown_token.fetch_add(1, std::memory_order_relaxed);
            note_drop();
            return;
        case udp::hello_drop::wrong_address:
            spdlog::debug("udp: dropped a HELLO from {}: its token belongs to a control connection from {}",
                          fmt::streamed(source.address()), fmt::streamed(handler->control_peer()));
            drops_.wrong_address.fetch_add(1, std::memory_order_relaxed);
            handler->wrong_address_hellos.fetch_add(1, std::memory_order_relaxed);
            note_drop();
            return;
        case udp::hello_drop::excess:
            drops_.excess.fetch_add(1, std::memory_order_relaxed);
            note_drop();
            return;
    }
    handler->hellos_passed.fetch_add(1, std::memory_order_relaxed);
    asio::post(control_, [weak = std::weak_ptr<udp_hello_handler>(handler), stream = verdict.hello->stream,
                          source, bytes = datagram.size()] {
        if (auto owner = weak.lock()) {
            owner->on_hello(stream, source, bytes);
        }
    });
}

void udp_listener::pass_iperf3_connect(const udp::hello_verdict& verdict,
                                       const std::shared_ptr<iperf3_connect_handler>& handler,
                                       const asio::ip::udp::endpoint& source) {
    switch (verdict.drop) {
        case udp::hello_drop::none:
            break;
        case udp::hello_drop::excess:
            spdlog::debug("udp: dropped an iperf3 connect from {}: its session has all its streams",
                          fmt::streamed(source.address()));
            drops_.excess.fetch_add(1, std::memory_order_relaxed);
            note_drop();
            return;
        default:
            spdlog::debug(
                "udp: dropped an iperf3 connect from {}: no iperf3 session from there waits for one",
                fmt::streamed(source.address()));
            drops_.unknown_token.fetch_add(1, std::memory_order_relaxed);
            note_drop();
            return;
    }
    handler->connects_passed.fetch_add(1, std::memory_order_relaxed);
    asio::post(control_, [weak = std::weak_ptr<iperf3_connect_handler>(handler), source,
                          greeting = verdict.iperf3_connect] {
        if (auto owner = weak.lock()) {
            owner->on_connect(source, greeting);
        }
    });
}

void udp_listener::note_drop() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log_ < kDropLogInterval) {
        return;
    }
    last_log_ = now;
    const drop_counts now_counts = drops();
    spdlog::info(
        "udp: dropped {} datagrams since the last report ({} malformed or not a HELLO, {} with an unknown "
        "token, {} from an address other than the token's control connection, {} HELLOs beyond {} for one "
        "token)",
        now_counts.total() - logged_.total(), now_counts.malformed - logged_.malformed,
        now_counts.unknown_token - logged_.unknown_token, now_counts.wrong_address - logged_.wrong_address,
        now_counts.excess - logged_.excess, udp::kMaxHellosPerToken);
    logged_ = now_counts;
}

}  // namespace speed::server
