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
// matcher keeps one probe in flight per stream and the read history since that probe was sent (bounded), so
// both orders give the same exact figure; a probe whose byte fell out of the history is dropped, never
// guessed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace speed::latency {

struct self_probe_sample {
    std::int64_t sent_ns = 0;  // when the probe byte was written
    std::int64_t rtt_ns = 0;   // until the answering payload byte was read
};

class self_probe_matcher {
  public:
    // Reads remembered per outstanding probe: ample for any round trip the test can see (a 2 s queue drained
    // by 1 MiB reads, or 16 k reads of ~1.5 kB within one round trip on a fast path). Beyond it the probe is
    // dropped.
    static constexpr std::size_t kMaxHistory = 16384;

    // Whether a probe may be sent now (none is outstanding).
    bool idle() const { return !outstanding_; }
    // Probe number `number()` was written at `sent_ns`. Ignored while another probe is outstanding.
    void probe_sent(std::int64_t sent_ns);
    // The number the next probe byte will have: probes sent so far on this connection.
    std::uint32_t next_number() const { return next_number_; }

    // `bytes` payload bytes were read at `read_ns`. Returns the round trip it completes, if any.
    std::optional<self_probe_sample> bytes_read(std::uint64_t bytes, std::int64_t read_ns);
    // The server's mark for probe `number`: its answer is payload byte `offset`. Returns the round trip when
    // that byte was already read. A mark for a probe that is not outstanding (given up, or never sent) is
    // ignored; one whose byte was read before the probe was sent (cannot be true) or after the history filled
    // up drops the probe (counted in dropped()).
    std::optional<self_probe_sample> mark(std::uint32_t number, std::uint64_t offset);
    // Gives up on the outstanding probe (counted in dropped()) when it was sent before `older_than_ns`.
    void expire(std::int64_t older_than_ns);

    std::uint64_t dropped() const { return dropped_; }
    std::uint64_t read_offset() const { return read_offset_; }

  private:
    struct read_record {
        std::uint64_t end_offset;  // bytes read up to and including this read
        std::int64_t read_ns;
    };
    std::optional<self_probe_sample> complete(std::int64_t read_ns);
    void drop();

    std::uint64_t read_offset_ = 0;
    std::uint32_t next_number_ = 0;
    bool outstanding_ = false;
    std::uint32_t number_ = 0;
    std::int64_t sent_ns_ = 0;
    std::uint64_t offset_at_send_ = 0;
    std::optional<std::uint64_t> answer_offset_;
    std::vector<read_record> history_;
    std::uint64_t dropped_ = 0;
};

}  // namespace speed::latency
