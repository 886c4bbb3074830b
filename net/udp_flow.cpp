#include "net/udp_flow.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <mutex>

#include "common/udp_handshake.hpp"
#include "common/udp_pacer.hpp"
#include "common/udp_rate_control.hpp"
#include "net/random.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"

namespace speed::net {

using asio::experimental::as_tuple;

namespace {

// A sender never sleeps longer than this, so it notices a stop or a silent receiver in time.
constexpr std::chrono::milliseconds kLongestSleep{20};
// The most a sender waits to collect before it sends (see send_loop): one sendmmsg's worth of GSO messages
// (net/udp_socket.hpp). At 64 KiB an adaptive sender at 40 Gbit/s armed its timer 76,000 times a second, and
// timerfd_settime took 14 % of its CPU (perf, across the veth pair); at 256 KiB it took 3 %.
constexpr std::uint64_t kBatchGoalBytes = 256 * 1024;
// How long a sender waits after this host's firewall refused a datagram (EPERM).
constexpr std::chrono::microseconds kLocalRefusalPause{500};
// Receive batches a flow handles before it lets other flows of its thread run.
constexpr int kBatchesBeforeYield = 4;

// Every flow of a data thread reads into the same buffers: a datagram is handled before the next read.
batch_receiver& thread_receiver() {
    thread_local batch_receiver receiver;
    return receiver;
}

struct alignas(64) published_counters {
    mutable std::mutex mutex;
    udp::receiver_counters counters;
    // The counters at the armed boundary, once the flow has read past it (udp_flow_group::set_boundary).
    std::int64_t boundary_ns = 0;
    std::optional<udp::receiver_counters> at_boundary;
};

}  // namespace

// State shared between the control side and the flows' threads. It holds nothing that belongs to the control
// context (the change signal is the group's): flows may outlive the control context at shutdown.
struct udp_group_state {
    udp_group_state(asio::any_io_executor executor, std::size_t count, udp_flow_settings s,
                    std::weak_ptr<change_signal> signal)
        : control(std::move(executor)),
          settings(s),
          published(count),
          sent(count),
          finals(count),
          receiver_socket_drops(count),
          change(std::move(signal)) {}

    // Any thread: wakes the control side's wait_for_change(), if the group is still there.
    void notify() { change_signal::notify(change, control); }

    void fail(std::string reason) {
        {
            std::lock_guard lock(mutex);
            if (!first_failure) {
                first_failure = std::move(reason);
            }
        }
        notify();
    }

    asio::any_io_executor control;
    const udp_flow_settings settings;
    std::vector<published_counters> published;
    std::atomic<std::int64_t> first_data_ns{0};
    // The interval boundary the window's sampler collects next (udp_flow_group::set_boundary); 0: none.
    std::atomic<std::int64_t> boundary_ns{0};
    std::atomic<std::size_t> established{0};
    std::atomic<std::size_t> senders_stopped{0};
    std::atomic<std::size_t> closed{0};
    std::atomic<std::uint64_t> rejected{0};
    // Set by accept_data(): the rate first, then the time (release), read by the flows (acquire).
    std::atomic<double> data_max_bits_per_second{0};
    std::atomic<std::int64_t> data_ready_ns{0};
    std::atomic<bool> stalled{false};

    std::mutex mutex;  // guards the four below
    std::optional<std::string> first_failure;
    std::vector<udp_sent_counts> sent;
    std::vector<udp_receiver_final> finals;
    std::vector<std::uint32_t> receiver_socket_drops;  // senders: as the peer's latest FEEDBACK said

    const std::weak_ptr<change_signal> change;
};

class udp_flow : public std::enable_shared_from_this<udp_flow> {
  public:
    udp_flow(std::shared_ptr<udp_group_state> state, std::size_t index, asio::ip::udp::socket socket,
             const udp_path_cookie& path)
        : state_(std::move(state)),
          index_(index),
          socket_(std::move(socket)),
          hello_timer_(socket_.get_executor()),
          feedback_timer_(socket_.get_executor()),
          send_timer_(socket_.get_executor()),
          path_(path.cookie, path.hello_bytes) {}

    void start() {
        asio::post(socket_.get_executor(), [self = shared_from_this()] {
            const auto& settings = self->state_->settings;
            if (settings.role == udp_role::receiver) {
                self->accounting_.emplace(udp::receiver_accounting::kDefaultWindow,
                                          udp::data_limits{settings.datagram_bytes, true});
            }
            asio::co_spawn(self->socket_.get_executor(), receive_loop(self), log_if_failed("udp flow"));
            if (settings.client) {
                asio::co_spawn(self->socket_.get_executor(), hello_loop(self), log_if_failed("udp flow"));
            } else {
                // The listener saw this flow's first HELLO; answering it (with the cookie) is the flow's job.
                self->send_handshake(udp::datagram_type::hello_ack, 0, static_cast<std::uint64_t>(now_ns()),
                                     self->path_.answer_cookie());
            }
        });
    }

    void start_sending(udp_send_plan plan) {
        asio::post(socket_.get_executor(), [self = shared_from_this(), plan] {
            if (self->closed_ || self->sending_ || self->stop_sending_) {
                return;
            }
            if (!self->established()) {
                // The server's session starts senders only once every path is valid; this cannot happen.
                self->state_->fail("stream " + std::to_string(self->index_) + ": the path is not validated");
                return;
            }
            self->sending_ = true;
            asio::co_spawn(self->socket_.get_executor(), send_loop(self, plan), log_if_failed("udp flow"));
        });
    }

    void stop_sending() {
        asio::post(socket_.get_executor(), [self = shared_from_this()] { self->finish_sending(); });
    }

    void close() {
        asio::post(socket_.get_executor(), [self = shared_from_this()] {
            if (self->closed_) {
                return;
            }
            self->finish_sending();
            self->closed_ = true;
            self->hello_timer_.cancel();
            self->feedback_timer_.cancel();
            if (self->accounting_) {
                std::lock_guard lock(self->state_->mutex);
                self->state_->finals[self->index_] = {self->accounting_->counters(),
                                                      self->accounting_->ipdv(), self->socket_drops_};
            }
            asio::error_code ignored;
            self->socket_.close(ignored);
            self->state_->closed.fetch_add(1, std::memory_order_acq_rel);
            self->state_->notify();
        });
    }

  private:
    // ---- receiving ----

    static asio::awaitable<void> receive_loop(std::shared_ptr<udp_flow> self) {
        auto& receiver = thread_receiver();
        int batches = 0;
        while (!self->closed_) {
            if (self->accounting_) {
                self->accounting_->set_boundary(self->state_->boundary_ns.load(std::memory_order_acquire));
            }
            const std::int64_t read_start_ns = now_ns();
            std::error_code error;
            const std::size_t messages = receiver.receive(self->socket_.native_handle(), error);
            if (error) {
                self->socket_failed(error);
                co_return;
            }
            if (messages == 0) {
                if (self->accounting_ && !self->accounting_->boundary_counters()) {
                    self->accounting_->on_queue_empty(read_start_ns);
                    if (self->accounting_->boundary_counters()) {
                        self->publish();
                    }
                }
                // Edge-triggered readiness: wait only after the queue was read empty.
                auto [ec] = co_await self->socket_.async_wait(asio::socket_base::wait_read,
                                                              as_tuple(asio::use_awaitable));
                if (ec) {
                    co_return;  // closed
                }
                continue;
            }
            receiver.for_each([&self](std::span<const std::uint8_t> datagram, std::int64_t arrival_ns,
                                      bool timed) { self->on_datagram(datagram, arrival_ns, timed); });
            if (const auto drops = receiver.socket_drops()) {
                self->socket_drops_ = *drops;
            }
            self->publish();
            if (++batches % kBatchesBeforeYield == 0) {
                co_await asio::post(self->socket_.get_executor(), asio::use_awaitable);
            }
        }
    }

    void on_datagram(std::span<const std::uint8_t> datagram, std::int64_t arrival_ns, bool timed) {
        if (!state_->settings.client) {
            // Whatever this address:port sends before it echoed the cookie is what the flow may answer with.
            path_.on_datagram(datagram.size());
        }
        const auto h = udp::read_header(datagram);
        if (!h || h->token != state_->settings.token || h->stream != index_) {
            state_->rejected.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        const bool client = state_->settings.client;
        switch (h->type) {
            case udp::datagram_type::hello:
                if (!client && !closed_) {
                    on_hello(*h, datagram);
                }
                break;
            case udp::datagram_type::hello_ack:
                if (client) {
                    on_hello_ack(datagram);
                }
                break;
            case udp::datagram_type::data:
                if (accounting_) {
                    if (client && client_path_.on_data()) {
                        mark_established();  // the HELLO_ACK may have been lost; the data proves the path
                    }
                    on_data(*h, static_cast<std::uint32_t>(datagram.size()), arrival_ns, timed);
                    latest_data_nonce_ = udp::read_nonce(datagram).value_or(0);
                }
                break;
            case udp::datagram_type::feedback:
                if (sending_ && !stop_sending_) {
                    if (auto body = udp::read_feedback(datagram); body && sent_nonce(body->echo_nonce)) {
                        on_feedback(*h, *body);
                    }
                }
                break;
            default:
                break;
        }
    }

    void on_data(const udp::header& h, std::uint32_t bytes, std::int64_t arrival_ns, bool timed) {
        if (!accounting_->is_ready()) {
            if (const std::int64_t ready_ns = state_->data_ready_ns.load(std::memory_order_acquire)) {
                accounting_->ready(ready_ns,
                                   state_->data_max_bits_per_second.load(std::memory_order_relaxed));
            }
        }
        if (accounting_->on_datagram(h.sequence, bytes, static_cast<std::int64_t>(h.timestamp_ns), arrival_ns,
                                     timed) == udp::arrival::dropped) {
            return;
        }
        latest_data_timestamp_ns_ = h.timestamp_ns;
        latest_data_arrival_ns_ = arrival_ns;
        std::int64_t expected = 0;
        if (state_->first_data_ns.load(std::memory_order_relaxed) == 0 &&
            state_->first_data_ns.compare_exchange_strong(expected, arrival_ns)) {
            state_->notify();
        }
    }

    void publish() {
        if (!accounting_) {
            return;
        }
        auto& slot = state_->published[index_];
        const auto& at_boundary = accounting_->boundary_counters();
        bool passed_boundary = false;
        {
            std::lock_guard lock(slot.mutex);
            slot.counters = accounting_->counters();
            const bool new_boundary = slot.boundary_ns != accounting_->boundary_ns();
            passed_boundary = at_boundary && (new_boundary || !slot.at_boundary);
            if (new_boundary || passed_boundary) {
                slot.boundary_ns = accounting_->boundary_ns();
                slot.at_boundary = at_boundary;
            }
        }
        if (passed_boundary) {
            state_->notify();  // the window's sampler may be waiting for it
        }
    }

    // Client: the server confirmed the echo or DATA arrived; server: the path is valid.
    bool established() const {
        return state_->settings.client ? client_path_.established() : path_.established();
    }

    // Once, when the stream's handshake completed (the path state says when).
    void mark_established() {
        hello_timer_.cancel();
        state_->established.fetch_add(1, std::memory_order_acq_rel);
        state_->notify();
        if (accounting_) {
            asio::co_spawn(socket_.get_executor(), feedback_loop(shared_from_this()),
                           log_if_failed("udp flow"));
        }
    }

    // ---- handshake and feedback ----

    // Server: a HELLO from the flow's address:port. The first that echoes the cookie validates the path;
    // every HELLO is answered, within the 1:1 credit until then.
    void on_hello(const udp::header& h, std::span<const std::uint8_t> datagram) {
        const auto cookie = udp::read_cookie(datagram);
        if (!cookie) {
            return;
        }
        if (path_.on_hello(*cookie)) {
            mark_established();
        }
        // Cookie 0 tells the client its echo arrived.
        send_handshake(udp::datagram_type::hello_ack, h.sequence, h.timestamp_ns, path_.answer_cookie());
    }

    // Client: the server's cookie to echo (at once, and in every HELLO from now on), or its confirmation.
    void on_hello_ack(std::span<const std::uint8_t> datagram) {
        const auto cookie = udp::read_cookie(datagram);
        if (!cookie) {
            return;
        }
        switch (client_path_.on_hello_ack(*cookie)) {
            case udp::client_path::ack_effect::established:
                mark_established();
                break;
            case udp::client_path::ack_effect::echo_now:
                hello_timer_.cancel();  // hello_loop sends the echo now
                break;
            case udp::client_path::ack_effect::none:
                break;
        }
    }

    static asio::awaitable<void> hello_loop(std::shared_ptr<udp_flow> self) {
        for (unsigned attempt = 0; !self->established() && !self->closed_; ++attempt) {
            if (!drop_handshake_for_test()) {
                self->send_handshake(udp::datagram_type::hello, attempt, static_cast<std::uint64_t>(now_ns()),
                                     self->client_path_.echo_cookie());
            }
            self->hello_timer_.expires_after(handshake_retry_delay(attempt));
            co_await self->hello_timer_.async_wait(as_tuple(asio::use_awaitable));
        }
    }

    static asio::awaitable<void> feedback_loop(std::shared_ptr<udp_flow> self) {
        std::uint64_t sequence = 0;
        std::array<std::uint8_t, udp::kFeedbackSize> datagram{};
        const std::int64_t stall_ns = self->state_->settings.stall_timeout.count();
        while (!self->closed_) {
            const std::int64_t now = now_ns();
            if (stall_ns > 0 && self->latest_data_arrival_ns_ != 0 &&
                now - self->latest_data_arrival_ns_ > stall_ns) {
                // The data stopped: FEEDBACK stops too (it would keep nobody's data flowing), and the test
                // ends.
                self->state_->stalled.store(true, std::memory_order_release);
                self->state_->fail(fmt_stall(self->index_, stall_ns));
                co_return;
            }
            const auto& c = self->accounting_->counters();
            udp::feedback body;
            body.packets_received = c.packets_received;
            body.expected = c.expected;
            body.bytes_received = c.bytes_received;
            body.socket_drops = self->socket_drops_;
            body.queue_delay_us = static_cast<std::uint32_t>(
                std::clamp<std::int64_t>(self->accounting_->take_queue_delay_ns() / 1000, 0, UINT32_MAX));
            body.echo_nonce = self->latest_data_nonce_;
            if (self->latest_data_arrival_ns_ != 0) {
                body.echo_timestamp_ns = self->latest_data_timestamp_ns_;
                body.echo_delay_us = static_cast<std::uint32_t>(
                    std::clamp<std::int64_t>((now - self->latest_data_arrival_ns_) / 1000, 0, UINT32_MAX));
            }
            const udp::header h{udp::datagram_type::feedback, static_cast<std::uint16_t>(self->index_),
                                self->state_->settings.token, sequence++, static_cast<std::uint64_t>(now)};
            udp::write_feedback(datagram, h, body);
            if (auto ec = send_datagram(self->socket_.native_handle(), datagram)) {
                if (ec == std::errc::connection_refused) {
                    self->socket_failed(ec);
                    co_return;
                }
            }
            self->feedback_timer_.expires_after(kFeedbackInterval);
            co_await self->feedback_timer_.async_wait(as_tuple(asio::use_awaitable));
        }
    }

    static std::string fmt_stall(std::size_t index, std::int64_t stall_ns) {
        return "stream " + std::to_string(index) + ": no data arrived for " +
               std::to_string(stall_ns / 1'000'000) +
               " ms (the stall timeout): the sender stopped or vanished";
    }

    // HELLO or HELLO_ACK. A server flow whose path is not valid yet sends at most as many bytes as it
    // received from that address:port (RFC 9000 section 8.1 allows three times as many).
    void send_handshake(udp::datagram_type type, std::uint64_t sequence, std::uint64_t timestamp_ns,
                        std::uint64_t cookie) {
        if (type == udp::datagram_type::hello_ack && drop_handshake_for_test()) {
            return;
        }
        if (!state_->settings.client && !path_.may_send(udp::kHandshakeSize)) {
            return;
        }
        std::array<std::uint8_t, udp::kHandshakeSize> datagram{};
        udp::write_handshake(
            datagram,
            {type, static_cast<std::uint16_t>(index_), state_->settings.token, sequence, timestamp_ns},
            cookie);
        send_datagram(socket_.native_handle(), datagram);
    }

    // ---- nonces ----

    void rotate_nonce(std::int64_t now) {
        // Unpredictable, so only a receiver that saw the DATA can echo it; never 0 ("none" in FEEDBACK).
        nonces_[nonces_drawn_ % kNonceHistory] = random_nonzero_u64();
        ++nonces_drawn_;
        nonce_drawn_ns_ = now;
    }
    std::uint64_t current_nonce() const { return nonces_[(nonces_drawn_ - 1) % kNonceHistory]; }
    bool sent_nonce(std::uint64_t nonce) const {
        if (nonce == 0) {
            return false;
        }
        return std::find(nonces_.begin(), nonces_.end(), nonce) != nonces_.end();
    }

    // ---- sending ----

    static asio::awaitable<void> send_loop(std::shared_ptr<udp_flow> self, udp_send_plan plan) {
        const std::uint32_t length = self->state_->settings.datagram_bytes;
        const bool adaptive = plan.bits_per_second <= 0;
        if (adaptive) {
            udp::rate_limits limits;
            limits.max_bits_per_second = plan.max_bits_per_second;
            self->controller_.emplace(limits);
        }
        const double initial_rate = adaptive ? self->controller_->bits_per_second() : plan.bits_per_second;
        const std::int64_t start_ns = now_ns();
        self->last_feedback_ns_ = start_ns;
        self->pacer_.emplace(initial_rate, udp::kSenderBurstNs, std::uint64_t{2} * length, start_ns);
        self->rotate_nonce(start_ns);
        batch_sender sender(length, udp::kDataPrefixSize, true);
        const int fd = self->socket_.native_handle();

        while (!self->stop_sending_ && !self->closed_) {
            const std::int64_t now = now_ns();
            if (now - self->last_feedback_ns_ > std::chrono::nanoseconds(kFeedbackTimeout).count()) {
                self->state_->fail("stream " + std::to_string(self->index_) +
                                   ": no feedback from the receiver for " +
                                   std::to_string(kFeedbackTimeout.count()) + " ms; stopped sending");
                self->finish_sending();
                co_return;
            }
            if (self->controller_) {
                if (auto rate = self->controller_->on_silence(self->last_feedback_ns_, now)) {
                    self->pacer_->set_rate(*rate, now);
                }
            }
            if (now - self->nonce_drawn_ns_ >= std::chrono::nanoseconds(kNonceLifetime).count()) {
                self->rotate_nonce(now);
            }
            // The test's byte budget: once spent, nothing more leaves, whether STOP comes or not.
            std::uint64_t budget_datagrams = sender.capacity();
            if (plan.max_bytes != 0) {
                budget_datagrams =
                    plan.max_bytes > self->sent_bytes_ ? (plan.max_bytes - self->sent_bytes_) / length : 0;
                if (budget_datagrams == 0) {
                    break;
                }
            }
            // Wake up for a batch, not for every datagram: a quarter of the bucket (at most kBatchGoalBytes,
            // and what one send takes), so a 500 Mbit/s sender wakes 2,000 times a second, not 40,000. Whole
            // datagrams: a batch of 2.2 datagrams had the loop spin (a zero wait) from 2.2 to 3 datagrams'
            // worth of credit, 170 us of every batch at 50 Mbit/s.
            const std::uint64_t batch_datagrams = std::min<std::uint64_t>(
                std::clamp<std::uint64_t>((self->pacer_->depth_bytes() / 4 + length - 1) / length, 1,
                                          std::max<std::uint64_t>(1, kBatchGoalBytes / length)),
                std::min<std::uint64_t>(budget_datagrams, sender.capacity()));
            const std::uint64_t batch_bytes = batch_datagrams * length;
            const std::uint64_t allowed = std::min<std::uint64_t>(
                {self->pacer_->allowed(now, length), sender.capacity(), budget_datagrams});
            if (allowed * length < batch_bytes) {
                const auto wait = std::min<std::int64_t>(self->pacer_->wait_ns(now, batch_bytes),
                                                         std::chrono::nanoseconds(kLongestSleep).count());
                self->send_timer_.expires_after(std::chrono::nanoseconds(wait));
                co_await self->send_timer_.async_wait(as_tuple(asio::use_awaitable));
                continue;
            }
            const std::uint64_t first_sequence = self->next_sequence_;
            const udp::header base{udp::datagram_type::data, static_cast<std::uint16_t>(self->index_),
                                   self->state_->settings.token, 0, 0};
            const std::uint64_t nonce = self->current_nonce();
            const auto result = sender.send(fd, allowed, [&](std::size_t i, std::span<std::uint8_t> out) {
                udp::header h = base;
                h.sequence = first_sequence + i;
                h.timestamp_ns = static_cast<std::uint64_t>(self->pacer_->departure_ns(now, i, length));
                udp::write_data_prefix(out, h, nonce);
            });
            self->next_sequence_ += result.sent;
            self->sent_bytes_ += result.sent * length;
            self->pacer_->consume(result.sent * length);
            if (result.error) {
                self->socket_failed(result.error);
                self->finish_sending();
                co_return;
            }
            if (result.refused_locally) {
                // A local firewall rule dropped the datagram before it left: it was not sent, so it is not
                // counted; its sequence number goes out with the next try.
                self->send_timer_.expires_after(kLocalRefusalPause);
                co_await self->send_timer_.async_wait(as_tuple(asio::use_awaitable));
            } else if (result.would_block) {
                auto [ec] = co_await self->socket_.async_wait(asio::socket_base::wait_write,
                                                              as_tuple(asio::use_awaitable));
                if (ec) {
                    break;
                }
            } else {
                // Let this thread's other work (FEEDBACK, other flows) run between batches.
                co_await asio::post(self->socket_.get_executor(), asio::use_awaitable);
            }
        }
        self->finish_sending();
    }

    void on_feedback(const udp::header& h, const udp::feedback& body) {
        const std::int64_t now = now_ns();
        last_feedback_ns_ = now;
        if (body.socket_drops != receiver_socket_drops_) {
            receiver_socket_drops_ = body.socket_drops;
            std::lock_guard lock(state_->mutex);
            state_->receiver_socket_drops[index_] = body.socket_drops;
        }
        if (!controller_) {
            return;
        }
        if (auto rate = controller_->on_feedback(body, static_cast<std::int64_t>(h.timestamp_ns), now)) {
            pacer_->set_rate(*rate, now);
        }
    }

    // Stops the sender for good and publishes its counts; runs on the flow's thread, so no datagram can
    // leave after the counts were taken.
    void finish_sending() {
        if (stop_sending_) {
            return;
        }
        stop_sending_ = true;
        send_timer_.cancel();
        if (state_->settings.role != udp_role::sender) {
            return;
        }
        {
            std::lock_guard lock(state_->mutex);
            state_->sent[index_] = {next_sequence_, sent_bytes_};
        }
        state_->senders_stopped.fetch_add(1, std::memory_order_acq_rel);
        state_->notify();
    }

    void socket_failed(const std::error_code& error) {
        if (closed_) {
            return;
        }
        std::string reason = error.message();
        if (error == std::errc::connection_refused) {
            reason = "the peer's UDP port is unreachable (ICMP port unreachable)";
        }
        state_->fail("stream " + std::to_string(index_) + ": " + reason);
    }

    std::shared_ptr<udp_group_state> state_;
    std::size_t index_;
    asio::ip::udp::socket socket_;
    asio::steady_timer hello_timer_;
    asio::steady_timer feedback_timer_;
    asio::steady_timer send_timer_;

    // The flow's own thread only.
    udp::server_path path_;         // server: the cookie this socket's peer must echo, and the 1:1 credit
    udp::client_path client_path_;  // client: the cookie to echo
    bool closed_ = false;
    bool sending_ = false;
    bool stop_sending_ = false;
    std::uint32_t socket_drops_ = 0;
    std::optional<udp::receiver_accounting> accounting_;
    std::uint64_t latest_data_timestamp_ns_ = 0;
    std::int64_t latest_data_arrival_ns_ = 0;
    std::uint64_t latest_data_nonce_ = 0;
    std::array<std::uint64_t, kNonceHistory> nonces_{};
    std::size_t nonces_drawn_ = 0;
    std::int64_t nonce_drawn_ns_ = 0;
    std::optional<udp::pacer> pacer_;
    std::optional<udp::rate_controller> controller_;
    std::uint64_t next_sequence_ = 0;
    std::uint64_t sent_bytes_ = 0;
    std::int64_t last_feedback_ns_ = 0;
    std::uint32_t receiver_socket_drops_ = 0;  // the latest FEEDBACK's
};

// ---- udp_flow_group ----

udp_flow_group::udp_flow_group(asio::any_io_executor control_executor, std::size_t stream_count,
                               udp_flow_settings settings)
    : change_(std::make_shared<change_signal>(control_executor)),
      state_(std::make_shared<udp_group_state>(std::move(control_executor), stream_count, settings, change_)),
      flows_(stream_count) {}

udp_flow_group::~udp_flow_group() {
    close_all();
}

const udp_flow_settings& udp_flow_group::settings() const {
    return state_->settings;
}

bool udp_flow_group::attach(std::size_t index, asio::ip::udp::socket socket, const udp_path_cookie& path) {
    if (index >= flows_.size() || flows_[index]) {
        return false;
    }
    configure_udp_data_socket(socket.native_handle());
    flows_[index] = std::make_shared<udp_flow>(state_, index, std::move(socket), path);
    flows_[index]->start();
    return true;
}

bool udp_flow_group::attached(std::size_t index) const {
    return index < flows_.size() && flows_[index] != nullptr;
}

bool udp_flow_group::all_attached() const {
    for (const auto& flow : flows_) {
        if (!flow) {
            return false;
        }
    }
    return true;
}

std::size_t udp_flow_group::established_count() const {
    return state_->established.load(std::memory_order_acquire);
}

void udp_flow_group::start_sending(const udp_send_plan& plan) {
    for (auto& flow : flows_) {
        if (flow) {
            flow->start_sending(plan);
        }
    }
}

void udp_flow_group::accept_data(double max_bits_per_second) {
    state_->data_max_bits_per_second.store(max_bits_per_second, std::memory_order_relaxed);
    std::int64_t unset = 0;
    state_->data_ready_ns.compare_exchange_strong(unset, now_ns(), std::memory_order_release);
}

udp::drop_counters udp_flow_group::data_drops() const {
    udp::drop_counters drops;
    for (const auto& slot : state_->published) {
        std::lock_guard lock(slot.mutex);
        drops += slot.counters.drops;
    }
    return drops;
}

void udp_flow_group::stop_sending() {
    for (auto& flow : flows_) {
        if (flow) {
            flow->stop_sending();
        }
    }
}

asio::awaitable<bool> udp_flow_group::wait_senders_stopped(clock::time_point deadline) {
    while (state_->senders_stopped.load(std::memory_order_acquire) < flows_.size()) {
        // GCC 12 miscompiles co_await inside && (the frame resumes at a bogus point): await first.
        const bool changed = co_await wait_for_change(deadline);
        if (!changed && clock::now() >= deadline) {
            co_return false;
        }
    }
    co_return true;
}

std::vector<udp_sent_counts> udp_flow_group::sent_counts() const {
    std::lock_guard lock(state_->mutex);
    return state_->sent;
}

std::uint64_t udp_flow_group::receiver_socket_drops() const {
    std::lock_guard lock(state_->mutex);
    std::uint64_t total = 0;
    for (const std::uint32_t drops : state_->receiver_socket_drops) {
        total += drops;
    }
    return total;
}

asio::awaitable<bool> udp_flow_group::wait_for_change(clock::time_point deadline) {
    return change_->wait(deadline);
}

std::optional<std::int64_t> udp_flow_group::first_data_ns() const {
    const std::int64_t value = state_->first_data_ns.load(std::memory_order_acquire);
    if (value == 0) {
        return std::nullopt;
    }
    return value;
}

void udp_flow_group::read_counters(std::vector<udp::receiver_counters>& out) const {
    out.resize(state_->published.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        std::lock_guard lock(state_->published[i].mutex);
        out[i] = state_->published[i].counters;
    }
}

void udp_flow_group::set_boundary(std::int64_t boundary_ns) {
    state_->boundary_ns.store(boundary_ns, std::memory_order_release);
}

bool udp_flow_group::read_boundary_counters(std::int64_t boundary_ns,
                                            std::vector<udp::receiver_counters>& out) const {
    out.resize(state_->published.size());
    bool all_passed = true;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto& slot = state_->published[i];
        std::lock_guard lock(slot.mutex);
        if (slot.boundary_ns == boundary_ns && slot.at_boundary) {
            out[i] = *slot.at_boundary;
        } else {
            out[i] = slot.counters;
            all_passed = false;
        }
    }
    return all_passed;
}

std::optional<std::string> udp_flow_group::first_failure() const {
    std::lock_guard lock(state_->mutex);
    return state_->first_failure;
}

bool udp_flow_group::stalled() const {
    return state_->stalled.load(std::memory_order_acquire);
}

std::uint64_t udp_flow_group::rejected_datagrams() const {
    return state_->rejected.load(std::memory_order_relaxed);
}

void udp_flow_group::close_all() {
    for (auto& flow : flows_) {
        if (flow) {
            flow->close();
        }
    }
}

asio::awaitable<bool> udp_flow_group::wait_all_closed(clock::time_point deadline) {
    std::size_t attached_flows = 0;
    for (const auto& flow : flows_) {
        attached_flows += flow ? 1U : 0U;
    }
    while (state_->closed.load(std::memory_order_acquire) < attached_flows) {
        // GCC 12 miscompiles co_await inside && (the frame resumes at a bogus point): await first.
        const bool changed = co_await wait_for_change(deadline);
        if (!changed && clock::now() >= deadline) {
            co_return false;
        }
    }
    co_return true;
}

std::vector<udp_receiver_final> udp_flow_group::receiver_finals() const {
    std::lock_guard lock(state_->mutex);
    return state_->finals;
}

}  // namespace speed::net
