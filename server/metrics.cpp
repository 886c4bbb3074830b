#include "server/metrics.hpp"

#include <string_view>
#include <vector>

namespace speed::server {

namespace {

using metrics::label;
using metrics::metric_type;

// A test's length from TEST_REQUEST to its results: tests run for seconds to minutes (--max-duration).
const std::vector<double> kTestSecondsBounds{0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600};
// Upload figures in bytes per second (Prometheus' base unit), from 100 kbit/s to 40 Gbit/s.
const std::vector<double> kThroughputBounds{12.5e3, 125e3, 1.25e6,  6.25e6, 12.5e6, 31.25e6,
                                            62.5e6, 125e6, 312.5e6, 1.25e9, 5e9};

constexpr std::array<std::string_view, kRefusalReasons> kRefusalNames{"handshake_admission",
                                                                      "session_admission",
                                                                      "version",
                                                                      "shutting_down",
                                                                      "foreign_address",
                                                                      "auth",
                                                                      "caps"};
// Index 0 is "ok" (no error); then proto::error_code's values in order.
constexpr std::array<std::string_view, 11> kOutcomeNames{
    "ok",      "protocol_error", "version_mismatch", "server_busy", "unknown_session", "limit_exceeded",
    "timeout", "internal",       "auth_failed",      "unsupported", "shutting_down"};
constexpr std::array<std::string_view, 3> kConnectionKindNames{"control", "data", "probe"};
constexpr std::array<std::string_view, 4> kSessionProtocolNames{"tcp", "udp", "both", "none"};
constexpr std::array<std::string_view, 2> kTransportNames{"tcp", "udp"};
constexpr std::array<std::string_view, 2> kDirectionNames{"download", "upload"};
constexpr std::array<std::string_view, kClientProtocols> kClientProtocolNames{"speed", "iperf3"};

std::size_t client_index(client_protocol client) {
    return client == client_protocol::iperf3 ? 1 : 0;
}
constexpr std::array<std::string_view, kWebSessionEnds> kWebSessionEndNames{"deleted", "deadline", "idle",
                                                                            "shutdown"};

double value_of(const std::atomic<std::uint64_t>& c) {
    return static_cast<double>(c.load(std::memory_order_relaxed));
}

}  // namespace

server_metrics::server_metrics()
    : test_seconds_{metrics::histogram(kTestSecondsBounds), metrics::histogram(kTestSecondsBounds),
                    metrics::histogram(kTestSecondsBounds), metrics::histogram(kTestSecondsBounds)},
      upload_bytes_per_second_{metrics::histogram(kThroughputBounds), metrics::histogram(kThroughputBounds)} {
}

std::size_t server_metrics::index_of(proto::error_code code) {
    const auto value = static_cast<std::size_t>(code);
    return value < kErrorCodes ? value : static_cast<std::size_t>(proto::error_code::internal);
}

std::size_t server_metrics::kind_index(proto::transport transport, proto::direction dir) {
    return (transport == proto::transport::udp ? std::size_t{2} : std::size_t{0}) +
           (dir == proto::direction::upload ? std::size_t{1} : std::size_t{0});
}

void server_metrics::session_ended(client_protocol client, bool ran_tcp, bool ran_udp,
                                   std::optional<proto::error_code> failure) {
    const std::size_t protocol = ran_tcp && ran_udp ? 2 : ran_tcp ? 0 : ran_udp ? 1 : 3;
    add(sessions_[client_index(client)][protocol][failure ? index_of(*failure) : 0]);
    if (failure == proto::error_code::auth_failed) {
        refused(refusal_reason::auth);
    } else if (failure == proto::error_code::limit_exceeded) {
        refused(refusal_reason::caps);
    }
}

void server_metrics::test_started(client_protocol client, proto::transport transport, proto::direction dir) {
    add(tests_started_[client_index(client)][kind_index(transport, dir)]);
}

void server_metrics::test_completed(client_protocol client, proto::transport transport, proto::direction dir,
                                    double seconds, std::uint64_t bytes,
                                    std::optional<double> received_bits_per_second) {
    const std::size_t kind = kind_index(transport, dir);
    add(tests_completed_[client_index(client)][kind]);
    add(bytes_[client_index(client)][dir == proto::direction::upload ? 1 : 0], bytes);
    test_seconds_[kind].observe(seconds);
    if (received_bits_per_second) {
        upload_bytes_per_second_[transport == proto::transport::udp ? 1 : 0].observe(
            *received_bits_per_second / 8.0);
    }
}

void server_metrics::udp_flow_drops(const udp::drop_counters& drops, std::uint64_t without_token) {
    add(flow_before_ready_, drops.before_ready);
    add(flow_wrong_length_, drops.wrong_length);
    add(flow_implausible_sequence_, drops.implausible_sequence);
    add(flow_without_token_, without_token);
}

std::string server_metrics::render(const metrics_gauges& gauges) const {
    metrics::exposition out;
    out.family("speedsrv_build_info", metric_type::gauge, "Always 1; the version of this speedsrv.");
    const std::array version{label{"version", SPEED_VERSION}};
    out.sample("speedsrv_build_info", version, 1);

    out.family("speedsrv_sessions_active", metric_type::gauge, "Sessions being served now.");
    out.sample("speedsrv_sessions_active", static_cast<double>(gauges.sessions_active));
    out.family("speedsrv_handshakes_in_progress", metric_type::gauge,
               "Connections accepted whose HELLO has not arrived yet.");
    out.sample("speedsrv_handshakes_in_progress", static_cast<double>(gauges.handshakes_in_progress));

    out.family("speedsrv_connections_accepted_total", metric_type::counter,
               "TCP connections accepted by the listener, before admission.");
    out.sample("speedsrv_connections_accepted_total", value_of(accepted_));
    out.family("speedsrv_admissions_total", metric_type::counter,
               "Connections admitted to the handshake stage, and sessions admitted after their HELLO.");
    const std::array handshake_stage{label{"stage", "handshake"}};
    const std::array session_stage{label{"stage", "session"}};
    out.sample("speedsrv_admissions_total", handshake_stage, value_of(handshakes_admitted_));
    out.sample("speedsrv_admissions_total", session_stage, value_of(sessions_admitted_));

    out.family("speedsrv_refusals_total", metric_type::counter,
               "Connections, sessions and requests turned away, by reason.");
    for (std::size_t i = 0; i < kRefusalReasons; ++i) {
        const std::array labels{label{"reason", kRefusalNames[i]}};
        out.sample("speedsrv_refusals_total", labels, value_of(refusals_[i]));
    }

    out.family("speedsrv_handshakes_total", metric_type::counter,
               "Handshakes ended: a HELLO read (result: the connection's kind), or why none was.");
    for (std::size_t i = 0; i < kConnectionKinds; ++i) {
        const std::array labels{label{"result", kConnectionKindNames[i]}};
        out.sample("speedsrv_handshakes_total", labels, value_of(handshakes_[i]));
    }
    for (std::size_t i = 1; i < kErrorCodes; ++i) {
        if (const double n = value_of(handshake_failures_[i]); n > 0) {
            const std::array labels{label{"result", kOutcomeNames[i]}};
            out.sample("speedsrv_handshakes_total", labels, n);
        }
    }

    out.family(
        "speedsrv_sessions_total", metric_type::counter,
        "Sessions ended, by the transports their tests used, the error that ended them (ok: none) and the "
        "protocol the client spoke.");
    for (std::size_t c = 0; c < kClientProtocols; ++c) {
        for (std::size_t p = 0; p < kSessionProtocolNames.size(); ++p) {
            for (std::size_t o = 0; o < kErrorCodes; ++o) {
                const double n = value_of(sessions_[c][p][o]);
                // Every protocol's "ok" always, so rate() has a series from the start; errors once they
                // happen.
                if (o == 0 || n > 0) {
                    const std::array labels{label{"protocol", kSessionProtocolNames[p]},
                                            label{"outcome", kOutcomeNames[o]},
                                            label{"client_protocol", kClientProtocolNames[c]}};
                    out.sample("speedsrv_sessions_total", labels, n);
                }
            }
        }
    }

    const auto per_kind = [&](std::string_view name, std::string_view help,
                              const std::array<std::array<counter, 4>, kClientProtocols>& values) {
        out.family(name, metric_type::counter, help);
        for (std::size_t c = 0; c < kClientProtocols; ++c) {
            for (std::size_t t = 0; t < 2; ++t) {
                for (std::size_t d = 0; d < 2; ++d) {
                    const std::array labels{label{"protocol", kTransportNames[t]},
                                            label{"direction", kDirectionNames[d]},
                                            label{"client_protocol", kClientProtocolNames[c]}};
                    out.sample(name, labels, value_of(values[c][t * 2 + d]));
                }
            }
        }
    };
    per_kind("speedsrv_tests_started_total",
             "Tests accepted for validation, by kind and the protocol the client spoke.", tests_started_);
    per_kind("speedsrv_tests_completed_total",
             "Tests that delivered their results, by kind and the protocol the client spoke.",
             tests_completed_);

    out.family("speedsrv_payload_bytes_total", metric_type::counter,
               "Payload bytes of completed tests: download = sent by the server, upload = received by it "
               "(warm-up included), by the protocol the client spoke.");
    for (std::size_t c = 0; c < kClientProtocols; ++c) {
        for (std::size_t d = 0; d < 2; ++d) {
            const std::array labels{label{"direction", kDirectionNames[d]},
                                    label{"client_protocol", kClientProtocolNames[c]}};
            out.sample("speedsrv_payload_bytes_total", labels, value_of(bytes_[c][d]));
        }
    }

    out.family("speedsrv_test_duration_seconds", metric_type::histogram,
               "Completed tests' length from request to results, by kind.");
    for (std::size_t t = 0; t < 2; ++t) {
        for (std::size_t d = 0; d < 2; ++d) {
            const std::array labels{label{"protocol", kTransportNames[t]},
                                    label{"direction", kDirectionNames[d]}};
            out.histogram("speedsrv_test_duration_seconds", labels, test_seconds_[t * 2 + d].snapshot());
        }
    }
    out.family(
        "speedsrv_upload_throughput_bytes_per_second", metric_type::histogram,
        "Uploads' throughput over the measured window, measured at the server (the receiver); downloads "
        "are measured by the client.");
    for (std::size_t t = 0; t < 2; ++t) {
        const std::array labels{label{"protocol", kTransportNames[t]}};
        out.histogram("speedsrv_upload_throughput_bytes_per_second", labels,
                      upload_bytes_per_second_[t].snapshot());
    }

    out.family("speedsrv_web_sessions_total", metric_type::counter,
               "Browser test sessions (--http-port) ended, by why: deleted by the page, past their deadline, "
               "idle, or at shutdown. They hold admission slots like native sessions while they live.");
    for (std::size_t i = 0; i < kWebSessionEnds; ++i) {
        const std::array labels{label{"end", kWebSessionEndNames[i]}};
        out.sample("speedsrv_web_sessions_total", labels, value_of(web_sessions_[i]));
    }
    out.family("speedsrv_web_bytes_total", metric_type::counter,
               "Payload bytes of ended browser test sessions: downloads requested (sent), upload bodies "
               "received.");
    for (std::size_t d = 0; d < kDirectionNames.size(); ++d) {
        const std::array labels{label{"direction", kDirectionNames[d]}};
        out.sample("speedsrv_web_bytes_total", labels, value_of(web_bytes_[d]));
    }
    out.family("speedsrv_web_connections_refused_total", metric_type::counter,
               "Browser test HTTP connections closed at accept, unread, because their host held "
               "--http-max-connections-per-host.");
    out.sample("speedsrv_web_connections_refused_total", value_of(web_connections_refused_));

    out.family("speedsrv_udp_datagrams_dropped_total", metric_type::counter,
               "UDP datagrams the server dropped unread, by reason.");
    const auto drop = [&](std::string_view reason, double n) {
        const std::array labels{label{"reason", reason}};
        out.sample("speedsrv_udp_datagrams_dropped_total", labels, n);
    };
    if (gauges.udp_listener) {
        drop("malformed", static_cast<double>(gauges.udp_listener->malformed));
        drop("unknown_token", static_cast<double>(gauges.udp_listener->unknown_token));
        drop("wrong_address", static_cast<double>(gauges.udp_listener->wrong_address));
        drop("excess_hello", static_cast<double>(gauges.udp_listener->excess));
    }
    drop("before_ready", value_of(flow_before_ready_));
    drop("wrong_length", value_of(flow_wrong_length_));
    drop("implausible_sequence", value_of(flow_implausible_sequence_));
    drop("no_token", value_of(flow_without_token_));
    return out.text();
}

void server_metrics::web_session_ended(web_session_end end, std::uint64_t downloaded,
                                       std::uint64_t uploaded) {
    add(web_sessions_[static_cast<std::size_t>(end)]);
    add(web_bytes_[0], downloaded);
    add(web_bytes_[1], uploaded);
}

void session_metrics::test_started(const proto::test_request& request) {
    test_started_ = std::chrono::steady_clock::now();
    metrics_.test_started(client_, request.proto, request.dir);
}

void session_metrics::test_completed(const proto::test_request& request, std::uint64_t bytes,
                                     std::optional<double> received_bits_per_second) {
    (request.proto == proto::transport::udp ? ran_udp_ : ran_tcp_) = true;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - test_started_).count();
    metrics_.test_completed(client_, request.proto, request.dir, seconds, bytes, received_bits_per_second);
}

void session_metrics::ended() {
    if (!counted_) {
        counted_ = true;
        metrics_.session_ended(client_, ran_tcp_, ran_udp_, failure_);
    }
}

void session_metrics::test_completed(const proto::test_request& request, const test_result& result) {
    if (request.dir == proto::direction::upload) {
        test_completed(request, result.received.bytes() + result.received.omitted_bytes,
                       result.received.bits_per_second());
        return;
    }
    std::uint64_t sent = result.tcp_bytes_sent();
    for (const auto& stream : result.udp_sent.streams) {
        sent += stream.bytes;
    }
    test_completed(request, sent);
}

}  // namespace speed::server
