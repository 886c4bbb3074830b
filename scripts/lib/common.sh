# Shared by scripts/demo, scripts/test and bench/: package installation and building.
# Sourced, not run.

# Debian 12 packages the build needs.
# (libjs-chart.js: Chart.js, which speedcli --report's page embeds at build time.)
SPEED_BUILD_PACKAGES=(build-essential cmake g++ libasio-dev libcli11-dev libspdlog-dev libfmt-dev catch2
                      nlohmann-json3-dev libssl-dev libjs-chart.js librestinio-dev libhttp-parser-dev)
# Extra packages the tests and benchmarks need: reference tools (iperf3, sockperf, ping) and the namespace lab's
# plumbing (ip and tc from iproute2, sysctl from procps, nft for the UDP handshake test), and prometheus: promtool
# checks speedsrv's --metrics exposition and a real Prometheus scrapes it (tests/integration/test_metrics.cpp);
# chromium: headless, it opens a speedcli --report page offline and checks it drew its charts
# (tests/integration/test_report.cpp); chromium-driver and python3-selenium: selenium drives it through speedsrv's
# browser test page until the test ends (tests/integration/test_web_page.cpp).
SPEED_TEST_PACKAGES=(iperf3 sockperf iproute2 iputils-ping procps nftables prometheus chromium chromium-driver
                     python3-selenium)
# What bench/run needs beyond those: its driver is a Python script (standard library only).
SPEED_BENCH_PACKAGES=(python3)
# The fuzzers (scripts/fuzz): clang 14 and its libFuzzer/sanitizer runtimes.
SPEED_FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)

speed_log() { printf '==> %s\n' "$*" >&2; }

# Installs whichever of the given Debian packages are missing; does nothing when all are present.
speed_ensure_packages() {
    local missing=()
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    speed_log "installing missing packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: missing packages (${missing[*]}) and no sudo to install them; install them as root." >&2
            return 1
        fi
        sudo=(sudo)
    fi
    # Only refresh the package lists when they have never been fetched.
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
        "${sudo[@]}" apt-get update -qq
    fi
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Configures and builds a CMake preset (debug, release, asan, ci, ci-asan).
speed_build() {
    local preset=$1
    speed_log "configuring (preset $preset)"
    cmake --preset "$preset" >/dev/null
    speed_log "building (preset $preset)"
    cmake --build --preset "$preset" -j "$(nproc)"
}
