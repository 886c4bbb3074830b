#include "net/control_channel.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace speed::net {

using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;

namespace {
constexpr auto kQuietErrorTimeout = std::chrono::seconds(1);
}

// Both sides of || complete without throwing (as_tuple), so whichever finishes first wins and cancels the
// other: an EOF does not wait for the timer.
asio::awaitable<std::error_code> read_exactly(asio::ip::tcp::socket& socket, asio::mutable_buffer buffer,
                                              clock::time_point deadline) {
    asio::steady_timer timer(socket.get_executor(), deadline);
    auto result = co_await (asio::async_read(socket, buffer, as_tuple(asio::use_awaitable)) ||
                            timer.async_wait(as_tuple(asio::use_awaitable)));
    if (result.index() == 0) {
        co_return std::get<0>(std::get<0>(result));
    }
    co_return asio::error::timed_out;
}

asio::awaitable<std::error_code> write_all(asio::ip::tcp::socket& socket, asio::const_buffer buffer,
                                           clock::time_point deadline) {
    asio::steady_timer timer(socket.get_executor(), deadline);
    auto result = co_await (asio::async_write(socket, buffer, as_tuple(asio::use_awaitable)) ||
                            timer.async_wait(as_tuple(asio::use_awaitable)));
    if (result.index() == 0) {
        co_return std::get<0>(std::get<0>(result));
    }
    co_return asio::error::timed_out;
}

namespace {

session_error io_failure(const std::error_code& ec, std::string_view waiting_for) {
    if (ec == asio::error::timed_out) {
        return session_error(proto::error_code::timeout, "timed out waiting for " + std::string(waiting_for));
    }
    if (ec == asio::error::eof) {
        return session_error(
            proto::error_code::protocol_error,
            "the peer closed the connection while we waited for " + std::string(waiting_for));
    }
    return session_error(
        proto::error_code::protocol_error,
        "connection failed while waiting for " + std::string(waiting_for) + ": " + ec.message());
}

}  // namespace

asio::awaitable<proto::message> control_channel::read(clock::time_point deadline,
                                                      std::string_view waiting_for,
                                                      std::uint32_t max_payload) {
    auto msg = co_await read_unless_closed(deadline, waiting_for, max_payload);
    if (!msg) {
        throw io_failure(asio::error::eof, waiting_for);
    }
    co_return std::move(*msg);
}

asio::awaitable<std::optional<proto::message>> control_channel::read_unless_closed(
    clock::time_point deadline, std::string_view waiting_for, std::uint32_t max_payload) {
    auto msg = co_await read_frame(deadline, waiting_for, max_payload);
    if (msg && read_tags_ && proto::is_report(proto::type_of(*msg))) {
        co_await check_report_tag(*msg, deadline);
    }
    co_return msg;
}

asio::awaitable<void> control_channel::check_report_tag(const proto::message& report,
                                                        clock::time_point deadline) {
    const std::string report_name(proto::name_of(proto::type_of(report)));
    const proto::auth_mac expected = read_tags_->next(last_frame());
    const std::string waiting_for = "the REPORT_AUTH of the " + report_name;
    auto tag = co_await read_frame(deadline, waiting_for, proto::kMaxFramePayload);
    if (!tag) {
        throw io_failure(asio::error::eof, waiting_for);
    }
    const auto* report_tag = std::get_if<proto::report_auth>(&*tag);
    if (report_tag == nullptr) {
        throw unexpected(*tag, waiting_for);
    }
    if (!auth::macs_equal(expected, report_tag->mac)) {
        const std::string reason =
            "the server's " + report_name + " does not carry the session key's tag: its figures are refused";
        co_await send_error_quietly(proto::error_code::auth_failed, reason);
        throw session_error(proto::error_code::auth_failed, reason);
    }
}

asio::awaitable<std::optional<proto::message>> control_channel::read_frame(clock::time_point deadline,
                                                                           std::string_view waiting_for,
                                                                           std::uint32_t max_payload) {
    last_frame_size_ = 0;
    frame_.resize(proto::kFrameHeaderSize);
    // Read the first byte alone so that an EOF before it is a clean close, and an EOF after it a truncation.
    if (auto ec = co_await read_exactly(socket_, asio::buffer(frame_.data(), 1), deadline)) {
        if (ec == asio::error::eof) {
            co_return std::nullopt;
        }
        throw io_failure(ec, waiting_for);
    }
    if (auto ec =
            co_await read_exactly(socket_, asio::buffer(frame_.data() + 1, frame_.size() - 1), deadline)) {
        throw io_failure(ec, waiting_for);
    }
    proto::decode_result decoded = proto::decode_frame(frame_, max_payload);
    if (decoded.status == proto::decode_status::need_more) {
        const std::size_t have = frame_.size();
        frame_.resize(decoded.bytes_needed);  // bounded: the decoder checked the length against max_payload
        auto rest = asio::buffer(frame_.data() + have, frame_.size() - have);
        if (auto ec = co_await read_exactly(socket_, rest, deadline)) {
            throw io_failure(ec, waiting_for);
        }
        decoded = proto::decode_frame(frame_, max_payload);
    }
    if (decoded.status != proto::decode_status::ok) {
        throw session_error(
            proto::error_code::protocol_error,
            "malformed frame while waiting for " + std::string(waiting_for) + ": " + decoded.reason);
    }
    last_frame_size_ = decoded.consumed;
    co_return std::optional<proto::message>(std::move(decoded.msg));
}

asio::awaitable<bool> control_channel::wait_readable(clock::time_point deadline) {
    asio::steady_timer timer(socket_.get_executor(), deadline);
    auto result =
        co_await (socket_.async_wait(asio::ip::tcp::socket::wait_read, as_tuple(asio::use_awaitable)) ||
                  timer.async_wait(as_tuple(asio::use_awaitable)));
    // An error (a closed socket) counts as readable: the read that follows reports it properly.
    co_return result.index() == 0;
}

asio::awaitable<void> control_channel::write(const proto::message& msg, clock::time_point deadline) {
    out_.clear();
    proto::encode(msg, out_);
    if (write_tags_ && proto::is_report(proto::type_of(msg))) {
        // One write for the report and its tag: the reader never sees the report alone for long.
        const proto::report_auth tag{write_tags_->next(out_)};
        proto::encode(tag, out_);
    }
    if (auto ec = co_await write_all(socket_, asio::buffer(out_), deadline)) {
        throw io_failure(ec, "the peer to accept " + std::string(proto::name_of(proto::type_of(msg))));
    }
}

asio::awaitable<void> control_channel::send_error_quietly(proto::error_code code,
                                                          const std::string& message) {
    if (!socket_.is_open()) {
        co_return;
    }
    out_.clear();
    proto::encode(proto::error{code, message}, out_);
    co_await write_all(socket_, asio::buffer(out_), clock::now() + kQuietErrorTimeout);
}

session_error control_channel::unexpected(const proto::message& msg, std::string_view waiting_for) {
    if (const auto* peer_error = std::get_if<proto::error>(&msg)) {
        return session_error(peer_error->code, peer_error->message, true);
    }
    return session_error(proto::error_code::protocol_error,
                         "unexpected " + std::string(proto::name_of(proto::type_of(msg))) +
                             " while waiting for " + std::string(waiting_for));
}

}  // namespace speed::net
