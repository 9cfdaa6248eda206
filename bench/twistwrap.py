"""
``twist`` with bench-only probes and experiments applied first:

    python -m bench.twistwrap [--probe-index FILE] [--experiment NAME]...
        [--cprofile FILE] -- TWIST-ARGS...

``--probe-index FILE`` appends ``SEQ MONOTONIC_TIME`` to FILE each time the
Warehouse index takes in a subscription to ``bitbucket.org/bench/churn-SEQ``
(the moment a watch event becomes visible to deliveries); ``--experiment``
applies a change from bench/experiments.py, to measure it before anyone
edits bbreceiver/; ``--cprofile`` profiles the whole run with cProfile.
Without options it is ``twist`` itself.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any


def probe_index(path: str) -> None:
    from bbreceiver.index import WarehouseTable

    out = open(path, "a", buffering=1)
    churn = re.compile(r"bench/churn-(\d+)$")
    original = WarehouseTable.upsert

    def upsert(self: Any, obj: Any) -> None:
        original(self, obj)
        now = time.monotonic()
        where = None
        metadata = obj.get("metadata") or {}
        where = (metadata.get("namespace") or "", metadata.get("name"))
        for key in self._entries.get(where, ())[::2]:
            match = churn.search(key)
            if match:
                out.write("{} {:.6f}\n".format(match.group(1), now))

    WarehouseTable.upsert = upsert  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.twistwrap")
    parser.add_argument("--probe-index")
    parser.add_argument("--experiment", action="append", default=[])
    parser.add_argument("--cprofile")
    parser.add_argument("twist", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    twist_args = args.twist[1:] if args.twist[:1] == ["--"] else args.twist
    if args.probe_index:
        probe_index(args.probe_index)
    from bench import experiments

    for name in args.experiment:
        experiments.apply(name)
    from twisted.application.twist._twist import Twist

    argv = ["twist", *twist_args]
    if args.cprofile:
        import cProfile

        profile = cProfile.Profile()
        try:
            profile.runcall(Twist.main, argv)
        finally:
            profile.dump_stats(args.cprofile)
    else:
        Twist.main(argv)
    sys.exit(0)


if __name__ == "__main__":
    main()
