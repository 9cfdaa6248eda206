"""
The pure core imports no reactor and does no I/O (STYLE.md).
"""

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

PURE = ["bbreceiver.bitbucket", "bbreceiver.giturls", "bbreceiver.selectors",
        "bbreceiver.semver", "bbreceiver.index", "bbreceiver.plan",
        "bbreceiver.config"]

PROBE = """
import builtins, socket, sys
def refuse(*args, **kwargs):
    raise AssertionError("I/O at import or use")
socket.socket = refuse
import {module}
assert "twisted.internet.reactor" not in sys.modules, "reactor imported"
assert not [m for m in sys.modules if m.startswith("twisted.internet.")
            and m.endswith("reactor")], "a reactor module was imported"
builtins.open = refuse
from bbreceiver.bitbucket import parse_event
from bbreceiver.index import SubscriptionIndex
from bbreceiver.plan import plan
index = SubscriptionIndex()
index.warehouses.upsert({{"metadata": {{"namespace": "n", "name": "w"}},
    "spec": {{"subscriptions": [{{"git": {{
        "repoURL": "https://bitbucket.org/a/b",
        "commitSelectionStrategy": "SemVer", "semverConstraint": "^1"}}}}]}}}})
event = parse_event("repo:push", b'{{"repository": {{"links": {{"html": {{'
    b'"href": "https://bitbucket.org/a/b"}}}}}}, "push": {{"changes": [{{'
    b'"new": {{"type": "tag", "name": "v1.2.3"}}}}]}}}}')
assert len(plan(event, index, "").targets) == 1
assert "twisted.internet.reactor" not in sys.modules
"""


class PurityTests(SynchronousTestCase):
    def test_pure_modules(self) -> None:
        for module in PURE:
            result = subprocess.run(
                [sys.executable, "-c", PROBE.format(module=module)],
                capture_output=True, timeout=60)
            self.assertEqual(result.returncode, 0,
                             module + ": " + result.stderr.decode())
