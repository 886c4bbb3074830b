#!/usr/bin/env python3
"""Compares two builds of speedsrv + speedcli on loopback, alternating them run by run (docs/performance.md).

    bench/compare_builds.py OLD_BUILD_DIR NEW_BUILD_DIR [--rounds 3] [--duration 4] [--omit 1] [--only udp]

Each build's client tests its own server (both servers run throughout, --max-bitrate 0). Cases: TCP download and
upload with 1 and 4 streams, UDP download and upload unpaced at 1400 bytes. The order of the two builds swaps
every round, so drift on a shared machine hits both alike; the table gives each build's median with the range of
its rounds, and the ratio of the medians (new / old). Meant for "did this change cost throughput" (a refactor's
before and after), not for comparisons with other tools (bench/run).
"""

import argparse
import json
import re
import statistics
import subprocess

CASES = [
    ("tcp download, 1 stream", ["--no-upload", "-P", "1"], "download"),
    ("tcp upload, 1 stream", ["--no-download", "-P", "1"], "upload"),
    ("tcp download, 4 streams", ["--no-upload", "-P", "4"], "download"),
    ("tcp upload, 4 streams", ["--no-download", "-P", "4"], "upload"),
    ("udp download, -b 0", ["--udp", "--no-upload", "-b", "0", "-l", "1400"], "download"),
    ("udp upload, -b 0", ["--udp", "--no-download", "-b", "0", "-l", "1400"], "upload"),
]


def start_server(build):
    server = subprocess.Popen([f"{build}/server/speedsrv", "--bind", "127.0.0.1", "--port", "0", "--allow-root",
                               "--max-bitrate", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        match = re.search(r"listening on \S+ port ([0-9]+)", line)
        if match:
            return server, match.group(1)
    raise RuntimeError(f"{build}: speedsrv did not start")


def run_case(build, port, args, direction, a):
    out = subprocess.run([f"{build}/client/speedcli", "127.0.0.1", "-p", port, "--pings", "0",
                          "--loaded-ping-interval", "0", "-i", "0", "-t", str(a.duration), "-O", str(a.omit), "-J",
                          *args], capture_output=True, text=True, timeout=120).stdout
    document = json.loads(out)
    if document.get("error"):
        raise RuntimeError(f"{build}: {document['error']}")
    return document[direction]["bits_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--omit", type=float, default=1.0)
    parser.add_argument("--only", default="", help="only the cases whose name contains this text (e.g. udp)")
    a = parser.parse_args()
    cases = [case for case in CASES if a.only in case[0]]
    servers = {build: start_server(build) for build in (a.old, a.new)}
    figures = {(name, build): [] for name, _, _ in cases for build in (a.old, a.new)}
    try:
        for round_index in range(a.rounds):
            for name, args, direction in cases:
                order = (a.old, a.new) if round_index % 2 == 0 else (a.new, a.old)
                for build in order:
                    figures[(name, build)].append(run_case(build, servers[build][1], args, direction, a))
    finally:
        for server, _ in servers.values():
            server.terminate()
    print(f"{'case':26} {'old, Gbit/s':>22} {'new, Gbit/s':>22}  new/old")
    for name, _, _ in cases:
        cells = []
        for build in (a.old, a.new):
            values = [v / 1e9 for v in figures[(name, build)]]
            cells.append((statistics.median(values), min(values), max(values)))
        text = [f"{m:6.2f} [{lo:5.1f} - {hi:5.1f}]" for m, lo, hi in cells]
        print(f"{name:26} {text[0]:>22} {text[1]:>22}  {cells[1][0] / cells[0][0]:.2f}")


if __name__ == "__main__":
    main()
