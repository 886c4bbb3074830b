#!/usr/bin/env python3
"""Read-time against arrival-time binning, from a SPEED_WAIT_TRACE directory (see add_trace.py): per receiver
process, the socket wait (counted time - kernel arrival stamp) of every datagram, and per interval the bytes a
read-time binning and an arrival-time binning give and the bytes that cross each boundary between the two.
With speedcli's JSON (optional second argument), also the interval bytes the receiver reported, by direction
(speedcli's pid is the download receiver's)."""
import sys, glob, array, bisect, json
d = sys.argv[1]
reported = {}
if len(sys.argv) > 2:
    doc = json.load(open(sys.argv[2]))
    for direction in ("download", "upload"):
        if doc.get(direction):
            reported[doc[direction]["measured_by"]] = [i["bytes"] for i in doc[direction]["intervals"]]
samples = {}
for f in glob.glob(d + "/samples-*.txt"):
    rows = [tuple(map(int, l.split())) for l in open(f)]
    samples[f.split('-')[-1][:-4]] = rows
for pid, rows in samples.items():
    arr = []; pub = []; size = []
    for f in glob.glob(d + "/flow-%s-*.bin" % pid):
        a = array.array('q'); a.frombytes(open(f, 'rb').read())
        arr += a[0::3]; pub += a[1::3]; size += a[2::3]
    waits = sorted(p - a for a, p in zip(arr, pub))
    n = len(waits)
    pct = lambda q: waits[min(n - 1, max(0, -(-int(q * n * 1000) // 1000) - 1))] / 1e6
    t0 = rows[0][0]
    S = [t0] + [r[1] for r in rows]  # time zero, then each sample instant
    # per interval: bytes by read time (publish), bytes by arrival, bytes moved across each boundary
    k = len(S) - 1
    read_b = [0] * k; arr_b = [0] * k; moved = [0] * (k + 1)
    for a, p, s in zip(arr, pub, size):
        ir = bisect.bisect_right(S, p) - 1
        ia = bisect.bisect_right(S, a) - 1
        if 0 <= ir < k: read_b[ir] += s
        if 0 <= ia < k: arr_b[ia] += s
        # boundaries j with a < S[j] <= p: the datagram arrived before the boundary, was read after it
        lo = bisect.bisect_right(S, a); hi = bisect.bisect_right(S, p)
        for j in range(lo, hi): moved[j] += s
    print("receiver pid %s: %d datagrams, wait ms p50 %.4f p99 %.4f p99.9 %.4f max %.4f, mean %.4f" % (
        pid, n, pct(.5), pct(.99), pct(.999), waits[-1] / 1e6, sum(waits) / n / 1e6))
    worst = 0
    for i in range(k):
        diff = abs(read_b[i] - arr_b[i])
        frac = 100.0 * max(moved[i], moved[i + 1]) / read_b[i] if read_b[i] else 0
        if i > 0 and i < k - 1: worst = max(worst, frac)
        print("  interval %2d [%.3f,%.3f] s: read-time %d B, arrival-time %d B, |diff| %d B = %.5f %%; moved across start %d B, end %d B" % (
            i, (S[i] - t0) / 1e9, (S[i + 1] - t0) / 1e9, read_b[i], arr_b[i], diff,
            100.0 * diff / read_b[i] if read_b[i] else 0, moved[i], moved[i + 1]))
    by = "client" if pid == open(d + "/client.pid").read().strip() else "server"
    if by in reported:
        got = reported[by]
        off = [abs(g - a) for g, a in zip(got, arr_b)]
        print("  reported (%s) minus arrival-time bytes per interval: largest |difference| %d B = %.5f %% of its interval" % (
            by, max(off), max(100.0 * o / a for o, a in zip(off, arr_b) if a)))
    print("  largest share of an interval's bytes moved across one of its boundaries (inner intervals): %.5f %%" % worst)
