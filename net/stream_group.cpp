#include "net/stream_group.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <random>
#include <tuple>
#include <utility>

#include "common/receive_mark.hpp"
#include "net/socket_options.hpp"
#include "net/spawn.hpp"

namespace speed::net {

using asio::experimental::as_tuple;

namespace {

// One read-only buffer of incompressible bytes shared by every sender in the process: no per-byte work per
// send.
const std::vector<std::uint8_t>& payload_buffer() {
    static const std::vector<std::uint8_t> payload = [] {
        std::vector<std::uint8_t> bytes(kDataBufferSize);
        std::mt19937_64 generator(0x5350445453504454ULL);
        for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
            std::uint64_t word = generator();
            for (std::size_t j = 0; j < 8; ++j) {
                bytes[i + j] = static_cast<std::uint8_t>(word >> (8 * j));
            }
        }
        return bytes;
    }();
    return payload;
}

// One non-blocking read of whatever `fd` holds, up to kDataBufferSize, discarded by the kernel (MSG_TRUNC on
// a TCP socket skips the copy): the bytes it took, or 0 with `ec` set (would_block, eof, or the failure).
std::size_t discard_received(int fd, asio::error_code& ec) {
    for (;;) {
        const ssize_t got = ::recv(fd, nullptr, kDataBufferSize, MSG_TRUNC | MSG_DONTWAIT);
        if (got > 0) {
            return static_cast<std::size_t>(got);
        }
        if (got == 0) {
            ec = asio::error::eof;
            return 0;
        }
        if (errno != EINTR) {
            ec = asio::error_code(errno, asio::error::get_system_category());
            return 0;
        }
    }
}

struct alignas(64) stream_counter {
    std::atomic<std::uint64_t> bytes{0};
    // Sending streams: bytes the peer's TCP acknowledged, refreshed with every RTT sample.
    std::atomic<std::uint64_t> acknowledged{0};
};

}  // namespace

// State shared between the control side and the streams' threads. It holds nothing that belongs to the
// control context: streams (and handlers queued on data threads) may outlive the control context at shutdown.
struct group_state {
    group_state(asio::any_io_executor executor, std::size_t count, std::weak_ptr<change_signal> signal)
        : control(std::move(executor)), counters(count), stats(count), change(std::move(signal)) {}

    // Called from any thread: wakes the control side's wait_for_change(), if the group is still there.
    void notify() { change_signal::notify(change, control); }

    asio::any_io_executor control;
    std::vector<stream_counter> counters;
    std::atomic<std::int64_t> first_byte_ns{0};
    std::atomic<std::int64_t> last_byte_ns{0};
    std::atomic<std::size_t> largest_receive_mark{0};
    std::atomic<std::size_t> ended{0};
    std::atomic<std::uint32_t> self_probes_answered{0};
    std::atomic<std::uint64_t> self_probes_sent{0};
    std::atomic<std::uint64_t> self_probes_dropped{0};

    struct timed_rtt {
        std::int64_t time_ns;
        std::uint32_t rtt_us;
    };

    std::mutex mutex;  // guards the five below
    std::optional<std::string> first_failure;
    std::vector<proto::stream_sender_stats> stats;
    std::vector<timed_rtt> rtt_samples;
    std::vector<proto::self_probe_mark> self_probe_marks;
    std::vector<latency::self_probe_sample> self_probe_samples;

    const std::weak_ptr<change_signal> change;
};

class data_stream : public std::enable_shared_from_this<data_stream> {
  public:
    data_stream(std::shared_ptr<group_state> state, std::size_t index, asio::ip::tcp::socket socket)
        : state_(std::move(state)), index_(index), socket_(std::move(socket)) {}

    asio::ip::tcp::socket& socket() { return socket_; }

    // `probe_period` > 0: write a self probe every period, the first after `first_probe_delay`.
    void start_receiving(std::chrono::nanoseconds probe_period, std::chrono::nanoseconds first_probe_delay,
                         bool marks) {
        mark_ = receive_mark(marks);
        asio::co_spawn(socket_.get_executor(), receive_loop(shared_from_this()),
                       log_if_failed("data stream"));
        if (probe_period.count() > 0) {
            asio::co_spawn(socket_.get_executor(),
                           self_probe_loop(shared_from_this(), probe_period, first_probe_delay),
                           log_if_failed("self probes"));
        }
    }

    void answer_self_probes() {
        asio::post(socket_.get_executor(), [self = shared_from_this()] {
            if (self->phase_ != phase::finished && self->socket_.is_open()) {
                asio::co_spawn(self->socket_.get_executor(), read_self_probes(self),
                               log_if_failed("self probe reader"));
            }
        });
    }

    // Thread-safe: the matching happens on the stream's own executor.
    void on_self_probe_mark(std::uint32_t probe, std::uint64_t payload_offset) {
        asio::post(socket_.get_executor(), [self = shared_from_this(), probe, payload_offset] {
            self->record(self->matcher_.mark(probe, payload_offset));
        });
    }

    void start_sending(std::uint64_t pacing_bytes_per_second, std::chrono::nanoseconds rtt_sample_interval) {
        asio::post(socket_.get_executor(), [self = shared_from_this(), pacing_bytes_per_second,
                                            rtt_sample_interval] {
            if (self->stop_requested_) {
                return;
            }
            set_max_pacing_rate(self->socket_.native_handle(), pacing_bytes_per_second);
            asio::co_spawn(self->socket_.get_executor(), send_loop(self), log_if_failed("data stream"));
            if (rtt_sample_interval.count() > 0) {
                asio::co_spawn(self->socket_.get_executor(), sample_rtt(self, rtt_sample_interval),
                               log_if_failed("RTT sampler"));
            }
        });
    }

    // Thread-safe: the work happens on the stream's own executor.
    void stop(bool orderly) {
        asio::post(socket_.get_executor(), [self = shared_from_this(), orderly] {
            if (self->stop_requested_ || self->phase_ == phase::finished) {
                return;
            }
            self->stop_requested_ = true;
            if (self->phase_ == phase::idle) {
                self->finish({});
                return;
            }
            // Take the kernel's figures before the socket goes; the running loop then ends with "aborted".
            self->snapshot_tcp_info();
            if (orderly) {
                asio::error_code ignored;
                self->socket_.close(ignored);
            } else {
                self->close_abortively();
            }
        });
    }

    // Thread-safe: the sender is done, so the bytes below the receive mark are read at once (clearing the
    // mark makes the kernel signal readiness if any are queued).
    void release_receive_mark() {
        asio::post(socket_.get_executor(), [self = shared_from_this()] {
            if (self->mark_.release() && self->socket_.is_open()) {
                set_receive_low_watermark(self->socket_.native_handle(), 0);
            }
        });
    }

    // Thread-safe. The send loop stops writing at its next turn (a wait for buffer space is cancelled).
    void hold() {
        asio::post(socket_.get_executor(), [self = shared_from_this()] {
            if (self->holding_ || self->stop_requested_ || self->phase_ == phase::finished) {
                return;
            }
            self->holding_ = true;
            asio::error_code ignored;
            self->socket_.cancel(ignored);
        });
    }

  private:
    // Payload is counted, never looked at: each read takes what the socket holds with MSG_TRUNC, so the
    // kernel receives, acknowledges and accounts every byte as read (receive window, autotuning) and only
    // skips the copy to user space (docs/methodology.md, "Receiving without the copy").
    static asio::awaitable<void> receive_loop(std::shared_ptr<data_stream> self) {
        if (self->phase_ != phase::idle) {
            co_return;
        }
        self->phase_ = phase::running;
        auto& counter = self->state_->counters[self->index_].bytes;
        asio::error_code ec;
        self->socket_.non_blocking(true, ec);
        while (!ec) {
            const std::size_t bytes = discard_received(self->socket_.native_handle(), ec);
            if (bytes > 0) {
                const std::int64_t read_ns = now_ns();
                if (counter.load(std::memory_order_relaxed) == 0) {
                    self->note_first_byte(read_ns);
                }
                counter.fetch_add(bytes, std::memory_order_relaxed);
                self->note_last_byte(read_ns);
                if (self->probing_) {
                    for (const auto& sample : self->matcher_.bytes_read(bytes, read_ns)) {
                        self->record(sample);
                    }
                }
                const int fd = self->socket_.native_handle();
                if (const auto mark =
                        self->mark_.on_read(bytes, read_ns, [fd] { return receive_buffer_bytes(fd); })) {
                    // Without the mark the stream still works, only with more wake-ups.
                    set_receive_low_watermark(fd, *mark);
                    auto& largest = self->state_->largest_receive_mark;
                    std::size_t seen = largest.load(std::memory_order_relaxed);
                    while (seen < *mark &&
                           !largest.compare_exchange_weak(seen, *mark, std::memory_order_relaxed)) {
                    }
                }
                // Let the thread's other streams and timers run between reads.
                co_await asio::post(self->socket_.get_executor(), asio::use_awaitable);
            } else if (ec == asio::error::would_block || ec == asio::error::try_again) {
                std::tie(ec) = co_await self->socket_.async_wait(asio::ip::tcp::socket::wait_read,
                                                                 as_tuple(asio::use_awaitable));
            }
            // stop() closes the socket from a handler on this thread while this loop waits: its descriptor
            // may already belong to another connection.
            if (!ec && (self->phase_ == phase::finished || !self->socket_.is_open())) {
                ec = asio::error::operation_aborted;
            }
        }
        self->finish(ec);
    }

    // The byte counter moves in the same handler as the write that sent the bytes (a non-blocking write, then
    // a wait while the socket buffer is full), never in a completion queued behind other handlers: a self
    // probe read on this thread then sees exactly how many bytes went to the socket before it.
    static asio::awaitable<void> send_loop(std::shared_ptr<data_stream> self) {
        if (self->phase_ != phase::idle) {
            co_return;
        }
        self->phase_ = phase::running;
        const auto& payload = payload_buffer();
        auto& counter = self->state_->counters[self->index_].bytes;
        asio::error_code ec;
        self->socket_.non_blocking(true, ec);
        while (!ec) {
            const std::size_t bytes = self->socket_.write_some(asio::buffer(payload), ec);
            counter.fetch_add(bytes, std::memory_order_relaxed);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                std::tie(ec) = co_await self->socket_.async_wait(asio::ip::tcp::socket::wait_write,
                                                                 as_tuple(asio::use_awaitable));
            } else if (!ec) {
                // Let the thread's other streams and timers run between writes.
                co_await asio::post(self->socket_.get_executor(), asio::use_awaitable);
            }
            if (self->phase_ == phase::finished) {
                co_return;
            }
            if (self->holding_) {
                // Sends nothing more but keeps the connection until stop(), whose close ends this wait.
                std::tie(ec) = co_await self->socket_.async_wait(asio::ip::tcp::socket::wait_error,
                                                                 as_tuple(asio::use_awaitable));
                ec = ec ? ec : asio::error::operation_aborted;
            }
        }
        self->finish(ec);
    }

    // Reads self probe bytes (the reverse direction of a sending stream carries nothing else) and notes the
    // payload offset each one is answered with. Ends quietly with the socket: the send loop reports failures.
    static asio::awaitable<void> read_self_probes(std::shared_ptr<data_stream> self) {
        std::array<std::uint8_t, 64> bytes{};
        auto& state = *self->state_;
        for (;;) {
            auto [ec, count] =
                co_await self->socket_.async_read_some(asio::buffer(bytes), as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
            const std::uint64_t offset = state.counters[self->index_].bytes.load(std::memory_order_relaxed);
            std::lock_guard lock(state.mutex);
            for (std::size_t i = 0; i < count; ++i) {
                if (state.self_probes_answered.load(std::memory_order_relaxed) >= proto::kMaxSelfProbes) {
                    co_return;  // stop reading: flow control holds back whatever else the peer sends
                }
                state.self_probes_answered.fetch_add(1, std::memory_order_relaxed);
                state.self_probe_marks.push_back(
                    {static_cast<std::uint16_t>(self->index_), self->probes_answered_++, offset});
            }
        }
    }

    // Writes a self probe every `period` while fewer than self_probe_matcher::kMaxInFlight are outstanding.
    static asio::awaitable<void> self_probe_loop(std::shared_ptr<data_stream> self,
                                                 std::chrono::nanoseconds period,
                                                 std::chrono::nanoseconds first_delay) {
        self->probing_ = true;
        asio::steady_timer timer(self->socket_.get_executor());
        auto next = clock::now() + first_delay;
        asio::error_code ec;
        self->socket_.non_blocking(true, ec);
        while (self->phase_ != phase::finished) {
            timer.expires_at(next);
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
            next += period;
            if (self->phase_ == phase::finished || !self->socket_.is_open()) {
                co_return;
            }
            self->matcher_.expire(now_ns() - stream_group::kSelfProbeTimeout.count());
            self->record(std::nullopt);
            if (!self->matcher_.can_send()) {
                continue;
            }
            const std::uint8_t probe = 'P';
            const std::int64_t sent_ns = now_ns();
            // The client-to-server direction carries nothing else: one byte never finds the buffer full, and
            // if it did the probe is skipped rather than waited for.
            if (self->socket_.send(asio::buffer(&probe, 1), 0, ec) == 1) {
                self->matcher_.probe_sent(sent_ns);
                self->state_->self_probes_sent.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }

    // A completed self probe, and the probes the matcher dropped since the last call.
    void record(const std::optional<latency::self_probe_sample>& sample) {
        if (matcher_.dropped() != dropped_recorded_) {
            state_->self_probes_dropped.fetch_add(matcher_.dropped() - dropped_recorded_,
                                                  std::memory_order_relaxed);
            dropped_recorded_ = matcher_.dropped();
        }
        if (sample) {
            std::lock_guard lock(state_->mutex);
            state_->self_probe_samples.push_back(*sample);
        }
    }

    // Runs on the stream's own executor, so the socket cannot close between the check and the getsockopt.
    static asio::awaitable<void> sample_rtt(std::shared_ptr<data_stream> self,
                                            std::chrono::nanoseconds interval) {
        asio::steady_timer timer(self->socket_.get_executor());
        auto next = clock::now() + interval;
        while (self->phase_ != phase::finished) {
            timer.expires_at(next);
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
            next += interval;
            if (self->phase_ == phase::finished || !self->socket_.is_open()) {
                co_return;
            }
            if (auto info = read_tcp_info(self->socket_.native_handle()); info && info->rtt_us > 0) {
                std::lock_guard lock(self->state_->mutex);
                self->state_->rtt_samples.push_back({now_ns(), info->rtt_us});
            }
            self->note_acknowledged();
        }
    }

    // Written minus still queued in the kernel = acknowledged by the peer: progress that stops when the peer
    // stops reading, however slow the path (the sender's watchdog uses it, see stream_group).
    void note_acknowledged() {
        auto& counter = state_->counters[index_];
        const std::uint64_t written = counter.bytes.load(std::memory_order_relaxed);
        const auto queued = unacknowledged_bytes(socket_.native_handle());
        const std::uint64_t acknowledged = queued && *queued <= written ? written - *queued : written;
        counter.acknowledged.store(acknowledged, std::memory_order_relaxed);
    }

    void note_first_byte(std::int64_t read_ns) {
        std::int64_t expected = 0;
        if (state_->first_byte_ns.compare_exchange_strong(expected, read_ns)) {
            state_->notify();
        }
    }

    // The streams read on several threads: the latest read's time wins, whichever thread stores last.
    void note_last_byte(std::int64_t read_ns) {
        std::int64_t seen = state_->last_byte_ns.load(std::memory_order_relaxed);
        while (seen < read_ns &&
               !state_->last_byte_ns.compare_exchange_weak(seen, read_ns, std::memory_order_relaxed)) {
        }
    }

    // The kernel's figures, read while the socket is still open. The byte count is set in finish(): a write
    // that completed just before the stop may still have its handler queued.
    void snapshot_tcp_info() {
        if (stats_taken_ || !socket_.is_open()) {
            return;
        }
        stats_taken_ = true;
        auto info = read_tcp_info(socket_.native_handle());
        if (info) {
            std::lock_guard lock(state_->mutex);
            state_->stats[index_] = *info;
        }
    }

    void close_abortively() {
        if (socket_.is_open()) {
            set_abortive_close(socket_.native_handle());
            asio::error_code ignored;
            socket_.close(ignored);
        }
    }

    // Runs exactly once per stream: `ended` counts streams, not calls.
    void finish(const asio::error_code& ec) {
        if (phase_ == phase::finished) {
            return;
        }
        phase_ = phase::finished;
        snapshot_tcp_info();
        {
            std::lock_guard lock(state_->mutex);
            state_->stats[index_].bytes_sent = state_->counters[index_].bytes.load(std::memory_order_relaxed);
        }
        if (!stop_requested_ && !holding_ && ec) {
            std::lock_guard lock(state_->mutex);
            if (!state_->first_failure) {
                const std::string reason =
                    ec == asio::error::eof ? "the peer closed the connection" : ec.message();
                state_->first_failure = "stream " + std::to_string(index_) + ": " + reason;
            }
        }
        close_abortively();
        state_->ended.fetch_add(1, std::memory_order_acq_rel);
        state_->notify();
    }

    std::shared_ptr<group_state> state_;
    std::size_t index_;
    asio::ip::tcp::socket socket_;
    // The stream's executor only.
    enum class phase { idle, running, finished };
    phase phase_ = phase::idle;
    bool stop_requested_ = false;
    bool holding_ = false;  // hold(): a sender that keeps its connection but sends nothing more
    bool stats_taken_ = false;
    // Self probes, on the stream's executor only: the receiver's matcher, the sender's count of probe bytes.
    bool probing_ = false;
    latency::self_probe_matcher matcher_;
    receive_mark mark_{false};
    std::uint64_t dropped_recorded_ = 0;
    std::uint32_t probes_answered_ = 0;
};

stream_group::stream_group(asio::any_io_executor control_executor, std::size_t stream_count)
    : change_(std::make_shared<change_signal>(control_executor)),
      state_(std::make_shared<group_state>(std::move(control_executor), stream_count, change_)),
      streams_(stream_count) {}

stream_group::~stream_group() {
    stop_all();
}

std::size_t stream_group::size() const {
    return streams_.size();
}

bool stream_group::attach(std::size_t index, asio::ip::tcp::socket socket, asio::io_context& data_context) {
    if (index >= streams_.size() || streams_[index]) {
        return false;
    }
    asio::error_code ec;
    const auto local = socket.local_endpoint(ec);
    if (ec) {
        return false;  // the peer is already gone
    }
    asio::ip::tcp::socket moved(data_context, local.protocol(), socket.release(ec));
    if (ec) {
        return false;
    }
    streams_[index] = std::make_shared<data_stream>(state_, index, std::move(moved));
    return true;
}

bool stream_group::all_attached() const {
    for (const auto& stream : streams_) {
        if (!stream) {
            return false;
        }
    }
    return true;
}

std::optional<std::string> stream_group::set_congestion(const std::string& algorithm) {
    for (auto& stream : streams_) {
        if (stream) {
            if (auto ec = net::set_congestion(stream->socket().native_handle(), algorithm)) {
                return "congestion control '" + algorithm + "' is not available: " + ec.message();
            }
        }
    }
    return std::nullopt;
}

void stream_group::start_receiving(std::chrono::nanoseconds self_probe_interval) {
    // Round-robin: each stream probes once per `interval x streams`, offset by its index.
    const auto period = self_probe_interval * static_cast<std::int64_t>(streams_.size());
    const auto context_of = [](const std::shared_ptr<data_stream>& stream) {
        return &asio::query(stream->socket().get_executor(), asio::execution::context);
    };
    for (std::size_t i = 0; i < streams_.size(); ++i) {
        const auto* context = context_of(streams_[i]);
        const auto on_the_thread =
            static_cast<std::size_t>(std::count_if(streams_.begin(), streams_.end(), [&](const auto& other) {
                return context_of(other) == context;
            }));
        streams_[i]->start_receiving(period, self_probe_interval * static_cast<std::int64_t>(i + 1),
                                     receive_mark::worth_it(on_the_thread));
    }
}

bool stream_group::on_self_probe_mark(const proto::self_probe_mark& mark) {
    if (mark.stream_index >= streams_.size() || !streams_[mark.stream_index]) {
        return false;
    }
    streams_[mark.stream_index]->on_self_probe_mark(mark.probe, mark.payload_offset);
    return true;
}

std::vector<latency::self_probe_sample> stream_group::self_probe_samples(std::int64_t since_ns) const {
    std::vector<latency::self_probe_sample> samples;
    {
        std::lock_guard lock(state_->mutex);
        samples = state_->self_probe_samples;
    }
    std::erase_if(samples, [since_ns](const auto& s) { return s.sent_ns < since_ns; });
    std::stable_sort(samples.begin(), samples.end(),
                     [](const auto& a, const auto& b) { return a.sent_ns < b.sent_ns; });
    return samples;
}

std::uint64_t stream_group::self_probes_sent() const {
    return state_->self_probes_sent.load(std::memory_order_relaxed);
}

std::uint64_t stream_group::self_probes_dropped() const {
    return state_->self_probes_dropped.load(std::memory_order_relaxed);
}

void stream_group::answer_self_probes() {
    for (auto& stream : streams_) {
        stream->answer_self_probes();
    }
}

std::vector<proto::self_probe_mark> stream_group::take_self_probe_marks() {
    std::lock_guard lock(state_->mutex);
    return std::exchange(state_->self_probe_marks, {});
}

std::uint32_t stream_group::self_probes_answered() const {
    return state_->self_probes_answered.load(std::memory_order_relaxed);
}

void stream_group::start_sending(std::uint64_t bytes_per_second_per_stream,
                                 std::chrono::nanoseconds rtt_sample_interval) {
    for (auto& stream : streams_) {
        stream->start_sending(bytes_per_second_per_stream, rtt_sample_interval);
    }
}

asio::awaitable<bool> stream_group::wait_for_change(clock::time_point deadline) {
    return change_->wait(deadline);
}

std::optional<std::int64_t> stream_group::first_byte_ns() const {
    const std::int64_t value = state_->first_byte_ns.load(std::memory_order_acquire);
    if (value == 0) {
        return std::nullopt;
    }
    return value;
}

std::optional<std::int64_t> stream_group::last_byte_ns() const {
    const std::int64_t value = state_->last_byte_ns.load(std::memory_order_relaxed);
    if (value == 0) {
        return std::nullopt;
    }
    return value;
}

void stream_group::read_counters(std::vector<std::uint64_t>& out) const {
    out.resize(state_->counters.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = state_->counters[i].bytes.load(std::memory_order_relaxed);
    }
}

std::uint64_t stream_group::acknowledged_bytes() const {
    std::uint64_t total = 0;
    for (const auto& counter : state_->counters) {
        total += counter.acknowledged.load(std::memory_order_relaxed);
    }
    return total;
}

std::optional<std::string> stream_group::first_failure() const {
    std::lock_guard lock(state_->mutex);
    return state_->first_failure;
}

std::size_t stream_group::ended_count() const {
    return state_->ended.load(std::memory_order_acquire);
}

void stream_group::hold_sending() {
    for (auto& stream : streams_) {
        if (stream) {
            stream->hold();
        }
    }
}

std::size_t stream_group::largest_receive_mark() const {
    return state_->largest_receive_mark.load(std::memory_order_relaxed);
}

void stream_group::release_receive_marks() {
    for (auto& stream : streams_) {
        if (stream) {
            stream->release_receive_mark();
        }
    }
}

void stream_group::stop_all(closing how) {
    for (auto& stream : streams_) {
        if (stream) {
            stream->stop(how == closing::orderly);
        }
    }
}

asio::awaitable<bool> stream_group::wait_all_ended(clock::time_point deadline) {
    std::size_t attached = 0;
    for (const auto& stream : streams_) {
        if (stream) {
            ++attached;
        }
    }
    while (ended_count() < attached) {
        // co_await as its own statement: GCC 12 miscompiles a co_await inside a && condition (SIGILL).
        const bool changed = co_await wait_for_change(deadline);
        if (!changed && clock::now() >= deadline) {
            co_return false;
        }
    }
    co_return true;
}

std::vector<proto::stream_sender_stats> stream_group::sender_stats() const {
    std::lock_guard lock(state_->mutex);
    return state_->stats;
}

std::vector<std::uint32_t> stream_group::rtt_samples_us(std::int64_t since_ns) const {
    std::lock_guard lock(state_->mutex);
    auto samples = state_->rtt_samples;
    std::stable_sort(samples.begin(), samples.end(),
                     [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
    std::vector<std::uint32_t> rtts;
    for (const auto& sample : samples) {
        if (sample.time_ns >= since_ns) {
            rtts.push_back(sample.rtt_us);
        }
    }
    return rtts;
}

}  // namespace speed::net
