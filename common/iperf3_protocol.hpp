// iperf3's control protocol, as iperf3 3.x clients and servers speak it (esnet/iperf, src/iperf_api.c):
// pure encoders, decoders and validation, for the iperf3 front-ends of speedsrv and speedcli.
//
// A control connection opens with the client's 37-byte cookie (36 characters of [a-z2-7] and a NUL), which
// also names the test on every data connection. After that the server drives the test with one-byte states
// (signed: ACCESS_DENIED is -1), and both sides exchange JSON documents, each sent as a 4-byte big-endian
// length followed by the JSON text: the client's parameters after PARAM_EXCHANGE, both sides' results after
// EXCHANGE_RESULTS. A server that refuses sends SERVER_ERROR and then two 32-bit big-endian numbers, iperf3's
// error code and errno; the client prints its own text for the code, so that code is all a refusal can say,
// and then closes the connection itself (3.21 waits for the server to close it first, 3.12 does not).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.hpp"

namespace speed::iperf3 {

inline constexpr std::size_t kCookieSize = 37;  // 36 characters and a NUL
inline constexpr std::string_view kCookieAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

// The parameters document iperf3 servers accept (MAX_PARAMS_JSON_STRING).
inline constexpr std::uint32_t kMaxParametersJson = 8 * 1024;
// iperf3 reads results without a limit; they carry one entry per stream (at most 128) and, with
// --get-server-output, the server's whole text output. A megabyte holds both with room to spare.
inline constexpr std::uint32_t kMaxResultsJson = 1024 * 1024;

// iperf3's limits on what a client may ask for (iperf.h), enforced as iperf3's own server does.
inline constexpr std::int64_t kMaxDurationSeconds = 86400;
inline constexpr std::int64_t kMaxOmitSeconds = 600;
inline constexpr std::int64_t kMaxStreams = 128;
inline constexpr std::int64_t kMaxTcpBlock = 1024 * 1024;
inline constexpr std::int64_t kMinUdpBlock = 4 + 4 + 8;  // the UDP header iperf3 puts in every datagram
inline constexpr std::int64_t kMaxUdpBlock = 65535 - 8 - 20;
inline constexpr std::int64_t kMaxSocketBuffer = 512 * 1024 * 1024;
inline constexpr std::int64_t kMaxMss = 32 * 1024 - 1;

// The control states (iperf_api.h). Only the ones a 3.x peer sends or expects are named.
enum class state : std::int8_t {
    test_start = 1,
    test_running = 2,
    test_end = 4,
    param_exchange = 9,
    create_streams = 10,
    server_terminate = 11,
    client_terminate = 12,
    exchange_results = 13,
    display_results = 14,
    iperf_start = 15,
    iperf_done = 16,
    access_denied = -1,
    server_error = -2,
};

// The state a received byte names, or nothing for a byte no iperf3 sends.
std::optional<state> state_of(std::uint8_t byte);
std::uint8_t byte_of(state s);
std::string_view name_of(state s);

// iperf3's error codes (i_errno) that a server sends after SERVER_ERROR. The numbers are positions in
// iperf3's enum, unchanged from 3.1 to 3.21, so every client version prints the matching text.
enum class error_code : std::int32_t {
    duration = 5,              // "test duration valid values are 0 to 86400 seconds"
    streams = 6,               // "invalid number of parallel streams (min = 1, max = 128)"
    tcp_block_size = 7,        // "block size too large (maximum = 1048576 bytes)"
    socket_buffer = 8,         // "socket buffer size too large (maximum = 536870912 bytes)"
    mss = 10,                  // "TCP MSS too large (maximum = 32767 bytes)"
    omit = 12,                 // "bogus value for --omit (maximum = 600 seconds)"
    not_implemented = 13,      // "an option you are trying to set is not implemented yet"
    udp_block_size = 20,       // "block size invalid (minimum = 16 bytes, maximum = 65507 bytes)"
    tos = 21,                  // "bad TOS value (must be between 0 and 255 inclusive)"
    total_rate = 27,           // "total required bandwidth is larger than server limit"
    max_duration = 37,         // "client's requested duration exceeds the server's maximum permitted limit"
    unknown_message = 110,     // "received an unknown control message"
    receive_parameters = 114,  // "unable to receive parameters from client"
    authentication = 142,      // "test authorization failed"
};

// The 9 bytes a server sends to refuse: SERVER_ERROR, the code, errno 0.
std::vector<std::uint8_t> encode_server_error(error_code code);

// True when `bytes` is an iperf3 cookie: 36 characters of the cookie alphabet, then a NUL.
bool is_cookie(std::span<const std::uint8_t> bytes);

// Tells an iperf3 client from a speedsrv peer by the first four bytes of a connection. A speedsrv frame
// starts with its type (HELLO is 0x01) and its big-endian payload length (a HELLO's is under 256 bytes, so
// the next bytes are 0); an iperf3 cookie starts with four characters of [a-z2-7].
// Given fewer bytes, it says whether they can still begin a cookie: a speedsrv frame's first byte already
// cannot.
bool starts_like_iperf3(std::span<const std::uint8_t> first_bytes);

// The UDP "connect" datagrams: the client's 4-byte greeting on a new UDP stream and the server's reply
// (iperf3 writes these integers in host order; these are the bytes an x86 or ARM host puts on the wire).
// Clients before 3.17 greet with, and expect, the legacy values.
inline constexpr std::array<std::uint8_t, 4> kUdpConnectMessage{0x39, 0x38, 0x37, 0x36};
inline constexpr std::array<std::uint8_t, 4> kUdpConnectReply{0x36, 0x37, 0x38, 0x39};
inline constexpr std::array<std::uint8_t, 4> kLegacyUdpConnectMessage{0x15, 0xcd, 0x5b, 0x07};  // 123456789
inline constexpr std::array<std::uint8_t, 4> kLegacyUdpConnectReply{0xb1, 0x68, 0xde, 0x3a};    // 987654321

// A JSON document as iperf3 sends it: 4-byte big-endian length, then the text without a trailing NUL.
std::vector<std::uint8_t> encode_json(const nlohmann::json& document);

// The length-prefixed JSON document at the start of `bytes`: complete (with the bytes it took), incomplete,
// or bad (a length of 0 or above `max_length`, text that is not JSON).
struct json_decode {
    enum class status { ok, need_more, bad };
    status result = status::need_more;
    nlohmann::json document;
    std::size_t consumed = 0;
    std::string reason;  // bad
};
json_decode decode_json(std::span<const std::uint8_t> bytes, std::uint32_t max_length);

// Reads length-prefixed JSON documents from a byte stream.
class json_reader {
  public:
    explicit json_reader(std::uint32_t max_length) : max_length_(max_length) {}

    struct need_more {};
    struct bad {
        std::string reason;
    };
    using outcome = std::variant<need_more, bad, nlohmann::json>;

    // Appends received bytes; the reader keeps at most one document's worth.
    void append(std::span<const std::uint8_t> bytes);
    // The next complete document (consumed), need_more, or bad: a length of 0 or above the limit, text that
    // is not JSON. After bad the stream is unusable.
    outcome next();
    // Bytes received past the documents consumed so far (a peer may send its next message right behind).
    std::size_t buffered() const { return buffer_.size() - consumed_; }

  private:
    std::uint32_t max_length_;
    std::vector<std::uint8_t> buffer_;
    std::size_t consumed_ = 0;
};

enum class transport { tcp, udp };

// A client's test parameters, validated. Defaults are iperf3's own.
struct parameters {
    transport protocol = transport::tcp;
    bool reverse = false;                 // -R: the server sends
    bool bidirectional = false;           // --bidir
    std::uint32_t streams = 1;            // -P
    std::uint32_t duration_seconds = 10;  // -t; 0 with bytes or blocks
    std::uint32_t omit_seconds = 0;       // -O
    std::uint64_t bytes = 0;              // -n: bytes to send in all, 0 = by time
    std::uint64_t blocks = 0;             // -k
    std::uint32_t block_length = 0;       // -l; 0 = iperf3's default for the protocol
    std::uint64_t bitrate = 0;            // -b, bits/s per stream; 0 = unlimited (TCP) or 1 Mbit/s (UDP)
    std::uint64_t socket_buffer = 0;      // -w; 0 = the system's
    std::uint32_t mss = 0;                // -M
    bool no_delay = false;                // -N
    std::uint32_t tos = 0;                // -S
    std::string congestion;               // -C
    bool get_server_output = false;       // --get-server-output
    bool udp_counters_64bit = false;      // --udp-counters-64bit
    bool skip_rx_copy = false;            // --skip-rx-copy (the receiving end skips the copy to user space)
    std::string client_version;           // 3.x clients send it; may be absent
};

// Validates a client's parameters document as iperf3's server does, and refuses what speedsrv does not do:
// SCTP, MPTCP and iperf3's RSA authentication (not_implemented). Members of the wrong type are ignored, as
// iperf3 ignores them; unknown members (from newer clients) are ignored.
// A refusal's text is for speedsrv's log; its code (result::error_code()) is the error_code the client is
// told.
result<parameters> parse_parameters(const nlohmann::json& document);

// The parameters document a client sends for `p` (speedcli's iperf3 client mode).
nlohmann::json parameters_json(const parameters& p);

// iperf3's id for the stream at `index` in connection order: 1, then 3, 4, 5... (iperf_add_stream in
// src/iperf_api.c skips 2; client and server number their streams the same way and match results by it).
std::int32_t stream_id(std::size_t index);

// One stream's end-of-test figures, as EXCHANGE_RESULTS carries them.
struct stream_result {
    std::int32_t id = 0;
    std::uint64_t bytes = 0;        // bytes this end sent or received on the stream, warm-up excluded
    std::int64_t retransmits = -1;  // -1: not a TCP sender, or unknown
    double jitter_seconds = 0.0;    // UDP receivers
    std::int64_t errors = 0;        // UDP receivers: datagrams lost
    std::int64_t omitted_errors = 0;
    std::int64_t packets = 0;  // UDP: datagrams sent or received
    std::int64_t omitted_packets = 0;
    double start_seconds = 0.0;  // the stream's measured span, from the test's start
    double end_seconds = 0.0;
};

struct results {
    double cpu_total_percent = 0.0;
    double cpu_user_percent = 0.0;
    double cpu_system_percent = 0.0;
    bool sender_has_retransmits = false;
    std::string congestion_used;
    std::vector<stream_result> streams;
    std::string server_output_text;  // --get-server-output, from a server; empty = none
};

// The process's CPU time and the wall clock at one moment (getrusage RUSAGE_SELF, a monotonic clock).
struct cpu_sample {
    std::int64_t wall_ns = 0;
    std::int64_t user_ns = 0;
    std::int64_t system_ns = 0;
};
// The CPU use between two samples as iperf3 reports it (cpu_util in src/iperf_util.c): user, system and their
// sum, each in percent of the wall time between them (above 100 when more than one core was busy). A span
// of no time, or a clock that went back, gives zeros.
void set_cpu_utilization(results& r, const cpu_sample& start, const cpu_sample& end);

nlohmann::json results_json(const results& r);
// A peer's results document; members of the wrong type or missing are left at their defaults, a stream
// entry that is not an object is skipped, and at most kMaxStreams * 2 entries are read (--bidir doubles
// them).
results parse_results(const nlohmann::json& document);

}  // namespace speed::iperf3
