// Frames over a TCP connection, every read and write bounded by a deadline.
//
// The channel never reads past the end of the current frame, so after a HELLO the same socket can be handed
// to the data plane with no buffered bytes left behind.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/auth.hpp"
#include "common/protocol.hpp"
#include "net/clock.hpp"
#include "net/errors.hpp"

namespace speed::net {

// Waits for `socket` to finish reading/writing `buffer` or for `deadline`; returns asio::error::timed_out
// then.
asio::awaitable<std::error_code> read_exactly(asio::ip::tcp::socket& socket, asio::mutable_buffer buffer,
                                              clock::time_point deadline);
asio::awaitable<std::error_code> write_all(asio::ip::tcp::socket& socket, asio::const_buffer buffer,
                                           clock::time_point deadline);

class control_channel {
  public:
    explicit control_channel(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}

    // Reads one frame. Throws session_error on timeout, on a closed or failed connection, and on a malformed
    // frame; `waiting_for` names the phase in those messages ("the test request").
    asio::awaitable<proto::message> read(clock::time_point deadline, std::string_view waiting_for,
                                         std::uint32_t max_payload = proto::kMaxFramePayload);

    // Like read(), but a connection closed cleanly between frames gives nothing instead of an error: the
    // normal end of a session.
    asio::awaitable<std::optional<proto::message>> read_unless_closed(
        clock::time_point deadline, std::string_view waiting_for,
        std::uint32_t max_payload = proto::kMaxFramePayload);

    // Reads one frame that must be a T. An ERROR frame from the peer becomes a session_error carrying its
    // code and text; any other type is a protocol error.
    template <class T>
    asio::awaitable<T> expect(clock::time_point deadline, std::string_view waiting_for,
                              std::uint32_t max_payload = proto::kMaxFramePayload) {
        proto::message msg = co_await read(deadline, waiting_for, max_payload);
        if (auto* value = std::get_if<T>(&msg)) {
            co_return std::move(*value);
        }
        throw unexpected(msg, waiting_for);
    }

    // Waits until the peer has sent something (or closed) without reading it; false once `deadline` passed
    // first. Lets a session watch other things while a frame may arrive, then read it with read().
    asio::awaitable<bool> wait_readable(clock::time_point deadline);

    asio::awaitable<void> write(const proto::message& msg, clock::time_point deadline);
    // GCC 12 destroys a brace-initialized temporary in a co_await expression twice (a double free when it
    // owns memory). Writing `co_await channel.write(proto::stop{...}, ...)` is therefore refused at compile
    // time: name the message first. docs/architecture.md has the details.
    template <class T>
    requires(!std::is_lvalue_reference_v<T>) asio::awaitable<void> write(T&& msg, clock::time_point deadline)
    = delete;

    // Sends an ERROR frame and ignores failures: used on the way out of a session that is already failing.
    asio::awaitable<void> send_error_quietly(proto::error_code code, const std::string& message);

    // On an authenticated session every report (proto::is_report) is followed by its REPORT_AUTH. The server
    // tags the reports it writes from here on; the client checks the ones it reads, and a report whose tag is
    // missing or wrong is a session_error(auth_failed): its figures are never returned.
    void tag_written_reports(auth::report_tagger tagger) { write_tags_.emplace(std::move(tagger)); }
    void check_read_reports(auth::report_tagger tagger) { read_tags_.emplace(std::move(tagger)); }
    bool tags_written_reports() const { return write_tags_.has_value(); }

    // The whole frame (header included) of the last message read, as it came off the wire.
    std::span<const std::uint8_t> last_frame() const { return {frame_.data(), last_frame_size_}; }

    asio::ip::tcp::socket& socket() { return socket_; }
    // Releases the socket (for a connection that turns out to be a data stream).
    asio::ip::tcp::socket release_socket() { return std::move(socket_); }

    // The session_error for an unexpected frame: the peer's ERROR text if it is one.
    static session_error unexpected(const proto::message& msg, std::string_view waiting_for);

  private:
    asio::awaitable<std::optional<proto::message>> read_frame(clock::time_point deadline,
                                                              std::string_view waiting_for,
                                                              std::uint32_t max_payload);
    asio::awaitable<void> check_report_tag(const proto::message& report, clock::time_point deadline);

    asio::ip::tcp::socket socket_;
    std::vector<std::uint8_t> frame_;
    std::size_t last_frame_size_ = 0;
    std::optional<auth::report_tagger> write_tags_;
    std::optional<auth::report_tagger> read_tags_;
    std::vector<std::uint8_t> out_;
};

}  // namespace speed::net
