// Matching a download's self probes to the payload byte that answers them (docs/methodology.md,
// "Responsiveness"; docs/protocol.md, "Self probes").
//
// The client writes one probe byte on a data connection at `sent_ns`. The server, on reading it, tells the
// client (SELF_PROBE_MARK) how many payload bytes it had handed to that socket: the first payload byte it
// sends after seeing the probe has that 0-based offset, and it waits behind the sender's socket buffer
// exactly as a reply on that connection would. The self round trip is the time the client read that byte
// minus `sent_ns`.
//
// The mark travels on the control connection, so it may arrive before or after the client read the byte. The
// matcher keeps up to kMaxInFlight probes per connection and the read history since the oldest of them was
// sent (bounded), so both orders give the same exact figure; a probe whose byte fell out of the history is
// dropped, never guessed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace speed::latency {

struct self_probe_sample {
    std::int64_t sent_ns = 0;  // when the probe byte was written
    std::int64_t rtt_ns = 0;   // until the answering payload byte was read
};

class self_probe_matcher {
  public:
    // Probes outstanding at once on one connection: one every 100 ms keeps a 1.6 s round trip busy.
    static constexpr std::size_t kMaxInFlight = 16;
    // Reads remembered since the oldest outstanding probe was sent: ample for any round trip the test can see
    // (16 k reads of ~1.5 kB, or a 2 s queue drained by large reads). Beyond it a late mark's probe is
    // dropped.
    static constexpr std::size_t kMaxHistory = 16384;

    // Whether another probe may be sent now.
    bool can_send() const { return probes_.size() < kMaxInFlight; }
    // Probe number next_number() was written at `sent_ns`. Ignored when !can_send().
    void probe_sent(std::int64_t sent_ns);
    // The number the next probe byte will have: probes sent so far on this connection.
    std::uint32_t next_number() const { return next_number_; }
    std::size_t in_flight() const { return probes_.size(); }

    // `bytes` payload bytes were read at `read_ns`. Returns the round trips they complete, in probe order.
    std::vector<self_probe_sample> bytes_read(std::uint64_t bytes, std::int64_t read_ns);
    // The server's mark for probe `number`: its answer is payload byte `offset`. Returns the round trip when
    // that byte was already read. A mark for a probe that is not outstanding (given up, answered, never
    // sent) is ignored; one whose byte was read before the probe was sent (cannot be true) or after the
    // history filled up drops the probe (counted in dropped()).
    std::optional<self_probe_sample> mark(std::uint32_t number, std::uint64_t offset);
    // Gives up on the outstanding probes sent before `older_than_ns` (counted in dropped()).
    void expire(std::int64_t older_than_ns);

    std::uint64_t dropped() const { return dropped_; }
    std::uint64_t read_offset() const { return read_offset_; }

  private:
    struct probe {
        std::uint32_t number;
        std::int64_t sent_ns;
        std::uint64_t offset_at_send;         // payload bytes read when it was sent
        std::optional<std::uint64_t> answer;  // the mark's offset, while that byte is not read yet
    };
    struct read_record {
        std::uint64_t end_offset;  // bytes read up to and including this read
        std::int64_t read_ns;
    };
    void remove(std::deque<probe>::iterator it);

    std::uint64_t read_offset_ = 0;
    std::uint32_t next_number_ = 0;
    std::deque<probe> probes_;  // in number order
    std::vector<read_record> history_;
    bool history_full_ = false;  // a read was left out: nothing is appended until the history restarts
    std::uint64_t dropped_ = 0;
};

}  // namespace speed::latency
