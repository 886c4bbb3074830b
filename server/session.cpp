#include "server/session.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include "common/limits.hpp"
#include "common/peer_text.hpp"
#include "common/test_timing.hpp"
#include "net/errors.hpp"
#include "net/random.hpp"
#include "net/socket_options.hpp"
#include "server/runners/tcp_runner.hpp"
#include "server/runners/udp_runner.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using net::clock;
using net::session_error;

namespace {

using proto::kResultsTimeout;

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

}  // namespace

// The speedsrv protocol's frames for a runner's events (docs/protocol.md).
class session::events : public test_events {
  public:
    explicit events(session& owner) : s_(owner) {}

    asio::awaitable<void> accepted(const test_setup& setup) override {
        const proto::test_accept accept{s_.test_id_, setup.congestion};
        co_await s_.channel_.write(accept, clock::now() + kResultsTimeout);
        if (setup.udp) {
            const proto::udp_setup udp{setup.udp->token, setup.udp->port, setup.udp->max_bitrate};
            co_await s_.channel_.write(udp, clock::now() + kResultsTimeout);
        }
    }

    asio::awaitable<void> ready() override {
        s_.protocol_.streams_ready();
        const proto::streams_ready ready;
        co_await s_.channel_.write(ready, clock::now() + kResultsTimeout);
    }

    asio::awaitable<void> interval(const measure::interval& closed) override {
        proto::interval_report report;
        report.index = closed.index;
        report.start_ns = static_cast<std::uint64_t>(closed.start_ns);
        report.end_ns = static_cast<std::uint64_t>(closed.end_ns);
        report.omitted = closed.omitted;
        report.stream_bytes = closed.stream_bytes;
        co_await s_.channel_.write(report, clock::now() + kResultsTimeout);
    }

    asio::awaitable<void> udp_interval(const proto::udp_interval_report& report) override {
        co_await s_.channel_.write(report, clock::now() + kResultsTimeout);
    }

    asio::awaitable<void> self_probe_marks(const std::vector<proto::self_probe_mark>& marks) override {
        for (const auto& mark : marks) {
            co_await s_.channel_.write(mark, clock::now() + kResultsTimeout);
        }
    }

    asio::awaitable<void> window_closed() override {
        s_.protocol_.window_closed();
        const proto::stop stop{proto::stop_reason::window_complete};
        co_await s_.channel_.write(stop, clock::now() + kResultsTimeout);
    }

    asio::awaitable<void> result(const test_result& result) override {
        const bool download = result.direction == proto::direction::download;
        if (result.transport == proto::transport::udp) {
            if (download) {
                co_await s_.channel_.write(result.udp_sent, clock::now() + kResultsTimeout);
            } else {
                co_await s_.channel_.write(result.udp_received, clock::now() + kResultsTimeout);
            }
            co_return;
        }
        if (download) {
            const proto::sender_report report{result.tcp_sent, result.rtt_samples_us};
            co_await s_.channel_.write(report, clock::now() + kResultsTimeout);
            co_return;
        }
        // Only a client that answered gets the samples: one that predates self probes expects
        // RECEIVER_REPORT.
        if (s_.protocol_.self_probe_marks() > 0) {
            co_await s_.channel_.write(result.self_probes, clock::now() + kResultsTimeout);
        }
        proto::receiver_report report;
        report.window_ns = static_cast<std::uint64_t>(result.received.window_ns);
        report.omitted_ns = static_cast<std::uint64_t>(result.received.omitted_ns);
        report.omitted_bytes = result.received.omitted_bytes;
        report.stream_bytes = result.received.stream_bytes;
        co_await s_.channel_.write(report, clock::now() + kResultsTimeout);
        // The client's SENDER_REPORT ends the upload; SELF_PROBE_MARKs it sent before it saw STOP may come
        // first (counted by session_protocol).
        const auto report_deadline = clock::now() + kResultsTimeout;
        session_step step = co_await s_.next_step(report_deadline);
        while (step.what == session_step::kind::read_more) {
            step = co_await s_.next_step(report_deadline);
        }
        expect(step, session_step::kind::test_complete);
    }

    asio::awaitable<bool> input_pending(clock::time_point deadline) override {
        const bool readable = co_await s_.channel_.wait_readable(deadline);
        co_return readable;
    }

    std::chrono::milliseconds stop_timeout() const override { return s_.protocol_.read_timeout(); }

    asio::awaitable<void> take_stop() override {
        const session_step step = co_await s_.next_step();
        expect(step, session_step::kind::stop_sending);
    }

    asio::awaitable<proto::self_probe_mark> take_self_probe_mark() override {
        // session_protocol takes only SELF_PROBE_MARKs while the window is open, each naming a stream.
        const session_step step = co_await s_.next_step();
        expect(step, session_step::kind::self_probe_mark);
        co_return step.mark;
    }

    asio::awaitable<proto::udp_sender_report> take_udp_sender_counts() override {
        const session_step step = co_await s_.next_step();
        expect(step, session_step::kind::test_complete);
        co_return step.udp_sender_report;
    }

    bool aborted() const override { return !s_.channel_.socket().is_open(); }

  private:
    static void expect(const session_step& step, session_step::kind what) {
        if (step.what != what) {
            throw session_error(proto::error_code::internal, "session protocol out of step");
        }
    }

    session& s_;
};

session::session(std::shared_ptr<server_context> context, net::control_channel channel,
                 asio::ip::tcp::endpoint peer, std::string client_software, admission_control::slot admission)
    : context_(std::move(context)),
      admission_(std::move(admission)),
      metrics_(context_->metrics),
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
        self->metrics_.failed(e.code());
        outcome = std::string("error: ") + e.what();
        if (!e.from_peer()) {
            report_to_client = proto::error{e.code(), e.what()};
        }
    } catch (const std::exception& e) {
        self->metrics_.failed(proto::error_code::internal);
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
        const bool linger = self->runner_ && self->runner_->hold_sending();
        co_await self->channel_.send_error_quietly(report_to_client->code, report_to_client->message);
        if (linger) {
            co_await self->channel_.wait_readable(clock::now() + kErrorLinger);  // the client's close
        }
    }
    self->end_runner();
    self->close_probes();
    self->end_udp();
    ctx.sessions.remove(self->token_);
    asio::error_code ignored;
    self->channel_.socket().close(ignored);
    self->admission_.release();
    self->metrics_.ended();
    const double seconds = std::chrono::duration<double>(clock::now() - started).count();
    const std::string tests = describe_tests_for_log(self->results_, self->foreign_connections_);
    const std::string key = self->protocol_.key_name().empty() ? "" : ", key " + self->protocol_.key_name();
    log_limited(ctx, log_kind::session, spdlog::level::info,
                "session {} from {} ended after {:.1f} s{}, {}{}", id, fmt::streamed(self->peer_), seconds,
                key, escape_for_log(outcome), tests);
}

void session::abort() {
    asio::error_code ignored;
    channel_.socket().close(ignored);
    if (runner_) {
        runner_->abort();
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
                const auto test_length = test_timing::of(step.request).length();
                if (clock::now() + test_length > ends_at_) {
                    throw lifetime_over();
                }
                co_await run_requested_test(step.request);
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

asio::awaitable<void> session::run_requested_test(const proto::test_request& request) {
    if (!net::congestion_available(request.congestion)) {
        throw session_error(proto::error_code::unsupported,
                            "congestion control '" + request.congestion + "' is not available on the server");
    }
    metrics_.test_started(request);
    const bool udp = request.proto == proto::transport::udp;
    runner_request what =
        runner_request::for_test(request, context_->config.limits, context_->config.stall_timeout);
    const auto executor = channel_.socket().get_executor();
    if (udp) {
        end_udp();
        if (!context_->udp) {
            throw session_error(proto::error_code::unsupported, "this server does not offer UDP tests");
        }
        udp_runner_place place{*context_->udp, peer_.address(), udp_local_endpoint()};
        runner_ =
            std::make_unique<udp_runner>(executor, context_->data_pool, std::move(place), std::move(what));
    } else {
        runner_ = std::make_unique<tcp_runner>(executor, context_->data_pool, std::move(what));
    }
    test_id_ = next_test_id_++;
    events speedsrv(*this);
    test_result result = co_await server::run_test(*runner_, speedsrv);
    metrics_.test_completed(request, result);
    results_.push_back(std::move(result));
    if (udp) {
        // The flows stay open until the next UDP request: FEEDBACK still in flight lands on them.
        udp_runner_ = std::move(runner_);
        udp_result_index_ = results_.size() - 1;
    }
    runner_.reset();
}

void session::attach_data(const proto::hello& hello, asio::ip::tcp::socket socket) {
    if (!runner_ || hello.test_id != test_id_ || protocol_.phase() != session_phase::setting_up) {
        log_limited(*context_, log_kind::stray_connection, spdlog::level::debug,
                    "session {}: data connection for test {} does not match the current test; closed",
                    proto::token_prefix(token_), hello.test_id);
        return;  // the socket closes as it goes out of scope
    }
    if (!runner_->attach_connection(hello.stream_index, std::move(socket))) {
        log_limited(*context_, log_kind::stray_connection, spdlog::level::debug,
                    "session {}: data connection with stream index {} rejected", proto::token_prefix(token_),
                    hello.stream_index);
    }
}

void session::end_runner() {
    if (runner_) {
        runner_->abort();
        note_flow_counters(runner_->flow_counters(), std::nullopt);
        runner_.reset();
    }
}

void session::note_flow_counters(const udp_flow_counters& counters, std::optional<std::size_t> result_index) {
    if (counters == udp_flow_counters{}) {
        return;
    }
    context_->metrics.udp_flow_drops(counters.data_drops, counters.rejected_datagrams);
    if (result_index && *result_index < results_.size()) {
        results_[*result_index].udp_counters = counters;
        return;
    }
    test_result failed;  // completed = false: the counters are all there is to say
    failed.transport = proto::transport::udp;
    failed.udp_counters = counters;
    results_.push_back(std::move(failed));
}

udp_local session::udp_local_endpoint() {
    asio::error_code ec;
    const auto local = channel_.socket().local_endpoint(ec);
    return {local.address(), context_->udp ? context_->udp->port() : std::uint16_t{0}};
}

void session::end_udp() {
    if (udp_runner_) {
        udp_runner_->abort();
        note_flow_counters(udp_runner_->flow_counters(), udp_result_index_);
        udp_runner_.reset();
        udp_result_index_.reset();
    }
    if (context_->udp && udp_echo_token_ != 0) {
        context_->udp->remove(udp_echo_token_);
    }
    udp_echo_token_ = 0;
    udp_echo_.reset();
}

asio::awaitable<void> session::start_udp_echo() {
    end_udp();
    if (!context_->udp || !context_->config.limits.udp) {
        throw session_error(proto::error_code::unsupported, "this server does not offer UDP tests");
    }
    udp_echo_token_ = net::random_nonzero_u64();
    udp_echo_ = std::make_shared<udp_echo>(context_->probe_context->get_executor(), udp_echo_token_,
                                           peer_.address(), udp_local_endpoint());
    context_->udp->add(udp_echo_token_, udp_echo_);
    const proto::udp_setup setup{udp_echo_token_, context_->udp->port(), 0};
    co_await channel_.write(setup, clock::now() + kResultsTimeout);
}

}  // namespace speed::server
