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
import resource
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
        self._reader.join(timeout=5)  # the log is complete once the reader saw the pipe close


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
        # --max-bitrate 0: the default UDP cap (1 Gbit/s, meant for public servers) would be the bottleneck of
        # the UDP benchmark; TCP has no cap either way.
        self.speedsrv = self.start_speedsrv("--max-bitrate", "0")
        self.speedsrv_port = self.speedsrv.port
        self.iperf3_port = free_port()
        self.iperf3_server = Process(["iperf3", "-s", "--forceflush", "-B", LOOPBACK, "-p", str(self.iperf3_port)])
        self.iperf3_server.wait_for("Server listening")

    def start_speedsrv(self, *extra):
        # speedsrv refuses to run as root unless told to; the benchmark host may run this as root.
        as_root = ["--allow-root"] if os.geteuid() == 0 else []
        server = Process([str(self.bin / "server" / "speedsrv"), "--bind", LOOPBACK, "--port", "0", *as_root,
                          *extra])
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

    def timed(self, server, run):
        """Runs run() and returns (its result, client CPU seconds, server CPU seconds) for that run alone: the
        client is the only child process waited for meanwhile (RUSAGE_CHILDREN), the server is idle otherwise."""
        server_before = proc_cpu_seconds(server.proc.pid)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = run()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
        return result, client_cpu, proc_cpu_seconds(server.proc.pid) - server_before

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


RTT_STATISTICS = ("min", "median", "p90", "p99")
SOCKPERF_STATISTICS = {"min": r"<MIN> observation =\s*([0-9.]+)", "median": r"percentile 50\.000 =\s*([0-9.]+)",
                       "p90": r"percentile 90\.000 =\s*([0-9.]+)", "p99": r"percentile 99\.000 =\s*([0-9.]+)"}


def sockperf_rtt_us(ctx, port, seconds):
    """sockperf's TCP ping-pong round trips at 50 messages/s: {statistic: microseconds} for RTT_STATISTICS.

    sockperf reports one-way latency (round trip / 2) unless given --full-rtt; we pass --full-rtt and check that
    the summary line speaks of a round trip."""
    argv = ["sockperf", "ping-pong", "--tcp", "-i", LOOPBACK, "-p", str(port), "--mps", "50", "-t", str(seconds),
            "--full-rtt"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    found = {name: re.search(pattern, out) for name, pattern in SOCKPERF_STATISTICS.items()}
    if done.returncode != 0 or not all(found.values()):
        raise RuntimeError(f"sockperf failed ({done.returncode}):\n{out}")
    # An older sockperf without --full-rtt support printed the one-way latency.
    scale = 1.0 if "Round trip is" in out else 2.0
    return {name: float(match.group(1)) * scale for name, match in found.items()}


def speedcli_rtt_us(ctx, probes):
    """speedcli's idle probes at 50/s: ({statistic: us} of application_rtt_ms, the same of rtt_ms, timestamps).

    application_rtt_ms is timed from writing the PING to reading the PONG in speedcli, as sockperf times its
    ping-pong; rtt_ms subtracts both processes' wake-up delays using kernel receive timestamps (docs/methodology.md),
    so it has no counterpart in sockperf and is reported for information."""
    d = ctx.speedcli("--no-download", "--no-upload", "--pings", str(probes), "--ping-interval", "0.02")
    idle = d["latency"]["idle"]
    in_us = lambda summary: {name: summary[name] * 1000.0 for name in RTT_STATISTICS}  # noqa: E731
    return in_us(idle["application_rtt_ms"]), in_us(idle["rtt_ms"]), idle["timestamps"]


def bench_idle_rtt(ctx):
    """Idle TCP round trip at 50 probes/s, application to application: speedcli's application_rtt_ms against
    sockperf's TCP ping-pong; speedcli's kernel-timestamp rtt_ms alongside, for information."""
    a = ctx.args
    ctx.progress(f"idle RTT at 50 probes/s: speedcli and sockperf alternating, {a.rounds} rounds")
    port = free_port()
    sockperf_server = Process(["sockperf", "server", "--tcp", "-i", LOOPBACK, "-p", str(port)])
    try:
        time.sleep(0.5)  # sockperf prints nothing reliable when ready; it starts in milliseconds
        probes = int(a.rtt_seconds * 50)
        ours, theirs = alternate(ctx, a.rounds, lambda: speedcli_rtt_us(ctx, probes),
                                 lambda: sockperf_rtt_us(ctx, port, a.rtt_seconds))
    finally:
        sockperf_server.stop()
    rows = []
    for name in RTT_STATISTICS:
        rows.append(row("idle_rtt", f"TCP, 50 probes/s, {name}", "us", statistics.median(r[0][name] for r in ours),
                        statistics.median(r[name] for r in theirs), "sockperf --full-rtt", "lower",
                        target="<= 1.5" if name == "median" else None,
                        speedcli_samples=[r[0][name] for r in ours], reference_samples=[r[name] for r in theirs],
                        speedcli_kernel_rtt_us=statistics.median(r[1][name] for r in ours),
                        speedcli_kernel_samples=[r[1][name] for r in ours],
                        speedcli_timestamps=[r[2] for r in ours]))
    return rows


def sessions_held_peak(log):
    """The most sessions speedsrv held at once, from its log: +1 at "session ID ... started", -1 at "ended"."""
    held = peak = 0
    for line in log.splitlines():
        if re.search(r" session \S+ from \S+ started", line):
            held += 1
            peak = max(peak, held)
        elif re.search(r" session \S+ from \S+ ended", line):
            held -= 1
    return peak


def bench_many_clients(ctx):
    """One speedsrv serving many speedcli clients at once: all must succeed; server CPU and memory from /proc."""
    a = ctx.args
    clients = a.clients
    ctx.progress(f"{clients} concurrent clients, {a.client_bitrate} each way, {a.duration} s per direction")
    # Every client comes from 127.0.0.1: the per-host caps (4 sessions, 16 handshakes by default) go up with
    # the global one, or the benchmark would measure the admission control.
    server = ctx.start_speedsrv("--max-sessions", str(clients), "--max-sessions-per-host", str(clients),
                                "--max-handshakes-per-host", str(max(16, 4 * clients)))
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
    held = sessions_held_peak(server.log())
    return [row("many_clients", f"{clients} clients at once", "clients ok", len(ok), clients, "clients started",
                "higher", target="= 1.0", sessions_held_peak=held, server_cpu_percent_of_a_core=100.0 * cpu / wall,
                server_rss_idle_kib=idle["VmRSS"], server_rss_peak_kib=peak_rss_kib,
                server_rss_per_client_kib=(peak_rss_kib - idle["VmRSS"]) / clients, server_threads_peak=peak_threads,
                aggregate_download_bits_per_second=download, aggregate_upload_bits_per_second=upload,
                wall_seconds=wall, errors=errors)]


def udp_speedcli(ctx, direction, bitrate, duration, omit):
    """One speedcli --udp run in one direction; returns (receiver goodput, lost %, client CPU s, server CPU s)."""
    skip = "--no-upload" if direction == "download" else "--no-download"
    d, client_cpu, server_cpu = ctx.timed(ctx.speedsrv, lambda: ctx.speedcli(
        "--udp", skip, "--bitrate", bitrate, "--length", str(UDP_DATAGRAM_BYTES), "--pings", "0",
        "--loaded-ping-interval", "0", "--interval", "0", "--duration", str(duration), "--omit", str(omit)))
    return d[direction]["bits_per_second"], d[direction]["lost_percent"], client_cpu, server_cpu


def udp_iperf3(ctx, direction, bitrate, duration, omit):
    """One iperf3 -u run; the same figures, from end.sum_received: the receiver's (the client's with -R)."""
    reverse = ["-R"] if direction == "download" else []
    d, client_cpu, server_cpu = ctx.timed(ctx.iperf3_server, lambda: ctx.iperf3(
        "-u", "-b", bitrate, "-l", str(UDP_DATAGRAM_BYTES), "-t", str(duration), "-O", str(omit), *reverse))
    received = d["end"]["sum_received"]  # not end.sum: for UDP that carries the sender's byte count
    return received["bits_per_second"], received["lost_percent"], client_cpu, server_cpu


UDP_DATAGRAM_BYTES = 1400
UDP_LOSSLESS_PERCENT = 0.1


def bench_udp_throughput(ctx):
    """UDP as fast as each tool goes (speedcli --bitrate 0, adaptive; iperf3 -b 0, unpaced), receiver goodput and
    loss, both directions; then the highest fixed rate each carries with < 0.1 % loss (upload)."""
    a = ctx.args
    rows = []
    for direction in ("upload", "download"):
        ctx.progress(f"UDP {direction}, as fast as possible, {UDP_DATAGRAM_BYTES}-byte datagrams: speedcli and "
                     f"iperf3 alternating, {a.rounds} rounds")
        ours, theirs = alternate(ctx, a.rounds,
                                 lambda: udp_speedcli(ctx, direction, "0", a.duration, a.omit),
                                 lambda: udp_iperf3(ctx, direction, "0", a.duration, a.omit))
        median_of = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
        rows.append(row("udp_throughput", f"{direction}, -b 0, {UDP_DATAGRAM_BYTES} B", "bit/s",
                        median_of(ours, 0), median_of(theirs, 0), "iperf3 -u", "higher",
                        target=">= 3.0 at <= 1 % loss",
                        speedcli_lost_percent=median_of(ours, 1), reference_lost_percent=median_of(theirs, 1),
                        speedcli_client_cpu_seconds=median_of(ours, 2), speedcli_server_cpu_seconds=median_of(ours, 3),
                        reference_client_cpu_seconds=median_of(theirs, 2),
                        reference_server_cpu_seconds=median_of(theirs, 3),
                        speedcli_samples=ours, reference_samples=theirs))
    rows.append(udp_lossless(ctx))
    return rows


def udp_lossless(ctx):
    """The highest upload rate with < 0.1 % loss for each tool: up a ladder of rates until a try loses more,
    then bisection between the last rate that passed and the first that failed. The two tools climb in
    lockstep, each try of one followed by the same try of the other, so that drift hits both alike."""
    a = ctx.args
    ctx.progress(f"UDP upload, highest rate with < {UDP_LOSSLESS_PERCENT} % loss: ladder {a.udp_ladder} Mbit/s, "
                 f"{a.udp_bisections} bisection steps, {a.duration} s per try")
    runners = {"speedcli": udp_speedcli, "iperf3": udp_iperf3}
    state = {tool: {"good": 0, "bad": None, "tries": []} for tool in runners}

    def attempt(tool, rate_mbps):
        goodput, lost, _, _ = runners[tool](ctx, "upload", f"{rate_mbps}M", a.duration, 0)
        state[tool]["tries"].append({"rate_mbps": rate_mbps, "bits_per_second": goodput, "lost_percent": lost})
        ctx.progress(f"    {tool:8} {rate_mbps:>6} Mbit/s: loss {lost:.4f} %")
        return lost < UDP_LOSSLESS_PERCENT

    for rate in a.udp_ladder:
        climbing = [tool for tool in runners if state[tool]["bad"] is None]
        if not climbing:
            break
        for tool in climbing:
            if attempt(tool, rate):
                state[tool]["good"] = rate
            else:
                state[tool]["bad"] = rate
    for _ in range(a.udp_bisections):
        for tool in runners:
            s = state[tool]
            if s["bad"] is None or s["bad"] - s["good"] <= 1:
                continue
            middle = (s["good"] + s["bad"]) // 2
            if attempt(tool, middle):
                s["good"] = middle
            else:
                s["bad"] = middle
    # None when not even the ladder's first rate passed.
    highest = {tool: state[tool]["good"] * 1e6 or None for tool in runners}
    return row("udp_lossless", f"upload, highest rate < {UDP_LOSSLESS_PERCENT} % loss", "bit/s", highest["speedcli"],
               highest["iperf3"], "iperf3 -u", "higher", target=">= 1.0",
               speedcli_tries=state["speedcli"]["tries"], reference_tries=state["iperf3"]["tries"],
               speedcli_first_failed_mbps=state["speedcli"]["bad"], reference_first_failed_mbps=state["iperf3"]["bad"])


BENCHMARKS = {
    "tcp": bench_tcp_throughput,
    "udp": bench_udp_throughput,
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


def with_loss(value, r, tool):
    """A UDP row's figure with the loss it came with."""
    lost = r.get(f"{tool}_lost_percent")
    return value if lost is None else f"{value}, {lost:.3g} % loss"


def print_table(rows):
    headers = ("benchmark", "case", "speedcli", "reference", "ratio", "target")
    lines = [(r["benchmark"], r["case"], with_loss(human(r["speedcli"], r["unit"]), r, "speedcli"),
              f"{with_loss(human(r['reference'], r['unit']), r, 'reference')} ({r['reference_tool']})",
              f"{r['ratio']:.3f}" if r["ratio"] is not None else "-", r["target"] or "") for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
    notes = [note for r in rows for note in [row_note(r, rows)] if note]
    if notes:
        print()
        for note in notes:
            print(note)


def row_note(r, rows):
    """A row's figures that do not fit the table, as one line, or None."""
    if r["benchmark"] == "idle_rtt":
        rtt_rows = [other for other in rows if other["benchmark"] == "idle_rtt"]
        if r is not rtt_rows[0]:
            return None  # one line for all of them
        kernel = ", ".join(f"{other['case'].rsplit(', ', 1)[1]} {human(other['speedcli_kernel_rtt_us'], 'us')}"
                           for other in rtt_rows)
        timestamps = "/".join(sorted({t for other in rtt_rows for t in other["speedcli_timestamps"]}))
        return (f"idle RTT, for information: speedcli's rtt_ms (kernel receive timestamps, without either "
                f"process's wake-up; sockperf has no such figure) {kernel}; timestamps: {timestamps}")
    if r["benchmark"] == "udp_throughput":
        return (f"UDP {r['case']}: CPU seconds per run, client + server: speedcli "
                f"{r['speedcli_client_cpu_seconds']:.2f} + {r['speedcli_server_cpu_seconds']:.2f}, iperf3 "
                f"{r['reference_client_cpu_seconds']:.2f} + {r['reference_server_cpu_seconds']:.2f}")
    if r["benchmark"] == "udp_lossless":
        said = {}
        for tool in ("speedcli", "reference"):
            rate = r[f"{tool}_first_failed_mbps"]
            said[tool] = f"{rate} Mbit/s" if rate else "none (the ladder ended first: raise --udp-ladder)"
        return (f"UDP {r['case']}: the lowest rate tried that lost more: speedcli {said['speedcli']}, "
                f"iperf3 {said['reference']}")
    if r["benchmark"] == "many_clients":
        return (f"many clients: {r['sessions_held_peak']} sessions held at once (peak), server CPU "
                f"{r['server_cpu_percent_of_a_core']:.0f} % of a core, RSS {r['server_rss_idle_kib'] / 1024:.1f} MiB "
                f"idle, {r['server_rss_peak_kib'] / 1024:.1f} MiB peak ({r['server_rss_per_client_kib']:.0f} KiB per "
                f"client), {r['server_threads_peak']} threads; aggregate "
                f"{human(r['aggregate_download_bits_per_second'], 'bit/s')} down, "
                f"{human(r['aggregate_upload_bits_per_second'], 'bit/s')} up"
                + (f"; errors: {r['errors']}" if r["errors"] else ""))
    return None


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
        "git_commit": command("git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"),
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
    parser.add_argument("--udp-ladder", type=lambda text: [int(r) for r in text.split(",")],
                        default=[100, 200, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 48000],
                        help="UDP rates (Mbit/s, comma-separated, rising) tried for the highest rate with "
                             "< 0.1 %% loss")
    parser.add_argument("--udp-bisections", type=int, default=3,
                        help="bisection steps after the ladder, between the last rate that passed and the first "
                             "that failed")
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 2-second runs, a short UDP ladder: checks that it all works")
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"),
                        help="directory for the JSON results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.omit, args.rtt_seconds, args.clients = 1, 2.0, 0.5, 2.0, 10
        args.udp_ladder, args.udp_bisections = [100, 1000, 8000], 0

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
