"""
``python -m bench.report [RESULTS.json] [--plot FILE.png]``: the table of
a results file (default ``bench/results/latest-full.json``) as
reStructuredText, for docs/performance.rst, and optionally its plot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.run import RESULTS, plot, table


def rst(data: dict) -> str:  # type: ignore[type-arg]
    lines = table(data["rows"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rule = "  ".join("=" * w for w in widths)
    out = [rule]
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i])
                             for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append(rule)
    out.append(rule)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("results", nargs="?",
                        default=str(RESULTS / "latest-full.json"))
    parser.add_argument("--plot")
    args = parser.parse_args()
    data = json.loads(Path(args.results).read_text())
    print(rst(data))
    print()
    print("({} size, medians of {} runs, commit {}{}, {}, load by {})".format(
        data["size"], data["runs"], data.get("code", {}).get("commit", "?"),
        " + local changes" if data.get("code", {}).get("bbreceiver_modified")
        else "", data["when"], data["machine"]["load_generator"]))
    if args.plot:
        print("plot: " + (plot(data, Path(args.plot))
                          or "skipped: matplotlib not installed"))


if __name__ == "__main__":
    main()
