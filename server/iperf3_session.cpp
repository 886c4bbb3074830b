#include "server/iperf3_session.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <array>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <functional>
#include <tuple>

#include "common/iperf3_protocol.hpp"
#include "common/limits.hpp"
#include "common/peer_text.hpp"
#include "common/test_timing.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/socket_options.hpp"
#include "server/runners/iperf3_udp_runner.hpp"
#include "server/runners/tcp_runner.hpp"
#include "server/udp_listener.hpp"

namespace speed::server {

using net::clock;
using net::session_error;

namespace {

// Writing a few control bytes to a client that reads them: the deadline is for one that does not.
constexpr auto kWriteTimeout = proto::kResultsTimeout;
// What one read of control bytes takes at most: the parameters (8 KiB) or the client's results arrive in a
// few reads of this size.
constexpr std::size_t kReadChunk = 4096;
// How often a UDP test looks whether another iperf3 session from its address still connects its streams.
constexpr auto kOtherConnectsPoll = std::chrono::milliseconds(10);
// --bidir: how often the upload's window looks whether the download's side read the client's TEST_END; the
// upload's window ends at most this long after it.
constexpr auto kStopRelayPoll = std::chrono::milliseconds(5);

iperf3_timeouts timeouts_of(const server_config& config) {
    iperf3_timeouts timeouts;
    timeouts.handshake = config.handshake_timeout;
    timeouts.streams = std::chrono::duration_cast<std::chrono::milliseconds>(proto::kStreamSetupTimeout);
    timeouts.results = std::chrono::duration_cast<std::chrono::milliseconds>(proto::kResultsTimeout);
    return timeouts;
}

double seconds_between(clock::time_point from, clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// The whole process's CPU time, as iperf3's own server measures its own (which runs one test at a time; with
// several sessions at once the figure includes theirs: docs/protocol.md).
iperf3::cpu_sample process_cpu_now() {
    iperf3::cpu_sample sample;
    sample.wall_ns = net::now_ns();
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0) {
        const auto ns = [](const timeval& t) {
            return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 +
                   static_cast<std::int64_t>(t.tv_usec) * 1'000;
        };
        sample.user_ns = ns(usage.ru_utime);
        sample.system_ns = ns(usage.ru_stime);
    }
    return sample;
}

}  // namespace

// iperf3's control states for a runner's events. iperf3 clients time the test themselves and end it with
// TEST_END, in both directions; they take no intervals, self probes or sender counts from the server.
class iperf3_session::events : public test_events {
  public:
    events(iperf3_session& owner, std::vector<std::uint8_t> create_streams)
        : s_(owner), create_streams_(std::move(create_streams)) {}

    // The runner waits for the data connections from here on: the client may open them.
    asio::awaitable<void> accepted(const test_setup&) override { co_await s_.send(create_streams_); }

    asio::awaitable<void> ready() override {
        const iperf3_step step = s_.protocol_.streams_attached();
        started_ = clock::now();
        cpu_at_start_ = process_cpu_now();
        s_.test_end_deadline_ = started_ + s_.protocol_.read_timeout();
        co_await s_.send(step.reply);
    }

    asio::awaitable<void> interval(const measure::interval&) override { co_return; }
    asio::awaitable<void> udp_interval(const proto::udp_interval_report&) override { co_return; }
    asio::awaitable<void> self_probe_marks(const std::vector<proto::self_probe_mark>&) override { co_return; }

    // The server's window closed; the client sends until its own timer ends and then TEST_END, and the
    // runner stops the streams only after that, so the client never writes into a closed connection.
    asio::awaitable<void> window_closed() override { co_await take_stop(); }

    asio::awaitable<void> result(const test_result& result) override {
        iperf3::results ours = s_.results_of(result);
        const std::size_t sending_from =
            result.direction == proto::direction::download ? 0 : ours.streams.size();
        co_await exchange(std::move(ours), sending_from);
    }

    // The sender's span after the warm-up, as iperf3's own server counts it.
    double sending_seconds() const {
        return std::max(
            0.0, seconds_between(started_ + test_timing::of(s_.runner_->request().test).warm_up, stopped_));
    }

    bool stopped() const { return stopped_ != clock::time_point{}; }

    // EXCHANGE_RESULTS with the server's figures `ours` (its sending streams from index `sending_from` on),
    // the client's results, ours, and the client's IPERF_DONE.
    asio::awaitable<void> exchange(iperf3::results ours, std::size_t sending_from) {
        for (std::size_t i = sending_from; i < ours.streams.size(); ++i) {
            ours.streams[i].end_seconds = sending_seconds();
        }
        for (std::size_t i = 0; i < ours.streams.size(); ++i) {
            (i < sending_from ? s_.reported_received_bytes_ : s_.reported_sent_bytes_) +=
                ours.streams[i].bytes;
        }
        iperf3::set_cpu_utilization(ours, cpu_at_start_, process_cpu_now());
        const iperf3_step exchange = s_.protocol_.test_stopped(ours);
        co_await s_.send(exchange.reply);
        const iperf3_step done = co_await s_.next_step(clock::now() + s_.protocol_.read_timeout());
        if (done.what != iperf3_step::kind::finished) {
            throw session_error(proto::error_code::internal, "iperf3 session protocol out of step");
        }
    }

    asio::awaitable<bool> input_pending(clock::time_point deadline) override {
        if (s_.runner_->request().test.dir == proto::direction::upload &&
            !s_.runner_->request().window_ends_at_stop && !s_.protocol_.parameters().bidirectional) {
            // The only input a timed upload's window could take is self probe marks, which iperf3 clients do
            // not send: TEST_END waits in the socket until the window closed.
            asio::steady_timer timer(s_.channel_.socket().get_executor(), deadline);
            co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
            co_return false;
        }
        const bool readable = co_await s_.channel_.wait_readable(deadline);
        co_return readable;
    }

    std::chrono::milliseconds stop_timeout() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(s_.test_end_deadline_ - clock::now());
    }

    asio::awaitable<void> take_stop() override {
        const iperf3_step step = co_await s_.next_step(s_.test_end_deadline_);
        if (step.what != iperf3_step::kind::stop_test) {
            throw session_error(proto::error_code::internal, "iperf3 session protocol out of step");
        }
        stopped_ = clock::now();
    }

    asio::awaitable<proto::self_probe_mark> take_self_probe_mark() override {
        throw session_error(proto::error_code::internal, "iperf3 clients send no self probe marks");
    }

    asio::awaitable<proto::udp_sender_report> take_udp_sender_counts() override {
        throw session_error(proto::error_code::internal, "iperf3 UDP tests are not served");
    }

    bool aborted() const override { return !s_.channel_.socket().is_open(); }

  private:
    iperf3_session& s_;
    std::vector<std::uint8_t> create_streams_;
    clock::time_point started_{};
    clock::time_point stopped_{};
    iperf3::cpu_sample cpu_at_start_;  // the process's CPU time when the test began (TEST_RUNNING)
};

namespace {

// --bidir: the events of the upload's runner while the download's runner reads the control connection. The
// client's TEST_END ends both directions: the upload's window sees it once the download's side has read it.
class stop_relay : public test_events {
  public:
    using stopped_check = std::function<bool()>;
    stop_relay(asio::any_io_executor executor, std::chrono::milliseconds stop_timeout, stopped_check stopped)
        : timer_(std::move(executor)), stop_timeout_(stop_timeout), stopped_(std::move(stopped)) {}

    asio::awaitable<void> accepted(const test_setup&) override { co_return; }
    asio::awaitable<void> ready() override { co_return; }
    asio::awaitable<void> interval(const measure::interval&) override { co_return; }
    asio::awaitable<void> udp_interval(const proto::udp_interval_report&) override { co_return; }
    asio::awaitable<void> self_probe_marks(const std::vector<proto::self_probe_mark>&) override { co_return; }
    asio::awaitable<void> window_closed() override { co_return; }
    asio::awaitable<void> result(const test_result&) override { co_return; }

    asio::awaitable<bool> input_pending(clock::time_point deadline) override {
        while (!stopped_() && clock::now() < deadline) {
            timer_.expires_at(std::min(deadline, clock::now() + kStopRelayPoll));
            co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
        }
        co_return stopped_();
    }
    std::chrono::milliseconds stop_timeout() const override { return stop_timeout_; }
    asio::awaitable<void> take_stop() override { co_return; }
    asio::awaitable<proto::self_probe_mark> take_self_probe_mark() override {
        throw session_error(proto::error_code::internal, "iperf3 clients send no self probe marks");
    }
    asio::awaitable<proto::udp_sender_report> take_udp_sender_counts() override {
        throw session_error(proto::error_code::internal, "iperf3 UDP tests are not served both ways");
    }
    bool aborted() const override { return false; }

  private:
    asio::steady_timer timer_;
    std::chrono::milliseconds stop_timeout_;
    stopped_check stopped_;
};

}  // namespace

iperf3_session::iperf3_session(std::shared_ptr<server_context> context, asio::ip::tcp::socket socket,
                               asio::ip::tcp::endpoint peer, std::span<const std::uint8_t> cookie,
                               admission_control::slot admission)
    : context_(std::move(context)),
      admission_(std::move(admission)),
      metrics_(context_->metrics, client_protocol::iperf3),
      channel_(std::move(socket)),
      peer_(std::move(peer)),
      cookie_(cookie.begin(), cookie.end()),
      protocol_(context_->config.limits, timeouts_of(context_->config)) {
    // As iperf3's own server: each control state goes out at once. With Nagle's algorithm TEST_START waited
    // for the client's delayed ACK of CREATE_STREAMS (40 ms), while a -R test's UDP sender had started and
    // filled the client's socket buffer before it read any (1% lost at the start of every -u -R test).
    net::set_no_delay(channel_.socket().native_handle());
    protocol_.on_bytes(cookie);
}

iperf3_session::~iperf3_session() = default;

bool iperf3_session::creating_streams() const {
    return protocol_.phase() == iperf3_phase::creating_streams && runner_ != nullptr;
}

void iperf3_session::attach_data(asio::ip::tcp::socket socket) {
    // --bidir: the client opens its sending streams first, then its receiving ones (iperf3's
    // iperf_create_streams), and iperf3's server takes them in that order.
    const std::size_t upload_streams = runner_ ? runner_->request().test.streams : 0;
    const bool reverse = reverse_runner_ != nullptr && streams_attached_ >= upload_streams;
    bool taken = false;
    if (creating_streams()) {
        taken = reverse ? reverse_runner_->attach_connection(streams_attached_ - upload_streams,
                                                             std::move(socket))
                        : runner_->attach_connection(streams_attached_, std::move(socket));
    }
    if (!taken) {
        log_limited(*context_, log_kind::stray_connection, spdlog::level::debug,
                    "iperf3 session from {}: data connection not taken; closed", fmt::streamed(peer_));
        return;  // the socket closes as it goes out of scope
    }
    ++streams_attached_;
}

void iperf3_session::abort() {
    asio::error_code ignored;
    channel_.socket().close(ignored);
    if (runner_) {
        runner_->abort();
    }
    if (reverse_runner_) {
        reverse_runner_->abort();
    }
}

asio::awaitable<void> iperf3_session::run(std::shared_ptr<iperf3_session> self) {
    auto& ctx = *self->context_;
    ctx.iperf3_sessions[self->cookie_] = self;
    const auto started = clock::now();
    log_limited(ctx, log_kind::session, spdlog::level::info, "iperf3 session from {} started",
                fmt::streamed(self->peer_));
    std::string outcome = "ok";
    bool tell_client = false;
    try {
        co_await self->serve();
    } catch (const session_error& e) {
        self->metrics_.failed(e.code());
        outcome = std::string("error: ") + e.what();
        tell_client = !e.from_peer() && !self->error_sent_;
    } catch (const std::exception& e) {
        self->metrics_.failed(proto::error_code::internal);
        outcome = std::string("internal error: ") + e.what();
        tell_client = !self->error_sent_;
    }
    self->protocol_.end();
    if (tell_client && self->runner_) {
        // A -R test's streams stop sending but stay open: the client reads SERVER_TERMINATE before any data
        // connection fails.
        self->runner_->hold_sending();
    }
    if (tell_client && self->reverse_runner_) {
        self->reverse_runner_->hold_sending();
    }
    if (tell_client && self->channel_.socket().is_open()) {
        // iperf3 clients print "the server has terminated" for this; the log says why.
        const std::array<std::uint8_t, 1> terminate{iperf3::byte_of(iperf3::state::server_terminate)};
        co_await net::write_all(self->channel_.socket(), asio::buffer(terminate),
                                clock::now() + kWriteTimeout);
    }
    if (self->runner_) {
        self->runner_->abort();
        self->runner_.reset();
    }
    if (self->reverse_runner_) {
        self->reverse_runner_->abort();
        self->reverse_runner_.reset();
    }
    if (const auto it = ctx.iperf3_sessions.find(self->cookie_);
        it != ctx.iperf3_sessions.end() && it->second.lock() == self) {
        ctx.iperf3_sessions.erase(it);
    }
    asio::error_code ignored;
    self->channel_.socket().close(ignored);
    self->admission_.release();
    self->metrics_.ended();
    const double seconds = std::chrono::duration<double>(clock::now() - started).count();
    const std::string client = self->protocol_.parameters().client_version.empty()
                                   ? std::string()
                                   : " " + escape_for_log(self->protocol_.parameters().client_version);
    // The exact figure the client was given, which it prints as the receiver's (upload) or sender's (-R).
    std::string reported;
    if (self->protocol_.parameters().bidirectional && !self->results_.empty()) {
        reported = fmt::format("; {} bytes received and {} bytes sent in the results",
                               self->reported_received_bytes_, self->reported_sent_bytes_);
    } else if (!self->results_.empty()) {
        reported = fmt::format("; {} bytes in the results",
                               self->reported_received_bytes_ + self->reported_sent_bytes_);
    }
    log_limited(ctx, log_kind::session, spdlog::level::info,
                "iperf3{} session from {} ended after {:.1f} s, {}{}{}", client, fmt::streamed(self->peer_),
                seconds, escape_for_log(outcome), describe_tests_for_log(self->results_, 0), reported);
}

asio::awaitable<void> iperf3_session::send(const std::vector<std::uint8_t>& bytes) {
    if (bytes.empty()) {
        co_return;
    }
    if (auto ec =
            co_await net::write_all(channel_.socket(), asio::buffer(bytes), clock::now() + kWriteTimeout)) {
        throw session_error(proto::error_code::timeout,
                            "the iperf3 client did not take control bytes: " + ec.message(), true);
    }
}

asio::awaitable<iperf3_step> iperf3_session::next_step(clock::time_point deadline) {
    std::array<std::uint8_t, kReadChunk> buffer{};
    for (;;) {
        iperf3_step step = protocol_.next_step();
        if (step.what == iperf3_step::kind::start_streams) {
            co_return step;  // CREATE_STREAMS goes out once the runner waits for the data connections
        }
        co_await send(step.reply);
        if (step.what == iperf3_step::kind::end_session) {
            // A refusal (SERVER_ERROR and its code) is all the client is told; it closes next.
            error_sent_ = !step.reply.empty();
            throw session_error(
                step.from_peer ? proto::error_code::internal : proto::error_code::protocol_error, step.reason,
                step.from_peer);
        }
        if (step.what != iperf3_step::kind::read_more) {
            co_return step;
        }
        if (!step.reply.empty()) {
            continue;  // bytes past the reply may already be buffered
        }
        if (!co_await channel_.wait_readable(deadline)) {
            throw session_error(proto::error_code::timeout,
                                "timed out waiting for " + std::string(protocol_.awaiting()));
        }
        asio::error_code ec;
        const std::size_t got = channel_.socket().read_some(asio::buffer(buffer), ec);
        if (ec == asio::error::eof) {
            step = protocol_.on_closed();
            if (step.what == iperf3_step::kind::finished) {
                co_return step;
            }
            throw session_error(proto::error_code::internal, step.reason, true);
        }
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            continue;
        }
        if (ec) {
            throw session_error(proto::error_code::internal, "control connection: " + ec.message(), true);
        }
        protocol_.on_bytes(std::span<const std::uint8_t>(buffer.data(), got));
    }
}

asio::awaitable<void> iperf3_session::serve() {
    const iperf3_step accepted = co_await next_step(clock::now() + protocol_.read_timeout());
    if (accepted.what != iperf3_step::kind::start_streams) {
        throw session_error(proto::error_code::internal, "iperf3 session protocol out of step");
    }
    co_await run_test(accepted);
}

asio::awaitable<void> iperf3_session::run_test(const iperf3_step& accepted) {
    const proto::test_request& request = accepted.request;
    // What this front-end does not do yet is refused as iperf3 refuses what it lacks ("not implemented").
    std::string missing;
    // An upload the client ends by amount: the window runs until its TEST_END.
    const bool by_amount = request.dir == proto::direction::upload && amount_of(accepted.parameters) != 0;
    if (request.proto == proto::transport::udp && context_->udp == nullptr) {
        missing = "UDP is off on this server";
    } else if (by_amount && request.proto == proto::transport::udp) {
        // The UDP receiver's window is timed; one that ends at the client's TEST_END is still to come.
        missing = "an iperf3 UDP upload by bytes or blocks (-n, -k) is not served yet";
    } else if (request.proto == proto::transport::tcp && !net::congestion_available(request.congestion)) {
        missing = "congestion control '" + request.congestion + "' is not available on the server";
    }
    if (!missing.empty()) {
        error_sent_ = true;
        co_await send(iperf3::encode_server_error(iperf3::error_code::not_implemented));
        throw session_error(proto::error_code::unsupported, missing);
    }
    if (request.proto == proto::transport::udp) {
        co_await wait_for_udp_connects_of_others();
    }
    runner_request what =
        runner_request::for_test(request, context_->config.limits, context_->config.stall_timeout);
    what.self_probes = false;
    what.closing = net::stream_group::closing::orderly;
    what.window_ends_at_stop = by_amount;
    what.least_bytes = amount_of(accepted.parameters);
    if (accepted.parameters.bidirectional) {
        co_await run_both_ways(accepted, std::move(what));
        co_return;
    }
    metrics_.test_started(request);
    if (request.proto == proto::transport::udp) {
        runner_ = make_udp_runner(std::move(what), iperf3_udp_runner::stream_roles::by_direction);
    } else {
        runner_ = std::make_unique<tcp_runner>(channel_.socket().get_executor(), context_->data_pool,
                                               std::move(what));
    }
    events iperf3_events(*this, accepted.reply);
    test_result result = co_await server::run_test(*runner_, iperf3_events);
    metrics_.test_completed(request, result);
    results_.push_back(std::move(result));
    runner_.reset();
}

asio::awaitable<void> iperf3_session::run_both_ways(const iperf3_step& accepted, runner_request upload) {
    runner_request download = upload;
    download.test.dir = proto::direction::download;
    // Both directions end at the client's TEST_END, which the download's side reads.
    upload.test.dir = proto::direction::upload;
    upload.window_ends_at_stop = true;
    const proto::test_request upload_test = upload.test;
    const proto::test_request download_test = download.test;
    const auto executor = channel_.socket().get_executor();
    metrics_.test_started(upload_test);
    metrics_.test_started(download_test);
    if (upload_test.proto == proto::transport::udp) {
        // One runner for both: the client's UDP connects name nothing but their address, so one handler takes
        // all 2P of them in iperf3's order (the upload's streams, then the download's).
        runner_ = make_udp_runner(std::move(upload), iperf3_udp_runner::stream_roles::both_ways);
    } else {
        runner_ = std::make_unique<tcp_runner>(executor, context_->data_pool, std::move(upload));
        reverse_runner_ = std::make_unique<tcp_runner>(executor, context_->data_pool, std::move(download));
    }
    test_runner& receiver = *runner_;
    test_runner& sender = reverse_runner_ ? *reverse_runner_ : *runner_;
    events control(*this, accepted.reply);
    test_setup setup = receiver.open();
    if (&sender != &receiver) {
        setup = sender.open();
    }
    co_await control.accepted(setup);
    co_await receiver.attach_all(control);
    if (&sender != &receiver) {
        co_await sender.attach_all(control);
    }
    receiver.start();
    if (&sender != &receiver) {
        sender.start();
    }
    co_await control.ready();
    stop_relay relay(executor, control.stop_timeout(), [&control] { return control.stopped(); });
    net::first_failure failure;
    std::tuple<test_result, test_result> figures;
    try {
        using namespace asio::experimental::awaitable_operators;
        figures = co_await (net::noting_failure(receiver.receive(relay), failure) &&
                            net::noting_failure(sender.send(control), failure));
    } catch (...) {
        failure.rethrow();
    }
    auto& [received, sent] = figures;
    iperf3::results ours = results_of(received);
    const iperf3::results theirs = results_of(sent, ours.streams.size());
    const std::size_t sending_from = ours.streams.size();
    ours.sender_has_retransmits = theirs.sender_has_retransmits;
    ours.streams.insert(ours.streams.end(), theirs.streams.begin(), theirs.streams.end());
    co_await control.exchange(std::move(ours), sending_from);
    co_await receiver.finish();
    if (&sender != &receiver) {
        co_await sender.finish();
    }
    metrics_.test_completed(upload_test, received);
    metrics_.test_completed(download_test, sent);
    results_.push_back(std::move(received));
    results_.push_back(std::move(sent));
    runner_.reset();
    reverse_runner_.reset();
}

std::unique_ptr<test_runner> iperf3_session::make_udp_runner(runner_request what,
                                                             iperf3_udp_runner::stream_roles roles) {
    asio::error_code ec;
    const auto local = channel_.socket().local_endpoint(ec);
    udp_runner_place place{*context_->udp, peer_.address(),
                           udp_local{local.address(), context_->udp->port()}};
    return std::make_unique<iperf3_udp_runner>(channel_.socket().get_executor(), context_->data_pool,
                                               std::move(place), std::move(what),
                                               protocol_.parameters().udp_counters_64bit, roles);
}

namespace {

std::int64_t as_json_count(std::uint64_t count) {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(count, INT64_MAX));
}

}  // namespace

iperf3::results iperf3_session::udp_results_of(const test_result& result, std::size_t first_stream) const {
    iperf3::results out;
    out.congestion_used = protocol_.request().congestion;
    for (std::size_t i = 0; i < result.iperf3_udp_sent.size(); ++i) {
        // As iperf3's sender: bytes after the warm-up, every datagram's count.
        const auto& sent = result.iperf3_udp_sent[i];
        iperf3::stream_result stream;
        stream.id = iperf3::stream_id(first_stream + i);
        stream.bytes = sent.bytes - std::min(sent.bytes, sent.omitted_bytes);
        stream.packets = as_json_count(sent.packets);
        stream.omitted_packets = as_json_count(sent.omitted_packets);
        out.streams.push_back(stream);
    }
    for (std::size_t i = 0; i < result.iperf3_udp_received.size(); ++i) {
        const auto& received = result.iperf3_udp_received[i];
        iperf3::stream_result stream;
        stream.id = iperf3::stream_id(first_stream + i);
        stream.bytes = received.bytes;
        stream.jitter_seconds = received.jitter_seconds;
        stream.errors = as_json_count(received.errors);
        stream.omitted_errors = as_json_count(received.omitted_errors);
        stream.packets = as_json_count(received.packets);
        stream.omitted_packets = as_json_count(received.omitted_packets);
        stream.end_seconds = result.received.seconds();
        out.streams.push_back(stream);
    }
    return out;
}

asio::awaitable<void> iperf3_session::wait_for_udp_connects_of_others() {
    // iperf3's UDP connect carries nothing but its source address: while two sessions from one address wait
    // for their streams, a connect could be given to the wrong one. So a session asks for its streams
    // (CREATE_STREAMS) only once no other session from its address waits for its own; each waits at most
    // kStreamSetupTimeout. No co_await lies between this check and the runner's open(), which registers it.
    const auto until = clock::now() + proto::kStreamSetupTimeout;
    asio::steady_timer timer(channel_.socket().get_executor());
    while (context_->udp->iperf3_waiting_from(peer_.address())) {
        if (clock::now() >= until) {
            throw session_error(proto::error_code::timeout,
                                "another iperf3 client from this address was connecting its UDP streams for "
                                "longer than the stream deadline");
        }
        timer.expires_after(kOtherConnectsPoll);
        co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
}

iperf3::results iperf3_session::results_of(const test_result& result, std::size_t first_stream) const {
    iperf3::results out;
    out.congestion_used =
        protocol_.request().congestion.empty() ? net::default_congestion() : protocol_.request().congestion;
    if (result.transport == proto::transport::udp) {
        return udp_results_of(result, first_stream);
    }
    if (result.direction == proto::direction::download) {
        out.sender_has_retransmits = true;
        for (std::size_t i = 0; i < result.tcp_sent.size(); ++i) {
            iperf3::stream_result stream;
            stream.id = iperf3::stream_id(first_stream + i);
            // As iperf3's own server: what was sent after the warm-up (-O).
            const std::uint64_t in_warm_up =
                i < result.tcp_sent_in_warm_up.size() ? result.tcp_sent_in_warm_up[i] : 0;
            stream.bytes =
                result.tcp_sent[i].bytes_sent - std::min(in_warm_up, result.tcp_sent[i].bytes_sent);
            if (result.tcp_sent[i].has_tcp_info) {
                stream.retransmits = result.tcp_sent[i].retransmits;
            }
            out.streams.push_back(stream);
        }
        return out;
    }
    const double window = result.received.seconds();
    for (std::size_t i = 0; i < result.received.stream_bytes.size(); ++i) {
        iperf3::stream_result stream;
        stream.id = iperf3::stream_id(first_stream + i);
        stream.bytes = result.received.stream_bytes[i];
        stream.end_seconds = window;
        out.streams.push_back(stream);
    }
    return out;
}

}  // namespace speed::server
