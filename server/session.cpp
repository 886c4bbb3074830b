#include "server/session.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <limits>

#include "common/limits.hpp"
#include "common/measurement.hpp"
#include "common/peer_text.hpp"
#include "common/progress_watchdog.hpp"
#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/random.hpp"
#include "net/receiver_window.hpp"
#include "net/socket_options.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kResultsTimeout;
using proto::kStreamSetupTimeout;

// With a byte cap, a download's sender stops once it has sent this share of --max-bytes at its pace (the
// pace fits max_bytes into the test, so the client's window has all its data by then), STOP or not: the cap
// then holds within the 1.25x the docs promise even for a client that never sends STOP.
constexpr double kSendCutoffShare = 1.1;
// How often a sender checks its progress watchdog and budget while it waits for STOP.
constexpr auto kWatchInterval = 250ms;
// How often it forwards self probe marks once the client probes: a mark's delay only has to stay well within
// what the client's read history covers (common/self_probe.hpp), and a poll costs one timer.
constexpr auto kSelfProbeMarkInterval = 10ms;
// How long a download's data connections stay open after the server's ERROR while the client has not
// closed its control connection yet: the client reads the ERROR and closes within milliseconds; the bound is
// for one that does not.
constexpr auto kErrorLinger = 1s;
// Probe connections one session may hold (speedcli opens one).
constexpr std::size_t kMaxProbeConnections = 2;

session_timeouts timeouts_of(const server_config& config) {
    session_timeouts timeouts;
    timeouts.auth = config.handshake_timeout;
    timeouts.idle = config.idle_timeout;
    timeouts.results = std::chrono::duration_cast<std::chrono::milliseconds>(kResultsTimeout);
    return timeouts;
}

proto::auth_nonce make_nonce() {
    proto::auth_nonce nonce{};
    net::fill_random(nonce);
    return nonce;
}

// An upload's self probes sent at or after `since_ns` (when STREAMS_READY went out), relative to it.
proto::self_probe_samples self_probe_samples_of(const net::stream_group& group, std::int64_t since_ns) {
    proto::self_probe_samples out;
    out.sent = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(group.self_probes_sent(), std::numeric_limits<std::uint32_t>::max()));
    out.dropped = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(group.self_probes_dropped(), std::numeric_limits<std::uint32_t>::max()));
    for (const auto& sample : group.self_probe_samples(since_ns)) {
        if (out.samples.size() == proto::kMaxSelfProbes) {
            break;
        }
        out.samples.push_back(
            {units::ns_to_wire_us(sample.sent_ns - since_ns), units::ns_to_wire_us(sample.rtt_ns)});
    }
    return out;
}

asio::awaitable<void> send_interval_report(net::control_channel& channel, measure::interval closed) {
    proto::interval_report report;
    report.index = closed.index;
    report.start_ns = static_cast<std::uint64_t>(closed.start_ns);
    report.end_ns = static_cast<std::uint64_t>(closed.end_ns);
    report.omitted = closed.omitted;
    report.stream_bytes = std::move(closed.stream_bytes);
    co_await channel.write(report, clock::now() + kResultsTimeout);
}

std::uint64_t sum(const std::vector<std::uint64_t>& values) {
    std::uint64_t total = 0;
    for (auto v : values) {
        total += v;
    }
    return total;
}

// At most `limit` values, evenly spread over `values` (keeps a long series within a frame).
std::vector<std::uint32_t> thin_evenly(const std::vector<std::uint32_t>& values, std::size_t limit) {
    if (values.size() <= limit) {
        return values;
    }
    std::vector<std::uint32_t> kept;
    kept.reserve(limit);
    for (std::size_t i = 0; i < limit; ++i) {
        kept.push_back(values[i * values.size() / limit]);
    }
    return kept;
}

}  // namespace

struct session::active_test {
    active_test(asio::any_io_executor executor, std::uint32_t test_id, proto::test_request req)
        : id(test_id), request(std::move(req)), group(executor, request.streams), attach_timer(executor) {}

    std::uint32_t id;
    proto::test_request request;
    net::stream_group group;
    asio::steady_timer attach_timer;  // cancelled whenever a data connection attaches
};

session::session(std::shared_ptr<server_context> context, net::control_channel channel,
                 asio::ip::tcp::endpoint peer, std::string client_software, admission_control::slot admission)
    : context_(std::move(context)),
      admission_(std::move(admission)),
      channel_(std::move(channel)),
      peer_(std::move(peer)),
      client_software_(escape_for_log(client_software)),
      token_(make_session_token()),
      ends_at_(clock::now() + context_->config.max_session_time),
      protocol_(context_->config.limits, timeouts_of(context_->config), context_->config.auth_keys.get(),
                make_nonce()) {}

session::~session() = default;

asio::awaitable<void> session::run(std::shared_ptr<session> self) {
    auto& ctx = *self->context_;
    ctx.sessions.add(self->token_, self);
    const auto started = clock::now();
    const std::string id = proto::token_prefix(self->token_);
    log_limited(ctx, log_kind::session, spdlog::level::info, "session {} from {} started ({})", id,
                fmt::streamed(self->peer_),
                self->client_software_.empty() ? "unknown client" : self->client_software_);
    std::string outcome = "ok";
    // co_await is not allowed inside a catch block: remember the error and report it afterwards.
    std::optional<proto::error> report_to_client;
    try {
        co_await self->serve_tests();
    } catch (const session_error& e) {
        outcome = std::string("error: ") + e.what();
        if (!e.from_peer()) {
            report_to_client = proto::error{e.code(), e.what()};
        }
    } catch (const std::exception& e) {
        outcome = std::string("internal error: ") + e.what();
        report_to_client = proto::error{proto::error_code::internal, "internal server error"};
    }
    self->protocol_.end();
    if (!self->failure_detail_.empty()) {
        outcome += " (" + self->failure_detail_ + ")";
    }
    if (report_to_client) {
        // A download's streams stop sending but stay open while the client reads the ERROR: a reset data
        // connection would race the ERROR to the client and could show there as the reason instead.
        const bool hold_streams = self->test_ && self->test_->request.dir == proto::direction::download;
        if (hold_streams) {
            self->test_->group.hold_sending();
        }
        co_await self->channel_.send_error_quietly(report_to_client->code, report_to_client->message);
        if (hold_streams) {
            co_await self->channel_.wait_readable(clock::now() + kErrorLinger);  // the client's close
        }
    }
    self->test_.reset();
    self->close_probes();
    self->end_udp();
    ctx.sessions.remove(self->token_);
    asio::error_code ignored;
    self->channel_.socket().close(ignored);
    self->admission_.release();
    const double seconds = std::chrono::duration<double>(clock::now() - started).count();
    if (self->foreign_connections_ > 0) {
        self->summaries_.push_back(fmt::format("{} data or probe connections from another address refused",
                                               self->foreign_connections_));
    }
    std::string tests;
    for (const auto& summary : self->summaries_) {
        tests += "; " + summary;
    }
    const std::string key = self->protocol_.key_name().empty() ? "" : ", key " + self->protocol_.key_name();
    log_limited(ctx, log_kind::session, spdlog::level::info,
                "session {} from {} ended after {:.1f} s{}, {}{}", id, fmt::streamed(self->peer_), seconds,
                key, escape_for_log(outcome), tests.empty() ? "; no tests" : tests);
}

void session::abort() {
    asio::error_code ignored;
    channel_.socket().close(ignored);
    if (test_) {
        test_->group.stop_all();
        test_->attach_timer.cancel();
    }
    close_probes();
    end_udp();
}

session_error session::lifetime_over() const {
    return session_error(
        proto::error_code::timeout,
        fmt::format(
            "this server ends sessions after {} s (--max-session-time); open a new session",
            std::chrono::duration_cast<std::chrono::seconds>(context_->config.max_session_time).count()));
}

void session::note_foreign_connection(std::string_view kind, const asio::ip::tcp::endpoint& from) {
    ++foreign_connections_;
    log_limited(*context_, log_kind::stray_connection, spdlog::level::info,
                "session {}: {} connection from {} refused: its control connection comes from {}",
                proto::token_prefix(token_), kind, fmt::streamed(from), fmt::streamed(peer_));
}

std::int64_t session::stall_timeout_for(const proto::test_request& request) const {
    const auto configured =
        std::chrono::duration_cast<std::chrono::nanoseconds>(context_->config.stall_timeout);
    return stall_timeout_ns(sender_bitrate(request, context_->config.limits), request.streams,
                            configured.count());
}

void session::close_probes() {
    for (auto& weak : probes_) {
        if (auto probe = weak.lock()) {
            probe->close();
        }
    }
    probes_.clear();
}

std::shared_ptr<probe_connection> session::attach_probe(asio::ip::tcp::socket socket) {
    std::erase_if(probes_, [](const auto& weak) { return weak.expired(); });
    if (!protocol_.admitted() || protocol_.phase() == session_phase::ended ||
        probes_.size() >= kMaxProbeConnections) {
        return nullptr;  // the socket closes as it goes out of scope
    }
    auto probe = std::make_shared<probe_connection>(std::move(socket));
    probes_.push_back(probe);
    return probe;
}

asio::awaitable<session_step> session::next_step(clock::time_point not_after) {
    const auto phase_deadline = std::min(clock::now() + protocol_.read_timeout(), not_after);
    const bool lifetime_first = ends_at_ < phase_deadline;
    std::optional<proto::message> msg;
    try {
        msg = co_await channel_.read_unless_closed(std::min(phase_deadline, ends_at_), protocol_.awaiting());
    } catch (const session_error& e) {
        if (lifetime_first && e.code() == proto::error_code::timeout) {
            throw lifetime_over();
        }
        throw;
    }
    session_step step = msg ? protocol_.on_message(*msg) : protocol_.on_closed();
    if (step.what == session_step::kind::end_session) {
        failure_detail_ = step.log_detail;
        throw session_error(step.failure.code, step.failure.message, step.from_peer);
    }
    co_return step;
}

asio::awaitable<void> session::serve_tests() {
    const auto opening = protocol_.opening(token_, std::string("speedsrv ") + SPEED_VERSION);
    for (const auto& frame : opening) {
        co_await channel_.write(frame, clock::now() + kResultsTimeout);
    }
    for (;;) {
        const session_step step = co_await next_step();
        switch (step.what) {
            case session_step::kind::client_done:
                co_return;
            case session_step::kind::reply:
                co_await channel_.write(step.reply, clock::now() + kResultsTimeout);
                if (protocol_.key() != nullptr && !channel_.tags_written_reports()) {
                    channel_.tag_written_reports(auth::report_tagger(*protocol_.key(), protocol_.nonces()));
                }
                break;
            case session_step::kind::read_more:
                break;
            case session_step::kind::start_test: {
                const auto test_length = std::chrono::milliseconds(step.request.omit_ms) +
                                         std::chrono::milliseconds(step.request.duration_ms);
                if (clock::now() + test_length > ends_at_) {
                    throw lifetime_over();
                }
                co_await run_test(step.request);
                break;
            }
            case session_step::kind::start_udp_echo:
                co_await start_udp_echo();
                break;
            default:
                // session_protocol gives the other steps only while a test runs.
                throw session_error(proto::error_code::internal, "session protocol out of step");
        }
    }
}

asio::awaitable<void> session::run_test(const proto::test_request& request) {
    if (!net::congestion_available(request.congestion)) {
        throw session_error(proto::error_code::unsupported,
                            "congestion control '" + request.congestion + "' is not available on the server");
    }
    if (request.proto == proto::transport::udp) {
        co_await run_udp_test(request);
        co_return;
    }
    test_ = std::make_unique<active_test>(channel_.socket().get_executor(), next_test_id_++, request);
    const proto::test_accept accept{
        test_->id, request.congestion.empty() ? net::default_congestion() : request.congestion};
    co_await channel_.write(accept, clock::now() + kResultsTimeout);
    co_await wait_for_streams(*test_);
    if (auto failure = test_->group.set_congestion(request.congestion)) {
        throw session_error(proto::error_code::unsupported, *failure);
    }
    protocol_.streams_ready();
    if (request.dir == proto::direction::download) {
        co_await send_download(*test_);
    } else {
        co_await receive_upload(*test_);
    }
    test_.reset();
}

void session::attach_data(const proto::hello& hello, asio::ip::tcp::socket socket) {
    if (!test_ || hello.test_id != test_->id || protocol_.phase() != session_phase::setting_up) {
        log_limited(*context_, log_kind::stray_connection, spdlog::level::debug,
                    "session {}: data connection for test {} does not match the current test; closed",
                    proto::token_prefix(token_), hello.test_id);
        return;  // the socket closes as it goes out of scope
    }
    if (!test_->group.attach(hello.stream_index, std::move(socket), context_->data_pool.next())) {
        log_limited(*context_, log_kind::stray_connection, spdlog::level::debug,
                    "session {}: data connection with stream index {} rejected", proto::token_prefix(token_),
                    hello.stream_index);
        return;
    }
    test_->attach_timer.cancel();
}

asio::awaitable<void> session::wait_for_streams(active_test& test) {
    const auto deadline = clock::now() + kStreamSetupTimeout;
    while (!test.group.all_attached()) {
        if (clock::now() >= deadline) {
            throw session_error(proto::error_code::timeout,
                                fmt::format("not all {} data connections arrived within {} s",
                                            test.request.streams, kStreamSetupTimeout.count()));
        }
        test.attach_timer.expires_at(deadline);
        co_await test.attach_timer.async_wait(as_tuple(asio::use_awaitable));
        if (!channel_.socket().is_open()) {
            throw session_error(proto::error_code::shutting_down, "session aborted");
        }
    }
}

asio::awaitable<void> session::send_download(active_test& test) {
    const auto& request = test.request;
    // TCP has no rate of its own: the requested (or capped) bitrate is handed to the kernel's pacing.
    const std::uint64_t bitrate = sender_bitrate(request, context_->config.limits);
    const std::int64_t sending_started_ns = net::now_ns();
    test.group.start_sending(per_stream_pacing(bitrate, request.streams));
    test.group.answer_self_probes();
    const proto::streams_ready ready;
    co_await channel_.write(ready, clock::now() + kResultsTimeout);

    co_await watch_sending_until_readable(test);
    const session_step step = co_await next_step();
    if (step.what != session_step::kind::stop_sending) {
        throw session_error(proto::error_code::internal, "session protocol out of step");
    }
    test.group.stop_all();
    co_await test.group.wait_all_ended(clock::now() + kResultsTimeout);
    // The in-band RTT counts from the end of the sender's warm-up, as the client's probes do.
    const std::int64_t warm_up_end_ns = sending_started_ns + std::int64_t{request.omit_ms} * 1'000'000;
    const proto::sender_report report{
        test.group.sender_stats(),
        thin_evenly(test.group.rtt_samples_us(warm_up_end_ns), proto::kMaxRttSamples)};
    co_await channel_.write(report, clock::now() + kResultsTimeout);

    std::uint64_t sent = 0;
    std::uint32_t retransmits = 0;
    for (const auto& s : report.streams) {
        sent += s.bytes_sent;
        retransmits += s.retransmits;
    }
    summaries_.push_back(fmt::format("download {} stream{}: sent {} (sender side, {} retransmits)",
                                     request.streams, request.streams == 1 ? "" : "s",
                                     units::format_bytes(sent), retransmits));
}

// While the server sends, the client's STOP may come at any time; until it does, the server checks that the
// client's TCP keeps acknowledging data (a client that was stopped or vanished stops acknowledging, however
// slow its path) and that the test stays within the server's byte cap whatever the client does with STOP.
asio::awaitable<void> session::watch_sending_until_readable(active_test& test) {
    const auto deadline = clock::now() + protocol_.read_timeout();
    const std::int64_t stall_ns = stall_timeout_for(test.request);
    progress_watchdog watchdog(stall_ns);
    watchdog.start(net::now_ns(), test.group.acknowledged_bytes());
    const test_budget budget = test_budget::for_test(test.request, context_->config.limits);
    const std::int64_t started_ns = net::now_ns();
    // Far in the future without a byte cap.
    auto cutoff = clock::time_point::max();
    const std::uint64_t max_bytes = context_->config.limits.max_bytes;
    const std::uint64_t bitrate = sender_bitrate(test.request, context_->config.limits);
    const bool byte_capped = max_bytes != 0 && bitrate != 0;
    if (byte_capped) {
        const double cutoff_seconds =
            kSendCutoffShare * static_cast<double>(max_bytes) * 8.0 / static_cast<double>(bitrate);
        cutoff = clock::now() + std::chrono::duration_cast<clock::duration>(
                                    std::chrono::duration<double>(std::min(cutoff_seconds, 1e6)));
    }
    bool sending = true;
    for (;;) {
        // GCC 12: no initializer list inside a co_await expression.
        const auto poll = test.group.self_probes_answered() > 0 ? kSelfProbeMarkInterval : kWatchInterval;
        const auto wake = std::min(std::min(deadline, clock::now() + poll), sending ? cutoff : deadline);
        if (co_await channel_.wait_readable(wake)) {
            co_return;
        }
        const auto marks = test.group.take_self_probe_marks();
        for (const auto& mark : marks) {
            co_await channel_.write(mark, clock::now() + kResultsTimeout);
        }
        if (clock::now() >= deadline) {
            throw session_error(proto::error_code::timeout, "timed out waiting for the client's STOP");
        }
        if (!sending) {
            continue;
        }
        const std::uint64_t acknowledged = test.group.acknowledged_bytes();
        if (watchdog.stalled(net::now_ns(), acknowledged)) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("the client acknowledged no data for {:.1f} s: it stopped receiving",
                            static_cast<double>(stall_ns) / 1e9));
        }
        // Before the cutoff: a test over its budget ends with the server's reason, which the session writes
        // before it resets the data connections. Stopping at the cutoff first reset them with nothing said,
        // and the client showed a lost data connection instead.
        if (auto refusal = budget.check(net::now_ns() - started_ns, acknowledged)) {
            throw session_error(refusal->code, refusal->message);
        }
        if (byte_capped &&
            (clock::now() >= cutoff ||
             static_cast<double>(acknowledged) >= kSendCutoffShare * static_cast<double>(max_bytes))) {
            // The byte cap is spent within the budget's margins: stop sending and keep waiting for STOP.
            test.group.stop_all();
            sending = false;
        }
    }
}

asio::awaitable<void> session::receive_upload(active_test& test) {
    using namespace asio::experimental::awaitable_operators;
    const auto& request = test.request;
    // The server probes the client's data connections (docs/protocol.md, "Self probes"); their send times
    // count from STREAMS_READY, which the client's clock also sees.
    test.group.start_receiving(net::stream_group::kDefaultSelfProbeInterval);
    const std::int64_t ready_ns = net::now_ns();
    const proto::streams_ready ready;
    co_await channel_.write(ready, clock::now() + kResultsTimeout);

    bool window_open = true;
    net::first_failure failure;
    measure::totals totals;
    try {
        totals = co_await (net::noting_failure(measure_upload_window(test, window_open), failure) &&
                           net::noting_failure(read_self_probe_marks(test, window_open), failure));
    } catch (...) {
        failure.rethrow();
    }

    protocol_.window_closed();
    const proto::stop stop{proto::stop_reason::window_complete};
    co_await channel_.write(stop, clock::now() + kResultsTimeout);
    test.group.stop_all();
    // Only a client that answered gets the samples: one that predates self probes expects RECEIVER_REPORT.
    if (protocol_.self_probe_marks() > 0) {
        const proto::self_probe_samples samples = self_probe_samples_of(test.group, ready_ns);
        co_await channel_.write(samples, clock::now() + kResultsTimeout);
    }
    proto::receiver_report report;
    report.window_ns = static_cast<std::uint64_t>(totals.window_ns);
    report.omitted_ns = static_cast<std::uint64_t>(totals.omitted_ns);
    report.omitted_bytes = totals.omitted_bytes;
    report.stream_bytes = totals.stream_bytes;
    co_await channel_.write(report, clock::now() + kResultsTimeout);
    // SELF_PROBE_MARKs the client sent before it saw STOP may come first (counted by session_protocol).
    const auto report_deadline = clock::now() + kResultsTimeout;
    session_step step = co_await next_step(report_deadline);
    while (step.what == session_step::kind::read_more) {
        step = co_await next_step(report_deadline);
    }
    if (step.what != session_step::kind::test_complete) {
        throw session_error(proto::error_code::internal, "session protocol out of step");
    }
    co_await test.group.wait_all_ended(clock::now() + kResultsTimeout);

    summaries_.push_back(fmt::format("upload {} stream{}: received {} ({} in {:.2f} s, receiver side)",
                                     request.streams, request.streams == 1 ? "" : "s",
                                     units::format_bits_per_second(totals.bits_per_second()),
                                     units::format_bytes(sum(totals.stream_bytes)), totals.seconds()));
}

asio::awaitable<measure::totals> session::measure_upload_window(active_test& test, bool& window_open) {
    struct window_closer {
        bool& open;
        ~window_closer() { open = false; }
    } closer{window_open};
    const auto plan =
        measure::plan::from_ms(test.request.omit_ms, test.request.duration_ms, test.request.interval_ms);
    net::receiver_watch watch;
    watch.stall_timeout = std::chrono::nanoseconds(stall_timeout_for(test.request));
    watch.budget = test_budget::for_test(test.request, context_->config.limits);
    auto& channel = channel_;
    co_return co_await net::measure_receiver_window(
        test.group, plan, clock::now() + kFirstByteTimeout,
        [&channel](const measure::interval& closed) { return send_interval_report(channel, closed); }, watch);
}

// A client that sends nothing costs a timer every kMarkPoll; the window's end waits at most that long for it.
asio::awaitable<void> session::read_self_probe_marks(active_test& test, const bool& window_open) {
    constexpr auto kMarkPoll = 20ms;
    while (window_open) {
        // GCC 12: no initializer list inside a co_await expression.
        const auto wake = clock::now() + kMarkPoll;
        const bool readable = co_await channel_.wait_readable(wake);
        if (!readable || !window_open) {
            continue;
        }
        // session_protocol takes only SELF_PROBE_MARKs now, each naming one of the test's streams.
        const session_step step = co_await next_step();
        if (step.what != session_step::kind::self_probe_mark) {
            throw session_error(proto::error_code::internal, "session protocol out of step");
        }
        test.group.on_self_probe_mark(step.mark);
    }
}

}  // namespace speed::server
