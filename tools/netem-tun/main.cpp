// netem-tun: holds every packet routed into a TUN device for a one-way delay (fixed, plus seeded uniform
// jitter), drops a seeded random share, and writes the rest back into the same device, where the kernel
// routes them on. A user-space stand-in for `tc qdisc ... netem delay D J loss P` where kernel netem is not
// available. See docs/netlab.md.
//
// One thread, one epoll loop: TUN descriptors (drained in batches), a timerfd armed at the earliest release
// time (nanosecond deadline, 1 ns timer slack; SCHED_FIFO with --realtime), and a signalfd (SIGTERM/SIGINT:
// print statistics and exit; SIGUSR1: print statistics). A direction with neither loss nor jitter takes TCP
// super-packets of up to 64 KiB from the kernel in one read (segmentation offload); every other direction
// sees each packet of the wire.
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "tools/netem-tun/delay_line.hpp"
#include "tools/netem-tun/packet_tally.hpp"
#include "tools/netem-tun/path_spec.hpp"
#include "tools/netem-tun/seeded_loss.hpp"
#include "tools/netem-tun/tun_device.hpp"

namespace {

using namespace speed::netem;

// Packets read from one device before the loop looks at the clock and the other device again.
constexpr int kReadBatch = 64;

std::int64_t monotonic_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

double timeval_seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

nlohmann::ordered_json counts_json(const packet_counts& counts) {
    return {{"received", counts.received}, {"lost", counts.lost}, {"overtaken", counts.overtaken}};
}

// {"tcp": {"received": N, "lost": N}, "udp": ..., "icmp": ..., "other": ...}
nlohmann::ordered_json protocol_statistics(const packet_tally& tally) {
    nlohmann::ordered_json protocols = nlohmann::ordered_json::object();
    for (const auto p : {ip_protocol::tcp, ip_protocol::udp, ip_protocol::icmp, ip_protocol::other}) {
        protocols[protocol_name(p)] = counts_json(tally.protocol(p));
    }
    return protocols;
}

// {"28": {"received": N, "lost": N}, "1200": ...}: UDP datagrams by payload length; "untracked" when more
// lengths were seen than are tracked.
nlohmann::ordered_json udp_length_statistics(const packet_tally& tally) {
    nlohmann::ordered_json lengths = nlohmann::ordered_json::object();
    for (const auto& [payload_bytes, counts] : tally.udp_by_payload_bytes()) {
        lengths[std::to_string(payload_bytes)] = counts_json(counts);
    }
    if (tally.udp_untracked_lengths().received > 0) {
        lengths["untracked"] = counts_json(tally.udp_untracked_lengths());
    }
    return lengths;
}

int check(int rc, const char* what) {
    if (rc < 0) {
        throw std::system_error(errno, std::generic_category(), what);
    }
    return rc;
}

// Loss and jitter are decided per packet of the wire, so only a direction with neither may take
// super-packets.
bool offloads_segmentation(const path_spec& spec) {
    return spec.loss_probability <= 0.0 && spec.jitter_ns.value_or(0) == 0;
}

// The bare IP packet of a frame read from the TUN device.
std::span<const std::byte> ip_packet(std::span<const std::byte> frame) {
    return frame.subspan(tun_device::kHeaderBytes);
}

// How many packets of the wire a frame carries: its segments when it is a TCP super-packet, else 1.
std::uint64_t wire_packets(std::span<const std::byte> frame) {
    return gso_segment_count(ip_packet(frame), tun_device::segment_size(frame));
}

struct direction {
    // `spec.jitter_ns` is set (main() fills in --jitter).
    direction(path_spec path, std::size_t limit_packets, std::uint64_t seed)
        : spec(std::move(path)),
          offload(offloads_segmentation(spec)),
          tun(spec.device, offload),
          line(limit_packets,
               tun_device::kHeaderBytes + (offload ? tun_device::kMaxOffloadPacketBytes : tun.mtu())),
          loss(spec.loss_probability, seed),
          jitter(*spec.jitter_ns, jitter_seed(seed)) {}

    path_spec spec;
    bool offload;
    tun_device tun;
    delay_line line;
    seeded_loss loss;
    seeded_jitter jitter;
    // Counted in packets of the wire (a super-packet counts as its segments):
    std::uint64_t received = 0;
    std::uint64_t lost = 0;        // dropped by the configured loss
    std::uint64_t overflowed = 0;  // dropped because `limit` packets were already held
    std::uint64_t forwarded = 0;
    std::uint64_t write_errors = 0;
    std::uint64_t overtaken = 0;  // forwarded after a packet that arrived later (any kind)
    std::uint64_t highest_released = 0;
    std::uint64_t reads = 0;  // frames read: super-packets count once
    packet_tally tally;       // received, lost and overtaken per protocol and UDP payload length
};

class forwarder {
  public:
    explicit forwarder(std::vector<direction>& directions)
        : directions_(directions), scratch_(tun_device::kHeaderBytes + tun_device::kMaxOffloadPacketBytes) {}

    // Runs until SIGTERM or SIGINT.
    void run() {
        sigset_t signals;
        sigemptyset(&signals);
        for (const int s : {SIGTERM, SIGINT, SIGUSR1}) {
            sigaddset(&signals, s);
        }
        const int signal_fd = check(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd");
        timer_fd_ = check(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create");
        const int epoll_fd = check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
        for (std::size_t i = 0; i < directions_.size(); ++i) {
            watch(epoll_fd, directions_[i].tun.fd(), i);
        }
        const std::size_t timer_id = directions_.size();
        const std::size_t signal_id = timer_id + 1;
        watch(epoll_fd, timer_fd_, timer_id);
        watch(epoll_fd, signal_fd, signal_id);

        std::array<epoll_event, 8> events{};
        for (bool running = true; running;) {
            const int ready = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), -1);
            if (ready < 0 && errno != EINTR) {
                check(ready, "epoll_wait");
            }
            for (int e = 0; e < ready; ++e) {
                const std::size_t id = events[static_cast<std::size_t>(e)].data.u64;
                if (id < timer_id) {
                    read_batch(directions_[id]);
                } else if (id == timer_id) {
                    std::uint64_t expirations = 0;
                    [[maybe_unused]] const auto n = ::read(timer_fd_, &expirations, sizeof expirations);
                    armed_ns_.reset();
                } else {
                    signalfd_siginfo info{};
                    while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
                        print_statistics();
                        running = running && info.ssi_signo == SIGUSR1;
                    }
                }
            }
            release_due();
        }
        ::close(epoll_fd);
        ::close(timer_fd_);
        ::close(signal_fd);
    }

    void print_statistics() const {
        rusage usage{};
        ::getrusage(RUSAGE_SELF, &usage);
        nlohmann::ordered_json paths = nlohmann::ordered_json::array();
        for (const auto& d : directions_) {
            paths.push_back({{"device", d.spec.device},
                             {"delay_ms", static_cast<double>(d.spec.delay_ns) / 1e6},
                             {"loss_percent", d.spec.loss_probability * 100.0},
                             {"jitter_ms", static_cast<double>(*d.spec.jitter_ns) / 1e6},
                             {"segmentation_offload", d.offload},
                             {"received", d.received},
                             {"reads", d.reads},
                             {"lost", d.lost},
                             {"overflowed", d.overflowed},
                             {"forwarded", d.forwarded},
                             {"write_errors", d.write_errors},
                             {"overtaken", d.overtaken},
                             {"held", d.line.size()},
                             {"protocols", protocol_statistics(d.tally)},
                             {"udp_payload_bytes", udp_length_statistics(d.tally)}});
        }
        const nlohmann::ordered_json stats{
            {"paths", paths},
            {"cpu_user_seconds", timeval_seconds(usage.ru_utime)},
            {"cpu_system_seconds", timeval_seconds(usage.ru_stime)},
            {"wall_seconds", static_cast<double>(monotonic_ns() - started_ns_) / 1e9}};
        std::fprintf(stderr, "netem-tun: stats %s\n", stats.dump().c_str());
        std::fflush(stderr);
    }

  private:
    static void watch(int epoll_fd, int fd, std::size_t id) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = id;
        check(::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event), "epoll_ctl");
    }

    // Reads up to kReadBatch packets: each is lost, overflows, or joins its delay line. Level-triggered epoll
    // brings us back for the rest. A super-packet (offload: no loss, no jitter) is held and released whole,
    // counted as its segments.
    void read_batch(direction& d) {
        for (int i = 0; i < kReadBatch; ++i) {
            const bool room = !d.line.full();
            const std::span<std::byte> buffer = room ? d.line.free_buffer() : std::span<std::byte>(scratch_);
            const std::size_t length = d.tun.read_packet(buffer);
            if (length <= tun_device::kHeaderBytes) {
                if (length == 0) {
                    return;
                }
                continue;  // nothing behind the header: not a packet
            }
            const std::int64_t arrived_ns = monotonic_ns();
            const std::span<const std::byte> frame = buffer.first(length);
            const std::uint64_t packets = wire_packets(frame);
            ++d.reads;
            d.received += packets;
            const bool lost = d.loss.drop();
            const std::int64_t extra_ns = d.jitter.next_ns();  // drawn for every packet, as the loss is
            d.tally.count(classify_packet(ip_packet(frame)), lost, packets);
            if (lost) {
                d.lost += packets;
            } else if (!room) {
                d.overflowed += packets;
            } else {
                d.line.commit(length, arrived_ns + d.spec.delay_ns + extra_ns, d.received);
            }
        }
    }

    // Writes back every packet whose time has come, then arms the timer for the earliest one still held.
    void release_due() {
        const std::int64_t now = monotonic_ns();
        std::optional<std::int64_t> earliest;
        for (auto& d : directions_) {
            for (auto due = d.line.next_release_ns(); due && *due <= now; due = d.line.next_release_ns()) {
                const std::span<const std::byte> frame = d.line.front();
                const std::uint64_t packets = wire_packets(frame);
                const std::uint64_t index = d.line.front_arrival_index();
                if (d.tun.write_packet(frame)) {
                    d.forwarded += packets;
                    if (index < d.highest_released) {
                        ++d.overtaken;
                    } else {
                        d.highest_released = index;
                    }
                    d.tally.released(classify_packet(ip_packet(frame)), index);
                } else {
                    d.write_errors += packets;
                }
                d.line.pop();
            }
            if (const auto due = d.line.next_release_ns(); due && (!earliest || *due < *earliest)) {
                earliest = due;
            }
        }
        if (earliest && earliest != armed_ns_) {
            itimerspec when{};
            when.it_value.tv_sec = *earliest / 1'000'000'000;
            when.it_value.tv_nsec = *earliest % 1'000'000'000;
            check(::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &when, nullptr), "timerfd_settime");
            armed_ns_ = earliest;
        }
    }

    std::vector<direction>& directions_;
    std::vector<std::byte> scratch_;  // where packets that find their line full are read to be dropped
    int timer_fd_ = -1;
    std::optional<std::int64_t> armed_ns_;  // the timer's deadline, when armed
    std::int64_t started_ns_ = monotonic_ns();
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> path_texts;
    std::uint64_t seed = 1;
    std::string jitter_text = "0";
    std::size_t limit_packets = 8192;
    bool exit_with_parent = false;
    int realtime_priority = 0;

    CLI::App app{
        "netem-tun: adds a one-way delay (fixed plus seeded uniform jitter) and seeded random loss to the "
        "packets\n"
        "routed into TUN devices, then writes them back into the same device. Each --path is one direction.\n"
        "See docs/netlab.md."};
    app.add_option("--path", path_texts,
                   "DEVICE:DELAY_MS[:LOSS_PERCENT[:JITTER_MS]], e.g. tun-up:10, tun-dn:20:1 or tun-dn:5:0:4 "
                   "(repeat per direction)")
        ->required();
    app.add_option("--jitter", jitter_text,
                   "JITTER_MS: every packet of a path without its own JITTER_MS waits a further uniform "
                   "random 0..JITTER_MS ms, so packets may overtake each other (as netem's jitter)")
        ->capture_default_str();
    app.add_option("--seed", seed,
                   "Seed of the loss and jitter patterns (direction i uses seeds derived from it and i)")
        ->capture_default_str();
    app.add_option("--limit", limit_packets,
                   "Packets held per direction (a TCP super-packet is one); more are dropped and counted")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    app.add_flag("--exit-with-parent", exit_with_parent,
                 "Exit (printing statistics) when the parent process dies");
    app.add_option("--realtime", realtime_priority,
                   "Run at this SCHED_FIFO priority (1-99; 0 = normal scheduling), so that other load on the "
                   "machine does not postpone releases")
        ->capture_default_str()
        ->check(CLI::Range(0, 99));
    CLI11_PARSE(app, argc, argv);

    // Signals are taken from the signalfd, so they must not be delivered the ordinary way.
    sigset_t signals;
    sigemptyset(&signals);
    for (const int s : {SIGTERM, SIGINT, SIGUSR1}) {
        sigaddset(&signals, s);
    }
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);
    if (exit_with_parent) {
        const pid_t parent = ::getppid();
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) {
            return 0;  // the parent died before the request took effect
        }
    }
    // Timers wake us within 1 ns of the deadline instead of the default 50 us slack.
    ::prctl(PR_SET_TIMERSLACK, 1UL);
    if (realtime_priority > 0) {
        sched_param param{};
        param.sched_priority = realtime_priority;
        if (::sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
            std::fprintf(stderr,
                         "netem-tun: warning: SCHED_FIFO refused (%s); running with normal scheduling\n",
                         std::strerror(errno));
        }
    }

    const auto default_jitter_ns = parse_milliseconds(jitter_text);
    if (!default_jitter_ns) {
        std::fprintf(stderr, "netem-tun: --jitter %s: expected milliseconds from 0 to 10000\n",
                     jitter_text.c_str());
        return 2;
    }
    try {
        std::vector<direction> directions;
        directions.reserve(path_texts.size());
        for (std::size_t i = 0; i < path_texts.size(); ++i) {
            std::string error;
            auto spec = parse_path_spec(path_texts[i], &error);
            if (!spec) {
                std::fprintf(stderr, "netem-tun: --path %s: %s\n", path_texts[i].c_str(), error.c_str());
                return 2;
            }
            spec->jitter_ns = spec->jitter_ns.value_or(*default_jitter_ns);
            directions.emplace_back(std::move(*spec), limit_packets, direction_seed(seed, i));
        }
        forwarder loop(directions);
        for (const auto& d : directions) {
            std::fprintf(
                stderr, "netem-tun: %s: delay %.3f ms, jitter 0-%.3f ms, loss %.3f %%, limit %zu packets%s\n",
                d.spec.device.c_str(), static_cast<double>(d.spec.delay_ns) / 1e6,
                static_cast<double>(*d.spec.jitter_ns) / 1e6, d.spec.loss_probability * 100.0, limit_packets,
                d.offload ? ", segmentation offload" : "");
        }
        std::fprintf(stderr, "netem-tun: ready\n");
        std::fflush(stderr);
        loop.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "netem-tun: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
