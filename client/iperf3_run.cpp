#include "client/iperf3_run.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <cmath>
#include <limits>
#include <optional>

#include "client/connect.hpp"
#include "client/iperf3_bidir_windows.hpp"
#include "client/iperf3_client_protocol.hpp"
#include "client/iperf3_udp_streams.hpp"
#include "client/runners/direction_runner.hpp"
#include "client/udp_run.hpp"
#include "common/iperf3_protocol.hpp"
#include "common/limits.hpp"
#include "common/saturating.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/udp_accounting.hpp"
#include "common/units.hpp"
#include "net/control_channel.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/random.hpp"
#include "net/receiver_window.hpp"
#include "net/socket_options.hpp"
#include "net/stream_group.hpp"

namespace speed::client {

using asio::ip::tcp;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kReplyTimeout;
using proto::kResultsTimeout;

// A UDP download whose data stops this long ends with an error (speedsrv's default --stall-timeout).
constexpr auto kUdpStallTimeout = std::chrono::seconds(10);

// What one read of control bytes takes at most: the server's results arrive in a few reads of this size.
constexpr std::size_t kReadChunk = 4096;

// iperf3's -t and -O are whole seconds: speedcli asks for its own times rounded up, so the server's test
// lasts at least as long as speedcli's window needs.
std::uint32_t whole_seconds(double seconds) {
    return static_cast<std::uint32_t>(std::ceil(seconds));
}

// --iperf3 --bidir: both directions of one iperf3 test.
struct bidirectional_run {
    direction_report download;
    direction_report upload;
    bidirectional_report both;
};

// One iperf3 test (one control connection) in one direction, or with --bidir both (run_bidirectional).
class iperf3_test {
  public:
    iperf3_test(tcp::socket control, const tcp::endpoint& server, const test_options& options,
                progress_sink& progress, net::io_pool& data_pool, proto::direction dir)
        : control_(std::move(control)),
          server_(server),
          options_(options),
          progress_(progress),
          data_pool_(data_pool),
          dir_(dir),
          request_(tcp_request_for(options, dir)),
          datagram_bytes_(options.udp ? udp_length_for(options, server.address()) : 0),
          protocol_(parameters_for(options, dir, datagram_bytes_), random_cookie_bytes()) {}

    asio::awaitable<direction_report> run() {
        direction_report report;
        report.dir = dir_;
        report.measured_by = dir_ == proto::direction::download ? "client" : "server";  // the receiver
        report.congestion = options_.congestion;
        net::stream_group group(co_await asio::this_coro::executor, options_.streams);
        co_await until_streams_asked();
        co_await open_streams(group, report);
        iperf3_client_step step = co_await next_step(clock::now() + kReplyTimeout);
        expect(step, iperf3_client_step::kind::start_test);
        progress_.direction_started(dir_, report);
        if (dir_ == proto::direction::download) {
            co_await download(group, report);
        } else {
            co_await upload(group, report);
        }
        co_await reply(protocol_.time_up());
        step = co_await next_step(clock::now() + kResultsTimeout);
        expect(step, iperf3_client_step::kind::send_results);
        co_await reply(protocol_.results_ready(my_results(group)));
        step = co_await next_step(clock::now() + kResultsTimeout);
        expect(step, iperf3_client_step::kind::finished);
        co_await close_after_server();
        group.stop_all(net::stream_group::closing::orderly);
        co_await group.wait_all_ended(clock::now() + kResultsTimeout);
        if (dir_ == proto::direction::upload) {
            fill_server_receiver(report, server_streams(0, options_.streams));
            if (udp_streams_) {
                fill_udp_upload(report, server_streams(0, options_.streams));
            } else {
                fill_sender(report, group.sender_stats());
            }
        } else if (udp_streams_) {
            fill_udp_download(report, server_streams(0, options_.streams));
        } else {
            fill_server_sender(report, server_streams(0, options_.streams));
        }
        progress_.direction_done(report);
        co_return report;
    }

    // --iperf3 --bidir: one iperf3 test with "bidirectional", both directions at once, over TCP or UDP.
    // speedcli's receiver measures the download over its own window, the upload's figure is the server's
    // receiver count from its results, as for one direction (docs/methodology.md, "--bidir against an iperf3
    // server").
    asio::awaitable<bidirectional_run> run_bidirectional() {
        bidirectional_run out;
        out.download.dir = proto::direction::download;
        out.download.measured_by = "client";
        out.upload.dir = proto::direction::upload;
        out.upload.measured_by = "server";
        out.download.congestion = out.upload.congestion = options_.congestion;
        const auto executor = co_await asio::this_coro::executor;
        net::stream_group sending(executor, options_.streams);
        net::stream_group receiving(executor, options_.streams);
        co_await until_streams_asked();
        // iperf3's --bidir client connects its sending streams first, then its receiving ones; the server
        // takes the first -P connections (or UDP connects) for its receiver and the next -P for its sender
        // (iperf_server_api.c, rec_streams_accepted before send_streams_accepted).
        if (options_.udp) {
            co_await open_udp_streams_both_ways();
        } else {
            co_await connect_tcp_streams(sending, out.upload, 0);
            co_await connect_tcp_streams(receiving, out.download, options_.streams);
            receiving.start_receiving();
        }
        iperf3_client_step step = co_await next_step(clock::now() + kReplyTimeout);
        expect(step, iperf3_client_step::kind::start_test);
        progress_.direction_started(proto::direction::download, out.download);
        progress_.direction_started(proto::direction::upload, out.upload);
        const std::int64_t running_ns = net::now_ns();
        std::int64_t download_closed_ns = 0;
        if (udp_sending_) {
            co_await udp_both_ways(receiving, out.download, download_closed_ns);
            out.upload.omitted_seconds = static_cast<double>(whole_seconds(options_.omit_seconds));
        } else {
            co_await tcp_both_ways(sending, receiving, out.download, download_closed_ns);
            finish_sending(sending, out.upload, running_ns);
        }
        co_await reply(protocol_.time_up());
        step = co_await next_step(clock::now() + kResultsTimeout);
        expect(step, iperf3_client_step::kind::send_results);
        iperf3::results mine = my_results(sending, 0);
        if (!udp_sending_) {
            for (auto& stream : my_results(receiving, options_.streams).streams) {
                mine.streams.push_back(stream);
            }
        }
        co_await reply(protocol_.results_ready(mine));
        step = co_await next_step(clock::now() + kResultsTimeout);
        expect(step, iperf3_client_step::kind::finished);
        co_await close_after_server();
        sending.stop_all(net::stream_group::closing::orderly);
        receiving.stop_all(net::stream_group::closing::orderly);
        co_await sending.wait_all_ended(clock::now() + kResultsTimeout);
        co_await receiving.wait_all_ended(clock::now() + kResultsTimeout);
        const auto server_receiving = server_streams(0, options_.streams);
        const auto server_sending = server_streams(options_.streams, options_.streams);
        fill_server_receiver(out.upload, server_receiving);
        if (udp_sending_) {
            fill_udp_upload(out.upload, server_receiving);
            fill_udp_download(out.download, server_sending);
        } else {
            fill_sender(out.upload, sending.sender_stats());
            fill_server_sender(out.download, server_sending);
        }
        progress_.direction_done(out.download);
        progress_.direction_done(out.upload);
        out.both = both_at_once(out, running_ns, download_closed_ns);
        co_return out;
    }

    // The server took the test (asked for its streams): a failure after this is the test's, not the
    // server's between two tests.
    bool accepted() const { return accepted_; }
    // Tells the progress output "connected" with `report` once the server takes the test.
    void announce_when_accepted(const test_report& report) { announce_ = &report; }

  private:
    static iperf3::parameters parameters_for(const test_options& options, proto::direction dir,
                                             std::uint32_t datagram_bytes) {
        iperf3::parameters p;
        if (options.udp) {
            p.protocol = iperf3::transport::udp;
            p.block_length = datagram_bytes;
        }
        // --bidir: one test, both ways (the parameters of iperf3's own --bidir client: not reverse).
        p.bidirectional = options.bidir;
        p.reverse = !options.bidir && dir == proto::direction::download;
        p.streams = options.streams;
        p.duration_seconds = whole_seconds(options.duration_seconds);
        p.omit_seconds = whole_seconds(options.omit_seconds);
        p.congestion = options.congestion;
        p.client_version = std::string("speedcli ") + SPEED_VERSION;
        if (options.bitrate != 0) {
            // iperf3's -b is per stream; a reverse test's sender is the server, which paces itself to it.
            p.bitrate = std::max<std::uint64_t>(1, options.bitrate / options.streams);
        }
        return p;
    }

    static std::array<std::uint8_t, 36> random_cookie_bytes() {
        std::array<std::uint8_t, 36> bytes{};
        net::fill_random(bytes);
        return bytes;
    }

    // The cookie, the parameters, up to the server's CREATE_STREAMS: the server has taken the test.
    asio::awaitable<void> until_streams_asked() {
        co_await send(protocol_.cookie());
        // A server that says nothing within the connect timeout is not (or no longer) an iperf3 server.
        const auto greeting_deadline = clock::now() + units::seconds_to_ns(options_.connect_timeout_seconds);
        const iperf3_client_step step = co_await next_step(greeting_deadline);
        expect(step, iperf3_client_step::kind::open_streams);
        accepted_ = true;
        if (announce_ != nullptr) {
            progress_.connected(*announce_);
        }
    }

    asio::awaitable<void> send(const std::vector<std::uint8_t>& bytes) {
        if (bytes.empty()) {
            co_return;
        }
        if (auto ec = co_await net::write_all(control_.socket(), asio::buffer(bytes),
                                              clock::now() + kReplyTimeout)) {
            throw session_error(proto::error_code::timeout,
                                "the iperf3 server did not take control bytes: " + ec.message());
        }
    }

    // Sends a step's reply, or ends the test when the step failed.
    asio::awaitable<void> reply(const iperf3_client_step& step) {
        if (step.what == iperf3_client_step::kind::failed) {
            fail(step);
        }
        co_await send(step.reply);
    }

    // iperf3's refusals (busy, SERVER_ERROR, SERVER_TERMINATE) are the server's answer: exit 4 with its
    // words.
    [[noreturn]] static void fail(const iperf3_client_step& step) {
        if (step.from_server) {
            throw session_error(proto::error_code::server_busy, step.reason, true);
        }
        throw session_error(proto::error_code::protocol_error, step.reason);
    }

    void expect(const iperf3_client_step& step, iperf3_client_step::kind what) const {
        if (step.what != what) {
            throw session_error(
                proto::error_code::protocol_error,
                "iperf3 exchange out of step while speedcli waited for " + std::string(protocol_.awaiting()));
        }
    }

    // Reads and answers control bytes until the machine asks for something other than reading on.
    asio::awaitable<iperf3_client_step> next_step(clock::time_point deadline) {
        std::array<std::uint8_t, kReadChunk> buffer{};
        for (;;) {
            iperf3_client_step step = protocol_.next_step();
            co_await reply(step);
            if (step.what != iperf3_client_step::kind::read_more) {
                co_return step;
            }
            if (!step.reply.empty()) {
                continue;  // bytes past the reply may already be buffered
            }
            if (!co_await control_.wait_readable(deadline)) {
                timed_out();
            }
            asio::error_code ec;
            const std::size_t got = control_.socket().read_some(asio::buffer(buffer), ec);
            if (ec == asio::error::eof) {
                const iperf3_client_step closed = protocol_.on_closed();
                throw session_error(proto::error_code::protocol_error, closed.reason);
            }
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                continue;
            }
            if (ec) {
                throw session_error(proto::error_code::internal, "control connection: " + ec.message());
            }
            protocol_.on_bytes(std::span<const std::uint8_t>(buffer.data(), got));
        }
    }

    // After IPERF_DONE an iperf3 server closes the control connection and only then takes a new test: one
    // that arrives before is told ACCESS_DENIED (seen with 3.12 when the upload's connection followed at
    // once). Waits for that close, or kResultsTimeout; what the server sends meanwhile is not read as
    // anything. Then closes this end: iperf3 3.21's server only half-closes (iperf_sync_close_socket) and
    // reads on until the client closes too, and takes no new test until then (the upload's connection of
    // speedcli --iperf3 waited in its backlog, never answered, while this end stayed open).
    asio::awaitable<void> close_after_server() {
        const auto deadline = clock::now() + kResultsTimeout;
        std::array<std::uint8_t, kReadChunk> buffer{};
        while (co_await control_.wait_readable(deadline)) {
            asio::error_code ec;
            control_.socket().read_some(asio::buffer(buffer), ec);
            if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
                break;  // closed (or reset): the server is done with this test
            }
        }
        asio::error_code ignored;
        control_.socket().close(ignored);
    }

    [[noreturn]] void timed_out() const {
        if (protocol_.phase() == iperf3_client_phase::awaiting_parameter_request) {
            throw unreachable_error(fmt::format(
                "no iperf3 server answered at {} within {:g} s: the connection was accepted but nothing "
                "replied",
                describe(server_), options_.connect_timeout_seconds));
        }
        throw session_error(proto::error_code::timeout,
                            "timed out waiting for the iperf3 server's " + std::string(protocol_.awaiting()));
    }

    // Each data connection opens with the test's cookie, as iperf3's own client does; a UDP stream with
    // iperf3's connect datagram.
    asio::awaitable<void> open_streams(net::stream_group& group, direction_report& report) {
        if (options_.udp) {
            udp_streams_.emplace(co_await asio::this_coro::executor, options_.streams, datagram_bytes_, false,
                                 test_timing::of(request_).plan());
            co_await udp_streams_->open(
                asio::ip::udp::endpoint(server_.address(), server_.port()), options_.sockets,
                clock::now() + units::seconds_to_ns(options_.connect_timeout_seconds), 0);
            co_return;
        }
        co_await connect_tcp_streams(group, report, 0);
        if (dir_ == proto::direction::download) {
            // Read from the start so the first byte's timestamp is when it arrived. No self probes: an iperf3
            // server would take their bytes for payload.
            group.start_receiving();
        }
    }

    // The group's data connections, each opening with the test's cookie; `first` is the index of the group's
    // first connection in the test (its --sockets port and its name in errors).
    asio::awaitable<void> connect_tcp_streams(net::stream_group& group, direction_report& report,
                                              std::size_t first) {
        for (std::uint16_t index = 0; index < group.size(); ++index) {
            const std::size_t number = first + index;
            tcp::socket socket = co_await connect(server_, options_.connect_timeout_seconds, options_.sockets,
                                                  static_cast<std::uint16_t>(number));
            report.stream_sockets.push_back(
                net::read_socket(socket.native_handle(), server_.address().is_v6()));
            if (auto ec = co_await net::write_all(socket, asio::buffer(protocol_.cookie()),
                                                  clock::now() + kReplyTimeout)) {
                throw session_error(proto::error_code::timeout,
                                    "data connection " + std::to_string(number) + ": " + ec.message());
            }
            group.attach(index, std::move(socket), data_pool_.next());
        }
        if (auto failure = group.set_congestion(options_.congestion)) {
            throw session_error(proto::error_code::unsupported, *failure);
        }
    }

    // --bidir: the download, and when its window closed (this client's steady clock, ns).
    asio::awaitable<void> timed_download(net::stream_group& group, direction_report& report,
                                         std::int64_t& closed_ns) {
        co_await download(group, report);
        closed_ns = net::now_ns();
    }

    // --bidir over TCP, from TEST_RUNNING: the upload sends for its whole seconds and on until the
    // download's window has closed. A real iperf3 server's upload window ends at TEST_END, and a sender
    // silent before it would lower the figure.
    asio::awaitable<void> tcp_both_ways(net::stream_group& sending, net::stream_group& receiving,
                                        direction_report& download_report, std::int64_t& download_closed_ns) {
        using namespace asio::experimental::awaitable_operators;
        sending.start_sending(per_stream_pacing(options_.bitrate, options_.streams));
        net::first_failure failure;
        try {
            co_await (net::noting_failure(timed_download(receiving, download_report, download_closed_ns),
                                          failure) &&
                      net::noting_failure(sleep_until(clock::now() + send_length()), failure));
        } catch (...) {
            failure.rethrow();
        }
    }

    // --bidir over UDP: speedcli's P sending streams, then its P receiving ones, each opened with iperf3's
    // connect datagram and its reply before the next (iperf_udp_connect), all to the server's control address
    // and port.
    asio::awaitable<void> open_udp_streams_both_ways() {
        const auto executor = co_await asio::this_coro::executor;
        const asio::ip::udp::endpoint server(server_.address(), server_.port());
        const auto deadline = clock::now() + units::seconds_to_ns(options_.connect_timeout_seconds);
        const measure::plan plan = test_timing::of(request_).plan();
        udp_sending_.emplace(executor, options_.streams, datagram_bytes_, false, plan);
        co_await udp_sending_->open(server, options_.sockets, deadline, 0);
        udp_streams_.emplace(executor, options_.streams, datagram_bytes_, false, plan);
        co_await udp_streams_->open(server, options_.sockets, deadline, options_.streams);
    }

    // --bidir over UDP, from TEST_RUNNING: as over TCP, the upload sends at -b for its whole seconds and on
    // until the download's window has closed (then the download's side holds it).
    asio::awaitable<void> udp_both_ways(net::stream_group& receiving, direction_report& download_report,
                                        std::int64_t& download_closed_ns) {
        using namespace asio::experimental::awaitable_operators;
        const auto send_until = clock::now() + send_length();
        // The senders' own end, which the hold comes before: the download's window closes at most its first
        // datagram's deadline after the whole seconds.
        const std::chrono::nanoseconds longest = send_length() + kFirstByteTimeout;
        net::first_failure failure;
        try {
            co_await (net::noting_failure(
                          udp_download_then_hold(receiving, download_report, download_closed_ns, send_until),
                          failure) &&
                      net::noting_failure(udp_send(longest), failure));
        } catch (...) {
            failure.rethrow();
        }
    }

    asio::awaitable<void> udp_download_then_hold(net::stream_group& receiving, direction_report& report,
                                                 std::int64_t& closed_ns, clock::time_point send_until) {
        // However the download ends, the senders stop: a failed one must not leave them sending to the end.
        struct holder {
            iperf3_udp_streams& streams;
            ~holder() { streams.hold_sending(); }
        } hold_at_end{*udp_sending_};
        co_await timed_download(receiving, report, closed_ns);
        co_await sleep_until(send_until);
    }

    asio::awaitable<void> udp_send(std::chrono::nanoseconds longest) {
        const std::chrono::nanoseconds warm_up = std::chrono::seconds(whole_seconds(options_.omit_seconds));
        udp_sent_ = co_await udp_sending_->send(static_cast<double>(options_.bitrate) / options_.streams,
                                                warm_up, longest - warm_up);
    }

    static asio::awaitable<void> sleep_until(clock::time_point when) {
        asio::steady_timer timer(co_await asio::this_coro::executor, when);
        co_await timer.async_wait(asio::use_awaitable);
    }

    // The whole seconds of warm-up and window iperf3 was told of.
    std::chrono::seconds send_length() const {
        return std::chrono::seconds(whole_seconds(options_.omit_seconds) +
                                    whole_seconds(options_.duration_seconds));
    }

    // speedcli's own receiver window, exactly as in a speedsrv download of the same options.
    asio::awaitable<void> download(net::stream_group& group, direction_report& report) {
        if (udp_streams_) {
            const auto interval = [this, &report](const interval_report& closed) {
                return record_udp_interval(report, closed);
            };
            // The sockets stay open until the test ends: the server sends until it reads TEST_END, and a
            // closed port's ICMP errors would end its test.
            udp_received_ =
                co_await udp_streams_->measure(clock::now() + kFirstByteTimeout, kUdpStallTimeout, interval);
            co_return;
        }
        const measure::totals totals = co_await net::measure_receiver_window(
            group, test_timing::of(request_).plan(), clock::now() + kFirstByteTimeout,
            [this, &report](const measure::interval& closed) { return record_interval(report, closed); });
        fill_totals(report, totals);
    }

    asio::awaitable<void> record_udp_interval(direction_report& report, interval_report closed) {
        report.intervals.push_back(std::move(closed));
        progress_.interval_done(dir_, report.intervals.back());
        co_return;
    }

    asio::awaitable<void> record_interval(direction_report& report, measure::interval closed) {
        report.intervals.push_back(to_report(closed));
        progress_.interval_done(dir_, report.intervals.back());
        co_return;
    }

    // Sends for the warm-up and the window iperf3 was told of (whole seconds), as iperf3's own client does;
    // the server measures. The kernel's RTT of the loaded connections stands for the loaded latency.
    asio::awaitable<void> upload(net::stream_group& group, direction_report& report) {
        if (udp_streams_) {
            const std::chrono::nanoseconds warm_up =
                std::chrono::seconds(whole_seconds(options_.omit_seconds));
            const std::chrono::nanoseconds window =
                std::chrono::seconds(whole_seconds(options_.duration_seconds));
            udp_sent_ = co_await udp_streams_->send(static_cast<double>(options_.bitrate) / options_.streams,
                                                    warm_up, window);
            report.omitted_seconds = units::ns_to_seconds(warm_up.count());
            co_return;
        }
        const std::int64_t started_ns = net::now_ns();
        group.start_sending(per_stream_pacing(options_.bitrate, options_.streams));
        co_await sleep_until(clock::now() + send_length());
        finish_sending(group, report, started_ns);
    }

    // Stops an upload's sending (begun at `started_ns`) and keeps its in-band RTT samples after the warm-up.
    void finish_sending(net::stream_group& group, direction_report& report, std::int64_t started_ns) const {
        group.hold_sending();
        const auto warm_up = std::chrono::seconds(whole_seconds(options_.omit_seconds));
        report.in_band_rtt_ms =
            units::us_to_ms(group.rtt_samples_us(started_ns + std::chrono::nanoseconds(warm_up).count()));
        report.omitted_seconds = static_cast<double>(warm_up.count());
    }

    // --bidir: the two windows on this client's clock (client/iperf3_bidir_windows.hpp), the upload's placed
    // from TEST_RUNNING (`running_ns`) by its length. Its time 0 is on the server's clock: no start skew is
    // reported.
    static bidirectional_report both_at_once(const bidirectional_run& run, std::int64_t running_ns,
                                             std::int64_t download_closed_ns) {
        bidirectional_report both;
        iperf3_bidir_windows windows;
        windows.running_ns = running_ns;
        windows.download_closed_ns = download_closed_ns;
        windows.download_seconds = run.download.seconds;
        windows.upload_warm_up_seconds = run.upload.omitted_seconds;
        windows.upload_seconds = run.upload.seconds;
        both.overlap_seconds = iperf3_bidir_overlap_seconds(windows);
        // The upload's connections carry its data through the uplink's queue and their ACKs through the
        // download's: their kernel RTT is the latency under both loads (none over UDP).
        both.load.in_band_rtt_ms = run.upload.in_band_rtt_ms;
        return both;
    }

    // This end's results for the server's display: bytes received (download) or sent (upload) per stream;
    // `first` is the index in the test of the group's first stream.
    iperf3::results my_results(const net::stream_group& group, std::size_t first = 0) const {
        if (udp_streams_) {
            return my_udp_results();
        }
        std::vector<std::uint64_t> counters;
        group.read_counters(counters);
        iperf3::results mine;
        for (std::size_t i = 0; i < counters.size(); ++i) {
            iperf3::stream_result stream;
            stream.id = iperf3::stream_id(first + i);
            stream.bytes = counters[i];
            stream.end_seconds = options_.duration_seconds;
            mine.streams.push_back(stream);
        }
        return mine;
    }

    // The server's results for the test's streams [first, first + count), found by their ids (iperf3 numbers
    // a test's streams in the order they connected: iperf3::stream_id).
    std::vector<iperf3::stream_result> server_streams(std::size_t first, std::size_t count) const {
        const auto& server = protocol_.server_results();
        const std::size_t in_test = options_.bidir ? 2 * std::size_t{options_.streams} : options_.streams;
        if (server.streams.size() != in_test) {
            throw session_error(proto::error_code::protocol_error,
                                fmt::format("the iperf3 server's results name {} streams of a {}-stream test",
                                            server.streams.size(), in_test));
        }
        std::vector<iperf3::stream_result> out;
        for (std::size_t i = first; i < first + count; ++i) {
            const auto found = std::find_if(server.streams.begin(), server.streams.end(),
                                            [i](const auto& s) { return s.id == iperf3::stream_id(i); });
            if (found == server.streams.end()) {
                throw session_error(
                    proto::error_code::protocol_error,
                    fmt::format("the iperf3 server's results have no stream {}", iperf3::stream_id(i)));
            }
            out.push_back(*found);
        }
        return out;
    }

    // The upload's figure: the iperf3 server's own receiver count per stream ("bytes", the warm-up left
    // out) over its own span ("end_time" - "start_time") of the longest stream.
    void fill_server_receiver(direction_report& report,
                              const std::vector<iperf3::stream_result>& server) const {
        measure::totals totals;
        double seconds = 0.0;
        for (const auto& stream : server) {
            totals.stream_bytes.push_back(stream.bytes);
            seconds = std::max(seconds, stream.end_seconds - stream.start_seconds);
        }
        totals.window_ns = units::seconds_to_ns(seconds).count();
        totals.omitted_ns = units::seconds_to_ns(report.omitted_seconds).count();
        fill_totals(report, totals);
    }

    // A download's sender figures: what the iperf3 server says it sent per stream (its warm-up left out).
    static void fill_server_sender(direction_report& report,
                                   const std::vector<iperf3::stream_result>& server) {
        std::vector<proto::stream_sender_stats> sent;
        for (const auto& stream : server) {
            proto::stream_sender_stats stats;
            stats.bytes_sent = stream.bytes;
            sent.push_back(stats);
        }
        fill_sender(report, sent);
    }

    // ---- UDP (--iperf3 --udp) ----

    // This end's UDP results as iperf3's peer reads them (send_results in iperf_api.c), by stream id: a
    // receiver's figures with their warm-up part, or a sender's bytes after the warm-up and its datagrams.
    // --bidir: the sending streams', then the receiving ones'.
    iperf3::results my_udp_results() const {
        iperf3::results mine;
        const bool receiving_first = !options_.bidir && dir_ == proto::direction::download;
        if (!receiving_first) {
            add_udp_sent(mine, 0);
        }
        if (options_.bidir || receiving_first) {
            add_udp_received(mine, options_.bidir ? options_.streams : 0);
        }
        return mine;
    }

    // The P streams from test index `first` on with what speedcli's receiver counted on them.
    void add_udp_received(iperf3::results& mine, std::size_t first) const {
        for (std::size_t i = 0; i < options_.streams; ++i) {
            iperf3::stream_result stream;
            stream.id = iperf3::stream_id(first + i);
            stream.end_seconds = options_.duration_seconds;
            if (i < udp_received_.streams.size()) {
                const auto& r = udp_received_.streams[i];
                stream.bytes = r.bytes;
                stream.jitter_seconds = r.jitter_seconds;
                stream.errors = static_cast<std::int64_t>(r.errors);
                stream.omitted_errors = static_cast<std::int64_t>(r.omitted_errors);
                stream.packets = static_cast<std::int64_t>(r.packets);
                stream.omitted_packets = static_cast<std::int64_t>(r.omitted_packets);
            }
            mine.streams.push_back(stream);
        }
    }

    // The P streams from test index `first` on with what speedcli's senders sent on them.
    void add_udp_sent(iperf3::results& mine, std::size_t first) const {
        for (std::size_t i = 0; i < options_.streams; ++i) {
            iperf3::stream_result stream;
            stream.id = iperf3::stream_id(first + i);
            stream.end_seconds = options_.duration_seconds;
            if (i < udp_sent_.size()) {
                const auto& s = udp_sent_[i];
                stream.bytes = s.bytes - s.omitted_bytes;
                stream.packets = static_cast<std::int64_t>(s.packets);
                stream.omitted_packets = static_cast<std::int64_t>(s.omitted_packets);
            }
            mine.streams.push_back(stream);
        }
    }

    // A count of the server's results less its warm-up part (iperf3 sends -1 for a part it could not
    // split off): never below 0 whatever the peer sent.
    static std::uint64_t after_warm_up(std::int64_t total, std::int64_t omitted) {
        if (total <= 0) {
            return 0;
        }
        return static_cast<std::uint64_t>(total - std::clamp<std::int64_t>(omitted, 0, total));
    }

    // iperf3's counts after the warm-up (packets = the sequence numbers the window spans), in speedcli's
    // UDP figures. iperf3 has no duplicates, late datagrams or IPDV: zero, zero and null.
    static udp_figures udp_figures_of(std::uint64_t packets, std::uint64_t errors, std::uint64_t out_of_order,
                                      double jitter_seconds) {
        udp_figures f;
        f.packets_sent = packets;
        f.lost_packets = std::min(packets, errors);
        f.packets_received = f.packets_sent - f.lost_packets;
        f.lost_percent = udp::lost_percent(f.lost_packets, f.packets_sent);
        f.out_of_order = out_of_order;
        f.jitter_ms = jitter_seconds * 1000.0;
        f.ipdv_p50_ms = f.ipdv_p90_ms = f.ipdv_p99_ms = std::numeric_limits<double>::quiet_NaN();
        return f;
    }

    // Sums the streams' figures into the direction's; its jitter is the streams' mean, as for speedsrv.
    static udp_figures udp_total(const std::vector<stream_report>& streams) {
        udp_figures total;
        double jitter_sum = 0.0;
        for (const auto& s : streams) {
            // The upload's come from the server's results: a sum that would wrap stops at the most.
            total.packets_sent = saturating_add(total.packets_sent, s.udp->packets_sent);
            total.packets_received = saturating_add(total.packets_received, s.udp->packets_received);
            total.lost_packets =
                std::min(total.packets_sent, saturating_add(total.lost_packets, s.udp->lost_packets));
            total.out_of_order = saturating_add(total.out_of_order, s.udp->out_of_order);
            jitter_sum += s.udp->jitter_ms;
        }
        total.lost_percent = udp::lost_percent(total.lost_packets, total.packets_sent);
        total.jitter_ms = streams.empty() ? 0.0 : jitter_sum / static_cast<double>(streams.size());
        total.ipdv_p50_ms = total.ipdv_p90_ms = total.ipdv_p99_ms = std::numeric_limits<double>::quiet_NaN();
        return total;
    }

    void fill_udp_common(direction_report& report) const {
        report.datagram_bytes = datagram_bytes_;
        report.target_bits_per_second = static_cast<double>(options_.bitrate);
        report.udp = udp_total(report.streams);
    }

    // A UDP download: speedcli's own receiver over its window; the sender's bytes and datagrams are the
    // iperf3 server's (its warm-up left out), per stream in the download's order.
    void fill_udp_download(direction_report& report, const std::vector<iperf3::stream_result>& server) const {
        measure::totals totals;
        totals.window_ns = test_timing::of(request_).plan().duration_ns;
        totals.omitted_ns = test_timing::of(request_).plan().omit_ns;
        totals.omitted_bytes = udp_received_.omitted_bytes;
        for (const auto& r : udp_received_.streams) {
            totals.stream_bytes.push_back(r.bytes);
        }
        fill_totals(report, totals);
        report.sender_bytes = 0;
        report.sender_packets = 0;
        for (std::size_t i = 0; i < report.streams.size(); ++i) {
            const auto& r = udp_received_.streams[i];
            auto& stream = report.streams[i];
            // A late datagram after the warm-up may fill a gap counted in it: the window's errors stop at 0.
            stream.udp = udp_figures_of(
                r.packets - r.omitted_packets, r.errors - std::min(r.errors, r.omitted_errors),
                r.out_of_order - std::min(r.out_of_order, r.omitted_out_of_order), r.jitter_seconds);
            if (i < server.size()) {
                stream.sender.bytes_sent = server[i].bytes;
                stream.sender_packets = after_warm_up(server[i].packets, server[i].omitted_packets);
                report.sender_bytes = saturating_add(report.sender_bytes, stream.sender.bytes_sent);
                report.sender_packets = saturating_add(report.sender_packets, stream.sender_packets);
            }
        }
        fill_udp_common(report);
        report.udp->receive_buffer_overflows = udp_received_.socket_drops;
    }

    // A UDP upload: the iperf3 server's receiver figures per stream, in the upload's order
    // (fill_server_receiver has its bytes); the sender's are speedcli's own.
    void fill_udp_upload(direction_report& report, const std::vector<iperf3::stream_result>& server) const {
        report.sender_bytes = 0;
        report.sender_packets = 0;
        // server_streams() gave one result per stream of the direction, and fill_server_receiver() one
        // report stream per result.
        for (std::size_t i = 0; i < report.streams.size(); ++i) {
            const auto& r = server[i];
            auto& stream = report.streams[i];
            stream.udp = udp_figures_of(after_warm_up(r.packets, r.omitted_packets),
                                        after_warm_up(r.errors, r.omitted_errors), 0, r.jitter_seconds);
            if (i < udp_sent_.size()) {
                stream.sender.bytes_sent = udp_sent_[i].bytes - udp_sent_[i].omitted_bytes;
                stream.sender_packets = udp_sent_[i].packets - udp_sent_[i].omitted_packets;
                report.sender_bytes += stream.sender.bytes_sent;
                report.sender_packets += stream.sender_packets;
            }
        }
        fill_udp_common(report);
    }

    net::control_channel control_;
    tcp::endpoint server_;
    const test_options& options_;
    progress_sink& progress_;
    net::io_pool& data_pool_;
    proto::direction dir_;
    proto::test_request request_;
    std::uint32_t datagram_bytes_;  // UDP only
    iperf3_client_protocol protocol_;
    std::optional<iperf3_udp_streams> udp_streams_;  // one direction's, or --bidir's receiving ones
    std::optional<iperf3_udp_streams> udp_sending_;  // --bidir: the sending ones
    iperf3_udp_received udp_received_;
    std::vector<iperf3::udp_sender_figures> udp_sent_;
    bool accepted_ = false;
    const test_report* announce_ = nullptr;
};

// The upload's test follows the download's at once, and an iperf3 server between two tests refuses for a
// moment: it answers ACCESS_DENIED until it has cleaned up, then closes and reopens its listener (a
// connection then is refused or reset; all three seen with 3.12 on loopback). So the second test retries,
// every kRetryPause until --connect-timeout has passed, as long as the server has not taken it; a server
// that stays busy that long is reported busy.
asio::awaitable<direction_report> run_after_previous_test(const tcp::endpoint& server,
                                                          const test_options& options,
                                                          progress_sink& progress, net::io_pool& data_pool,
                                                          proto::direction dir) {
    constexpr auto kRetryPause = std::chrono::milliseconds(100);
    const auto give_up = clock::now() + units::seconds_to_ns(options.connect_timeout_seconds);
    for (;;) {
        std::exception_ptr failed;
        bool accepted = false;
        try {
            tcp::socket control = co_await connect(server, options.connect_timeout_seconds, options.sockets);
            iperf3_test test(std::move(control), server, options, progress, data_pool, dir);
            try {
                co_return co_await test.run();
            } catch (...) {
                accepted = test.accepted();
                throw;
            }
        } catch (...) {
            failed = std::current_exception();
        }
        if (accepted || clock::now() + kRetryPause >= give_up) {
            std::rethrow_exception(failed);
        }
        asio::steady_timer pause(co_await asio::this_coro::executor, kRetryPause);
        co_await pause.async_wait(asio::use_awaitable);
    }
}

}  // namespace

asio::awaitable<void> run_iperf3_tests(tcp::socket control, const tcp::endpoint& server,
                                       const test_options& options, progress_sink& progress,
                                       test_report& report, net::io_pool& data_pool) {
    report.server_software = "iperf3";
    if (options.pings > 0) {
        report.idle_latency_not_measured = "iperf3 servers have no echo";
    }
    // The first test's server has answered as an iperf3 server once it takes the test: "connected" then.
    const proto::direction first_dir =
        options.download ? proto::direction::download : proto::direction::upload;
    iperf3_test first(std::move(control), server, options, progress, data_pool, first_dir);
    first.announce_when_accepted(report);
    if (options.bidir) {
        bidirectional_run both = co_await first.run_bidirectional();
        report.download = std::move(both.download);
        report.upload = std::move(both.upload);
        report.bidirectional = std::move(both.both);
        co_return;
    }
    (options.download ? report.download : report.upload) = co_await first.run();
    if (options.download && options.upload) {
        // iperf3 runs one test per control connection: the upload opens its own.
        report.upload =
            co_await run_after_previous_test(server, options, progress, data_pool, proto::direction::upload);
    }
}

}  // namespace speed::client
