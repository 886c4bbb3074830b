#!/usr/bin/env python3
"""Benchmarks speedsrv/speedcli against reference tools on loopback; run it through bench/run.

Each benchmark alternates speedcli with its reference tool (iperf3, sockperf) round by round in the same run, so
that the ratio of the two medians holds on a noisy machine even when the absolute figures drift; every rate row
also gives the ratio within each round (per_round_ratio), whose runs share the machine's speed of their moment.
Results go to a table on stdout and a JSON document in bench/results/. docs/performance.md describes the method.

Adding a benchmark: write `def bench_NAME(ctx) -> list[dict]` returning rows made with `row(...)`, and list it in
BENCHMARKS. The function gets servers from ctx (ctx.speedsrv_target, ctx.iperf3_target), runs tools with
ctx.speedcli(...), ctx.iperf3(...), and alternates them with alternate(...), which retries a failed run once and
then records it as a failure of its row instead of ending the bench.
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
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
# The iperf3 to compare with: the newest release at its best flags is the fair reference (docs/performance.md).
IPERF3 = os.environ.get("IPERF3", "iperf3")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def row(benchmark, case, unit, speedcli, reference, reference_name, better, target=None, ours="speedcli", runs=None,
        **details):
    """One line of the results: medians of each tool and their ratio (ours / reference). `ours` names the key of
    this project's figure: speedcli, or speedsrv where the client is someone else's. `runs` maps the row's keys
    ("speedcli", "reference", ...) to the Runs they come from, whose failed and retried runs the row records."""
    ratio = speedcli / reference if speedcli is not None and reference else None
    per_round = None
    if unit == "bit/s" and runs and ours in runs and "reference" in runs:
        per_round = per_round_ratio(runs[ours], runs["reference"], "bits_per_second")
    failures = {}
    for key, their_runs in (runs or {}).items():
        if their_runs.failed:
            failures[f"{key}_failed_runs"] = their_runs.failed
        if their_runs.retried:
            failures[f"{key}_retried_runs"] = their_runs.retried
    return {
        "benchmark": benchmark,
        "case": case,
        "unit": unit,
        "ours": ours,
        ours: speedcli,
        "reference": reference,
        "reference_tool": reference_name,
        "ratio": ratio,
        # ours / reference within each round, where both tools gave a figure: {median, min, max, samples,
        # rounds_at_or_above_1}. Runs next to each other share the machine's speed of that moment, which the
        # ratio of two medians taken from different rounds does not (docs/performance.md, "Per-round ratio").
        "per_round_ratio": per_round,
        "better": better,  # "higher" or "lower": which way a larger ratio points
        "target": target,  # the ratio the project aims for, as text
        **details,
        **failures,
    }


class RunFailed(RuntimeError):
    """One run of a tool that did not give its figures: a non-zero exit, an `error` in its JSON (iperf3 -J can
    exit 0 with one, e.g. "unable to receive control message"), no JSON at all, or no end within its timeout.
    `target` is where the tool was pointed, so that a stuck server can be restarted before the retry."""

    def __init__(self, message, target=None):
        super().__init__(message)
        self.target = target


class Process:
    """A background server whose output is collected by a thread. With `ready`, waits until its output matches
    that pattern; a first group of the pattern is the port it listens on (`port`)."""

    def __init__(self, argv, ready=None):
        self.argv = argv
        self.ready = ready
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None
        if ready:
            try:
                match = self.wait_for(ready)
            except RuntimeError:
                self.stop()
                raise
            self.port = int(match.group(1)) if match.groups() else None

    def restarted(self):
        """A new process of the same command, once this one has stopped."""
        self.stop()
        return Process(self.argv, self.ready)

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


class Target:
    """Where a tool's client connects: its server process (for CPU time), address and port, and the command prefix
    that runs the client (empty on loopback; `ip netns exec NS` in the veth lab). `restart_after_failure`: the
    server runs one test at a time and may still wait for the client of a failed run (iperf3 -s, which would answer
    the retry with "the server is busy"), so it is restarted before the retry."""

    def __init__(self, server, host, port, prefix=(), restart_after_failure=False):
        self.server, self.host, self.port, self.prefix = server, host, port, list(prefix)
        self.restart_after_failure = restart_after_failure


def start_iperf3_server(host, server_prefix=(), client_prefix=()):
    """iperf3 -s on a free port of `host`, as a Target whose server is restarted after a failed run."""
    port = free_port()
    server = Process([*server_prefix, IPERF3, "-s", "--forceflush", "-B", host, "-p", str(port)],
                     ready="Server listening")
    return Target(server, host, port, client_prefix, restart_after_failure=True)


class Context:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin)
        self.speedsrv_target = None
        self.iperf3_target = None

    def start_servers(self):
        # --max-bitrate 0: the default UDP cap (1 Gbit/s, meant for public servers) would be the bottleneck of
        # the UDP benchmark; TCP has no cap either way.
        speedsrv = self.start_speedsrv("--max-bitrate", "0")
        self.speedsrv_target = Target(speedsrv, LOOPBACK, speedsrv.port)
        self.iperf3_target = start_iperf3_server(LOOPBACK)
        self.iperf3_help = subprocess.run([IPERF3, "--help"], capture_output=True, text=True).stdout

    def iperf3_has(self, flag):
        """Whether this iperf3 knows a flag (--skip-rx-copy and --gsro are newer than Debian's 3.12)."""
        return re.search(rf"(^|[ ,]){re.escape(flag)}\b", self.iperf3_help, re.MULTILINE) is not None

    def iperf3_best_tcp(self):
        """iperf3's fastest TCP flags that this build has: 1 MiB writes, sendfile, MSG_TRUNC receive."""
        return ["-l", "1M"] + [flag for flag in ("-Z", "--skip-rx-copy") if self.iperf3_has(flag)]

    def iperf3_best_tcp_candidates(self):
        """The TCP flag sets that may be iperf3's fastest on this machine: with and without sendfile (-Z). Which
        wins depends on the machine (sendfile cost a 2-core VM two thirds of iperf3's rate, docs/performance.md),
        so both run in the same alternation and the row compares against the faster (best_reference)."""
        best = self.iperf3_best_tcp()
        return [best, [flag for flag in best if flag != "-Z"]] if "-Z" in best else [best]

    def iperf3_best_udp(self):
        return ["--gsro"] if self.iperf3_has("--gsro") else []

    def start_speedsrv(self, *extra, bind=LOOPBACK, prefix=()):
        # speedsrv refuses to run as root unless told to; the benchmark host may run this as root.
        as_root = ["--allow-root"] if os.geteuid() == 0 else []
        return Process([*prefix, str(self.bin / "server" / "speedsrv"), "--bind", bind, "--port", "0", *as_root,
                        *extra], ready=r"listening on \S+ port ([0-9]+)")

    def stop_servers(self):
        for target in (self.speedsrv_target, self.iperf3_target):
            if target:
                target.server.stop()

    def recover(self, target):
        """After a failed run against `target`: restarts its server if it exited or is one that must be (iperf3
        -s), so that the retry and the rows after it meet a server that listens. A speedsrv that exited gets a new
        port; the target follows it."""
        if target is None:
            return
        exited = target.server.proc.poll()
        if exited is None and not target.restart_after_failure:
            return
        self.progress(f"    restarting the server ({' '.join(target.server.argv)}), "
                      + (f"which had exited ({exited})" if exited is not None else "which runs one test at a time"))
        target.server = target.server.restarted()
        target.port = target.server.port or target.port

    def speedcli(self, *args, port=None, target=None, timeout=120):
        """speedcli --json against the benchmark's speedsrv (or `target`'s); returns the parsed document."""
        target = target or self.speedsrv_target
        argv = [*target.prefix, str(self.bin / "client" / "speedcli"), target.host, "--port",
                str(port or target.port), "--json", *args]
        return run_json_tool("speedcli", argv, timeout, target)

    def iperf3(self, *args, target=None, timeout=120):
        """iperf3 -J against the benchmark's iperf3 server (or `target`'s); returns the parsed document."""
        target = target or self.iperf3_target
        argv = [*target.prefix, IPERF3, "-c", target.host, "-p", str(target.port), "-J", *args]
        return run_json_tool("iperf3", argv, timeout, target)

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


def run_json_tool(name, argv, timeout, target):
    """Runs a client that prints one JSON document (speedcli --json, iperf3 -J); returns the document or raises
    RunFailed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"{name} did not end within {timeout} s", target) from None
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RunFailed(f"{name} failed ({done.returncode}) without JSON: {done.stderr.strip()[:300]}",
                        target) from None
    error = document.get("error") if isinstance(document, dict) else "not a JSON object"
    if done.returncode != 0 or error:
        raise RunFailed(f"{name} failed ({done.returncode}): {error}\n{done.stderr}", target)
    return document


class Runs(list):
    """One tool's results in one case, a dict per run that gave its figures; `failed` lists the runs that failed
    twice (their round and both errors), `retried` those that failed once and succeeded at the retry."""

    def __init__(self):
        super().__init__()
        self.failed = []
        self.retried = []


def attempt(ctx, run, what):
    """run() once, and once more if it raises RunFailed (after ctx.recover); (its result or None, the errors)."""
    errors = []
    for _ in range(2):
        try:
            return run(), errors
        except RunFailed as failure:
            first_line = str(failure).splitlines()[0]
            errors.append(first_line)
            ctx.progress(f"    {what}: run failed ({first_line}); "
                         f"{'retrying once' if len(errors) == 1 else 'recorded as a failure'}")
            ctx.recover(failure.target)
    return None, errors


def alternate(ctx, rounds, *runs):
    """Runs each tool in turn, round after round, `rounds` times each; returns one Runs per tool. A run that fails
    is retried once, then recorded as a failure in its Runs: one tool's bad run does not end the bench."""
    results = [Runs() for _ in runs]
    for round_number in range(1, rounds + 1):
        for i, run in enumerate(runs):
            result, errors = attempt(ctx, run, f"round {round_number}, tool {i + 1} of {len(runs)}")
            if isinstance(result, dict):
                result["round"] = round_number  # pairs it with the other tools' runs of its round
            if result is None:
                results[i].failed.append({"round": round_number, "errors": errors})
            else:
                results[i].append(result)
                if errors:
                    results[i].retried.append({"round": round_number, "errors": errors})
    return results


def spread(runs, key):
    """{median, min, max, samples} of one figure across runs (dicts); None when a run had no figure or no run
    gave one."""
    values = [run[key] for run in runs]
    if not values or any(v is None for v in values):
        return {"median": None, "min": None, "max": None, "samples": values}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values}


def per_round_ratio(ours_runs, reference_runs, key):
    """{median, min, max, samples, rounds_at_or_above_1} of ours / reference in the rounds where both gave
    `key` (a failed run leaves its round out), or None when no round has both."""
    reference_by_round = {run.get("round"): run.get(key) for run in reference_runs}
    ratios = []
    for run in ours_runs:
        reference = reference_by_round.get(run.get("round"))
        if run.get("round") is not None and run.get(key) is not None and reference:
            ratios.append(run[key] / reference)
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "samples": ratios,
            "rounds_at_or_above_1": sum(1 for r in ratios if r >= 1.0)}


def cpu_per_gigabyte(direction, bits_per_second, seconds, client_cpu, server_cpu):
    """CPU seconds per GB (10^9 bytes) moved, on the receiving and the sending side. The bytes are the measured
    rate over the run's whole length (warm-up included, as the CPU time is), the same estimate for both tools."""
    gigabytes = bits_per_second * seconds / 8 / 1e9
    receiver, sender = (client_cpu, server_cpu) if direction == "download" else (server_cpu, client_cpu)
    if gigabytes <= 0:
        return {"receiver_cpu_seconds_per_gb": None, "sender_cpu_seconds_per_gb": None}
    return {"receiver_cpu_seconds_per_gb": receiver / gigabytes, "sender_cpu_seconds_per_gb": sender / gigabytes}


# ---- Benchmarks ----------------------------------------------------------------------------------------------


def tcp_speedcli(ctx, direction, streams, duration, omit, target=None):
    """One speedcli TCP run in one direction: the receiver's goodput and each side's CPU per GB."""
    target = target or ctx.speedsrv_target
    skip = "--no-upload" if direction == "download" else "--no-download"
    d, client_cpu, server_cpu = ctx.timed(target.server, lambda: ctx.speedcli(
        skip, "--pings", "0", "--loaded-ping-interval", "0", "--interval", "0", "--streams", str(streams),
        "--duration", str(duration), "--omit", str(omit), target=target))
    bps = d[direction]["bits_per_second"]
    return {"bits_per_second": bps, **cpu_per_gigabyte(direction, bps, duration + omit, client_cpu, server_cpu)}


def tcp_iperf3(ctx, direction, streams, duration, omit, flags, target=None):
    """One iperf3 TCP run (-R for the download: the server sends); the same figures, the receiver's goodput."""
    target = target or ctx.iperf3_target
    reverse = ["-R"] if direction == "download" else []
    d, client_cpu, server_cpu = ctx.timed(target.server, lambda: ctx.iperf3(
        "-t", str(duration), "-O", str(omit), "-P", str(streams), *flags, *reverse, target=target))
    bps = d["end"]["sum_received"]["bits_per_second"]
    return {"bits_per_second": bps, **cpu_per_gigabyte(direction, bps, duration + omit, client_cpu, server_cpu)}


def tcp_row(benchmark, case, ours, best, default, best_flags, target, other_references=None):
    """A TCP row: speedcli against iperf3 at its best flags, iperf3's defaults alongside, spreads and CPU/GB;
    `other_references`: {flags: spread} of the best-flag candidates that were slower than `best_flags`."""
    reference = spread(best, "bits_per_second")
    details = {"other_references": other_references} if other_references else {}
    runs = {"speedcli": ours, "reference": best}
    if default is not None:
        details.update(default_reference=spread(default, "bits_per_second"), default_reference_tool=IPERF3)
        runs["default_reference"] = default
    return row(benchmark, case, "bit/s", spread(ours, "bits_per_second")["median"], reference["median"],
               f"{IPERF3} {' '.join(best_flags)}", "higher", target=target, runs=runs,
               speedcli_spread=spread(ours, "bits_per_second"), reference_spread=reference,
               speedcli_receiver_cpu_seconds_per_gb=spread(ours, "receiver_cpu_seconds_per_gb")["median"],
               speedcli_sender_cpu_seconds_per_gb=spread(ours, "sender_cpu_seconds_per_gb")["median"],
               reference_receiver_cpu_seconds_per_gb=spread(best, "receiver_cpu_seconds_per_gb")["median"],
               reference_sender_cpu_seconds_per_gb=spread(best, "sender_cpu_seconds_per_gb")["median"],
               **details)


def best_reference(candidates):
    """[(flags, Runs)] of iperf3 at each candidate flag set -> (flags, Runs) of the one with the highest median
    goodput (the first on a tie; the first when none gave a figure), and {flags: spread} of the others."""
    def median(runs):
        return spread(runs, "bits_per_second")["median"]
    chosen = max(candidates, key=lambda candidate: median(candidate[1]) or 0.0)
    others = {" ".join(flags): spread(runs, "bits_per_second") for flags, runs in candidates if flags != chosen[0]}
    return chosen[0], chosen[1], others


def tcp_against_iperf3(ctx, rounds, direction, streams, speedcli_target=None, iperf3_target=None,
                       with_defaults=False):
    """speedcli and iperf3 at each of its best-flag candidates (and at its defaults), in turn: (speedcli Runs,
    chosen flags, their Runs, the other candidates' spreads, the defaults' Runs or None)."""
    a = ctx.args
    candidates = ctx.iperf3_best_tcp_candidates()
    runs = [lambda: tcp_speedcli(ctx, direction, streams, a.duration, a.omit, speedcli_target)]
    for flags in candidates:
        runs.append(lambda flags=flags: tcp_iperf3(ctx, direction, streams, a.duration, a.omit, flags,
                                                    iperf3_target))
    if with_defaults:
        runs.append(lambda: tcp_iperf3(ctx, direction, streams, a.duration, a.omit, [], iperf3_target))
    results = alternate(ctx, rounds, *runs)
    flags, theirs, others = best_reference(list(zip(candidates, results[1:1 + len(candidates)])))
    return results[0], flags, theirs, others, results[-1] if with_defaults else None


def iperf3_candidates_text(ctx):
    return " and ".join(f"iperf3 {' '.join(flags)}" for flags in ctx.iperf3_best_tcp_candidates())


def bench_tcp_throughput(ctx):
    """TCP goodput at the receiver, 1 and 4 streams, both directions: speedcli, iperf3 at each of its best-flag
    candidates (the faster is the reference) and iperf3 at its defaults, in turn."""
    a = ctx.args
    rows = []
    for streams in (1, 4):
        for direction in ("download", "upload"):
            ctx.progress(f"TCP {direction}, {streams} stream(s): speedcli, {iperf3_candidates_text(ctx)} and "
                         f"iperf3 defaults in turn, {a.rounds} rounds")
            ours, flags, theirs, others, theirs_default = tcp_against_iperf3(ctx, a.rounds, direction, streams,
                                                                             with_defaults=True)
            rows.append(tcp_row("tcp_throughput", f"{direction}, {streams} stream{'s' if streams > 1 else ''}",
                                ours, theirs, theirs_default, flags, ">= 1.1", others))
    return rows


def bench_stream_scaling(ctx):
    """Cost as streams grow: 1 to 32 streams, both directions, speedcli against iperf3 at its best flags, with
    each side's CPU seconds per GB."""
    a = ctx.args
    rows = []
    for streams in a.stream_counts:
        for direction in ("download", "upload"):
            ctx.progress(f"TCP {direction}, {streams} streams: speedcli and {iperf3_candidates_text(ctx)} in "
                         f"turn, {a.rounds} rounds")
            ours, flags, theirs, others, _ = tcp_against_iperf3(ctx, a.rounds, direction, streams)
            rows.append(tcp_row("stream_scaling", f"{direction}, {streams} streams", ours, theirs, None, flags,
                                None, others))
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
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"sockperf did not end within {seconds + 30} s") from None
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    found = {name: re.search(pattern, out) for name, pattern in SOCKPERF_STATISTICS.items()}
    if done.returncode != 0 or not all(found.values()):
        raise RunFailed(f"sockperf failed ({done.returncode}): {out.strip()[-300:]}")
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
    median = lambda values: statistics.median(values) if values else None  # noqa: E731
    for name in RTT_STATISTICS:
        rows.append(row("idle_rtt", f"TCP, 50 probes/s, {name}", "us", median([r[0][name] for r in ours]),
                        median([r[name] for r in theirs]), "sockperf --full-rtt", "lower",
                        target="<= 1.5" if name == "median" else None, runs={"speedcli": ours, "reference": theirs},
                        speedcli_samples=[r[0][name] for r in ours], reference_samples=[r[name] for r in theirs],
                        speedcli_kernel_rtt_us=median([r[1][name] for r in ours]),
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


def jain_fairness(values):
    """Jain's fairness index: 1 when every client got the same, 1/n when one got everything."""
    if not values or not any(values):
        return None
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def bench_many_clients(ctx):
    """One speedsrv serving N speedcli downloads at once, for each N of --clients: all must succeed; aggregate
    goodput, Jain fairness across clients, server CPU, RSS per session and threads from /proc."""
    return [many_clients(ctx, clients) for clients in ctx.args.clients]


def many_clients(ctx, clients):
    a = ctx.args
    ctx.progress(f"{clients} concurrent clients, download at {a.client_bitrate} each (0: unpaced), "
                 f"{a.duration} s")
    # Every client comes from 127.0.0.1: the per-host and per-network caps go up with the global one, or the
    # benchmark would measure the admission control.
    server = ctx.start_speedsrv("--max-bitrate", "0", "--max-sessions", str(clients), "--max-sessions-per-host",
                                str(clients), "--max-sessions-per-ipv4-24", str(clients),
                                "--max-handshakes-per-host", str(max(16, 4 * clients)),
                                "--max-handshakes-per-network", str(max(64, 4 * clients)))
    try:
        pid = server.proc.pid
        idle = proc_status(pid)
        cpu_before = proc_cpu_seconds(pid)
        started = time.monotonic()
        argv = [str(ctx.bin / "client" / "speedcli"), LOOPBACK, "--port", str(server.port), "--json",
                "--no-upload", "--duration", str(a.duration), "--pings", "0", "--loaded-ping-interval", "0",
                "--interval", "0", "--bitrate", a.client_bitrate]
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
        rates = [d["download"]["bits_per_second"] or 0.0 for d in ok]
        errors = sorted({str(d.get("error")) for d in documents if d.get("error")})
    finally:
        server.stop()
    held = sessions_held_peak(server.log())
    return row("many_clients", f"{clients} client{'s' if clients > 1 else ''} at once", "clients ok", len(ok),
               clients, "clients started", "higher", target="= 1.0", sessions_held_peak=held,
               jain_fairness=jain_fairness(rates), client_bits_per_second=rates,
               server_cpu_percent_of_a_core=100.0 * cpu / wall, server_rss_idle_kib=idle["VmRSS"],
               server_rss_peak_kib=peak_rss_kib, server_rss_per_session_kib=(peak_rss_kib - idle["VmRSS"]) / clients,
               server_threads_peak=peak_threads, aggregate_download_bits_per_second=sum(rates), wall_seconds=wall,
               errors=errors)


def speedsrv_hello(software=b"speedbench"):
    """A control connection's HELLO frame (docs/protocol.md): type 1, length, magic, version 2, kind 1 (control),
    a zero token, test 0, stream 0, the software name."""
    payload = struct.pack(">IHB16sIH", 0x53504454, 2, 1, bytes(16), 0, 0) + struct.pack(">H", len(software)) + software
    return struct.pack(">BI", 0x01, len(payload)) + payload


def read_frame(sock):
    """One frame: (type, payload)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("speedsrv closed the connection")
            data += chunk
        return data
    kind, length = struct.unpack(">BI", exactly(5))
    return kind, exactly(length)


def bench_idle_sessions(ctx):
    """N sessions held at once, each a control connection that said HELLO, got its WELCOME and waits (caps
    lifted): the server's RSS and open file descriptors per session."""
    a = ctx.args
    n = a.idle_sessions
    ctx.progress(f"{n} idle sessions held at once")
    server = ctx.start_speedsrv("--max-sessions", str(n), "--max-sessions-per-host", str(n),
                                "--max-sessions-per-ipv4-24", str(n), "--idle-timeout", "600")
    sockets = []
    try:
        pid = server.proc.pid
        idle = proc_status(pid)
        fds_before = len(os.listdir(f"/proc/{pid}/fd"))
        for _ in range(n):
            sock = socket.create_connection((LOOPBACK, server.port), timeout=10)
            sockets.append(sock)
            sock.sendall(speedsrv_hello())
            kind, _ = read_frame(sock)
            if kind != 0x02:
                raise RuntimeError(f"session {len(sockets)}: frame type {kind} instead of WELCOME")
        time.sleep(0.5)
        held = proc_status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    return [row("idle_sessions", f"{n} idle sessions", "sessions held", len(sockets), n, "sessions opened", "higher",
               target="= 1.0, RSS < 200 MB", server_rss_idle_kib=idle["VmRSS"], server_rss_held_kib=held["VmRSS"],
               server_rss_per_session_kib=(held["VmRSS"] - idle["VmRSS"]) / n, server_fds_before=fds_before,
               server_fds_held=fds, server_threads=held["Threads"])]


def udp_speedcli(ctx, direction, bitrate, duration, omit, target=None):
    """One speedcli --udp run in one direction: receiver goodput, loss, CPU seconds of each side."""
    target = target or ctx.speedsrv_target
    skip = "--no-upload" if direction == "download" else "--no-download"
    d, client_cpu, server_cpu = ctx.timed(target.server, lambda: ctx.speedcli(
        "--udp", skip, "--bitrate", bitrate, "--length", str(UDP_DATAGRAM_BYTES), "--pings", "0",
        "--loaded-ping-interval", "0", "--interval", "0", "--duration", str(duration), "--omit", str(omit),
        target=target))
    return {"bits_per_second": d[direction]["bits_per_second"], "lost_percent": d[direction]["lost_percent"],
            "client_cpu_seconds": client_cpu, "server_cpu_seconds": server_cpu}


def udp_iperf3(ctx, direction, bitrate, duration, omit, flags, target=None):
    """One iperf3 -u run; the same figures, from end.sum_received: the receiver's (the client's with -R)."""
    target = target or ctx.iperf3_target
    reverse = ["-R"] if direction == "download" else []
    d, client_cpu, server_cpu = ctx.timed(target.server, lambda: ctx.iperf3(
        "-u", "-b", bitrate, "-l", str(UDP_DATAGRAM_BYTES), "-t", str(duration), "-O", str(omit), *flags,
        *reverse, target=target))
    received = d["end"]["sum_received"]  # not end.sum: for UDP that carries the sender's byte count
    return {"bits_per_second": received["bits_per_second"], "lost_percent": received["lost_percent"],
            "client_cpu_seconds": client_cpu, "server_cpu_seconds": server_cpu}


UDP_DATAGRAM_BYTES = 1400
UDP_LOSSLESS_PERCENT = 0.1
UDP_LOSSLESS_GOODPUT_SHARE = 0.95  # a rate counts only when this share of it arrived


def bench_udp_throughput(ctx):
    """UDP as fast as each tool goes (speedcli --bitrate 0, adaptive; iperf3 -b 0, unpaced, at its best flags
    and at its defaults), receiver goodput and loss, both directions; then the highest fixed rate each carries
    with < 0.1 % loss and >= 95 % of the rate arriving (upload)."""
    rows = udp_unpaced_rows(ctx, "udp_throughput", "", None, None)
    rows.append(udp_lossless(ctx, ctx.iperf3_best_udp()))
    return rows


def udp_unpaced_rows(ctx, benchmark, where, speedsrv_target, iperf3_target):
    """UDP -b 0 in both directions, speedcli against iperf3 at its best flags and at its defaults, in turn."""
    a = ctx.args
    best = ctx.iperf3_best_udp()
    rows = []
    for direction in ("upload", "download"):
        ctx.progress(f"UDP {direction}{where}, as fast as possible, {UDP_DATAGRAM_BYTES}-byte datagrams: speedcli, "
                     f"iperf3 {' '.join(best) or '(defaults)'} and iperf3 defaults in turn, {a.rounds} rounds")
        ours, theirs_best, theirs_default = alternate(
            ctx, a.rounds,
            lambda: udp_speedcli(ctx, direction, "0", a.duration, a.omit, speedsrv_target),
            lambda: udp_iperf3(ctx, direction, "0", a.duration, a.omit, best, iperf3_target),
            lambda: udp_iperf3(ctx, direction, "0", a.duration, a.omit, [], iperf3_target))
        median_of = lambda runs, key: spread(runs, key)["median"]  # noqa: E731
        rows.append(row(benchmark, f"{direction}, -b 0, {UDP_DATAGRAM_BYTES} B", "bit/s",
                        median_of(ours, "bits_per_second"), median_of(theirs_best, "bits_per_second"),
                        f"{IPERF3} -u {' '.join(best)}".strip(), "higher", target=">= 1.0 at no more loss",
                        speedcli_spread=spread(ours, "bits_per_second"),
                        reference_spread=spread(theirs_best, "bits_per_second"),
                        default_reference=spread(theirs_default, "bits_per_second"), default_reference_tool=IPERF3,
                        speedcli_lost_percent=median_of(ours, "lost_percent"),
                        reference_lost_percent=median_of(theirs_best, "lost_percent"),
                        default_reference_lost_percent=median_of(theirs_default, "lost_percent"),
                        speedcli_client_cpu_seconds=median_of(ours, "client_cpu_seconds"),
                        speedcli_server_cpu_seconds=median_of(ours, "server_cpu_seconds"),
                        reference_client_cpu_seconds=median_of(theirs_best, "client_cpu_seconds"),
                        reference_server_cpu_seconds=median_of(theirs_best, "server_cpu_seconds"),
                        speedcli_runs=ours, reference_runs=theirs_best, default_reference_runs=theirs_default,
                        runs={"speedcli": ours, "reference": theirs_best, "default_reference": theirs_default}))
    return rows


def udp_lossless(ctx, best):
    """The highest upload rate each tool carries with < 0.1 % loss and >= 95 % of the rate arriving: up a ladder
    of rates until a try fails, then bisection between the last rate that passed and the first that failed. The
    two tools climb in lockstep, each try of one followed by the same try of the other, so that drift hits both
    alike. A sender that cannot reach the rate fails the try even when it loses nothing."""
    a = ctx.args
    ctx.progress(f"UDP upload, highest rate with < {UDP_LOSSLESS_PERCENT} % loss and >= "
                 f"{UDP_LOSSLESS_GOODPUT_SHARE:.0%} arriving: ladder {a.udp_ladder} Mbit/s, {a.udp_bisections} "
                 f"bisection steps, {a.duration} s per try")
    runners = {"speedcli": lambda rate: udp_speedcli(ctx, "upload", rate, a.duration, 0),
               "iperf3": lambda rate: udp_iperf3(ctx, "upload", rate, a.duration, 0, best)}
    state = {tool: {"good": 0, "bad": None, "tries": []} for tool in runners}

    def try_rate(tool, rate_mbps):
        result, errors = attempt(ctx, lambda: runners[tool](f"{rate_mbps}M"), f"{tool} at {rate_mbps} Mbit/s")
        if result is None:
            # A run that ends in an error twice (iperf3's client sometimes loses its control connection at rates
            # its receiver cannot take) did not carry the rate: a failed try, recorded with its reasons, rather
            # than the end of the whole benchmark.
            state[tool]["tries"].append({"rate_mbps": rate_mbps, "errors": errors, "passed": False})
            ctx.progress(f"    {tool:8} {rate_mbps:>6} Mbit/s: failed twice -> fail")
            return False
        goodput, lost = result["bits_per_second"], result["lost_percent"]
        passed = lost < UDP_LOSSLESS_PERCENT and goodput >= UDP_LOSSLESS_GOODPUT_SHARE * rate_mbps * 1e6
        state[tool]["tries"].append({"rate_mbps": rate_mbps, "bits_per_second": goodput, "lost_percent": lost,
                                     "passed": passed, **({"retried_after": errors} if errors else {})})
        ctx.progress(f"    {tool:8} {rate_mbps:>6} Mbit/s: {goodput / 1e6:.0f} Mbit/s arrived, loss {lost:.4f} % "
                     f"-> {'pass' if passed else 'fail'}")
        return passed

    for rate in a.udp_ladder:
        climbing = [tool for tool in runners if state[tool]["bad"] is None]
        if not climbing:
            break
        for tool in climbing:
            if try_rate(tool, rate):
                state[tool]["good"] = rate
            else:
                state[tool]["bad"] = rate
    for _ in range(a.udp_bisections):
        for tool in runners:
            s = state[tool]
            if s["bad"] is None or s["bad"] - s["good"] <= 1:
                continue
            middle = (s["good"] + s["bad"]) // 2
            if try_rate(tool, middle):
                s["good"] = middle
            else:
                s["bad"] = middle
    # None when not even the ladder's first rate passed.
    highest = {tool: state[tool]["good"] * 1e6 or None for tool in runners}
    return row("udp_lossless", f"upload, highest rate < {UDP_LOSSLESS_PERCENT} % loss, >= "
               f"{UDP_LOSSLESS_GOODPUT_SHARE:.0%} arriving", "bit/s", highest["speedcli"], highest["iperf3"],
               f"{IPERF3} -u {' '.join(best)}".strip(), "higher", target=">= 1.0",
               speedcli_tries=state["speedcli"]["tries"], reference_tries=state["iperf3"]["tries"],
               speedcli_first_failed_mbps=state["speedcli"]["bad"], reference_first_failed_mbps=state["iperf3"]["bad"])


# speedsrv's line at the end of an iperf3 client's session (server/iperf3_session.cpp): its outcome, the tests, and
# the exact bytes of the results it gave the client; a UDP upload's test also says "lost L/P".
IPERF3_SESSION_END = re.compile(r"iperf3[^\n]* session from \S+ ended after [0-9.]+ s, (?P<outcome>[^;\n]*)"
                                r"(?P<tests>[^\n]*?)(?:; (?P<bytes>[0-9]+) bytes in the results)?$", re.MULTILINE)
IPERF3_UDP_UPLOAD_LOSS = re.compile(r"udp upload [^;]*, lost (?P<lost>[0-9]+)/(?P<packets>[0-9]+)")


def iperf3_session_ends(log):
    return list(IPERF3_SESSION_END.finditer(log))


def speedsrv_log_mismatch(server, ends_before, direction, udp, received, sent, wait_seconds=5.0):
    """None when speedsrv logged, for one of its iperf3 sessions that ended after the first `ends_before`, the
    figures the client printed as speedsrv's: an upload's receiver bytes (UDP: also its lost and total datagrams),
    a download's sender bytes. Otherwise what differs. speedsrv logs right after the client's last byte, so the line
    may come just after the client exits; a session of an earlier failed run may end meanwhile, hence "one of"."""
    printed = received if direction == "upload" else sent
    expected = {"bytes": printed["bytes"]}
    if udp and direction == "upload":
        expected.update(lost=printed["lost_packets"], packets=printed["packets"])
    deadline = time.monotonic() + wait_seconds
    while True:
        logged = []
        for end in iperf3_session_ends(server.log())[ends_before:]:
            figures = {"outcome": end["outcome"], "bytes": int(end["bytes"]) if end["bytes"] else None}
            loss = IPERF3_UDP_UPLOAD_LOSS.search(end["tests"])
            if "lost" in expected:
                figures.update(lost=int(loss["lost"]) if loss else None, packets=int(loss["packets"]) if loss else None)
            if figures["outcome"] == "ok" and all(figures[key] == value for key, value in expected.items()):
                return None
            logged.append(figures)
        if time.monotonic() > deadline:
            side = "receiver" if direction == "upload" else "sender"
            if not logged:
                return f"speedsrv logged no end of this iperf3 session (the client printed {side} {expected})"
            return f"the client printed {side} {expected}; speedsrv logged {logged}"
        time.sleep(0.05)


def iperf3_client_run(ctx, target, direction, streams, flags, udp, check_log):
    """One run of the iperf3 client against `target` (speedsrv or iperf3 -s): the receiver's goodput from
    end.sum_received (for UDP not end.sum, which carries the sender's bytes), its loss for UDP, the sender's rate
    from end.sum_sent, each side's CPU per GB received; with `check_log` (speedsrv), whether the figures the client
    printed as the server's are the ones speedsrv logged."""
    a = ctx.args
    reverse = ["-R"] if direction == "download" else []
    ends_before = len(iperf3_session_ends(target.server.log())) if check_log else 0
    d, client_cpu, server_cpu = ctx.timed(target.server, lambda: ctx.iperf3(
        "-t", str(a.duration), "-O", str(a.omit), "-P", str(streams), *iperf3_client_mode(udp), *flags, *reverse,
        target=target))
    received, sent = d["end"]["sum_received"], d["end"]["sum_sent"]
    # The seconds iperf3 ran (it takes -t and -O as whole seconds), warm-up included as in the CPU time.
    ran = d["start"]["test_start"]["duration"] + d["start"]["test_start"]["omit"]
    result = {"bits_per_second": received["bits_per_second"], "sender_bits_per_second": sent["bits_per_second"],
              **cpu_per_gigabyte(direction, received["bits_per_second"], ran, client_cpu, server_cpu)}
    if udp:
        result["lost_percent"] = received["lost_percent"]
    if check_log:
        result["log_mismatch"] = speedsrv_log_mismatch(target.server, ends_before, direction, udp, received, sent)
    return result


def iperf3_client_mode(udp):
    return ["-u", "-b", "0", "-l", str(UDP_DATAGRAM_BYTES)] if udp else []


def bench_iperf3_clients(ctx):
    """The iperf3 client against speedsrv and against iperf3 -s (the same binary, the same flags), in turn: TCP
    upload and -R download, 1 and 4 streams, at iperf3's defaults and at its best flags; UDP -b 0 -l 1400 both
    ways, at its defaults and with --gsro where it has it. Receiver goodput, ratio speedsrv / iperf3 -s."""
    rows = []
    for flags in ([], ctx.iperf3_best_tcp()):
        for streams in (1, 4):
            for direction in ("upload", "download"):
                rows.append(iperf3_clients_row(ctx, direction, streams, flags, udp=False))
    for flags in [[]] + ([ctx.iperf3_best_udp()] if ctx.iperf3_best_udp() else []):
        for direction in ("upload", "download"):
            rows.append(iperf3_clients_row(ctx, direction, 1, flags, udp=True))
    return rows


def iperf3_clients_row(ctx, direction, streams, flags, udp):
    a = ctx.args
    options = [*iperf3_client_mode(udp), *(["-P", str(streams)] if streams > 1 else []), *flags,
               *(["-R"] if direction == "download" else [])]
    client = " ".join([IPERF3, "-c", *options])
    ctx.progress(f"iperf3 clients, {client}: against speedsrv and iperf3 -s in turn, {a.rounds} rounds")
    served, reference = alternate(
        ctx, a.rounds,
        lambda: iperf3_client_run(ctx, ctx.speedsrv_target, direction, streams, flags, udp, check_log=True),
        lambda: iperf3_client_run(ctx, ctx.iperf3_target, direction, streams, flags, udp, check_log=False))
    median_of = lambda runs, key: spread(runs, key)["median"]  # noqa: E731
    figures = {}
    for key, runs in (("speedsrv", served), ("reference", reference)):
        for figure in ("sender_bits_per_second", "receiver_cpu_seconds_per_gb", "sender_cpu_seconds_per_gb",
                       *(["lost_percent"] if udp else [])):
            figures[f"{key}_{figure}"] = median_of(runs, figure)
    case = (f"{direction}, {streams} stream{'s' if streams > 1 else ''}"
            f"{f', -b 0, {UDP_DATAGRAM_BYTES} B' if udp else ''}, {' '.join(flags) or 'defaults'}")
    return row("iperf3_clients_udp" if udp else "iperf3_clients_tcp", case, "bit/s",
               median_of(served, "bits_per_second"), median_of(reference, "bits_per_second"),
               f"{client} -> iperf3 -s", "higher", target=">= 0.9", ours="speedsrv",
               runs={"speedsrv": served, "reference": reference}, speedsrv_tool=f"{client} -> speedsrv",
               speedsrv_spread=spread(served, "bits_per_second"), reference_spread=spread(reference, "bits_per_second"),
               **figures, log_checked_runs=len(served),
               log_mismatches=[run["log_mismatch"] for run in served if run["log_mismatch"]],
               speedsrv_runs=served, reference_runs=reference)


class VethLab:
    """Two network namespaces joined by a veth pair, unshaped: the traffic crosses a network device (with its
    queue and GSO/GRO handling) instead of looping back inside one stack. Needs root."""

    SERVER_NS, CLIENT_NS = "speedbench-srv", "speedbench-cli"
    SERVER_ADDRESS, CLIENT_ADDRESS = "10.213.0.1", "10.213.0.2"

    def __enter__(self):
        self.close()  # what a killed earlier run left behind
        for ns in (self.SERVER_NS, self.CLIENT_NS):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", "sbench-s", "netns", self.SERVER_NS, "type", "veth", "peer", "name",
                        "sbench-c", "netns", self.CLIENT_NS], check=True)
        for ns, device, address in ((self.SERVER_NS, "sbench-s", self.SERVER_ADDRESS),
                                    (self.CLIENT_NS, "sbench-c", self.CLIENT_ADDRESS)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", device], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", device, "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for ns in (self.SERVER_NS, self.CLIENT_NS):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    @staticmethod
    def run_in(ns):
        return ["ip", "netns", "exec", ns]


def bench_veth(ctx):
    """UDP -b 0 and TCP (1 stream) across a veth pair between two namespaces, speedcli against iperf3 at its
    best flags; both servers run in one namespace, the clients in the other."""
    if os.geteuid() != 0:
        ctx.progress("veth: skipped (namespaces need root)")
        return []
    a = ctx.args
    with VethLab() as lab:
        in_server, in_client = lab.run_in(lab.SERVER_NS), lab.run_in(lab.CLIENT_NS)
        speedsrv = ctx.start_speedsrv("--max-bitrate", "0", bind=lab.SERVER_ADDRESS, prefix=in_server)
        speedsrv_target = Target(speedsrv, lab.SERVER_ADDRESS, speedsrv.port, in_client)
        iperf3_target = None
        try:
            iperf3_target = start_iperf3_server(lab.SERVER_ADDRESS, in_server, in_client)
            rows = udp_unpaced_rows(ctx, "veth_udp_throughput", " across a veth pair", speedsrv_target,
                                    iperf3_target)
            for direction in ("download", "upload"):
                ctx.progress(f"TCP {direction} across a veth pair, 1 stream: speedcli and "
                             f"{iperf3_candidates_text(ctx)} in turn, {a.rounds} rounds")
                ours, flags, theirs, others, _ = tcp_against_iperf3(ctx, a.rounds, direction, 1, speedsrv_target,
                                                                    iperf3_target)
                rows.append(tcp_row("veth_tcp_throughput", f"{direction}, 1 stream", ours, theirs, None, flags,
                                    ">= 1.1", others))
            return rows
        finally:
            for target in (speedsrv_target, iperf3_target):
                if target:
                    target.server.stop()


BENCHMARKS = {
    "tcp": bench_tcp_throughput,
    "udp": bench_udp_throughput,
    "iperf3-clients": bench_iperf3_clients,
    "rtt": bench_idle_rtt,
    "clients": bench_many_clients,
    "streams": bench_stream_scaling,
    "idle": bench_idle_sessions,
    "veth": bench_veth,
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


def cell(r, tool):
    """A table cell: the median, the range of the rounds in brackets, and the loss for UDP."""
    value = human(r[tool], r["unit"])
    figures = r.get(f"{tool}_spread")
    if figures and figures["min"] is not None and len(figures["samples"]) > 1:
        value += f" [{human(figures['min'], r['unit'])} - {human(figures['max'], r['unit'])}]"
    lost = r.get(f"{tool}_lost_percent")
    return value if lost is None else f"{value}, {lost:.3g} % loss"


def per_round_cell(r):
    """The per-round ratio: its median, range, and in how many rounds ours was at or above the reference."""
    figures = r.get("per_round_ratio")
    if not figures:
        return ""
    if len(figures["samples"]) == 1:
        return f"{figures['median']:.2f}"
    return (f"{figures['median']:.2f} [{figures['min']:.2f} - {figures['max']:.2f}], "
            f">= 1 in {figures['rounds_at_or_above_1']}/{len(figures['samples'])}")


def default_cell(r):
    """iperf3 at its defaults, where the row ran it."""
    figures = r.get("default_reference")
    if not figures:
        return ""
    value = human(figures["median"], r["unit"])
    if figures["min"] is not None and len(figures["samples"]) > 1:
        value += f" [{human(figures['min'], r['unit'])} - {human(figures['max'], r['unit'])}]"
    lost = r.get("default_reference_lost_percent")
    return value if lost is None else f"{value}, {lost:.3g} % loss"


def ours_cell(r):
    """This project's figure: speedcli's, or speedsrv's (named) where the client is someone else's."""
    ours = r.get("ours", "speedcli")
    return cell(r, ours) if ours == "speedcli" else f"{cell(r, ours)} ({ours})"


def print_table(rows):
    headers = ("benchmark", "case", "ours", "reference", "ratio", "per round", "iperf3 defaults", "target")
    lines = [(r["benchmark"], r["case"], ours_cell(r), f"{cell(r, 'reference')} ({r['reference_tool']})",
              f"{r['ratio']:.3f}" if r["ratio"] is not None else "-", per_round_cell(r), default_cell(r),
              r["target"] or "")
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(cell_text.ljust(w) for cell_text, w in zip(line, widths)))
    notes = [note for r in rows for note in [row_note(r, rows), failures_note(r)] if note]
    if notes:
        print()
        for note in notes:
            print(note)


def per_gb(value):
    return "-" if value is None else f"{value:.2f}"


def failures_note(r):
    """The runs of a row that failed twice or needed their retry, as one line, or None."""
    said = []
    for key, value in r.items():
        for suffix, what in (("_failed_runs", "failed twice"), ("_retried_runs", "failed once, then passed")):
            if key.endswith(suffix):
                tool = key[: -len(suffix)]
                said += [f"{tool} round {run['round']} {what} ({'; '.join(run['errors'])})" for run in value]
    if r.get("error"):
        said.append(r["error"])
    return f"{r['benchmark']} {r['case']}: runs that failed: {' | '.join(said)}" if said else None


def row_note(r, rows):
    """A row's figures that do not fit the table, as one line, or None."""
    if r["benchmark"] in ("iperf3_clients_tcp", "iperf3_clients_udp"):
        if r["log_mismatches"]:
            log = f"speedsrv's log DIFFERS from the client's figures in {len(r['log_mismatches'])} of " \
                  f"{r['log_checked_runs']} runs: {' | '.join(r['log_mismatches'])}"
        else:
            log = f"speedsrv's log gives the client's figures in {r['log_checked_runs']} of {r['log_checked_runs']} runs"
        return (f"{r['benchmark']} {r['case']}: sender rate speedsrv {human(r['speedsrv_sender_bits_per_second'], 'bit/s')}, "
                f"iperf3 -s {human(r['reference_sender_bits_per_second'], 'bit/s')}; CPU seconds per GB received, "
                f"receiver / sender: speedsrv {per_gb(r['speedsrv_receiver_cpu_seconds_per_gb'])} / "
                f"{per_gb(r['speedsrv_sender_cpu_seconds_per_gb'])}, iperf3 -s "
                f"{per_gb(r['reference_receiver_cpu_seconds_per_gb'])} / "
                f"{per_gb(r['reference_sender_cpu_seconds_per_gb'])}; {log}")
    if r["benchmark"] in ("tcp_throughput", "stream_scaling", "veth_tcp_throughput"):
        return (f"{r['benchmark']} {r['case']}: CPU seconds per GB, receiver / sender: speedcli "
                f"{per_gb(r['speedcli_receiver_cpu_seconds_per_gb'])} / {per_gb(r['speedcli_sender_cpu_seconds_per_gb'])}, "
                f"iperf3 {per_gb(r['reference_receiver_cpu_seconds_per_gb'])} / "
                f"{per_gb(r['reference_sender_cpu_seconds_per_gb'])}"
                + "".join(f"; slower iperf3 candidate {flags}: {human(figures['median'], 'bit/s')}"
                          for flags, figures in (r.get("other_references") or {}).items()))
    if r["benchmark"] == "idle_rtt":
        rtt_rows = [other for other in rows if other["benchmark"] == "idle_rtt"]
        if r is not rtt_rows[0]:
            return None  # one line for all of them
        kernel = ", ".join(f"{other['case'].rsplit(', ', 1)[1]} {human(other['speedcli_kernel_rtt_us'], 'us')}"
                           for other in rtt_rows)
        timestamps = "/".join(sorted({t for other in rtt_rows for t in other["speedcli_timestamps"]}))
        return (f"idle RTT, for information: speedcli's rtt_ms (kernel receive timestamps, without either "
                f"process's wake-up; sockperf has no such figure) {kernel}; timestamps: {timestamps}")
    if r["benchmark"] in ("udp_throughput", "veth_udp_throughput"):
        return (f"UDP {r['case']}: CPU seconds per run, client + server: speedcli "
                f"{r['speedcli_client_cpu_seconds']:.2f} + {r['speedcli_server_cpu_seconds']:.2f}, iperf3 "
                f"{r['reference_client_cpu_seconds']:.2f} + {r['reference_server_cpu_seconds']:.2f}")
    if r["benchmark"] == "udp_lossless":
        said = {}
        for tool in ("speedcli", "reference"):
            rate = r[f"{tool}_first_failed_mbps"]
            said[tool] = f"{rate} Mbit/s" if rate else "none (the ladder ended first: raise --udp-ladder)"
        return (f"UDP {r['case']}: the lowest rate tried that failed: speedcli {said['speedcli']}, "
                f"iperf3 {said['reference']}")
    if r["benchmark"] == "many_clients":
        fairness = "-" if r["jain_fairness"] is None else f"{r['jain_fairness']:.3f}"
        return (f"many clients, {r['case']}: Jain fairness {fairness}, {r['sessions_held_peak']} sessions held at "
                f"once (peak), server CPU {r['server_cpu_percent_of_a_core']:.0f} % of a core, RSS "
                f"{r['server_rss_idle_kib'] / 1024:.1f} MiB idle, {r['server_rss_peak_kib'] / 1024:.1f} MiB peak "
                f"({r['server_rss_per_session_kib']:.0f} KiB per session), {r['server_threads_peak']} threads; "
                f"aggregate {human(r['aggregate_download_bits_per_second'], 'bit/s')} down"
                + (f"; errors: {r['errors']}" if r["errors"] else ""))
    if r["benchmark"] == "idle_sessions":
        return (f"idle sessions: RSS {r['server_rss_idle_kib'] / 1024:.1f} MiB before, "
                f"{r['server_rss_held_kib'] / 1024:.1f} MiB held ({r['server_rss_per_session_kib']:.1f} KiB per "
                f"session), file descriptors {r['server_fds_before']} before, {r['server_fds_held']} held, "
                f"{r['server_threads']} threads")
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
        "iperf3": (command(IPERF3, "--version") or "").splitlines()[0:1],
        "iperf3_binary": IPERF3,
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
    parser.add_argument("--clients", type=lambda text: [int(n) for n in text.split(",")], default=[1, 8, 32, 64],
                        help="concurrent client counts for the many-clients runs (comma-separated)")
    parser.add_argument("--client-bitrate", default="0",
                        help="each concurrent client's download rate (0: unpaced, so they compete)")
    parser.add_argument("--stream-counts", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1, 2, 4, 8, 16, 32], help="stream counts for the scaling runs (comma-separated)")
    parser.add_argument("--idle-sessions", type=int, default=1000, help="sessions held at once for the idle run")
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
        args.rounds, args.duration, args.omit, args.rtt_seconds, args.clients = 1, 2.0, 0.5, 2.0, [1, 8]
        args.stream_counts, args.idle_sessions = [1, 8], 100
        args.udp_ladder, args.udp_bisections = [100, 1000, 8000], 0

    # The idle-sessions run holds a thousand connections on each side; speedsrv inherits the limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = Context(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    ctx.start_servers()
    try:
        for name, benchmark in BENCHMARKS.items():
            if not args.only or name in args.only:
                try:
                    rows.extend(benchmark(ctx))
                except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as error:
                    # Failed runs are retried and recorded by alternate(); this is a benchmark that could not go
                    # on at all (a server that did not start, a lab that could not be set up): the others still run.
                    ctx.progress(f"{name}: FAILED: {error}")
                    rows.append(row(name, "did not complete", "", None, None, "-", "higher",
                                    error=f"{type(error).__name__}: {str(error).strip()[:500]}"))
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
