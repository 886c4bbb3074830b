// The speedsrv/speedcli wire protocol (docs/protocol.md has the byte tables).
//
// Every TCP connection starts with a HELLO frame that says what the connection is for: the control connection
// of a session, a data stream of a test, or a latency probe connection. Control and probe connections carry
// frames for their whole life; a data connection carries raw payload after its HELLO.
//
// A frame is a 5-byte header (type u8, payload length u32, big-endian) and the payload. The decoder checks
// the length against a maximum before anything is allocated and answers ok / need-more / bad (with a reason).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/result.hpp"
#include "common/udp_messages.hpp"

namespace speed::proto {

inline constexpr std::uint32_t kMagic = 0x53504454;  // "SPDT"
// 2: UDP path cookies and DATA nonces (docs/protocol.md, "UDP datagrams"); both sides prove the key
//    (client nonce, AUTH_OK's server proof) and reports carry REPORT_AUTH.
inline constexpr std::uint16_t kProtocolVersion = 2;
inline constexpr std::uint16_t kDefaultPort = 5201;
inline constexpr std::size_t kFrameHeaderSize = 5;
inline constexpr std::uint32_t kMaxFramePayload = 64 * 1024;
// The first frame of a connection is read before the peer is known: it gets a much smaller budget.
inline constexpr std::uint32_t kMaxHelloPayload = 256;
// PING is 12 bytes and PONG 20: nothing legitimate on a probe connection is larger than this.
inline constexpr std::uint32_t kMaxProbePayload = 64;
inline constexpr std::size_t kTokenSize = 16;
inline constexpr std::uint16_t kMaxStreams = 128;
inline constexpr std::size_t kMaxSoftwareLength = 64;
inline constexpr std::size_t kMaxErrorMessageLength = 1024;
inline constexpr std::size_t kMaxCongestionLength = 16;
inline constexpr std::size_t kMaxRttSamples = 4096;
// Self probe bytes (docs/protocol.md, "Self probes") a download's sender answers per test; it stops reading
// the reverse direction of its data connections after that many, so TCP's flow control holds back the rest.
inline constexpr std::uint32_t kMaxSelfProbes = 4096;
// Authentication (common/auth.hpp): a server and a client nonce per session, HMAC-SHA256 tags, named keys.
inline constexpr std::size_t kAuthNonceSize = 32;
inline constexpr std::size_t kAuthMacSize = 32;
inline constexpr std::size_t kMaxKeyNameLength = 64;

// Protocol deadlines, one name and one value each (docs/protocol.md lists them by phase). Both binaries take
// them from here; deadlines one binary chooses for itself (watch intervals, probe loss) stay in its files.
//
// How long ending a test may take on either side: closing its streams and exchanging STOP and the final
// reports. The server also gives every write on the control connection this long.
inline constexpr std::chrono::seconds kResultsTimeout{5};
// How long the client waits for the server's answer to a request (WELCOME, AUTH_OK, TEST_ACCEPT, UDP_SETUP,
// STREAMS_READY) and for its own writes before it. Twice the server's deadlines in those phases
// (kStreamSetupTimeout, kUdpSetupTimeout, kResultsTimeout), so a server that gives up on a phase gets its
// ERROR, which says why, to the client before the client gives up with a bare timeout.
inline constexpr std::chrono::seconds kReplyTimeout{10};
// How long the client has to open every data connection of a test after TEST_ACCEPT.
inline constexpr std::chrono::seconds kStreamSetupTimeout{5};
// How long the client has to complete the UDP handshake of every stream after UDP_SETUP: the client
// retransmits its HELLOs with backoff until then (net/udp_socket.hpp), so it survives heavy loss.
inline constexpr std::chrono::seconds kUdpSetupTimeout{5};
// From STREAMS_READY to the first payload byte (TCP) or DATA datagram (UDP) at the receiver, either side:
// room for slow start on a long path or a busy sender.
inline constexpr std::chrono::seconds kFirstByteTimeout{5};
// The client's slack for the server's STOP of an upload beyond the test's own length.
inline constexpr std::chrono::seconds kStopGrace{5};

using session_token = std::array<std::uint8_t, kTokenSize>;
using auth_nonce = std::array<std::uint8_t, kAuthNonceSize>;
using auth_mac = std::array<std::uint8_t, kAuthMacSize>;

// A message's type byte on the wire. The message table at the end of this file gives each its value.
enum class message_type : std::uint8_t {};

enum class connection_kind : std::uint8_t { control = 1, data = 2, probe = 3 };
// Directions are named from the client's side: download = server sends, upload = client sends.
enum class direction : std::uint8_t { download = 1, upload = 2 };
enum class transport : std::uint8_t { tcp = 1, udp = 2 };
enum class stop_reason : std::uint8_t { window_complete = 1, aborted = 2 };

enum class error_code : std::uint16_t {
    protocol_error = 1,    // malformed frame or a message that is not valid in this state
    version_mismatch = 2,  // the peers speak different protocol versions
    server_busy = 3,       // the server is at a session limit; try again later
    unknown_session = 4,   // a data or probe connection named a session that does not exist
    limit_exceeded = 5,    // the request asks for more than the server allows
    timeout = 6,           // a phase did not complete within its deadline
    internal = 7,          // a failure on the sending side that is not the peer's fault
    auth_failed = 8,       // authentication was required and did not succeed
    unsupported = 9,       // a feature this peer does not offer (e.g. a congestion algorithm)
    shutting_down = 10,    // the server is stopping
};

struct hello {
    std::uint16_t version = kProtocolVersion;
    connection_kind kind = connection_kind::control;
    session_token token{};           // zero on control connections
    std::uint32_t test_id = 0;       // data connections: the test they belong to
    std::uint16_t stream_index = 0;  // data connections: 0 .. streams-1
    std::string software;            // e.g. "speedcli 0.1.0", for logs
    bool operator==(const hello&) const = default;
};

struct welcome {
    std::uint16_t version = kProtocolVersion;
    session_token token{};
    std::string software;
    // The server's caps, so a client can explain a refusal before it asks.
    std::uint16_t max_streams = 0;
    std::uint32_t max_duration_ms = 0;
    std::uint64_t max_bitrate = 0;  // bits/s, 0 = no cap
    std::uint64_t max_bytes = 0;    // payload bytes one test may move, 0 = no cap
    bool auth_required = false;     // an AUTH_CHALLENGE follows; every test needs a TEST_AUTH
    bool operator==(const welcome&) const = default;
};

struct error {
    error_code code = error_code::protocol_error;
    std::string message;
    bool operator==(const error&) const = default;
};

struct test_request {
    direction dir = direction::download;
    transport proto = transport::tcp;
    std::uint16_t streams = 1;
    std::uint32_t duration_ms = 10000;    // measured window, after the omitted warm-up
    std::uint32_t omit_ms = 0;            // warm-up excluded from the figure
    std::uint32_t interval_ms = 1000;     // receiver reports every interval; 0 = no intervals
    std::uint64_t bitrate = 0;            // bits/s for the whole direction, 0 = as fast as possible
    std::uint32_t udp_payload_bytes = 0;  // UDP datagram payload size, 0 for TCP
    std::string congestion;               // TCP congestion control for the data sockets, "" = system default
    bool operator==(const test_request&) const = default;
};

struct test_accept {
    std::uint32_t test_id = 0;
    std::string congestion;  // the congestion control the server's data sockets use for this test
    bool operator==(const test_accept&) const = default;
};

// Every data stream of the test is connected; the sender starts sending now.
struct streams_ready {
    bool operator==(const streams_ready&) const = default;
};

// The receiver's measurement window has closed (or the test is being abandoned): stop sending.
struct stop {
    stop_reason reason = stop_reason::window_complete;
    bool operator==(const stop&) const = default;
};

// One receiver interval, sent by the server while it is the receiver (upload) so the client can print live
// lines. Times are nanoseconds since the receiver saw the test's first payload byte.
struct interval_report {
    std::uint32_t index = 0;
    std::uint64_t start_ns = 0;
    std::uint64_t end_ns = 0;
    bool omitted = false;
    std::vector<std::uint64_t> stream_bytes;  // bytes received per stream in the interval
    bool operator==(const interval_report&) const = default;
};

// What the sending side of one stream saw: bytes handed to the socket and, on Linux, the kernel's TCP_INFO.
struct stream_sender_stats {
    std::uint64_t bytes_sent = 0;
    bool has_tcp_info = false;
    std::uint32_t retransmits = 0;  // total retransmitted segments
    std::uint32_t rtt_us = 0;       // smoothed RTT
    std::uint32_t rttvar_us = 0;
    std::uint32_t cwnd_bytes = 0;  // congestion window (segments x MSS)
    bool operator==(const stream_sender_stats&) const = default;
};

struct sender_report {
    std::vector<stream_sender_stats> streams;
    // The kernel's smoothed RTT of the loaded connections, sampled every 100 ms after the warm-up (all
    // streams, in time order, at most kMaxRttSamples): the in-band latency of the load itself.
    std::vector<std::uint32_t> rtt_samples_us;
    bool operator==(const sender_report&) const = default;
};

// The receiver's final figures, sent by the server when it was the receiver (upload).
struct receiver_report {
    std::uint64_t window_ns = 0;   // measured window length on the receiver's clock
    std::uint64_t omitted_ns = 0;  // warm-up length on the receiver's clock
    std::uint64_t omitted_bytes = 0;
    std::vector<std::uint64_t> stream_bytes;  // bytes received per stream within the window
    bool operator==(const receiver_report&) const = default;
};

// Download self probe (docs/protocol.md, "Self probes"): the server read probe byte `probe` (0-based count of
// probe bytes on that connection) from data stream `stream_index` when it had handed `payload_offset` payload
// bytes to that socket, so payload byte `payload_offset` (0-based) is the first one sent after it saw the
// probe.
struct self_probe_mark {
    std::uint16_t stream_index = 0;
    std::uint32_t probe = 0;
    std::uint64_t payload_offset = 0;
    bool operator==(const self_probe_mark&) const = default;
};

// Upload self probes (docs/protocol.md, "Self probes"): the server, which probed and timed them, reports
// them before its RECEIVER_REPORT. `sent` probe bytes written, `dropped` given up unanswered; each sample is
// when its probe was written (us after the server wrote STREAMS_READY) and its round trip (us). At most
// kMaxSelfProbes samples.
struct self_probe_samples {
    struct sample {
        std::uint32_t sent_us = 0;
        std::uint32_t rtt_us = 0;
        bool operator==(const sample&) const = default;
    };
    std::uint32_t sent = 0;
    std::uint32_t dropped = 0;
    std::vector<sample> samples;
    bool operator==(const self_probe_samples&) const = default;
};

struct ping {
    std::uint32_t sequence = 0;
    std::uint64_t client_time_ns = 0;  // opaque to the server: echoed back unchanged
    bool operator==(const ping&) const = default;
};

struct pong {
    std::uint32_t sequence = 0;
    std::uint64_t client_time_ns = 0;
    // How long the server held the PING: from the kernel's receive timestamp of the PING (or, without one,
    // from when the server read it) to just before it wrote this PONG. The client subtracts it, as TWAMP
    // does.
    std::uint64_t server_hold_ns = 0;
    bool operator==(const pong&) const = default;
};

// Sent right after WELCOME when the server requires authentication: a fresh random nonce for this session.
struct auth_challenge {
    auth_nonce nonce{};
    bool operator==(const auth_challenge&) const = default;
};

// The client's fresh nonce and its proof that it holds the named key: HMAC-SHA256 over both nonces, the key
// name and the WELCOME frame (common/auth.hpp).
struct auth_response {
    std::string key_name;
    auth_nonce client_nonce{};
    auth_mac mac{};
    bool operator==(const auth_response&) const = default;
};

// The server accepted the AUTH_RESPONSE, and proves that it holds the key too: HMAC-SHA256 over a label of
// its own, both nonces and the WELCOME frame it sent (common/auth.hpp), so the client also knows the
// WELCOME's caps and flag came from the key holder.
struct auth_ok {
    auth_mac server_proof{};
    bool operator==(const auth_ok&) const = default;
};

// Follows every TEST_REQUEST on an authenticated session: HMAC-SHA256 over the nonce, the request's sequence
// number in the session and the TEST_REQUEST frame, so no request can be altered or replayed.
struct test_auth {
    auth_mac mac{};
    bool operator==(const test_auth&) const = default;
};

// Follows every report the server sends on an authenticated session (INTERVAL_REPORT, SENDER_REPORT,
// RECEIVER_REPORT and their UDP counterparts): HMAC-SHA256 over both nonces, the report's sequence number in
// the session and the report frame, so no figure can be altered, replayed or reordered on the way.
struct report_auth {
    auth_mac mac{};
    bool operator==(const report_auth&) const = default;
};

// ---- the message table
// Every message type is declared once, in `message_table` below: its struct, its type byte, its name and
// whether it is a report. The `message` variant, type_id / type_of, name_of, is_report and the decoder
// dispatch of decode_frame are all generated from it at compile time. A message's codec is the pair
//   void encode_payload(wire::writer&, const M&);
//   result<M> decode_payload(wire::reader&, std::type_identity<M>);
// (common/protocol.cpp, common/udp_messages.cpp); a table entry without them does not compile. Adding a
// message: its struct, its codec and one entry.

// A message name as a template argument.
template <std::size_t N>
struct message_name {
    constexpr message_name(const char (&name)[N]) { std::copy_n(name, N, text); }
    constexpr std::string_view view() const { return {text, N - 1}; }
    char text[N];
};

enum class message_kind {
    plain,
    report,  // carries figures of a test: REPORT_AUTH follows it on an authenticated session
};

template <class M, std::uint8_t Type, message_name Name, message_kind Kind = message_kind::plain>
struct message_entry {
    using type = M;
    static constexpr message_type id{Type};
    static constexpr std::string_view name = Name.view();
    static constexpr bool is_report = Kind == message_kind::report;
};

template <class... Entries>
struct message_list {
    using variant = std::variant<typename Entries::type...>;
    static constexpr std::array<message_type, sizeof...(Entries)> ids{Entries::id...};
    static constexpr std::array<std::string_view, sizeof...(Entries)> names{Entries::name...};

    // Calls `visit(std::type_identity<Entry>{})` for every entry, in table order.
    template <class F>
    static constexpr void for_each(F&& visit) {
        (visit(std::type_identity<Entries>{}), ...);
    }
    template <class M>
    static constexpr bool contains() {
        return (std::is_same_v<M, typename Entries::type> || ...);
    }
    template <class M>
    static constexpr message_type id_of() {
        constexpr std::array<bool, sizeof...(Entries)> is_m{std::is_same_v<M, typename Entries::type>...};
        for (std::size_t i = 0; i < sizeof...(Entries); ++i) {
            if (is_m[i]) {
                return ids[i];
            }
        }
        return message_type{};
    }
    static constexpr bool unique() {
        for (std::size_t i = 0; i < sizeof...(Entries); ++i) {
            for (std::size_t j = i + 1; j < sizeof...(Entries); ++j) {
                if (ids[i] == ids[j] || names[i] == names[j]) {
                    return false;
                }
            }
        }
        return true;
    }
};

using message_table = message_list<                                                 //
    message_entry<hello, 0x01, "HELLO">,                                            //
    message_entry<welcome, 0x02, "WELCOME">,                                        //
    message_entry<error, 0x03, "ERROR">,                                            //
    message_entry<test_request, 0x10, "TEST_REQUEST">,                              //
    message_entry<test_accept, 0x11, "TEST_ACCEPT">,                                //
    message_entry<streams_ready, 0x12, "STREAMS_READY">,                            //
    message_entry<stop, 0x13, "STOP">,                                              //
    message_entry<interval_report, 0x14, "INTERVAL_REPORT", message_kind::report>,  //
    message_entry<sender_report, 0x15, "SENDER_REPORT", message_kind::report>,      //
    message_entry<receiver_report, 0x16, "RECEIVER_REPORT", message_kind::report>,  //
    // It decides a self probe's round trip, so it is authenticated like a report.
    message_entry<self_probe_mark, 0x17, "SELF_PROBE_MARK", message_kind::report>,        //
    message_entry<self_probe_samples, 0x18, "SELF_PROBE_SAMPLES", message_kind::report>,  //
    message_entry<ping, 0x20, "PING">,                                                    //
    message_entry<pong, 0x21, "PONG">,                                                    //
    // UDP tests (common/udp_messages.hpp)
    message_entry<udp_setup, 0x30, "UDP_SETUP">,                                            //
    message_entry<udp_echo_request, 0x31, "UDP_ECHO_REQUEST">,                              //
    message_entry<udp_sender_report, 0x32, "UDP_SENDER_REPORT", message_kind::report>,      //
    message_entry<udp_receiver_report, 0x33, "UDP_RECEIVER_REPORT", message_kind::report>,  //
    message_entry<udp_interval_report, 0x34, "UDP_INTERVAL_REPORT", message_kind::report>,  //
    // Authentication, only when the server requires it (docs/protocol.md)
    message_entry<auth_challenge, 0x40, "AUTH_CHALLENGE">,  //
    message_entry<auth_response, 0x41, "AUTH_RESPONSE">,    //
    message_entry<auth_ok, 0x42, "AUTH_OK">,                //
    message_entry<test_auth, 0x43, "TEST_AUTH">,            //
    message_entry<report_auth, 0x44, "REPORT_AUTH">>;
static_assert(message_table::unique(), "two messages share a type byte or a name");

using message = message_table::variant;

// The type byte of message struct M.
template <class M>
requires(message_table::contains<M>()) inline constexpr message_type type_id = message_table::id_of<M>();

message_type type_of(const message& msg);
// The messages that carry figures of a test, which REPORT_AUTH follows on an authenticated session.
bool is_report(message_type type);
std::string_view name_of(message_type type);
std::string_view name_of(error_code code);
std::string_view name_of(direction dir);

// Appends one encoded frame for `msg` to `out`.
void encode(const message& msg, std::vector<std::uint8_t>& out);
std::vector<std::uint8_t> encode(const message& msg);

enum class decode_status { ok, need_more, bad };

struct decode_result {
    decode_status status = decode_status::need_more;
    std::size_t consumed = 0;      // ok: bytes of the whole frame
    std::size_t bytes_needed = 0;  // need_more: total bytes the frame needs (header first, then all of it)
    message msg;
    std::string reason;  // bad: what is wrong, for the log and the peer
};

// Decodes the frame at the start of `input`. Never reads past `input`, never allocates more than
// `max_payload` bytes, never throws.
decode_result decode_frame(std::span<const std::uint8_t> input, std::uint32_t max_payload = kMaxFramePayload);

// Compares tokens in constant time (the comparison must not leak how many leading bytes matched).
bool tokens_equal(const session_token& a, const session_token& b);
// The first 4 bytes in hex: enough to correlate log lines, too little to reuse a token.
std::string token_prefix(const session_token& token);

}  // namespace speed::proto
