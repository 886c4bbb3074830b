#!/usr/bin/env python3
"""bench/speedbench.py's bookkeeping, without servers: a failed run is retried once and then recorded in its row;
a tool's failure is told apart from its figures; speedsrv's log lines for iperf3 clients are read as the server
writes them (the lines below are copied from a speedsrv run against Debian's iperf3 3.12)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import speedbench  # noqa: E402

UNABLE = "iperf3 failed (0): unable to receive control message: Connection reset by peer"

# speedsrv's end-of-session lines for: -t 1 (upload), -t 1 -R -P 2, -u -b 100M -l 1400, -u -b 100M -R.
TCP_UPLOAD = ("2026-11-30T13:36:22.111 info iperf3 3.12 session from 127.0.0.1:48982 ended after 1.0 s, ok; upload 1 "
              "stream: received 27.51 Gbit/s (3.203 GiB in 1.00 s, receiver side); 3439329280 bytes in the results\n")
TCP_DOWNLOAD = ("2026-11-30T13:36:23.123 info iperf3 3.12 session from 127.0.0.1:36158 ended after 1.0 s, ok; download 2 "
                "streams: sent 2.679 GiB (sender side, 52 retransmits); 2876904707 bytes in the results\n")
UDP_UPLOAD = ("2026-11-30T13:36:24.140 info iperf3 3.12 session from 127.0.0.1:36190 ended after 1.0 s, ok; udp upload 1 "
              "stream: received 99.93 Mbit/s (11.91 MiB in 1.00 s, receiver side), lost 0/8922, jitter 0.001 ms; "
              "12490800 bytes in the results\n")
FAILED = ("2026-11-30T13:36:30.000 info iperf3 3.12 session from 127.0.0.1:36300 ended after 3.2 s, error: the iperf3 "
          "client did not take control bytes: Broken pipe; no tests\n")
SPEEDCLI_SESSION = ("2026-11-30T13:36:21.000 info session 5f2a from 127.0.0.1:48000 ended after 2.0 s, ok; upload 1 "
                    "stream: received 30.00 Gbit/s (3.500 GiB in 1.00 s, receiver side)\n")


class Context:
    def __init__(self):
        self.recovered = []

    def progress(self, text):
        pass

    def recover(self, target):
        self.recovered.append(target)


def script(*outcomes):
    """A run that gives its outcomes in turn: a dict is a result, a string a failure against target "T"."""
    remaining = list(outcomes)

    def run():
        outcome = remaining.pop(0)
        if isinstance(outcome, str):
            raise speedbench.RunFailed(outcome + "\nthe client's stderr", "T")
        return outcome
    return run


class FakeServer:
    def __init__(self, log):
        self._log = log

    def log(self):
        return self._log


class Retries(unittest.TestCase):
    def test_a_failed_run_is_retried_once_then_recorded_and_the_bench_goes_on(self):
        ctx = Context()
        # Round 1: fails, passes at the retry. Round 2: fails twice. Round 3: passes.
        flaky = script(UNABLE, {"bits_per_second": 10.0}, UNABLE, "iperf3 failed (1): the server has terminated",
                       {"bits_per_second": 30.0})
        steady = script({"bits_per_second": 1.0}, {"bits_per_second": 2.0}, {"bits_per_second": 3.0})
        ours, theirs = speedbench.alternate(ctx, 3, flaky, steady)
        self.assertEqual(list(ours), [{"bits_per_second": 10.0, "round": 1}, {"bits_per_second": 30.0, "round": 3}])
        self.assertEqual(ours.retried, [{"round": 1, "errors": [UNABLE]}])
        self.assertEqual(ours.failed, [{"round": 2, "errors": [UNABLE, "iperf3 failed (1): the server has terminated"]}])
        self.assertEqual(list(theirs), [{"bits_per_second": 1.0, "round": 1}, {"bits_per_second": 2.0, "round": 2},
                                        {"bits_per_second": 3.0, "round": 3}])
        self.assertEqual((theirs.failed, theirs.retried), ([], []))
        self.assertEqual(ctx.recovered, ["T", "T", "T"])  # before every retry, and after the last failure

        r = speedbench.row("b", "c", "bit/s", speedbench.spread(ours, "bits_per_second")["median"],
                           speedbench.spread(theirs, "bits_per_second")["median"], "ref", "higher",
                           runs={"speedcli": ours, "reference": theirs})
        self.assertEqual(r["speedcli"], 20.0)
        self.assertEqual(r["ratio"], 10.0)
        self.assertEqual(r["speedcli_failed_runs"], ours.failed)
        self.assertEqual(r["speedcli_retried_runs"], ours.retried)
        self.assertNotIn("reference_failed_runs", r)
        # Round 2 has no figure of ours: it is left out of the per-round ratio, not paired with another round.
        self.assertEqual(r["per_round_ratio"], {"median": 10.0, "min": 10.0, "max": 10.0, "samples": [10.0, 10.0],
                                                "rounds_at_or_above_1": 2})
        self.assertEqual(speedbench.failures_note(r),
                         f"b c: runs that failed: speedcli round 2 failed twice ({UNABLE}; iperf3 failed (1): the "
                         f"server has terminated) | speedcli round 1 failed once, then passed ({UNABLE})")

    def test_the_per_round_ratio_pairs_each_run_with_the_reference_of_its_round(self):
        # The medians (30 and 30) give 1.0; within each round ours is behind twice and ahead once.
        ours = script({"bits_per_second": 30.0}, {"bits_per_second": 20.0}, {"bits_per_second": 40.0})
        theirs = script({"bits_per_second": 40.0}, {"bits_per_second": 10.0}, {"bits_per_second": 50.0})
        ours_runs, their_runs = speedbench.alternate(Context(), 3, ours, theirs)
        r = speedbench.row("b", "c", "bit/s", 30.0, 30.0, "ref", "higher",
                           runs={"speedcli": ours_runs, "reference": their_runs})
        self.assertEqual(r["ratio"], 1.0)
        self.assertEqual(r["per_round_ratio"], {"median": 0.8, "min": 0.75, "max": 2.0, "samples": [0.75, 2.0, 0.8],
                                                "rounds_at_or_above_1": 1})
        self.assertEqual(speedbench.per_round_cell(r), "0.80 [0.75 - 2.00], >= 1 in 1/3")
        # A row of another unit (an RTT, a count) has none.
        self.assertIsNone(speedbench.row("b", "c", "us", 1.0, 2.0, "ref", "lower",
                                         runs={"speedcli": ours_runs, "reference": their_runs})["per_round_ratio"])

    def test_a_tool_that_never_succeeds_leaves_its_figures_empty(self):
        ours, = speedbench.alternate(Context(), 2, script(UNABLE, UNABLE, UNABLE, UNABLE))
        self.assertEqual(list(ours), [])
        self.assertEqual(len(ours.failed), 2)
        self.assertEqual(speedbench.spread(ours, "bits_per_second"),
                         {"median": None, "min": None, "max": None, "samples": []})


class ToolFailures(unittest.TestCase):
    def run_tool(self, shell, timeout=10):
        return speedbench.run_json_tool("iperf3", ["sh", "-c", shell], timeout, "T")

    def test_an_error_in_the_json_with_exit_status_0_is_a_failure(self):
        with self.assertRaises(speedbench.RunFailed) as caught:
            self.run_tool("""echo '{"end": {}, "error": "unable to receive control message"}'""")
        self.assertEqual(str(caught.exception).splitlines()[0], "iperf3 failed (0): unable to receive control message")
        self.assertEqual(caught.exception.target, "T")

    def test_no_json_is_a_failure(self):
        with self.assertRaises(speedbench.RunFailed) as caught:
            self.run_tool("echo crashed >&2; exit 139")
        self.assertEqual(str(caught.exception), "iperf3 failed (139) without JSON: crashed")

    def test_no_end_within_the_timeout_is_a_failure(self):
        with self.assertRaises(speedbench.RunFailed) as caught:
            self.run_tool("exec sleep 30", timeout=0.2)
        self.assertEqual(str(caught.exception), "iperf3 did not end within 0.2 s")

    def test_a_clean_document_is_returned(self):
        self.assertEqual(self.run_tool("""echo '{"end": {"sum_received": {"bytes": 5}}}'"""),
                         {"end": {"sum_received": {"bytes": 5}}})


class SpeedsrvLog(unittest.TestCase):
    def mismatch(self, log, direction, udp, received, sent, ends_before=0):
        return speedbench.speedsrv_log_mismatch(FakeServer(log), ends_before, direction, udp, received, sent,
                                                wait_seconds=0)

    def test_the_lines_are_found_and_only_iperf3_sessions_count(self):
        ends = speedbench.iperf3_session_ends(SPEEDCLI_SESSION + TCP_UPLOAD + FAILED + UDP_UPLOAD)
        self.assertEqual([(e["outcome"], e["bytes"]) for e in ends],
                         [("ok", "3439329280"), ("error: the iperf3 client did not take control bytes: Broken pipe",
                                                 None), ("ok", "12490800")])

    def test_an_upload_matches_on_the_receiver_bytes(self):
        self.assertIsNone(self.mismatch(TCP_UPLOAD, "upload", False, {"bytes": 3439329280}, {"bytes": 3439400000}))
        self.assertEqual(self.mismatch(TCP_UPLOAD, "upload", False, {"bytes": 3439329281}, {"bytes": 3439400000}),
                         "the client printed receiver {'bytes': 3439329281}; speedsrv logged "
                         "[{'outcome': 'ok', 'bytes': 3439329280}]")

    def test_a_download_matches_on_the_sender_bytes(self):
        # The receiver's figure is the client's own count (less than sent here): nothing of speedsrv's.
        self.assertIsNone(self.mismatch(TCP_DOWNLOAD, "download", False, {"bytes": 2871347874},
                                        {"bytes": 2876904707}))

    def test_a_udp_upload_matches_on_bytes_lost_and_packets(self):
        received = {"bytes": 12490800, "packets": 8922, "lost_packets": 0}
        self.assertIsNone(self.mismatch(UDP_UPLOAD, "upload", True, received, received))
        self.assertEqual(self.mismatch(UDP_UPLOAD, "upload", True, {**received, "lost_packets": 3}, received),
                         "the client printed receiver {'bytes': 12490800, 'lost': 3, 'packets': 8922}; speedsrv "
                         "logged [{'outcome': 'ok', 'bytes': 12490800, 'lost': 0, 'packets': 8922}]")

    def test_only_the_sessions_after_the_run_started_count(self):
        self.assertEqual(self.mismatch(TCP_UPLOAD, "upload", False, {"bytes": 3439329280}, {}, ends_before=1),
                         "speedsrv logged no end of this iperf3 session (the client printed receiver "
                         "{'bytes': 3439329280})")

    def test_a_failed_session_ending_meanwhile_is_passed_over(self):
        self.assertIsNone(self.mismatch(FAILED + TCP_UPLOAD, "upload", False, {"bytes": 3439329280}, {}))


def runs_of(*rates):
    runs = speedbench.Runs()
    for round_number, rate in enumerate(rates, start=1):
        runs.append({"bits_per_second": rate, "round": round_number})
    return runs


class BestReference(unittest.TestCase):
    """iperf3's TCP reference is whichever of its best-flag candidates had the higher median in the same run."""

    def test_the_faster_candidate_is_the_reference_and_the_other_is_kept(self):
        sendfile, copy = ["-l", "1M", "-Z", "--skip-rx-copy"], ["-l", "1M", "--skip-rx-copy"]
        flags, runs, others = speedbench.best_reference([(sendfile, runs_of(14e9, 15e9, 13e9)),
                                                         (copy, runs_of(36e9, 40e9, 38e9))])
        self.assertEqual(flags, copy)
        self.assertEqual(speedbench.spread(runs, "bits_per_second")["median"], 38e9)
        self.assertEqual(list(others), ["-l 1M -Z --skip-rx-copy"])
        self.assertEqual(others["-l 1M -Z --skip-rx-copy"]["median"], 14e9)

    def test_a_tie_keeps_the_first_and_a_candidate_without_figures_loses(self):
        first, second = ["-l", "1M", "-Z"], ["-l", "1M"]
        self.assertEqual(speedbench.best_reference([(first, runs_of(1e9)), (second, runs_of(1e9))])[0], first)
        self.assertEqual(speedbench.best_reference([(first, speedbench.Runs()), (second, runs_of(1e9))])[0], second)

    def test_sendfile_is_a_candidate_only_where_iperf3_has_it(self):
        context = speedbench.Context.__new__(speedbench.Context)
        context.iperf3_help = "  -Z, --zerocopy            use a 'zero copy' method of sending data\n" \
                              "  --skip-rx-copy            ignore received messages using MSG_TRUNC option\n"
        self.assertEqual(context.iperf3_best_tcp_candidates(),
                         [["-l", "1M", "-Z", "--skip-rx-copy"], ["-l", "1M", "--skip-rx-copy"]])
        context.iperf3_help = "  -l, --length  #[KMG]      length of buffer to read or write\n"
        self.assertEqual(context.iperf3_best_tcp_candidates(), [["-l", "1M"]])


if __name__ == "__main__":
    unittest.main()
