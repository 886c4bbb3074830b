// speedsrv's operator metrics (--metrics; docs/operations.md, "Metrics"): counters the server's threads
// update with relaxed atomics, never a lock, and the exposition a scrape renders from them. Every hook is
// called at a point that happens once per connection, session or test, never per packet: the data plane
// does not pay for metrics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/metrics_text.hpp"
#include "common/protocol.hpp"
#include "common/udp_accounting.hpp"
#include "server/runners/test_result.hpp"

namespace speed::server {

// Why the server turned a connection, session or request away (speedsrv_refusals_total{reason}).
enum class refusal_reason {
    handshake_admission,  // --max-handshakes* at accept
    session_admission,    // --max-sessions* at HELLO
    version,              // another protocol version
    shutting_down,
    foreign_address,  // a data or probe connection from another address than its session's
    auth,             // authentication failed
    caps,             // a request or a test beyond the server's limits (--max-streams, --max-bytes, ...)
};
inline constexpr std::size_t kRefusalReasons = 7;

// Which protocol a session speaks (client_protocol="speed"|"iperf3" on the session, test and byte counters):
// speedsrv's own, or iperf3's (server/iperf3_session.hpp), so an operator sees how much iperf3 clients use.
enum class client_protocol { speed, iperf3 };
inline constexpr std::size_t kClientProtocols = 2;

// Why a browser test session (server/web_server.hpp) ended (speedsrv_web_sessions_total{end}).
enum class web_session_end { deleted, deadline, idle, shutdown };
inline constexpr std::size_t kWebSessionEnds = 4;

// UDP datagrams dropped, by reason (speedsrv_udp_datagrams_dropped_total{reason}): the listener's (malformed,
// unknown_token, wrong_address, excess_hello) and the test flows' (before_ready, wrong_length,
// implausible_sequence, no_token).
struct udp_listener_drops {
    std::uint64_t malformed = 0;
    std::uint64_t unknown_token = 0;
    std::uint64_t wrong_address = 0;
    std::uint64_t excess = 0;
};

// What a scrape reads at its moment besides the counters.
struct metrics_gauges {
    std::size_t sessions_active = 0;
    std::size_t handshakes_in_progress = 0;
    std::optional<udp_listener_drops> udp_listener;  // none when UDP is off
};

class server_metrics {
  public:
    server_metrics();

    void connection_accepted() { add(accepted_); }
    void admitted(bool session_stage) { add(session_stage ? sessions_admitted_ : handshakes_admitted_); }
    void refused(refusal_reason reason) { add(refusals_[static_cast<std::size_t>(reason)]); }
    // A HELLO read (its connection kind), or the handshake's failure.
    void handshake_done(proto::connection_kind kind) { add(handshakes_[static_cast<std::size_t>(kind) - 1]); }
    void handshake_failed(proto::error_code code) { add(handshake_failures_[index_of(code)]); }
    // A session's end: which transports its tests used, and the error that ended it (none: it ended well).
    void session_ended(client_protocol client, bool ran_tcp, bool ran_udp,
                       std::optional<proto::error_code> failure);
    void test_started(client_protocol client, proto::transport transport, proto::direction dir);
    // A test that delivered its results: its length from request to results, the payload bytes the server
    // sent (download) or received (upload, warm-up included), and for uploads the receiver's figure.
    void test_completed(client_protocol client, proto::transport transport, proto::direction dir,
                        double seconds, std::uint64_t bytes, std::optional<double> received_bits_per_second);
    // A browser test session's end: why, and the bytes it downloaded and uploaded (received).
    void web_session_ended(web_session_end end, std::uint64_t downloaded, std::uint64_t uploaded);
    // A browser test HTTP connection closed at accept: its host held --http-max-connections-per-host.
    void web_connection_refused() { add(web_connections_refused_); }
    // A UDP test's flows as they close (the listener counts its own drops, read at each scrape).
    void udp_flow_drops(const udp::drop_counters& drops, std::uint64_t without_token);

    // The whole exposition (Prometheus text format 0.0.4).
    std::string render(const metrics_gauges& gauges) const;

  private:
    using counter = std::atomic<std::uint64_t>;
    static constexpr std::size_t kErrorCodes = 11;  // 0 = none, then proto::error_code 1..10
    static constexpr std::size_t kConnectionKinds = 3;
    static std::size_t index_of(proto::error_code code);
    static void add(counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
    // [transport][direction]
    static std::size_t kind_index(proto::transport transport, proto::direction dir);

    counter accepted_{0};
    counter handshakes_admitted_{0};
    counter sessions_admitted_{0};
    std::array<counter, kRefusalReasons> refusals_{};
    std::array<counter, kConnectionKinds> handshakes_{};
    std::array<counter, kErrorCodes> handshake_failures_{};
    // Each [client_protocol] first. [tcp, udp, both, none][outcome]
    std::array<std::array<std::array<counter, kErrorCodes>, 4>, kClientProtocols> sessions_{};
    std::array<std::array<counter, 4>, kClientProtocols> tests_started_{};
    std::array<std::array<counter, 4>, kClientProtocols> tests_completed_{};
    std::array<std::array<counter, 2>, kClientProtocols> bytes_{};  // [download (sent), upload (received)]
    counter flow_before_ready_{0};
    counter flow_wrong_length_{0};
    counter flow_implausible_sequence_{0};
    counter flow_without_token_{0};
    std::array<counter, kWebSessionEnds> web_sessions_{};
    std::array<counter, 2> web_bytes_{};  // [download (sent), upload (received)]
    counter web_connections_refused_{0};
    std::array<metrics::histogram, 4> test_seconds_;
    std::array<metrics::histogram, 2> upload_bytes_per_second_;  // [tcp, udp]
};

// One session's view: which transports its tests used, when the current test started, how it ended.
// Control thread only.
class session_metrics {
  public:
    explicit session_metrics(server_metrics& metrics, client_protocol client = client_protocol::speed)
        : metrics_(metrics), client_(client) {}
    session_metrics(const session_metrics&) = delete;
    session_metrics& operator=(const session_metrics&) = delete;
    ~session_metrics() { ended(); }

    void test_started(const proto::test_request& request);
    void test_completed(const proto::test_request& request, std::uint64_t bytes,
                        std::optional<double> received_bits_per_second = std::nullopt);
    // A completed test as its runner's result tells it: the bytes moved, and an upload's receiver figure.
    void test_completed(const proto::test_request& request, const test_result& result);
    void failed(proto::error_code code) { failure_ = code; }
    // Counts the session once (again a no-op).
    void ended();

  private:
    server_metrics& metrics_;
    client_protocol client_;
    std::chrono::steady_clock::time_point test_started_{};
    bool ran_tcp_ = false;
    bool ran_udp_ = false;
    bool counted_ = false;
    std::optional<proto::error_code> failure_;
};

}  // namespace speed::server
