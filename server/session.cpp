#include "server/session.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "common/limits.hpp"
#include "common/measurement.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/receiver_window.hpp"
#include "net/socket_options.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

// How long the client has to open every data connection of a test after TEST_ACCEPT.
constexpr auto kStreamSetupTimeout = 5s;
// How long after STREAMS_READY the first payload byte may take (slow start on a long path, a busy sender).
constexpr auto kFirstByteTimeout = 5s;
// Slack on top of the test's own length before a sender gives up waiting for STOP.
constexpr auto kStopGrace = 5s;
// How long closing streams and exchanging final reports may take.
constexpr auto kResultsTimeout = 5s;
// Between tests the client has this long to send its next request (or close the connection).
constexpr auto kIdleBetweenTests = 30s;

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
                 asio::ip::tcp::endpoint peer, std::string client_software)
    : context_(std::move(context)),
      channel_(std::move(channel)),
      peer_(std::move(peer)),
      client_software_(std::move(client_software)),
      token_(make_session_token()) {}

session::~session() = default;

asio::awaitable<void> session::run(std::shared_ptr<session> self) {
    auto& ctx = *self->context_;
    ctx.sessions.add(self->token_, self);
    const auto started = clock::now();
    const std::string id = proto::token_prefix(self->token_);
    spdlog::info("session {} from {} started ({})", id, fmt::streamed(self->peer_),
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
    if (report_to_client) {
        co_await self->channel_.send_error_quietly(report_to_client->code, report_to_client->message);
    }
    self->test_.reset();
    self->end_udp();
    ctx.sessions.remove(self->token_);
    asio::error_code ignored;
    self->channel_.socket().close(ignored);
    const double seconds = std::chrono::duration<double>(clock::now() - started).count();
    std::string tests;
    for (const auto& summary : self->summaries_) {
        tests += "; " + summary;
    }
    spdlog::info("session {} from {} ended after {:.1f} s, {}{}", id, fmt::streamed(self->peer_), seconds,
                 outcome, tests.empty() ? "; no tests" : tests);
}

void session::abort() {
    asio::error_code ignored;
    channel_.socket().close(ignored);
    if (test_) {
        test_->group.stop_all();
        test_->attach_timer.cancel();
    }
    end_udp();
}

asio::awaitable<void> session::serve_tests() {
    const auto& limits = context_->config.limits;
    proto::welcome welcome;
    welcome.token = token_;
    welcome.software = std::string("speedsrv ") + SPEED_VERSION;
    welcome.max_streams = limits.max_streams;
    welcome.max_duration_ms = limits.max_duration_ms;
    welcome.max_bitrate = limits.max_bitrate;
    co_await channel_.write(welcome, clock::now() + kResultsTimeout);

    for (;;) {
        auto msg = co_await channel_.read_unless_closed(clock::now() + kIdleBetweenTests, "a test request");
        if (!msg) {
            co_return;  // the client is done
        }
        if (std::holds_alternative<proto::udp_echo_request>(*msg)) {
            co_await start_udp_echo();
            continue;
        }
        auto* request = std::get_if<proto::test_request>(&*msg);
        if (request == nullptr) {
            throw net::control_channel::unexpected(*msg, "a test request");
        }
        co_await run_test(*request);
    }
}

asio::awaitable<void> session::run_test(const proto::test_request& request) {
    if (auto refusal = validate_request(request, context_->config.limits)) {
        throw session_error(refusal->code, refusal->message);
    }
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
    if (request.dir == proto::direction::download) {
        co_await send_download(*test_);
    } else {
        co_await receive_upload(*test_);
    }
    test_.reset();
}

void session::attach_data(const proto::hello& hello, asio::ip::tcp::socket socket) {
    if (!test_ || hello.test_id != test_->id) {
        spdlog::debug("session {}: data connection for test {} does not match the current test; closed",
                      proto::token_prefix(token_), hello.test_id);
        return;  // the socket closes as it goes out of scope
    }
    if (!test_->group.attach(hello.stream_index, std::move(socket), context_->data_pool.next())) {
        spdlog::debug("session {}: data connection with stream index {} rejected",
                      proto::token_prefix(token_), hello.stream_index);
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
    // TCP has no rate of its own: a requested (or capped) bitrate is handed to the kernel's pacing.
    std::uint64_t bitrate = request.bitrate;
    const std::uint64_t cap = context_->config.limits.max_bitrate;
    if (cap != 0 && (bitrate == 0 || bitrate > cap)) {
        bitrate = cap;
    }
    const std::int64_t sending_started_ns = net::now_ns();
    test.group.start_sending(bitrate / 8 / request.streams);
    const proto::streams_ready ready;
    co_await channel_.write(ready, clock::now() + kResultsTimeout);

    const auto test_length = std::chrono::milliseconds(request.omit_ms + request.duration_ms);
    co_await channel_.expect<proto::stop>(clock::now() + kFirstByteTimeout + test_length + kStopGrace,
                                          "the client's STOP");
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

asio::awaitable<void> session::receive_upload(active_test& test) {
    const auto& request = test.request;
    test.group.start_receiving();
    const proto::streams_ready ready;
    co_await channel_.write(ready, clock::now() + kResultsTimeout);

    measure::plan plan;
    plan.omit_ns = std::int64_t{request.omit_ms} * 1'000'000;
    plan.duration_ns = std::int64_t{request.duration_ms} * 1'000'000;
    plan.interval_ns = std::int64_t{request.interval_ms} * 1'000'000;
    auto& channel = channel_;
    const measure::totals totals = co_await net::measure_receiver_window(
        test.group, plan, clock::now() + kFirstByteTimeout,
        [&channel](const measure::interval& closed) { return send_interval_report(channel, closed); });

    const proto::stop stop{proto::stop_reason::window_complete};
    co_await channel_.write(stop, clock::now() + kResultsTimeout);
    test.group.stop_all();
    proto::receiver_report report;
    report.window_ns = static_cast<std::uint64_t>(totals.window_ns);
    report.omitted_ns = static_cast<std::uint64_t>(totals.omitted_ns);
    report.omitted_bytes = totals.omitted_bytes;
    report.stream_bytes = totals.stream_bytes;
    co_await channel_.write(report, clock::now() + kResultsTimeout);
    co_await channel_.expect<proto::sender_report>(clock::now() + kResultsTimeout,
                                                   "the client's SENDER_REPORT");
    co_await test.group.wait_all_ended(clock::now() + kResultsTimeout);

    summaries_.push_back(fmt::format("upload {} stream{}: received {} ({} in {:.2f} s, receiver side)",
                                     request.streams, request.streams == 1 ? "" : "s",
                                     units::format_bits_per_second(totals.bits_per_second()),
                                     units::format_bytes(sum(totals.stream_bytes)), totals.seconds()));
}

}  // namespace speed::server
