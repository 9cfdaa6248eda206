"""
The code stays as STYLE.md asks: ruff-clean, and mypy-clean (strict, with
the zope plugin) for the package.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


class StyleTests(SynchronousTestCase):
    def run_tool(self, *argv: str) -> None:
        tool = os.path.join(BIN, argv[0])
        if not os.path.exists(tool):
            self.skipTest(argv[0] + " is not installed (pip install '.[test]')")
        result = subprocess.run([tool, *argv[1:]], cwd=ROOT,
                                capture_output=True, timeout=600)
        self.assertEqual(result.returncode, 0,
                         (result.stdout + result.stderr).decode())

    def test_ruff(self) -> None:
        self.run_tool("ruff", "check", "bbreceiver", "tests", "twisted")

    def test_mypy(self) -> None:
        self.run_tool("mypy", "bbreceiver")
