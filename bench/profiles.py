"""
Profiles of the daemon while a benchmark drives it: py-spy (sampling, from
outside, a few percent of overhead) when it is installed, and a summary of
its collapsed stacks: the functions most often on top of the stack (self)
and on it at all (inclusive), as shares of the samples.

``python -m bench.profiles FILE.txt`` prints the summary of a saved profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

#: Frames on (nearly) every stack: the reactor loop and its wrappers; left
#: out of the inclusive list, which is about where the time goes.
_PLUMBING = re.compile(
    r"\((twist|twisted/internet/[a-z]+\.py|twisted/application/.*"
    r"|twisted/python/(log|context)\.py)\)$|^<module>")

#: Where a sample's time goes.  A sample whose stack holds a frame of one of
#: the STICKY categories (checked in order) is theirs wherever it is on the
#: stack (the time spent in logging, say, whatever logging calls); the
#: others are named by the frame nearest the top that matches one of LEAF.
STICKY: list[tuple[str, re.Pattern[str]]] = [
    ("logging (twisted.logger, JSON, write+flush)",
     re.compile(r"twisted/logger/|^Logger\.")),
    ("metrics (prometheus_client)", re.compile(r"prometheus_client/")),
    ("HMAC", re.compile(r"^verify_signature ")),
    ("body JSON decode", re.compile(r"^load_json ")),
    ("payload parsing", re.compile(r"bbreceiver/bitbucket\.py")),
    ("index building",
     re.compile(r"bbreceiver/(index|giturls|selectors|semver)\.py")),
    ("planning", re.compile(r"bbreceiver/plan\.py")),
]
LEAF: list[tuple[str, re.Pattern[str]]] = [
    ("socket I/O (send, recv)",
     re.compile(r"^untilConcludes |^Connection\.(writeSomeData|doRead) ")),
    ("JSON decode (API responses)", re.compile(r"^(loads|JSONDecoder)")),
    ("JSON encode", re.compile(r"^(dumps|JSONEncoder)")),
    ("HTTP client (twisted.web.client, treq, hyperlink)",
     re.compile(r"twisted/web/(client|_newclient)\.py|treq/|hyperlink/")),
    ("Deferreds", re.compile(r"twisted/internet/defer\.py")),
    ("refresher", re.compile(r"bbreceiver/refresh\.py")),
    ("Kubernetes client", re.compile(r"bbreceiver/kube/")),
    ("routing (Klein, werkzeug)", re.compile(r"klein/|werkzeug/")),
    ("HTTP server (twisted.web)",
     re.compile(r"twisted/web/|twisted/protocols/basic|bbreceiver/web\.py")),
    ("other bbreceiver", re.compile(r"bbreceiver/")),
]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def have_pyspy() -> bool:
    return _pyspy() is not None


def _pyspy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


class PySpy:
    """
    ``py-spy record`` of process C{pid} into C{out} (collapsed stacks) until
    L{stop}.
    """

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        exe = _pyspy()
        assert exe is not None
        self.out = out
        self.popen = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(rate),
             "--nonblocking", "--format", "raw", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def stop(self) -> Path:
        # py-spy writes its output on SIGINT.
        if self.popen.poll() is None:
            self.popen.send_signal(subprocess.signal.SIGINT)  # type: ignore[attr-defined]
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.out


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return "{} ({})".format(match.group("func"), path)


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """
    Top self and inclusive shares of a py-spy raw (collapsed) profile;
    idle samples (the reactor waiting in epoll) are counted apart.
    """
    own: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    with open(path) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [_short(frame) for frame in stack.split(";")]
            total += count
            if frames[-1].startswith("poll (") or "epollreactor" in frames[-1]:
                idle += count
                continue
            own[frames[-1]] += count
            buckets[_category(frames)] += count
            for frame in set(frames):
                if not _PLUMBING.search(frame):
                    inclusive[frame] += count
    busy = max(total - idle, 1)

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / busy, 1))
                for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "idle_percent": round(100.0 * idle / max(total, 1), 1),
        "self_percent_of_busy": share(own),
        "inclusive_percent_of_busy": share(inclusive),
        "categories_percent_of_busy": share(buckets),
    }


def _category(frames: list[str]) -> str:
    for name, pattern in STICKY:
        if any(pattern.search(frame) for frame in frames):
            return name
    for frame in reversed(frames):
        for name, pattern in LEAF:
            if pattern.search(frame):
                return name
    return "reactor, sockets, other"


def render(summary: dict[str, Any]) -> str:
    lines = ["{} samples, {}% idle".format(summary["samples"],
                                           summary["idle_percent"])]
    lines.append("  self % of busy samples:")
    lines += ["    {:5.1f}  {}".format(p, name)
              for name, p in summary["self_percent_of_busy"]]
    lines.append("  categories, % of busy samples:")
    lines += ["    {:5.1f}  {}".format(p, name)
              for name, p in summary.get("categories_percent_of_busy", [])]
    lines.append("  inclusive % of busy samples:")
    lines += ["    {:5.1f}  {}".format(p, name)
              for name, p in summary["inclusive_percent_of_busy"]]
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(name)
        print(render(summarize(Path(name), top=25)))
