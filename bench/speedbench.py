#!/usr/bin/env python3
"""Benchmarks speedsrv/speedcli against reference tools on loopback; run it through bench/run.

Each benchmark alternates speedcli with its reference tool (iperf3, sockperf) round by round in the same run, so
that the ratio of the two medians holds on a noisy machine even when the absolute figures drift. Results go to a
table on stdout and a JSON document in bench/results/. docs/performance.md describes the method.

Adding a benchmark: write `def bench_NAME(ctx) -> list[dict]` returning rows made with `row(...)`, and list it in
BENCHMARKS. The function gets servers from ctx (ctx.speedsrv_port, ctx.iperf3_port) and runs tools with
ctx.speedcli(...), ctx.iperf3(...).
"""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def row(benchmark, case, unit, speedcli, reference, reference_name, better, target=None, **details):
    """One line of the results: medians of each tool and their ratio (speedcli / reference)."""
    ratio = speedcli / reference if speedcli is not None and reference else None
    return {
        "benchmark": benchmark,
        "case": case,
        "unit": unit,
        "speedcli": speedcli,
        "reference": reference,
        "reference_tool": reference_name,
        "ratio": ratio,
        "better": better,  # "higher" or "lower": which way a larger ratio points
        "target": target,  # the ratio the project aims for, as text
        **details,
    }


class Process:
    """A background server whose output is collected by a thread."""

    def __init__(self, argv):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def log(self):
        return "".join(self.output)

    def wait_for(self, pattern, seconds=10.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.argv[0]} did not print /{pattern}/; its output:\n{self.log()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def proc_status(pid):
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc/PID/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def proc_cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3 of stat(5)); utime and stime are fields 14 and 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Context:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin)
        self.speedsrv = None
        self.iperf3_server = None
        self.speedsrv_port = None
        self.iperf3_port = None

    def start_servers(self):
        self.speedsrv = self.start_speedsrv()
        self.speedsrv_port = self.speedsrv.port
        self.iperf3_port = free_port()
        self.iperf3_server = Process(["iperf3", "-s", "--forceflush", "-B", LOOPBACK, "-p", str(self.iperf3_port)])
        self.iperf3_server.wait_for("Server listening")

    def start_speedsrv(self, *extra):
        server = Process([str(self.bin / "server" / "speedsrv"), "--bind", LOOPBACK, "--port", "0", *extra])
        server.port = int(server.wait_for(r"listening on \S+ port ([0-9]+)").group(1))
        return server

    def stop_servers(self):
        for server in (self.speedsrv, self.iperf3_server):
            if server:
                server.stop()

    def speedcli(self, *args, port=None, timeout=120):
        """speedcli --json against the benchmark's speedsrv; returns the parsed document."""
        argv = [str(self.bin / "client" / "speedcli"), LOOPBACK, "--port", str(port or self.speedsrv_port),
                "--json", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        document = json.loads(done.stdout)
        if done.returncode != 0 or document.get("error"):
            raise RuntimeError(f"speedcli failed ({done.returncode}): {document.get('error')}\n{done.stderr}")
        return document

    def iperf3(self, *args, timeout=120):
        """iperf3 -J against the benchmark's iperf3 server; returns the parsed document."""
        argv = ["iperf3", "-c", LOOPBACK, "-p", str(self.iperf3_port), "-J", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        document = json.loads(done.stdout)
        if done.returncode != 0 or "error" in document:
            raise RuntimeError(f"iperf3 failed ({done.returncode}): {document.get('error')}\n{done.stderr}")
        return document

    def progress(self, text):
        print(f"  {text}", file=sys.stderr, flush=True)


def alternate(ctx, rounds, speedcli_run, reference_run):
    """Runs speedcli and the reference in turn, `rounds` times each; returns both lists of figures."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(speedcli_run())
        theirs.append(reference_run())
    return ours, theirs


# ---- Benchmarks ----------------------------------------------------------------------------------------------


def bench_tcp_throughput(ctx):
    """TCP goodput at the receiver, 1 and 4 streams, both directions, against iperf3 (-R for the download)."""
    a = ctx.args
    rows = []
    for streams in (1, 4):
        for direction in ("download", "upload"):
            ctx.progress(f"TCP {direction}, {streams} stream(s): speedcli and iperf3 alternating, {a.rounds} rounds")
            skip = "--no-upload" if direction == "download" else "--no-download"
            reverse = ["-R"] if direction == "download" else []

            def run_speedcli():
                d = ctx.speedcli(skip, "--pings", "0", "--interval", "0", "--streams", str(streams),
                                 "--duration", str(a.duration), "--omit", str(a.omit))
                return d[direction]["bits_per_second"]

            def run_iperf3():
                d = ctx.iperf3("-t", str(a.duration), "-O", str(a.omit), "-P", str(streams), *reverse)
                return d["end"]["sum_received"]["bits_per_second"]  # the receiver's figure

            ours, theirs = alternate(ctx, a.rounds, run_speedcli, run_iperf3)
            rows.append(row("tcp_throughput", f"{direction}, {streams} stream{'s' if streams > 1 else ''}",
                            "bit/s", statistics.median(ours), statistics.median(theirs), "iperf3", "higher",
                            target=">= 1.0 (goal 1.5)", speedcli_samples=ours, reference_samples=theirs))
    return rows


def sockperf_rtt_us(ctx, port, seconds):
    """Median TCP ping-pong round trip from sockperf at 50 messages/s, in microseconds.

    sockperf reports one-way latency (round trip / 2) unless given --full-rtt; we pass --full-rtt and check that
    the summary line speaks of a round trip."""
    argv = ["sockperf", "ping-pong", "--tcp", "-i", LOOPBACK, "-p", str(port), "--mps", "50", "-t", str(seconds),
            "--full-rtt"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    median = re.search(r"percentile 50\.000 =\s*([0-9.]+)", out)
    if done.returncode != 0 or not median:
        raise RuntimeError(f"sockperf failed ({done.returncode}):\n{out}")
    value = float(median.group(1))
    if "Round trip is" not in out:
        value *= 2.0  # an older sockperf without --full-rtt support printed the one-way latency
    return value


def bench_idle_rtt(ctx):
    """Idle TCP round trip at 50 probes/s: speedcli's probes against sockperf's TCP ping-pong."""
    a = ctx.args
    ctx.progress(f"idle RTT at 50 probes/s: speedcli and sockperf alternating, {a.rounds} rounds")
    port = free_port()
    sockperf_server = Process(["sockperf", "server", "--tcp", "-i", LOOPBACK, "-p", str(port)])
    try:
        time.sleep(0.5)  # sockperf prints nothing reliable when ready; it starts in milliseconds
        probes = int(a.rtt_seconds * 50)

        def run_speedcli():
            d = ctx.speedcli("--no-download", "--no-upload", "--pings", str(probes), "--ping-interval", "0.02")
            return d["latency"]["idle"]["rtt_ms"]["median"] * 1000.0

        ours, theirs = alternate(ctx, a.rounds, run_speedcli, lambda: sockperf_rtt_us(ctx, port, a.rtt_seconds))
    finally:
        sockperf_server.stop()
    return [row("idle_rtt", "TCP, 50 probes/s, median", "us", statistics.median(ours), statistics.median(theirs),
                "sockperf --full-rtt", "lower", target="<= 1.5", speedcli_samples=ours, reference_samples=theirs)]


def bench_many_clients(ctx):
    """One speedsrv serving many speedcli clients at once: all must succeed; server CPU and memory from /proc."""
    a = ctx.args
    clients = a.clients
    ctx.progress(f"{clients} concurrent clients, {a.client_bitrate} each way, {a.duration} s per direction")
    server = ctx.start_speedsrv("--max-sessions", str(clients))
    try:
        pid = server.proc.pid
        idle = proc_status(pid)
        cpu_before = proc_cpu_seconds(pid)
        started = time.monotonic()
        argv = [str(ctx.bin / "client" / "speedcli"), LOOPBACK, "--port", str(server.port), "--json",
                "--duration", str(a.duration), "--pings", "5", "--interval", "0", "--bitrate", a.client_bitrate]
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(clients)]
        peak_rss_kib, peak_threads = idle["VmRSS"], idle["Threads"]
        while any(p.poll() is None for p in procs):
            status = proc_status(pid)
            peak_rss_kib = max(peak_rss_kib, status["VmRSS"])
            peak_threads = max(peak_threads, status["Threads"])
            time.sleep(0.1)
        wall = time.monotonic() - started
        cpu = proc_cpu_seconds(pid) - cpu_before
        documents = []
        for p in procs:
            out, _ = p.communicate()
            try:
                documents.append(json.loads(out))
            except json.JSONDecodeError:
                documents.append({"error": "no JSON"})
        ok = [d for d in documents if not d.get("error")]
        download = sum(d["download"]["bits_per_second"] for d in ok)
        upload = sum(d["upload"]["bits_per_second"] for d in ok)
        errors = sorted({str(d.get("error")) for d in documents if d.get("error")})
    finally:
        server.stop()
    return [row("many_clients", f"{clients} clients at once", "clients ok", len(ok), clients, "clients started",
                "higher", target="= 1.0", server_cpu_percent_of_a_core=100.0 * cpu / wall,
                server_rss_idle_kib=idle["VmRSS"], server_rss_peak_kib=peak_rss_kib,
                server_rss_per_client_kib=(peak_rss_kib - idle["VmRSS"]) / clients, server_threads_peak=peak_threads,
                aggregate_download_bits_per_second=download, aggregate_upload_bits_per_second=upload,
                wall_seconds=wall, errors=errors)]


# UDP (issue 3) adds bench_udp_throughput here: speedcli --udp --bitrate 0 --length 1400 against
# iperf3 -u -b 0 -l 1400, both measured at the receiver, returning row("udp_throughput", ...).
BENCHMARKS = {
    "tcp": bench_tcp_throughput,
    "rtt": bench_idle_rtt,
    "clients": bench_many_clients,
}


# ---- Report --------------------------------------------------------------------------------------------------


def human(value, unit):
    if value is None:
        return "-"
    if unit == "bit/s":
        for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if value >= scale:
                return f"{value / scale:.2f} {prefix}bit/s"
        return f"{value:.0f} bit/s"
    if unit == "us":
        return f"{value:.1f} us"
    return f"{value:g} {unit}" if not isinstance(value, int) else f"{value}"


def print_table(rows):
    headers = ("benchmark", "case", "speedcli", "reference", "ratio", "target")
    lines = [(r["benchmark"], r["case"], human(r["speedcli"], r["unit"]),
              f"{human(r['reference'], r['unit'])} ({r['reference_tool']})",
              f"{r['ratio']:.3f}" if r["ratio"] is not None else "-", r["target"] or "") for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
    for r in rows:
        if r["benchmark"] == "many_clients":
            print(f"\nmany clients: server CPU {r['server_cpu_percent_of_a_core']:.0f} % of a core, RSS "
                  f"{r['server_rss_idle_kib'] / 1024:.1f} MiB idle, {r['server_rss_peak_kib'] / 1024:.1f} MiB peak "
                  f"({r['server_rss_per_client_kib']:.0f} KiB per client), {r['server_threads_peak']} threads; "
                  f"aggregate {human(r['aggregate_download_bits_per_second'], 'bit/s')} down, "
                  f"{human(r['aggregate_upload_bits_per_second'], 'bit/s')} up"
                  + (f"; errors: {r['errors']}" if r["errors"] else ""))


def machine_description(ctx):
    def command(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None

    lscpu = command("lscpu") or ""
    model = re.search(r"Model name:\s*(.+)", lscpu)
    return {
        "cpu": model.group(1) if model else platform.processor(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "speedcli": command(str(ctx.bin / "client" / "speedcli"), "--version"),
        "iperf3": (command("iperf3", "--version") or "").splitlines()[0:1],
        "sockperf": (command("sockperf", "--version") or "").splitlines()[0:1],
        "git_commit": command("git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="build/release", help="build directory with server/ and client/")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (medians are reported)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per throughput run")
    parser.add_argument("--omit", type=float, default=1.0, help="warm-up seconds excluded from throughput runs")
    parser.add_argument("--rtt-seconds", type=float, default=5.0, help="seconds of probes per RTT run")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients for the many-clients run")
    parser.add_argument("--client-bitrate", default="20M", help="each concurrent client's rate per direction")
    parser.add_argument("--quick", action="store_true", help="1 round of 2-second runs: checks that it all works")
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"),
                        help="directory for the JSON results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.omit, args.rtt_seconds, args.clients = 1, 2.0, 0.5, 2.0, 10

    ctx = Context(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    ctx.start_servers()
    try:
        for name, benchmark in BENCHMARKS.items():
            if not args.only or name in args.only:
                rows.extend(benchmark(ctx))
    finally:
        ctx.stop_servers()

    print_table(rows)
    Path(args.results).mkdir(parents=True, exist_ok=True)
    out = Path(args.results) / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "started": started.isoformat(),
        "machine": machine_description(ctx),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("results",)},
        "results": rows,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
