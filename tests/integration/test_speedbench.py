#!/usr/bin/env python3
"""bench/speedbench.py's iperf3-clients runs against a real speedsrv on 127.0.0.1: the figures the iperf3 client
prints as speedsrv's are found in speedsrv's log (its line format and the bench's reading of it agree), and a run
whose client loses its server is a failed run, not the end of the bench. SPEED_BIN_DIR names the build directory
(server/speedsrv); iperf3 must be installed (Debian package iperf3), or the tests are skipped."""

import argparse
import os
import shutil
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import speedbench  # noqa: E402


@unittest.skipUnless(shutil.which(speedbench.IPERF3), f"{speedbench.IPERF3} is not installed (Debian package iperf3)")
class Iperf3ClientsAgainstSpeedsrv(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 1-second runs without warm-up: each run is about 1.1 s of loopback traffic.
        args = argparse.Namespace(bin=os.environ.get("SPEED_BIN_DIR", "build/release"), duration=1, omit=0)
        cls.ctx = speedbench.Context(args)
        cls.ctx.progress = lambda text: None
        cls.ctx.start_servers()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.stop_servers()

    def run_against_speedsrv(self, direction, streams, udp):
        return speedbench.iperf3_client_run(self.ctx, self.ctx.speedsrv_target, direction, streams, [], udp,
                                            check_log=True)

    def test_a_tcp_upload_matches_speedsrvs_log(self):
        result = self.run_against_speedsrv("upload", 1, udp=False)
        self.assertIsNone(result["log_mismatch"])
        self.assertGreater(result["bits_per_second"], 0)

    def test_a_tcp_download_with_two_streams_matches_speedsrvs_log(self):
        result = self.run_against_speedsrv("download", 2, udp=False)
        self.assertIsNone(result["log_mismatch"])
        self.assertGreater(result["bits_per_second"], 0)

    def test_an_unpaced_udp_upload_matches_speedsrvs_log_with_its_loss(self):
        result = self.run_against_speedsrv("upload", 1, udp=True)
        self.assertIsNone(result["log_mismatch"])
        self.assertGreater(result["bits_per_second"], 0)
        self.assertIn("lost_percent", result)

    def test_a_client_whose_server_is_gone_is_a_failed_run(self):
        # A port nothing listens on: iperf3 -J prints its error in the JSON.
        gone = speedbench.Target(self.ctx.speedsrv_target.server, speedbench.LOOPBACK, speedbench.free_port())
        with self.assertRaises(speedbench.RunFailed) as caught:
            self.ctx.iperf3("-t", "1", target=gone)
        self.assertIs(caught.exception.target, gone)
        runs, = speedbench.alternate(self.ctx, 1, lambda: self.ctx.iperf3("-t", "1", target=gone))
        self.assertEqual(list(runs), [])
        self.assertEqual(len(runs.failed), 1)
        self.assertEqual(len(runs.failed[0]["errors"]), 2)


if __name__ == "__main__":
    unittest.main()
