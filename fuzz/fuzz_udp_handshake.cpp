// libFuzzer harness: the UDP handshake (common/udp_handshake.hpp) as speedsrv runs it, with an attacker who
// picks every datagram. A model server has two live tokens, each with up to four streams, and the shared
// port's listener; the kernel's part is modelled too: a datagram from an address:port that a stream's socket
// is connected to goes to that socket, anything else to the listener. A passed HELLO for a stream not yet
// attached creates it (as server/udp_session.cpp does) on the HELLO's address:port; a stream's socket
// handles what reaches it as net/udp_flow.cpp does. An honest client (net/udp_flow.cpp's client side) sits
// on one address:port and hears what the server sends there.
//
// Input: config (u8: bit 0 = token 1's control connection is from the other host, bits 1-2 = streams - 1),
// a cookie seed (u64), then events, each an op byte: bits 0-2 the kind, bits 3-4 the source address:port
// (bit 4: the other host), bit 5 = the server's answers to the client get lost, bit 6 = (raw) write a live
// token into the datagram.
//   0 raw: length (u16 % 2049), that many bytes
//   1, 5-7 a crafted datagram: selector (u8: bits 0-1 token 0, 1, an unknown one, 0; bits 2-4 the type,
//     6 and 7 invalid; bits 5-6 the cookie: 0, the cookie of stream `value` % 8, `value`, the client's
//     echo), stream (u8), length (u16 % 2049), value (u64), repeat (u8 % 64 + 1 times)
//   2 the client sends its HELLO (token 0, stream 0, its echo cookie), whatever the source bits say
//   3 a HELLO_ACK reaches the client with cookie (u64) (forged with the server's address)
//   4 DATA reaches the client (a download)
// Invariants (FUZZ_CHECK): while a path is not valid the server never sends it more bytes than it received
// from that address:port, nor to an address:port more than it received from there; nothing goes to a host
// other than the token's control connection's; a path becomes valid only on a HELLO carrying its exact
// cookie from its own address:port, and stays valid; the client's echo of the cookie it was sent validates
// its path; no token passes more than kMaxHellosPerToken HELLOs; every datagram at the listener is passed or
// dropped with the reason an independent reading of its bytes gives (iperf3's 4-byte connect: unknown token,
// as no iperf3 session waits here); the client is established only by a confirmation or DATA, and echoes
// only cookies the server's address sent it.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "common/udp_handshake.hpp"
#include "common/udp_wire.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

namespace {

constexpr std::size_t kLiveTokens = 2;
constexpr std::size_t kMaxStreams = 4;
constexpr std::size_t kEndpoints = 4;  // host (0: the control connection's, 1: another) x 2 ports
constexpr std::size_t kClientEndpoint = 0;
constexpr std::array<std::uint64_t, 4> kTokens{0x1111111111111111, 0x2222222222222222, 0x3333333333333333,
                                               0x1111111111111111};
constexpr std::size_t kMaxDatagramBytes = 2048;
// Bounds the work of one input whatever repeat counts it asks for (-timeout=1 under the sanitizers).
constexpr std::size_t kMaxDeliveries = 4096;

std::size_t host_of(std::size_t endpoint) {
    return endpoint / 2;
}

struct stream_model {
    stream_model(std::size_t token, std::size_t stream, std::size_t source, std::uint64_t path_cookie,
                 std::size_t hello_bytes)
        : owner(token),
          index(stream),
          endpoint(source),
          cookie(path_cookie),
          path(path_cookie, hello_bytes),
          received(hello_bytes) {}

    std::size_t owner;
    std::size_t index;
    std::size_t endpoint;
    std::uint64_t cookie;
    udp::server_path path;
    // The harness's own ledger, kept apart from the path's.
    std::uint64_t received;              // bytes this stream's endpoint sent it (the first HELLO included)
    std::uint64_t sent_unvalidated = 0;  // bytes sent to it while the path was not valid
    bool was_established = false;
};

class model {
  public:
    model(std::uint8_t config, std::uint64_t cookie_seed)
        : streams_(std::size_t{(config >> 1) & 3U} + 1), cookie_seed_(cookie_seed) {
        control_host_[1] = config & 1U;
    }

    // A datagram from `endpoint`, routed as the kernel would.
    void deliver(std::span<const std::uint8_t> datagram, std::size_t endpoint, bool lose_answers) {
        received_from_[endpoint] += datagram.size();
        if (stream_model* stream = connected_to(endpoint)) {
            at_stream(*stream, datagram, endpoint, lose_answers);
        } else {
            at_listener(datagram, endpoint, lose_answers);
        }
        check_ledgers();
    }

    void client_hello(bool lose_answers) {
        std::array<std::uint8_t, udp::kHandshakeSize> hello{};
        udp::write_handshake(hello, {udp::datagram_type::hello, 0, kTokens[0], 0, 0}, client_.echo_cookie());
        const std::uint64_t echoed = client_.echo_cookie();
        const auto& stream = streams_of_[0][0];
        // The HELLO that creates the stream (at the listener) validates nothing: its cookie is drawn after.
        const bool existed = stream.has_value();
        deliver(hello, kClientEndpoint, lose_answers);
        // The echo of the cookie the client's own stream sent it validates that stream's path.
        if (existed && echoed != 0 && stream->endpoint == kClientEndpoint && echoed == stream->cookie) {
            FUZZ_CHECK(stream->path.established());
        }
    }

    // A HELLO_ACK or DATA at the client's socket, from the server's address:port (or forged with it).
    void to_client(udp::datagram_type type, std::uint64_t cookie) {
        const bool was_established = client_.established();
        const std::uint64_t echo_before = client_.echo_cookie();
        if (type == udp::datagram_type::data) {
            FUZZ_CHECK(client_.on_data() == !was_established);
        } else {
            // Before the confirmation, a new cookie is echoed at once; once established, nothing changes.
            using effect = udp::client_path::ack_effect;
            const effect expected = was_established         ? effect::none
                                    : cookie == 0           ? effect::established
                                    : cookie != echo_before ? effect::echo_now
                                                            : effect::none;
            FUZZ_CHECK(client_.on_hello_ack(cookie) == expected);
            if (expected == effect::echo_now) {
                FUZZ_CHECK(client_.echo_cookie() == cookie);
            }
        }
        FUZZ_CHECK(client_.established() || !was_established);
        if (client_.echo_cookie() != echo_before) {
            FUZZ_CHECK(type == udp::datagram_type::hello_ack && client_.echo_cookie() == cookie &&
                       cookie != 0);
        }
    }

    std::uint64_t client_echo() const { return client_.echo_cookie(); }
    std::uint64_t cookie_of(std::size_t index) const {
        const auto& stream = streams_of_[(index / kMaxStreams) % kLiveTokens][index % kMaxStreams];
        return stream ? stream->cookie : 0;
    }

  private:
    stream_model* connected_to(std::size_t endpoint) {
        for (auto& token_streams : streams_of_) {
            for (auto& stream : token_streams) {
                if (stream && stream->endpoint == endpoint) {
                    return &*stream;
                }
            }
        }
        return nullptr;
    }

    // What the listener must decide, read from the bytes independently of the decoder.
    udp::hello_drop expected_drop(std::span<const std::uint8_t> datagram, std::size_t endpoint) const {
        // iperf3's 4-byte connect ("9876", or 123456789 little-endian): no iperf3 session waits in this
        // model.
        const std::array<std::uint8_t, 4> connect{0x39, 0x38, 0x37, 0x36};
        const std::array<std::uint8_t, 4> legacy_connect{0x15, 0xcd, 0x5b, 0x07};
        if (std::ranges::equal(datagram, connect) || std::ranges::equal(datagram, legacy_connect)) {
            return udp::hello_drop::unknown_token;
        }
        if (datagram.size() < udp::kHeaderSize || datagram[0] != 2 || datagram[1] != udp::kDatagramVersion) {
            return udp::hello_drop::malformed;
        }
        std::uint64_t token = 0;
        for (std::size_t i = 4; i < 12; ++i) {
            token = (token << 8) | datagram[i];
        }
        const std::size_t owner = token == kTokens[0] ? 0 : token == kTokens[1] ? 1 : kLiveTokens;
        if (owner == kLiveTokens) {
            return udp::hello_drop::unknown_token;
        }
        if (host_of(endpoint) != control_host_[owner]) {
            return udp::hello_drop::wrong_address;
        }
        if (datagram.size() < udp::kHandshakeSize) {
            return udp::hello_drop::malformed;
        }
        return passed_[owner] >= udp::kMaxHellosPerToken ? udp::hello_drop::excess : udp::hello_drop::none;
    }

    void at_listener(std::span<const std::uint8_t> datagram, std::size_t endpoint, bool lose_answers) {
        std::size_t owner = kLiveTokens;
        const auto verdict = udp::judge_listener_datagram(datagram, [&](std::uint64_t token) {
            std::optional<udp::hello_owner> found;
            for (std::size_t i = 0; i < kLiveTokens; ++i) {
                if (token == kTokens[i]) {
                    owner = i;
                    found = udp::hello_owner{host_of(endpoint) == control_host_[i], passed_[i]};
                }
            }
            return found;
        });
        FUZZ_CHECK(verdict.drop == expected_drop(datagram, endpoint));
        ++listener_datagrams_;
        switch (verdict.drop) {
            case udp::hello_drop::none:
                break;
            case udp::hello_drop::malformed:
            case udp::hello_drop::unknown_token:
            case udp::hello_drop::wrong_address:
            case udp::hello_drop::excess:
                ++dropped_;
                FUZZ_CHECK(dropped_ + passed_total_ == listener_datagrams_);
                return;
            default:
                FUZZ_CHECK(false);  // a drop without a reason
        }
        FUZZ_CHECK(verdict.hello && owner < kLiveTokens);
        ++passed_[owner];
        ++passed_total_;
        FUZZ_CHECK(passed_[owner] <= udp::kMaxHellosPerToken);
        FUZZ_CHECK(dropped_ + passed_total_ == listener_datagrams_);
        // As udp_test_flows::on_hello: a stream in range and not attached yet gets its socket and a cookie.
        const std::uint16_t index = verdict.hello->stream;
        if (index >= streams_ || streams_of_[owner][index]) {
            return;
        }
        // The server draws cookies that are never 0; the input picks them here, so two may be equal.
        const std::uint64_t cookie = cookie_seed_ + index * 0x9e3779b97f4a7c15U + owner;
        auto& stream = streams_of_[owner][index].emplace(owner, index, endpoint, cookie == 0 ? 1 : cookie,
                                                         datagram.size());
        answer(stream, lose_answers);
    }

    // As udp_flow::on_datagram on a server stream.
    void at_stream(stream_model& stream, std::span<const std::uint8_t> datagram, std::size_t endpoint,
                   bool lose_answers) {
        FUZZ_CHECK(endpoint == stream.endpoint);
        if (!stream.path.established()) {
            stream.received += datagram.size();
        }
        stream.path.on_datagram(datagram.size());
        const auto h = udp::read_header(datagram);
        if (!h || h->token != kTokens[stream.owner] || h->stream != stream.index ||
            h->type != udp::datagram_type::hello) {
            check_stream(stream);
            return;
        }
        const auto cookie = udp::read_cookie(datagram);
        if (!cookie) {
            check_stream(stream);
            return;
        }
        const bool validated = stream.path.on_hello(*cookie);
        if (validated) {
            FUZZ_CHECK(*cookie == stream.cookie && !stream.was_established);
        }
        check_stream(stream, validated);
        answer(stream, lose_answers);
    }

    // A HELLO_ACK to the stream's peer, if the path allows it.
    void answer(stream_model& stream, bool lose) {
        const bool established = stream.path.established();
        const std::uint64_t cookie = stream.path.answer_cookie();
        if (!stream.path.may_send(udp::kHandshakeSize)) {
            FUZZ_CHECK(!established);
            return;
        }
        FUZZ_CHECK(host_of(stream.endpoint) == control_host_[stream.owner]);
        FUZZ_CHECK(cookie == (established ? 0 : stream.cookie));
        if (!established) {
            stream.sent_unvalidated += udp::kHandshakeSize;
            sent_unvalidated_to_[stream.endpoint] += udp::kHandshakeSize;
        }
        check_stream(stream);
        if (!lose && stream.endpoint == kClientEndpoint && stream.owner == 0 && stream.index == 0) {
            to_client(udp::datagram_type::hello_ack, cookie);
        }
    }

    // `validated`: this step brought the path's exact cookie from its address:port; nothing else validates
    // it.
    void check_stream(stream_model& stream, bool validated = false) {
        FUZZ_CHECK(stream.path.established() || !stream.was_established);
        FUZZ_CHECK(stream.was_established || !stream.path.established() || validated);
        stream.was_established = stream.path.established();
        FUZZ_CHECK(stream.sent_unvalidated <= stream.received);
        FUZZ_CHECK(stream.path.sent_unvalidated_bytes() == stream.sent_unvalidated);
    }

    void check_ledgers() const {
        for (std::size_t e = 0; e < kEndpoints; ++e) {
            FUZZ_CHECK(sent_unvalidated_to_[e] <= received_from_[e]);
        }
    }

    std::size_t streams_;
    std::uint64_t cookie_seed_;
    std::array<std::size_t, kLiveTokens> control_host_{};
    std::array<std::array<std::optional<stream_model>, kMaxStreams>, kLiveTokens> streams_of_{};
    std::array<std::uint64_t, kLiveTokens> passed_{};
    std::uint64_t passed_total_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t listener_datagrams_ = 0;
    std::array<std::uint64_t, kEndpoints> received_from_{};
    std::array<std::uint64_t, kEndpoints> sent_unvalidated_to_{};
    udp::client_path client_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    wire::reader in(std::span<const std::uint8_t>(data, size));
    const std::uint8_t config = in.u8();
    const std::uint64_t cookie_seed = in.u64();
    if (!in.ok()) {
        return 0;
    }
    model server(config, cookie_seed);
    // No heap: the harness allocates nothing per input.
    std::array<std::uint8_t, kMaxDatagramBytes> buffer{};
    std::span<std::uint8_t> datagram;
    std::size_t deliveries = 0;
    while (deliveries < kMaxDeliveries) {
        const std::uint8_t op = in.u8();
        if (!in.ok()) {
            break;
        }
        const std::size_t endpoint = (op >> 3) & 3U;
        const bool lose = (op & 0x20U) != 0;
        std::size_t repeat = 1;
        switch (op & 7U) {
            case 0: {
                datagram = std::span(buffer).first(in.u16() % (kMaxDatagramBytes + 1));
                in.bytes(datagram);
                if ((op & 0x40U) != 0 && datagram.size() >= 12) {
                    wire::put_big_endian(datagram.data() + 4, kTokens[0], 8);
                }
                break;
            }
            case 2:
                server.client_hello(lose);
                ++deliveries;
                continue;
            case 3:
                server.to_client(udp::datagram_type::hello_ack, in.u64());
                continue;
            case 4:
                server.to_client(udp::datagram_type::data, 0);
                continue;
            default: {
                const std::uint8_t selector = in.u8();
                const std::uint8_t stream = in.u8();
                const std::size_t length = in.u16() % (kMaxDatagramBytes + 1);
                const std::uint64_t value = in.u64();
                repeat = in.u8() % 64U + 1;
                const std::uint8_t type = (selector >> 2) & 7U;
                // 0-5: HELLO, DATA, HELLO_ACK, FEEDBACK, PING, PONG; 6 and 7: type bytes 0 and 7.
                constexpr std::array<std::uint8_t, 8> kTypeBytes{2, 1, 3, 4, 5, 6, 0, 7};
                std::uint64_t cookie = 0;
                switch ((selector >> 5) & 3U) {
                    case 1:
                        cookie = server.cookie_of(value % 8);
                        break;
                    case 2:
                        cookie = value;
                        break;
                    case 3:
                        cookie = server.client_echo();
                        break;
                    default:
                        break;
                }
                std::fill(buffer.begin(), buffer.end(), 0);
                udp::write_handshake(buffer,
                                     {static_cast<udp::datagram_type>(kTypeBytes[type]), stream,
                                      kTokens[selector & 3U], value, value},
                                     cookie);
                datagram = std::span(buffer).first(length);
                break;
            }
        }
        if (!in.ok()) {
            break;
        }
        for (std::size_t i = 0; i < repeat && deliveries < kMaxDeliveries; ++i, ++deliveries) {
            server.deliver(datagram, endpoint, lose);
        }
    }
    return 0;
}
