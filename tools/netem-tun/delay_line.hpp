// The packets one direction of netem-tun is holding back, each until its release time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace speed::netem {

// A pool of fixed-size packet slots and a min-heap of the held packets ordered by release time, ties in
// arrival order. With one fixed delay per direction the release times rise with arrival and the heap is a
// FIFO; with jitter a packet whose release time is earlier leaves first, overtaking those that arrived before
// it (docs/netlab.md). Nothing is allocated after construction; packets are read straight into their slot.
// Free slots are reused last-freed-first, so only as many slots as were ever held at once are touched: a slot
// holds a whole GSO super-packet (64 KiB) while most of the pool stays untouched virtual memory.
class delay_line {
  public:
    delay_line(std::size_t capacity_packets, std::size_t max_packet_bytes);

    std::size_t size() const { return heap_.size(); }
    std::size_t capacity() const { return slot_count_; }
    bool empty() const { return heap_.empty(); }
    bool full() const { return free_slots_.empty(); }

    // Where the next packet is to be read into (max_packet_bytes long). Only while !full().
    std::span<std::byte> free_buffer();
    // Holds the first `length` bytes of free_buffer() until `release_ns`. `arrival_index` is the caller's
    // number for the packet (netem-tun: its position in the direction's arrival sequence), given back by
    // front_arrival_index().
    void commit(std::size_t length, std::int64_t release_ns, std::uint64_t arrival_index);

    // The earliest release time held, nothing when the line is empty.
    std::optional<std::int64_t> next_release_ns() const;
    // The bytes and arrival index of the packet due first; only while !empty().
    std::span<const std::byte> front() const;
    std::uint64_t front_arrival_index() const;
    void pop();

  private:
    struct held {
        std::int64_t release_ns;
        std::uint64_t order;  // commit order: ties leave in arrival order
        std::uint64_t arrival_index;
        std::size_t slot;
        std::size_t length;
    };
    // std heap functions build a max-heap: "later" puts the earliest release on top.
    static bool later(const held& a, const held& b) {
        return a.release_ns != b.release_ns ? a.release_ns > b.release_ns : a.order > b.order;
    }

    std::size_t slot_bytes_;
    std::size_t slot_count_;
    // slot_count_ slots of slot_bytes_ each, left uninitialized so that memory is only touched when used
    std::unique_ptr<std::byte[]> storage_;
    std::vector<std::size_t> free_slots_;  // a stack: the last slot freed is the next one used
    std::vector<held> heap_;
    std::uint64_t commits_ = 0;
};

}  // namespace speed::netem
