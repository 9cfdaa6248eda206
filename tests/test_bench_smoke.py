"""
The benchmark suite still runs: ``python -m bench --size smoke`` (tiny
sizes, one run each, well under a minute) as a subprocess, which must exit
0 and write JSON results with a row for every target, none of them failed
to run.  Benchmarks themselves never run in the test suite: no figure is
checked here, only that bench/ works (see bench/README.rst).
"""

import json
import os
import subprocess
import sys

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGETS = {"1-throughput", "1-logging", "2-webhook-c1", "2-webhook-c10",
           "2-webhook-c50", "2-e2e-kubectl", "3-fanout", "4-memory",
           "4-sync", "4-watch-p99", "5-startup"}


class BenchSmokeTests(SynchronousTestCase):
    def test_smoke(self) -> None:
        out = FilePath(self.mktemp())
        out.makedirs()
        result = subprocess.run(
            [sys.executable, "-m", "bench", "--size", "smoke", "--runs", "1",
             "--out", out.path, "--plot", out.child("plot.png").path],
            cwd=ROOT, capture_output=True, timeout=240,
            stdin=subprocess.DEVNULL)
        output = (result.stdout + result.stderr).decode(errors="replace")
        self.assertEqual(result.returncode, 0, output)
        data = json.loads(out.child("latest-smoke.json").getContent())
        self.assertEqual(data["size"], "smoke")
        rows = {row["id"]: row for row in data["rows"]}
        self.assertEqual(set(rows), TARGETS, output)
        for row in rows.values():
            self.assertNotIn("error", row, output)
            if not row.get("skipped"):
                self.assertGreater(row["bbreceiver"], 0, row)
        self.assertTrue([p for p in out.listdir()
                         if p.startswith("results-smoke-")])
        self.assertIn("target", result.stdout.decode())
