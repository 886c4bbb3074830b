// The namespace lab: a client and a server network namespace joined through a router namespace, with an
// optional rate limit (tbf), one-way delay, jitter and seeded random loss (netem-tun) per direction. See
// docs/netlab.md.
//
//   client ns                  router ns                               server ns
//   eth0 10.201.1.2 ---- to-cli 10.201.1.1   to-srv 10.201.2.1 ---- eth0 10.201.2.2
//                          (tbf: download)   (tbf: upload)
//        upload:   to-cli -> [tun-up: netem-tun delay/loss] -> to-srv
//        download: to-srv -> [tun-dn: netem-tun delay/loss] -> to-cli
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace speed::netlab {

// ctest reports a test that exits with this code as "Skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt).
inline constexpr int kSkipExitCode = 77;

inline constexpr const char* kClientAddress = "10.201.1.2";
inline constexpr const char* kServerAddress = "10.201.2.2";
inline constexpr std::size_t kLinkMtu = 1500;  // every interface of the lab
// The router's interfaces (the same in every lab): its veths towards the client and the server, and the TUN
// devices netem-tun serves (the names of its paths in netem_statistics()).
inline constexpr const char* kRouterToClient = "to-cli";
inline constexpr const char* kRouterToServer = "to-srv";
inline constexpr const char* kUploadTun = "tun-up";
inline constexpr const char* kDownloadTun = "tun-dn";

// One direction of the emulated link.
struct link_direction {
    std::uint64_t rate_bits_per_second = 0;  // tbf rate, counting Ethernet frames; 0: not limited
    std::uint64_t queue_bytes = 0;           // tbf queue (its limit); 0: 50 ms at the rate, at least 64 KiB
    double delay_ms = 0.0;                   // netem-tun one-way delay
    double loss_percent = 0.0;               // netem-tun seeded random loss
    // netem-tun seeded uniform extra delay in [0, jitter_ms] per packet: packets may overtake each other
    double jitter_ms = 0.0;
};

struct lab_config {
    link_direction upload;    // client -> server
    link_direction download;  // server -> client
    std::uint64_t seed = 1;   // netem-tun's seed: the same seed drops and jitters the same packets
    // Run what the lab starts in the client and server namespaces (speedsrv, speedcli, ping, iperf3) at
    // SCHED_FIFO priority (chrt), so that other load on the machine (a parallel build) does not add its
    // scheduling delays to a round trip measured in user space. netem-tun always runs at SCHED_FIFO.
    bool realtime_endpoints = false;
};

// Creates the namespaces, links, qdiscs and netem-tun on construction; stops every process it started and
// deletes the namespaces on destruction, when a test fails (exceptions unwind through it), and on SIGINT,
// SIGTERM or SIGHUP. Namespaces left by a killed run are swept away by the next lab (see
// sweep_stale_namespaces).
class lab {
  public:
    explicit lab(const lab_config& config = {});
    ~lab();
    lab(const lab&) = delete;
    lab& operator=(const lab&) = delete;

    const lab_config& config() const { return config_; }
    const std::string& client_namespace() const { return client_; }
    const std::string& router_namespace() const { return router_; }
    const std::string& server_namespace() const { return server_; }

    // `argv` prefixed to run in one of the namespaces (ip netns exec).
    std::vector<std::string> in_client(const std::vector<std::string>& argv) const;
    std::vector<std::string> in_server(const std::vector<std::string>& argv) const;
    std::vector<std::string> in_router(const std::vector<std::string>& argv) const;

    // Runs a command in the client (router) namespace and waits for it (at most `limit`).
    testing::process_result run_in_client(const std::vector<std::string>& argv,
                                          std::chrono::milliseconds limit) const;
    testing::process_result run_in_router(const std::vector<std::string>& argv,
                                          std::chrono::milliseconds limit) const;

    // speedsrv in the server namespace on kServerAddress and a free port. The lab stops it.
    testing::server_process& start_speedsrv(std::vector<std::string> extra_args = {});
    // Any long-running command in the server namespace (iperf3 -s), once a line of its output contains
    // `ready_text`. The lab stops it if it is still running.
    testing::background_process& start_in_server(const std::vector<std::string>& argv,
                                                 const std::string& ready_text);
    // The same in the client namespace (speedcli monitor while traffic flows).
    testing::background_process& start_in_client(const std::vector<std::string>& argv,
                                                 const std::string& ready_text);

    // netem-tun's counters and CPU time so far (docs/netlab.md); null when neither direction has delay or
    // loss.
    nlohmann::json netem_statistics();
    // Loads `rules` (nft -f syntax) into the router namespace's nftables; throws with nft's message when it
    // refuses them. The rules go with the namespace.
    void load_router_nftables(const std::string& rules);

  private:
    std::vector<std::string> with_endpoint_priority(const std::vector<std::string>& argv) const;
    testing::background_process& start_background(const std::vector<std::string>& command,
                                                  const std::string& ready_text);
    void build();
    void teardown() noexcept;
    void start_netem_tun();
    void add_direction(const link_direction& direction, const std::string& ingress, const std::string& egress,
                       const std::string& tun, int table);

    lab_config config_;
    std::string client_;
    std::string router_;
    std::string server_;
    std::vector<std::string> created_;  // namespaces that exist, in creation order
    std::vector<std::unique_ptr<testing::server_process>> servers_;
    std::vector<std::unique_ptr<testing::background_process>> processes_;
    std::unique_ptr<testing::background_process> netem_;
    std::size_t registry_slot_ = 0;
};

// The entry of `statistics` (from lab::netem_statistics()) for the path of TUN device `device`
// (kUploadTun, kDownloadTun); throws when netem-tun has no such path.
const nlohmann::json& netem_path(const nlohmann::json& statistics, const std::string& device);

// Why the lab cannot run on this machine (not root, no /dev/net/tun, ip/tc missing, namespaces refused);
// empty when it can.
std::string unavailable_reason();

// Deletes the lab namespaces (and kills the processes in them) whose creating process no longer exists: what
// a run killed with SIGKILL (a ctest timeout) leaves behind. Namespaces of live runs are left alone. Returns
// how many were removed.
std::size_t sweep_stale_namespaces();

// The prefix of every lab namespace name: "speedlab-PID-N-c" (client), "-r" (router), "-s" (server).
inline constexpr const char* kNamespacePrefix = "speedlab-";

// Ends the test process: prints "SKIP: reason" and exits with kSkipExitCode, or, where the lab must run
// (environment SPEED_NETLAB_REQUIRED=1, set by CI), prints "FAIL: ..." and exits with 1. Only before a lab
// exists.
[[noreturn]] void skip_test(const std::string& reason);

// skip_test() when `program` is not in PATH.
void skip_unless_installed(const std::string& program, const std::string& package);

// The path of the netem-tun binary (set by CMake).
std::string netem_tun_path();

}  // namespace speed::netlab
