// The TCP data connections of one test.
//
// The group is owned and driven by a session on the control executor. Each stream runs on a data-plane
// io_context of its own choosing (see io_pool) and touches shared state only through per-stream atomic byte
// counters and a "something changed" notification posted back to the control executor. The control side
// samples the counters (see measure::interval_meter) and decides when the test ends.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.hpp"
#include "common/self_probe.hpp"
#include "net/change_signal.hpp"
#include "net/clock.hpp"

namespace speed::net {

class data_stream;
struct group_state;

class stream_group {
  public:
    static constexpr std::chrono::nanoseconds kDefaultRttSampleInterval = std::chrono::milliseconds(100);
    // Self probes (common/self_probe.hpp): one every interval per test, round-robin over the streams.
    static constexpr std::chrono::nanoseconds kDefaultSelfProbeInterval = std::chrono::milliseconds(100);
    // A self probe not answered within this long is given up (its mark or byte got lost) so the stream can
    // probe again; far above any round trip a test with a working load has.
    static constexpr std::chrono::nanoseconds kSelfProbeTimeout = std::chrono::seconds(4);

    stream_group(asio::any_io_executor control_executor, std::size_t stream_count);
    ~stream_group();
    stream_group(const stream_group&) = delete;
    stream_group& operator=(const stream_group&) = delete;

    std::size_t size() const;

    // Moves a connected socket onto `data_context` as stream `index` (its HELLO already exchanged). Returns
    // false when the index is out of range or taken, or the connection is already gone. Congestion control
    // and pacing apply to the moved socket.
    bool attach(std::size_t index, asio::ip::tcp::socket socket, asio::io_context& data_context);
    bool all_attached() const;

    // Sets TCP congestion control on every attached stream; returns the first failure's text.
    std::optional<std::string> set_congestion(const std::string& algorithm);

    // Starts every stream reading and discarding payload (without copying it: MSG_TRUNC), counting bytes as
    // they arrive. With a
    // `self_probe_interval` > 0 (a download's client) the streams also write self probe bytes, one every
    // interval per group, round-robin, and time them when on_self_probe_mark() gives the answering byte.
    void start_receiving(std::chrono::nanoseconds self_probe_interval = std::chrono::nanoseconds(0));
    // Receiving streams of a fast sender wake only for several segments at once (common/receive_mark.hpp);
    // once the sender is known to be done, this makes them read the last bytes at once. Thread-safe.
    void release_receive_marks();
    // The largest mark any stream set so far (0: none), for tests and logs.
    std::size_t largest_receive_mark() const;
    // The sender's mark for a self probe. False when it names a stream the group does not have.
    bool on_self_probe_mark(const proto::self_probe_mark& mark);
    // The self probes' round trips, of probes sent at or after steady-clock time `since_ns`, in time order.
    std::vector<latency::self_probe_sample> self_probe_samples(std::int64_t since_ns) const;
    std::uint64_t self_probes_sent() const;
    std::uint64_t self_probes_dropped() const;
    // Starts every stream sending the shared payload buffer; `bytes_per_second_per_stream` > 0 asks the
    // kernel to pace each stream (SO_MAX_PACING_RATE). Every `rtt_sample_interval` each stream records the
    // kernel's smoothed RTT of its connection (TCP_INFO): the latency the load itself experiences.
    void start_sending(std::uint64_t bytes_per_second_per_stream,
                       std::chrono::nanoseconds rtt_sample_interval = kDefaultRttSampleInterval);

    // Sending streams (a download's server): also read the reverse direction for self probe bytes and note,
    // for each, how many payload bytes the stream had handed to its socket (take_self_probe_marks()). After
    // proto::kMaxSelfProbes bytes in the test the streams stop reading it: TCP's flow control holds back the
    // rest, so a peer that floods that direction costs no work.
    void answer_self_probes();
    // The marks noted since the last call, in the order the bytes were read per stream.
    std::vector<proto::self_probe_mark> take_self_probe_marks();
    std::uint32_t self_probes_answered() const;

    // Waits until a stream reports something (its first byte, its end) or until `deadline`.
    // Returns false when the deadline passed with nothing new.
    asio::awaitable<bool> wait_for_change(clock::time_point deadline);

    // Steady-clock time (ns) at which the first payload byte of the test was read, if any.
    std::optional<std::int64_t> first_byte_ns() const;
    // Steady-clock time (ns) of the latest read that took payload bytes, if any: when the bytes the counters
    // hold had all arrived.
    std::optional<std::int64_t> last_byte_ns() const;
    // Cumulative bytes per stream (received or sent, depending on the role).
    void read_counters(std::vector<std::uint64_t>& out) const;
    // Sending streams: bytes the receiver's TCP acknowledged, summed over the streams; refreshed with every
    // RTT sample (start_sending's interval). Unlike bytes written, it keeps moving on a slow path and stops
    // when the receiver stops reading.
    std::uint64_t acknowledged_bytes() const;
    // The first stream failure that happened before stop_all() (e.g. "connection reset by peer").
    std::optional<std::string> first_failure() const;
    std::size_t ended_count() const;

    // Sending streams stop writing but keep their connections open (no reset, no FIN) until stop_all(): a
    // peer told why the test ended (an ERROR on the control connection) reads that before any data
    // connection fails. Idempotent.
    void hold_sending();
    // Closes every stream with a reset (queued bytes are dropped), each on its own thread. Idempotent.
    // `orderly`: a normal close instead (queued bytes are still delivered, then FIN), for peers that read
    // their data connections until the control exchange ends and fail on a reset (iperf3 clients).
    enum class closing { abortive, orderly };
    void stop_all(closing how = closing::abortive);
    // Waits for every stream to have ended; false on deadline.
    asio::awaitable<bool> wait_all_ended(clock::time_point deadline);
    // Sender-side figures per stream, valid after the streams ended.
    std::vector<proto::stream_sender_stats> sender_stats() const;
    // The RTT samples of every stream taken at or after steady-clock time `since_ns`, in time order.
    std::vector<std::uint32_t> rtt_samples_us(std::int64_t since_ns) const;

  private:
    std::shared_ptr<change_signal> change_;
    std::shared_ptr<group_state> state_;
    std::vector<std::shared_ptr<data_stream>> streams_;
};

// Size of the payload buffer every sender writes from, and the most one read takes. 1 MiB writes cost a third
// of the CPU per byte of 128 KiB writes on loopback (docs/performance.md).
inline constexpr std::size_t kDataBufferSize = 1024 * 1024;

}  // namespace speed::net
