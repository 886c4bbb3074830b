// The packets one direction of netem-tun is holding back, each until its release time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace speed::netem {

// A ring of fixed-size packet slots, released first in, first out. One direction has one fixed delay, so
// packets leave in the order they arrived and the ring is already sorted by release time: the head is always
// the next packet due. Nothing is allocated after construction; packets are read straight into their slot.
class delay_line {
  public:
    delay_line(std::size_t capacity_packets, std::size_t max_packet_bytes);

    std::size_t size() const { return count_; }
    std::size_t capacity() const { return releases_.size(); }
    bool empty() const { return count_ == 0; }
    bool full() const { return count_ == capacity(); }

    // Where the next packet is to be read into (max_packet_bytes long). Only while !full().
    std::span<std::byte> tail_buffer();
    // Queues the first `length` bytes of tail_buffer() until `release_ns`. A release time earlier than the
    // previous packet's is raised to it, so that packets never overtake each other.
    void commit(std::size_t length, std::int64_t release_ns);

    // The release time of the head packet, nothing when the line is empty.
    std::optional<std::int64_t> next_release_ns() const;
    // The head packet's bytes; only while !empty().
    std::span<const std::byte> front() const;
    void pop();

  private:
    std::size_t slot_bytes_;
    // capacity slots of slot_bytes_ each, left uninitialized so that memory is only touched when used
    std::unique_ptr<std::byte[]> storage_;
    std::vector<std::int64_t> releases_;  // per slot
    std::vector<std::size_t> lengths_;    // per slot
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    std::int64_t last_release_ns_ = 0;
};

}  // namespace speed::netem
