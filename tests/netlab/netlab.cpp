#include "tests/netlab/netlab.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace speed::netlab {

using testing::process_result;
using testing::run_process;
using namespace std::chrono_literals;

std::string netem_tun_path() {
    return NETEM_TUN_PATH;
}

namespace {

constexpr const char* kNetnsDirectory = "/run/netns";
constexpr auto kCommandLimit = 10s;

constexpr int kUploadTable = 100;
constexpr int kDownloadTable = 101;
// SCHED_FIFO priorities: netem-tun above the endpoints, both above every normal process. Real-time throttling
// (kernel.sched_rt_runtime_us, 95 % by default) keeps a runaway from freezing the machine.
constexpr int kNetemPriority = 50;
constexpr int kEndpointPriority = 40;

std::string join(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& arg : argv) {
        text += (text.empty() ? "" : " ") + arg;
    }
    return text;
}

// Runs a set-up command; throws with its output when it fails.
void run_checked(const std::vector<std::string>& argv) {
    const process_result result = run_process(argv, kCommandLimit);
    if (result.exit_code != 0) {
        throw std::runtime_error("netlab: '" + join(argv) + "' failed (exit " +
                                 std::to_string(result.exit_code) + "): " + result.err + result.out);
    }
}

bool process_alive(pid_t pid) {
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Kills every process still inside namespace `name`, then deletes it (the veths in it go with it).
void delete_namespace(const std::string& name) {
    const process_result pids = run_process({"ip", "netns", "pids", name}, kCommandLimit);
    std::istringstream lines(pids.out);
    for (long pid = 0; lines >> pid;) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    run_process({"ip", "netns", "del", name}, kCommandLimit);
}

bool in_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::istringstream directories(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    for (std::string directory; std::getline(directories, directory, ':');) {
        if (!directory.empty() && ::access((directory + "/" + program).c_str(), X_OK) == 0) {
            return true;
        }
    }
    return false;
}

bool needs_netem(const link_direction& direction) {
    return direction.delay_ms > 0.0 || direction.loss_percent > 0.0 || direction.jitter_ms > 0.0;
}

std::vector<std::string> in_namespace(const std::string& name, const std::vector<std::string>& argv) {
    std::vector<std::string> command{"ip", "netns", "exec", name};
    command.insert(command.end(), argv.begin(), argv.end());
    return command;
}

std::string rate_text(std::uint64_t bits_per_second) {
    return std::to_string(bits_per_second) + "bit";
}

// ---- Clean-up on SIGINT, SIGTERM and SIGHUP
// ---------------------------------------------------------------- A test interrupted from the terminal (or
// stopped by a harness with SIGTERM) must not leave namespaces and servers behind. The handler may only use
// async-signal-safe calls, so it works from fixed arrays filled in advance: it kills the lab's background
// processes and removes the namespaces' mount points (what `ip netns del` does), then lets the previous
// handler (Catch2's, which reports the test) or the default action run.

constexpr std::size_t kRegistrySlots = 4;  // labs alive at the same time in one process
constexpr std::size_t kNamespacesPerLab = 3;
constexpr std::size_t kPidsPerLab = 32;
constexpr std::size_t kPathBytes = 128;
constexpr std::array<int, 3> kCleanupSignals{SIGINT, SIGTERM, SIGHUP};

struct lab_record {
    volatile std::sig_atomic_t in_use = 0;
    std::array<std::array<char, kPathBytes>, kNamespacesPerLab> namespace_paths{};
    std::array<volatile std::sig_atomic_t, kNamespacesPerLab> namespace_set{};  // path complete
    std::array<volatile std::sig_atomic_t, kPidsPerLab> pids{};                 // 0: free
};

std::array<lab_record, kRegistrySlots> g_labs;
std::mutex g_registry_mutex;
int g_handler_depth = 0;  // labs that installed the handler, under g_registry_mutex
std::array<struct sigaction, kCleanupSignals.size()> g_previous_actions{};

void chain_to_previous(int signal_number, siginfo_t* info, void* context) {
    for (std::size_t i = 0; i < kCleanupSignals.size(); ++i) {
        if (kCleanupSignals[i] != signal_number) {
            continue;
        }
        const struct sigaction& previous = g_previous_actions[i];
        if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
            previous.sa_sigaction(signal_number, info, context);
        } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
                   previous.sa_handler != nullptr) {
            previous.sa_handler(signal_number);
        }
    }
}

void on_interrupt(int signal_number, siginfo_t* info, void* context) {
    for (auto& record : g_labs) {
        if (record.in_use == 0) {
            continue;
        }
        for (const auto pid : record.pids) {
            if (pid > 0) {
                ::kill(static_cast<pid_t>(pid), SIGKILL);
            }
        }
        for (std::size_t i = 0; i < kNamespacesPerLab; ++i) {
            if (record.namespace_set[i] != 0) {
                ::umount2(record.namespace_paths[i].data(), MNT_DETACH);
                ::unlink(record.namespace_paths[i].data());
            }
        }
    }
    chain_to_previous(signal_number, info, context);
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
}

std::size_t acquire_registry_slot() {
    const std::lock_guard lock(g_registry_mutex);
    for (std::size_t slot = 0; slot < g_labs.size(); ++slot) {
        if (g_labs[slot].in_use == 0) {
            auto& record = g_labs[slot];
            std::fill(record.namespace_set.begin(), record.namespace_set.end(), 0);
            std::fill(record.pids.begin(), record.pids.end(), 0);
            record.in_use = 1;
            if (g_handler_depth++ == 0) {
                struct sigaction action {};
                action.sa_sigaction = on_interrupt;
                action.sa_flags = SA_SIGINFO;
                sigemptyset(&action.sa_mask);
                for (std::size_t i = 0; i < kCleanupSignals.size(); ++i) {
                    ::sigaction(kCleanupSignals[i], &action, &g_previous_actions[i]);
                }
            }
            return slot;
        }
    }
    throw std::runtime_error("netlab: too many labs alive at once");
}

void release_registry_slot(std::size_t slot) {
    const std::lock_guard lock(g_registry_mutex);
    g_labs[slot].in_use = 0;
    if (--g_handler_depth == 0) {
        for (std::size_t i = 0; i < kCleanupSignals.size(); ++i) {
            ::sigaction(kCleanupSignals[i], &g_previous_actions[i], nullptr);
        }
    }
}

void register_namespace(std::size_t slot, std::size_t index, const std::string& name) {
    auto& record = g_labs[slot];
    const std::string path = std::string(kNetnsDirectory) + "/" + name;
    std::snprintf(record.namespace_paths[index].data(), kPathBytes, "%s", path.c_str());
    record.namespace_set[index] = 1;
}

void register_pid(std::size_t slot, pid_t pid) {
    for (auto& entry : g_labs[slot].pids) {
        if (entry == 0) {
            entry = pid;
            return;
        }
    }
}

std::atomic<unsigned> g_lab_counter{0};

}  // namespace

// ---- Availability and the stale-namespace sweep
// -------------------------------------------------------------

std::string unavailable_reason() {
    static const std::string reason = [] {
        if (::geteuid() != 0) {
            return std::string("not root: the namespace lab creates network namespaces, veths and qdiscs");
        }
        for (const auto& [program, package] : std::vector<std::pair<std::string, std::string>>{
                 {"ip", "iproute2"}, {"tc", "iproute2"}, {"sysctl", "procps"}}) {
            if (!in_path(program)) {
                return program + " not found: install the Debian package " + package +
                       " (./scripts/test installs it)";
            }
        }
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
            return std::string("/dev/net/tun is not available (netem-tun needs TUN devices)");
        }
        // Try what the lab does: a namespace, a TUN device and a tbf qdisc in it.
        const std::string probe = std::string(kNamespacePrefix) + std::to_string(::getpid()) + "-probe";
        const process_result added = run_process({"ip", "netns", "add", probe}, kCommandLimit);
        if (added.exit_code != 0) {
            return "cannot create a network namespace: " + added.err;
        }
        std::string failure;
        const process_result tun =
            run_process({"ip", "-n", probe, "tuntap", "add", "dev", "t0", "mode", "tun"}, kCommandLimit);
        const process_result tbf = run_process({"tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "tbf",
                                                "rate", "1mbit", "burst", "16k", "limit", "16k"},
                                               kCommandLimit);
        if (tun.exit_code != 0) {
            failure = "cannot create a TUN device in a namespace: " + tun.err;
        } else if (tbf.exit_code != 0) {
            failure = "the tbf qdisc is not available: " + tbf.err;
        }
        delete_namespace(probe);
        return failure;
    }();
    return reason;
}

std::size_t sweep_stale_namespaces() {
    std::size_t removed = 0;
    std::error_code ec;
    const std::string prefix = kNamespacePrefix;
    for (const auto& entry : std::filesystem::directory_iterator(kNetnsDirectory, ec)) {
        // "speedlab-PID-...": the PID of the process that created it.
        const std::string name = entry.path().filename().string();
        const auto pid_end = name.find('-', prefix.size());
        if (name.rfind(prefix, 0) != 0 || pid_end == std::string::npos || pid_end == prefix.size() ||
            name.find_first_not_of("0123456789", prefix.size()) != pid_end) {
            continue;
        }
        const auto owner = static_cast<pid_t>(std::stol(name.substr(prefix.size(), pid_end - prefix.size())));
        if (owner == ::getpid() || process_alive(owner)) {
            continue;
        }
        delete_namespace(name);
        ++removed;
    }
    return removed;
}

void skip_test(const std::string& reason) {
    const char* required = std::getenv("SPEED_NETLAB_REQUIRED");
    if (required != nullptr && std::string(required) == "1") {
        std::printf("FAIL: SPEED_NETLAB_REQUIRED=1, but the namespace lab cannot run: %s\n", reason.c_str());
        std::fflush(stdout);
        std::exit(1);
    }
    std::printf("SKIP: %s\n", reason.c_str());
    std::fflush(stdout);
    std::exit(kSkipExitCode);
}

void skip_unless_installed(const std::string& program, const std::string& package) {
    if (!in_path(program)) {
        skip_test(program + " not found: install the Debian package " + package +
                  " (./scripts/test installs it)");
    }
}

// ---- The lab
// --------------------------------------------------------------------------------------------------

lab::lab(const lab_config& config) : config_(config) {
    static std::once_flag swept;
    std::call_once(swept, [] { sweep_stale_namespaces(); });

    const std::string base = std::string(kNamespacePrefix) + std::to_string(::getpid()) + "-" +
                             std::to_string(g_lab_counter.fetch_add(1));
    client_ = base + "-c";
    router_ = base + "-r";
    server_ = base + "-s";
    registry_slot_ = acquire_registry_slot();
    try {
        build();
    } catch (...) {
        teardown();
        throw;
    }
}

lab::~lab() {
    teardown();
}

void lab::build() {
    for (const std::string* name : {&client_, &router_, &server_}) {
        // Registered before it exists, so that an interrupt between the two still removes it.
        register_namespace(registry_slot_, created_.size(), *name);
        run_checked({"ip", "netns", "add", *name});
        created_.push_back(*name);
        run_checked({"ip", "-n", *name, "link", "set", "lo", "up"});
    }
    // veth pairs created in the router with their other end placed straight into the client or server
    // namespace.
    run_checked({"ip", "-n", router_, "link", "add", kRouterToClient, "type", "veth", "peer", "name", "eth0",
                 "netns", client_});
    run_checked({"ip", "-n", router_, "link", "add", kRouterToServer, "type", "veth", "peer", "name", "eth0",
                 "netns", server_});
    const auto configure_end = [](const std::string& ns, const char* address, const char* gateway) {
        run_checked({"ip", "-n", ns, "addr", "add", std::string(address) + "/24", "dev", "eth0"});
        run_checked({"ip", "-n", ns, "link", "set", "eth0", "up"});
        run_checked({"ip", "-n", ns, "route", "add", "default", "via", gateway});
    };
    configure_end(client_, kClientAddress, "10.201.1.1");
    configure_end(server_, kServerAddress, "10.201.2.1");
    run_checked({"ip", "-n", router_, "addr", "add", "10.201.1.1/24", "dev", kRouterToClient});
    run_checked({"ip", "-n", router_, "addr", "add", "10.201.2.1/24", "dev", kRouterToServer});
    run_checked({"ip", "-n", router_, "link", "set", kRouterToClient, "up"});
    run_checked({"ip", "-n", router_, "link", "set", kRouterToServer, "up"});
    // Packets come back out of a TUN device with a source address routed via another interface: reverse-path
    // filtering would drop them. "default" is set before the TUN devices exist, so they inherit 0.
    run_checked(in_router({"sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                           "net.ipv4.conf.default.rp_filter=0"}));

    add_direction(config_.upload, kRouterToClient, kRouterToServer, kUploadTun, kUploadTable);
    add_direction(config_.download, kRouterToServer, kRouterToClient, kDownloadTun, kDownloadTable);
    start_netem_tun();
}

// Rate limit on the egress towards the receiver; delay and loss by policy-routing everything that arrives
// from the sender's side into a TUN device, whose packets netem-tun writes back later, to be routed by
// destination.
void lab::add_direction(const link_direction& direction, const std::string& ingress,
                        const std::string& egress, const std::string& tun, int table) {
    if (direction.rate_bits_per_second > 0) {
        const std::uint64_t bytes_per_second = direction.rate_bits_per_second / 8;
        // The bucket holds 1 ms at the rate (at least 16 KiB so that a TSO burst is not split needlessly);
        // the default queue 50 ms, as a modest router would.
        const std::uint64_t burst = std::max<std::uint64_t>(16 * 1024, bytes_per_second / 1000);
        const std::uint64_t limit = direction.queue_bytes > 0
                                        ? direction.queue_bytes
                                        : std::max<std::uint64_t>(64 * 1024, bytes_per_second / 20);
        run_checked({"tc", "-n", router_, "qdisc", "add", "dev", egress, "root", "tbf", "rate",
                     rate_text(direction.rate_bits_per_second), "burst", std::to_string(burst), "limit",
                     std::to_string(limit)});
    }
    if (needs_netem(direction)) {
        const std::string table_text = std::to_string(table);
        run_checked({"ip", "-n", router_, "tuntap", "add", "dev", tun, "mode", "tun"});
        // No IPv6 on the TUN: its router solicitations and MLD reports would be counted as packets of the
        // link.
        run_checked(in_router({"sysctl", "-q", "-w", "net.ipv6.conf." + tun + ".disable_ipv6=1"}));
        run_checked({"ip", "-n", router_, "link", "set", tun, "up"});
        run_checked({"ip", "-n", router_, "route", "add", "default", "dev", tun, "table", table_text});
        run_checked(
            {"ip", "-n", router_, "rule", "add", "iif", ingress, "lookup", table_text, "pref", table_text});
    }
}

void lab::start_netem_tun() {
    std::vector<std::string> argv{netem_tun_path(), "--exit-with-parent",
                                  "--realtime",     std::to_string(kNetemPriority),
                                  "--seed",         std::to_string(config_.seed)};
    for (const auto& [direction, tun] :
         {std::pair{&config_.upload, kUploadTun}, std::pair{&config_.download, kDownloadTun}}) {
        if (needs_netem(*direction)) {
            argv.insert(argv.end(), {"--path", std::string(tun) + ":" + std::to_string(direction->delay_ms) +
                                                   ":" + std::to_string(direction->loss_percent) + ":" +
                                                   std::to_string(direction->jitter_ms)});
        }
    }
    if (std::find(argv.begin(), argv.end(), "--path") == argv.end()) {
        return;  // neither direction has delay or loss
    }
    netem_ = std::make_unique<testing::background_process>(in_router(argv));
    register_pid(registry_slot_, netem_->pid());
    netem_->wait_for_line("netem-tun: ready", 10s);
}

void lab::teardown() noexcept {
    try {
        servers_.clear();
        processes_.clear();
        netem_.reset();
        for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
            delete_namespace(*it);
        }
        created_.clear();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "netlab: clean-up failed: %s\n", e.what());
    }
    release_registry_slot(registry_slot_);
}

std::vector<std::string> lab::in_client(const std::vector<std::string>& argv) const {
    return in_namespace(client_, with_endpoint_priority(argv));
}

std::vector<std::string> lab::in_server(const std::vector<std::string>& argv) const {
    return in_namespace(server_, with_endpoint_priority(argv));
}

std::vector<std::string> lab::with_endpoint_priority(const std::vector<std::string>& argv) const {
    if (!config_.realtime_endpoints) {
        return argv;
    }
    std::vector<std::string> command{"chrt", "--fifo", std::to_string(kEndpointPriority)};
    command.insert(command.end(), argv.begin(), argv.end());
    return command;
}

std::vector<std::string> lab::in_router(const std::vector<std::string>& argv) const {
    return in_namespace(router_, argv);
}

process_result lab::run_in_client(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds limit) const {
    return run_process(in_client(argv), limit);
}

process_result lab::run_in_router(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds limit) const {
    return run_process(in_router(argv), limit);
}

void lab::load_router_nftables(const std::string& rules) {
    // nft reads a ruleset from a file (the process helpers pass no stdin); the name is this lab's alone.
    const auto path = std::filesystem::temp_directory_path() / (router_ + ".nft");
    {
        std::ofstream file(path);
        file << rules;
        if (!file) {
            throw std::runtime_error("netlab: cannot write " + path.string());
        }
    }
    const process_result loaded = run_process(in_router({"nft", "-f", path.string()}), kCommandLimit);
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    if (loaded.exit_code != 0) {
        throw std::runtime_error("netlab: nft refused the ruleset (exit " + std::to_string(loaded.exit_code) +
                                 "): " + loaded.err + loaded.out + "\n" + rules);
    }
}

testing::server_process& lab::start_speedsrv(std::vector<std::string> extra_args) {
    testing::server_launch launch;
    launch.extra_args = std::move(extra_args);
    launch.bind_address = kServerAddress;
    launch.launcher = in_server({});
    servers_.push_back(std::make_unique<testing::server_process>(launch));
    register_pid(registry_slot_, servers_.back()->pid());
    return *servers_.back();
}

testing::background_process& lab::start_in_server(const std::vector<std::string>& argv,
                                                  const std::string& ready_text) {
    return start_background(in_server(argv), ready_text);
}

testing::background_process& lab::start_in_client(const std::vector<std::string>& argv,
                                                  const std::string& ready_text) {
    return start_background(in_client(argv), ready_text);
}

testing::background_process& lab::start_background(const std::vector<std::string>& command,
                                                   const std::string& ready_text) {
    processes_.push_back(std::make_unique<testing::background_process>(command));
    register_pid(registry_slot_, processes_.back()->pid());
    processes_.back()->wait_for_line(ready_text, 10s);
    return *processes_.back();
}

nlohmann::json lab::netem_statistics() {
    if (!netem_) {
        return nullptr;
    }
    // netem-tun prints one "netem-tun: stats {json}" line per SIGUSR1: wait for one more than there are now.
    const std::string marker = "netem-tun: stats ";
    const auto count = [&marker](const std::string& log) {
        std::size_t n = 0;
        for (auto at = log.find(marker); at != std::string::npos; at = log.find(marker, at + 1)) {
            ++n;
        }
        return n;
    };
    const std::size_t before = count(netem_->log());
    netem_->send_signal(SIGUSR1);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (std::string log = netem_->log(); std::chrono::steady_clock::now() < deadline; log = netem_->log()) {
        if (count(log) > before && log.back() == '\n') {
            const auto start = log.rfind(marker) + marker.size();
            return nlohmann::json::parse(log.substr(start, log.find('\n', start) - start));
        }
        std::this_thread::sleep_for(10ms);
    }
    throw std::runtime_error("netlab: netem-tun printed no statistics; its log:\n" + netem_->log());
}

const nlohmann::json& netem_path(const nlohmann::json& statistics, const std::string& device) {
    if (statistics.is_object() && statistics.contains("paths")) {
        for (const auto& path : statistics["paths"]) {
            if (path["device"] == device) {
                return path;
            }
        }
    }
    throw std::runtime_error("netlab: netem-tun has no path " + device + ": " + statistics.dump());
}

}  // namespace speed::netlab
