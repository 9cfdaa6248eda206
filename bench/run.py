"""
``python -m bench [--size smoke|full] [--runs N] [--only NAMES]
[--profile] [--experiments [NAMES]] [--out DIR] [--plot FILE]``

Runs the benchmarks of the performance targets, each as a ratio against a
baseline measured in the same invocation, prints the table and writes
``bench/results/results-TIMESTAMP.json`` (and ``latest.json``).  See
bench/README.rst.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common, payloads
from bench.common import BenchError, Daemon, FakeAPI, Proc, median

RESULTS = common.ROOT / "bench" / "results"


@dataclass(frozen=True)
class Size:
    warehouses: int          # indexed by the serving benchmarks (1, 2, 3)
    fanout: int              # Warehouses one push matches (3)
    load_seconds: float      # per load run (1, 2)
    e2e_deliveries: int      # per tool (2)
    index_warehouses: int    # memory, sync, watch (4)
    churn_events: int        # watch events at 100/s (4)
    startups: int            # start-up runs (5)
    ready_timeout: float


SIZES = {
    "smoke": Size(warehouses=200, fanout=20, load_seconds=1.0,
                  e2e_deliveries=2, index_warehouses=1000, churn_events=50,
                  startups=1, ready_timeout=60),
    "full": Size(warehouses=10_000, fanout=1_000, load_seconds=10.0,
                 e2e_deliveries=20, index_warehouses=100_000,
                 churn_events=1_000, startups=5, ready_timeout=300),
}

#: Every row: id -> (target text, unit, how the ratio is judged, limit).
TARGETS: dict[str, tuple[str, str, str, float | None]] = {
    "1-throughput": ("T1 10 KB push matching nothing, c=10, vs bare Klein",
                     "req/s", ">=", 0.75),
    "1-logging": ("T1 delivery log on vs off (req/s)", "req/s", ">=", 0.90),
    "2-webhook-c1": ("T2 vs adnanh/webhook + /bin/true, c=1", "req/s", ">=",
                     None),
    "2-webhook-c10": ("T2 vs adnanh/webhook + /bin/true, c=10", "req/s", ">=",
                      2.0),
    "2-webhook-c50": ("T2 vs adnanh/webhook + /bin/true, c=50", "req/s", ">=",
                      None),
    "2-e2e-kubectl": ("T2 delivery -> PATCH seen, vs webhook + kubectl",
                      "ms", "<=", None),
    "3-fanout": ("T3 one push -> last PATCH acked, vs bare treq loop", "s",
                 "<=", 1.25),
    "4-memory": ("T4 RSS per indexed Warehouse (2 subscriptions)", "B", "abs<=",
                 1024.0),
    "4-sync": ("T4 initial sync vs download + json.loads", "s", "<=", 1.5),
    "4-watch-p99": ("T4 watch event -> visible, p99 at 100 events/s", "ms",
                    "abs<=", 5.0),
    "5-startup": ("T5 twist bbreceiver -> /readyz 200 (embedded)", "s",
                  "abs<=", 2.0),
}


class Results:
    def __init__(self, size: str, runs: int) -> None:
        self.size = size
        self.runs = runs
        self.rows: list[dict[str, Any]] = []
        self.profiles: dict[str, Any] = {}
        self.experiments: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def ratio_row(self, row_id: str, bb: list[float], base: list[float],
                  baseline: str, **extra: Any) -> dict[str, Any]:
        text, unit, how, limit = TARGETS[row_id]
        bb_m, base_m = median(bb), median(base)
        ratio = bb_m / base_m if base_m else float("nan")
        row = {
            "id": row_id, "target": text, "unit": unit, "judge": how,
            "limit": limit, "bbreceiver": bb_m, "baseline": base_m,
            "baseline_name": baseline, "ratio": ratio,
            "runs_bbreceiver": bb, "runs_baseline": base,
            "met": _met(how, ratio, limit), **extra,
        }
        self.rows.append(row)
        return row

    def absolute_row(self, row_id: str, values: list[float], **extra: Any
                     ) -> dict[str, Any]:
        text, unit, how, limit = TARGETS[row_id]
        value = median(values)
        row = {
            "id": row_id, "target": text, "unit": unit, "judge": how,
            "limit": limit, "bbreceiver": value, "baseline": limit,
            "baseline_name": "limit", "ratio": value / limit if limit else None,
            "runs_bbreceiver": values, "met": _met(how, value, limit),
            **extra,
        }
        self.rows.append(row)
        return row

    def skipped(self, row_id: str, why: str) -> None:
        text, unit, how, limit = TARGETS[row_id]
        self.rows.append({"id": row_id, "target": text, "unit": unit,
                          "judge": how, "limit": limit, "skipped": why,
                          "met": None})

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size, "runs": self.runs,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(),
                        "load_generator": "wrk" if common.have_wrk()
                        else "twisted-loadgen"},
            "code": _code_version(),
            "rows": self.rows, "profiles": self.profiles,
            "experiments": self.experiments, "notes": self.notes,
        }


def _code_version() -> dict[str, Any]:
    """
    The commit measured, and whether bbreceiver/ differed from it (the
    daemon runs the installed copy: pip install . after a change).
    """
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=str(common.ROOT),
                                  capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "bbreceiver_modified": bool(git("status", "--porcelain",
                                            "bbreceiver"))}


def _met(how: str, value: float, limit: float | None) -> bool | None:
    if limit is None or value != value:
        return None
    if how in (">=",):
        return value >= limit
    return value <= limit


# -- the serving benchmarks: targets 1, 2 and 3 ----------------------------


def bench_serving(size: Size, runs: int, work: Path, results: Results,
                  only: set[str], profile: bool) -> None:
    fake = FakeAPI(work, warehouses=size.warehouses, fanout=size.fanout,
                   e2e=True)
    try:
        daemon = Daemon(work, fake.port)
        daemon.wait_ready(size.ready_timeout)
        body = payloads.push_body(payloads.NOMATCH_REPO)
        code, answer = daemon.deliver(body)
        if (code, answer) != (200, {"msg": "refreshed 0 warehouse(s)"}):
            raise BenchError("unexpected answer {} {}".format(code, answer))
        if "1" in only:
            _throughput(size, runs, work, results, daemon, fake, body, profile)
        if "2" in only:
            _webhook(size, runs, work, results, daemon, fake, body)
        if "3" in only:
            _fanout(size, runs, work, results, daemon, fake, profile)
        daemon.stop()
    finally:
        fake.stop()


def _load(port: int, path: str, body: bytes, concurrency: int, size: Size,
          work: Path) -> float:
    result = common.measure_load(port, path, body, payloads.push_headers(body),
                                 concurrency=concurrency,
                                 duration=size.load_seconds, workdir=work)
    return float(result["rps"])


def _throughput(size: Size, runs: int, work: Path, results: Results,
                daemon: Daemon, fake: FakeAPI, body: bytes,
                profile: bool) -> None:
    klein = Proc("bare-klein", [common.PYTHON, "-m", "bench.bare_klein"],
                 workdir=work, lines=True)
    quiet = Daemon(work, fake.port, name="daemon-nolog",
                   wrap=["--experiment", "no-delivery-log"])
    try:
        port = int(klein.expect(r"listening on [\d.]+:(\d+)", 30).group(1))
        quiet.wait_ready(size.ready_timeout)
        bb, base, nolog = [], [], []
        for run in range(runs):
            order = [("base", port), ("bb", daemon.port), ("nolog", quiet.port)]
            if run % 2:
                order.reverse()
            for which, target in order:
                rps = _load(target, payloads.RECEIVER_PATH, body, 10, size, work)
                {"base": base, "bb": bb, "nolog": nolog}[which].append(rps)
        results.ratio_row("1-throughput", bb, base, "bare Klein app, same POST",
                          tool="wrk" if common.have_wrk() else "twisted-loadgen")
        results.ratio_row("1-logging", bb, nolog,
                          "same daemon, delivery log line removed")
        if profile:
            _profile(results, work, "1-throughput", daemon.proc.pid, lambda: _load(
                daemon.port, payloads.RECEIVER_PATH, body, 10, size, work))
    finally:
        klein.stop()
        quiet.stop()


def webhook_hooks(kubectl: str, api: int) -> list[dict[str, Any]]:
    """
    adnanh/webhook's hooks: ``true`` checks the HMAC and runs /bin/true
    before it answers; ``kubectl`` does what an operator would script, a
    ``kubectl annotate`` of the Warehouse with the delivery's id.
    """
    rule = {"match": {
        "type": "payload-hmac-sha256",
        "secret": payloads.SECRET.decode(),
        "parameter": {"source": "header", "name": "X-Hub-Signature"},
    }}
    script = (
        "exec {} --server=http://127.0.0.1:{} annotate --overwrite "
        "warehouses.kargo.akuity.io -n {} {} "
        'kargo.akuity.io/refresh="$1"'.format(
            kubectl, api, payloads.E2E_NAMESPACE, payloads.E2E_NAME))
    return [
        {"id": "true", "execute-command": "/bin/true",
         "include-command-output-in-response": True,
         "trigger-rule-mismatch-http-response-code": 401,
         "trigger-rule": rule},
        {"id": "kubectl", "execute-command": "/bin/sh",
         "include-command-output-in-response": True,
         "trigger-rule-mismatch-http-response-code": 401,
         "pass-arguments-to-command": [
             {"source": "string", "name": "-c"},
             {"source": "string", "name": script},
             {"source": "string", "name": "sh"},
             {"source": "header", "name": "X-Request-UUID"},
         ],
         "trigger-rule": rule},
    ]


def _kubectl() -> str | None:
    local = Path(common.BIN) / "kubectl"
    return str(local) if local.exists() else shutil.which("kubectl")


def _webhook(size: Size, runs: int, work: Path, results: Results,
             daemon: Daemon, fake: FakeAPI, body: bytes) -> None:
    webhook = None if os.environ.get("BENCH_NO_WEBHOOK") else shutil.which(
        "webhook")
    kubectl = _kubectl()
    if webhook is None:
        for row in ("2-webhook-c1", "2-webhook-c10", "2-webhook-c50",
                    "2-e2e-kubectl"):
            results.skipped(row, "skipped: webhook not installed")
        return
    hooks = work / "hooks.json"
    hooks.write_text(json.dumps(webhook_hooks(kubectl or "kubectl", fake.port),
                                indent=2))
    port = common.free_port()
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), KUBECONFIG=str(home / "none"))
    proc = Proc("webhook", [webhook, "-hooks", str(hooks), "-ip", "127.0.0.1",
                            "-port", str(port)], workdir=work, env=env)
    try:
        common.wait_for(lambda: _connects(port), 30, "webhook to listen", 0.02)
        code, answer = common.http_request(port, "POST", "/hooks/true", body,
                                           payloads.push_headers(body))
        if code != 200:
            raise BenchError("webhook answered {} {!r}".format(code, answer))
        for concurrency in (1, 10, 50):
            bb, base = [], []
            for run in range(runs):
                pair = [("base", port, "/hooks/true"),
                        ("bb", daemon.port, payloads.RECEIVER_PATH)]
                if run % 2:
                    pair.reverse()
                for which, target, path in pair:
                    rps = _load(target, path, body, concurrency, size, work)
                    (bb if which == "bb" else base).append(rps)
            results.ratio_row("2-webhook-c{}".format(concurrency), bb, base,
                              "webhook 2.8 HMAC rule + /bin/true")
        if kubectl is None:
            results.skipped("2-e2e-kubectl", "skipped: kubectl not installed")
            return
        _e2e(size, runs, work, results, daemon, fake, port)
    finally:
        proc.stop()


def _connects(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _e2e(size: Size, runs: int, work: Path, results: Results, daemon: Daemon,
         fake: FakeAPI, webhook_port: int) -> None:
    """
    Delivery sent -> the API commits the PATCH, one delivery at a time.
    """
    events = work / "events-e2e.txt"
    events.write_text("")
    fake.command("events {}".format(events))
    target = "{}/{}".format(payloads.E2E_NAMESPACE, payloads.E2E_NAME)
    body = payloads.push_body(payloads.E2E_REPO)

    def seen(after: float) -> float | None:
        for line in events.read_text().splitlines():
            stamp, kind, where = line.split()
            if where == target and kind == "MODIFIED" and float(stamp) > after:
                return float(stamp)
        return None

    def one(port: int, path: str, n: int) -> float:
        headers = payloads.push_headers(body, "bench-e2e-{}".format(n))
        sent = time.monotonic()
        code, answer = common.http_request(port, "POST", path, body, headers,
                                           timeout=60)
        if code != 200:
            raise BenchError("e2e delivery answered {} {!r}".format(code, answer))
        stamp = common.wait_for(lambda: seen(sent), 30, "the PATCH")
        return 1000.0 * (stamp - sent)

    bb, base = [], []
    for n in range(runs * size.e2e_deliveries):
        base.append(one(webhook_port, "/hooks/kubectl", 2 * n))
        bb.append(one(daemon.port, payloads.RECEIVER_PATH, 2 * n + 1))
    fake.command("events off")
    results.ratio_row("2-e2e-kubectl", bb, base,
                      "webhook 2.8 running kubectl annotate",
                      p90_bbreceiver=common.percentile(bb, 90),
                      p90_baseline=common.percentile(base, 90))


def _fanout(size: Size, runs: int, work: Path, results: Results,
            daemon: Daemon, fake: FakeAPI, profile: bool) -> None:
    body = payloads.push_body(payloads.FANOUT_REPO)
    expected = {"msg": "refreshed {} warehouse(s)".format(size.fanout)}

    def bb_run() -> float:
        sent = time.monotonic()
        code, answer = daemon.deliver(body)
        took = time.monotonic() - sent
        if (code, answer) != (200, expected):
            raise BenchError("fan-out answered {} {}".format(code, answer))
        time.sleep(0.5)  # let the daemon take in the watch events
        return took

    def base_run() -> float:
        done = subprocess.run(
            [common.PYTHON, "-m", "bench.clients", "patch", "--port",
             str(fake.port), "--namespace", payloads.FANOUT_NAMESPACE,
             "--names", str(size.fanout), "--concurrency", "32"],
            capture_output=True, text=True, timeout=120, cwd=str(common.ROOT))
        if done.returncode != 0:
            raise BenchError("patch loop failed: " + done.stderr[-2000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["failures"]:
            raise BenchError("patch loop: {} failures".format(result["failures"]))
        time.sleep(0.5)
        return float(result["seconds"])

    bb_run()  # warm the connection pool
    base_run()
    bb, base = [], []
    for run in range(max(runs, 3) if size.fanout >= 1000 else runs):
        for which in (("base", "bb") if run % 2 == 0 else ("bb", "base")):
            (bb if which == "bb" else base).append(
                bb_run() if which == "bb" else base_run())
    results.ratio_row("3-fanout", bb, base,
                      "treq loop, 32 in flight, keep-alive pool",
                      concurrency=32, patches=size.fanout)
    if profile:
        _profile(results, work, "3-fanout", daemon.proc.pid,
                 lambda: [bb_run() for _ in range(3)])


# -- the index: target 4 ---------------------------------------------------


def bench_index(size: Size, runs: int, work: Path, results: Results,
                profile: bool) -> None:
    fake = FakeAPI(work, warehouses=size.index_warehouses, cache_lists=True,
                   name="fakeapi-index", timeout=600)
    try:
        _list_baseline(fake, work)  # fills the page cache
        syncs, bases, per_wh = [], [], []
        empty = Daemon(work, fake.port, name="daemon-empty",
                       namespaces=["bench-none"])
        empty.wait_ready(size.ready_timeout)
        time.sleep(1.0)
        empty_rss = common.rss_kib(empty.proc.pid)["VmRSS"]
        empty.stop()
        rss_runs = []
        for run in range(runs):
            bases.append(_list_baseline(fake, work))
            name = "daemon-index-{}".format(run)
            daemon = Daemon(work, fake.port, name=name)
            spy = None
            if profile and run == 0:
                from bench.profiles import PySpy, have_pyspy

                if have_pyspy():
                    spy = PySpy(daemon.proc.pid, work / "sync.txt")
            try:
                daemon.wait_ready(size.ready_timeout)
                if spy is not None:
                    _keep_profile(results, "4-sync", spy.stop())
                syncs.append(_sync_seconds(daemon, size.index_warehouses))
                time.sleep(1.0)
                rss = common.rss_kib(daemon.proc.pid)
                rss_runs.append(rss)
                per_wh.append((rss["VmRSS"] - empty_rss) * 1024.0
                              / size.index_warehouses)
            finally:
                daemon.stop()
        results.ratio_row("4-sync", syncs, bases,
                          "treq download + json.loads of the same pages",
                          warehouses=size.index_warehouses)
        results.absolute_row("4-memory", per_wh, empty_rss_kib=empty_rss,
                             rss_kib=rss_runs,
                             warehouses=size.index_warehouses)
        _watch_latency(size, runs, work, results, fake)
    finally:
        fake.stop()


def _list_baseline(fake: FakeAPI, work: Path) -> float:
    done = subprocess.run(
        [common.PYTHON, "-m", "bench.clients", "list", "--port",
         str(fake.port), "--limit", "500"],
        capture_output=True, text=True, timeout=600, cwd=str(common.ROOT))
    if done.returncode != 0:
        raise BenchError("list client failed: " + done.stderr[-2000:])
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def _sync_seconds(daemon: Daemon, count: int) -> float:
    """
    From the daemon's "serving" line (its reflectors have just sent their
    first list request) to its "listed N warehouses" line.
    """
    start = end = None
    for event in daemon.logs():
        text = event.get("log_format", "")
        if text.startswith("bbreceiver serving"):
            start = event["log_time"]
        elif (text.startswith("{verb} {count} {resource}")
              and event.get("resource", "").startswith("warehouses")
              and event.get("verb") == "listed"):
            if event.get("count") != count:
                raise BenchError("listed {} warehouses, not {}".format(
                    event.get("count"), count))
            end = event["log_time"]
    if start is None or end is None:
        raise BenchError("no sync lines in " + str(daemon.proc.log_path))
    return float(end - start)


def _watch_latency(size: Size, runs: int, work: Path, results: Results,
                   fake: FakeAPI) -> None:
    fake.command("cache off")
    probe = work / "probe.txt"
    probe.write_text("")
    daemon = Daemon(work, fake.port, name="daemon-watch",
                    wrap=["--probe-index", str(probe)])
    try:
        daemon.wait_ready(size.ready_timeout)
        time.sleep(1.0)
        p99s, all_latencies = [], []
        for run in range(runs):
            emitted = work / "churn-{}.txt".format(run)
            probe.write_text("")
            count = size.churn_events
            fake.command("churn 100 {} {} {}".format(count, emitted,
                                                     run * count),
                         answer=r"^churned", timeout=count / 100.0 + 60)

            def complete(count: int = count) -> bool:
                return len(probe.read_text().splitlines()) >= count

            common.wait_for(complete, 30, "the index to see every event", 0.05)
            sent = dict(line.split() for line in emitted.read_text().splitlines())
            seen = dict(line.split() for line in probe.read_text().splitlines())
            latencies = [1000.0 * (float(seen[seq]) - float(t))
                         for seq, t in sent.items() if seq in seen]
            p99s.append(common.percentile(latencies, 99))
            all_latencies.extend(latencies)
        results.absolute_row(
            "4-watch-p99", p99s,
            p50_ms=common.percentile(all_latencies, 50),
            max_ms=max(all_latencies), events=len(all_latencies),
            warehouses=size.index_warehouses)
    finally:
        daemon.stop()


# -- start-up: target 5 ----------------------------------------------------

STARTUP_CONFIG = """\
listen: "tcp:{port}:interface=127.0.0.1"
kubernetes:
  embedded:
    listen: "tcp:{api}:interface=127.0.0.1"
    objects: {objects}
  watchTimeoutSeconds: 60
receivers:
  - project: kargo-demo
    name: bb-wh-receiver
    secret:
      secretRef: {{name: bb-wh-secret}}
  - project: ""
    name: datacenter
    secret:
      value: demo-datacenter-secret
"""


def bench_startup(size: Size, runs: int, work: Path, results: Results) -> None:
    """
    etc/demo.yaml (the embedded default) on free ports: spawn to the first
    /readyz 200, polled every 10 ms.
    """
    times = []
    for run in range(max(runs, size.startups)):
        port = common.free_port()
        config = work / "startup-{}.yaml".format(run)
        config.write_text(STARTUP_CONFIG.format(
            port=port, api=common.free_port(),
            objects=json.dumps(str(common.ROOT / "etc" / "demo-objects.yaml"))))
        started = time.monotonic()
        proc = Proc("startup-{}".format(run),
                    [common.TWIST, "bbreceiver", "--config", str(config)],
                    workdir=work)
        try:
            ready = common.wait_http(port, "/readyz", timeout=30, proc=proc)
            times.append(ready - started)
        finally:
            proc.stop()
    results.absolute_row("5-startup", times, config="etc/demo.yaml")


# -- profiles --------------------------------------------------------------


def _profile(results: Results, work: Path, name: str, pid: int,
             drive: Callable[[], Any]) -> None:
    from bench.profiles import PySpy, have_pyspy

    if not have_pyspy():
        results.notes.append("profile {} skipped: py-spy not installed".format(
            name))
        return
    spy = PySpy(pid, work / (name + ".txt"))
    time.sleep(0.5)
    try:
        drive()
    finally:
        _keep_profile(results, name, spy.stop())


def _keep_profile(results: Results, name: str, raw: Path) -> None:
    from bench.profiles import summarize

    if not raw.exists():
        results.notes.append("profile {}: py-spy wrote nothing".format(name))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    kept = RESULTS / "profile-{}.txt".format(name)
    shutil.copyfile(raw, kept)
    results.profiles[name] = {"file": str(kept.relative_to(common.ROOT)),
                              **summarize(raw)}


# -- the table -------------------------------------------------------------


def _figure(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "req/s":
        return "{:,.0f} req/s".format(value)
    if unit == "ms":
        return "{:.2f} ms".format(value)
    if unit == "s":
        return "{:.3f} s".format(value)
    if unit == "B":
        return "{:,.0f} B".format(value)
    return str(value)


def table(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    lines = [("target", "ratio", "limit", "baseline", "bbreceiver", "verdict")]
    for row in rows:
        row = {**row, "target": TARGETS.get(row["id"], (row["target"],))[0]}
        if row.get("skipped"):
            lines.append((row["target"], "-", "-", "-", "-", row["skipped"]))
            continue
        if row.get("error"):
            lines.append((row["target"], "-", "-", "-", "-",
                          "error: " + row["error"][:60]))
            continue
        how, limit, unit = row["judge"], row["limit"], row["unit"]
        if how.startswith("abs"):
            ratio = "{:.2f} of limit".format(row["ratio"])
            baseline = "limit " + _figure(limit, unit)
            limit_text = "<= " + _figure(limit, unit)
        else:
            ratio = "{:.2f}".format(row["ratio"])
            baseline = _figure(row["baseline"], unit)
            limit_text = "{} {}".format(how, limit) if limit is not None else "report"
        met = row["met"]
        verdict = ("met" if met else "NOT met") if met is not None else "reported"
        lines.append((row["target"], ratio, limit_text, baseline,
                      _figure(row["bbreceiver"], unit), verdict))
    return lines


def render_table(rows: list[dict[str, Any]]) -> str:
    lines = table(rows)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(data: dict[str, Any], path: Path) -> str | None:
    """
    Each target's headroom as a PNG (None when matplotlib is absent): the
    measured ratio over its limit, turned so that more is better and 1 is
    the target (a time ratio of 0.5 against a limit of 1.25 is 2.5x).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator
    except ImportError:
        return None
    rows = [r for r in data["rows"] if not r.get("skipped") and not r.get("error")
            and r.get("ratio") and r.get("limit") is not None]
    if not rows:
        return None
    scores, labels = [], []
    for r in rows:
        if r["judge"] == ">=":
            scores.append(r["ratio"] / r["limit"])
        elif r["judge"] == "<=":
            scores.append(r["limit"] / r["ratio"])
        else:
            scores.append(1.0 / r["ratio"])
        labels.append("{}\n{} (limit {})".format(
            TARGETS.get(r["id"], (r["target"],))[0], _short_figure(r), _short_limit(r)))
    fig, ax = plt.subplots(figsize=(9, 0.62 * len(rows) + 1.3), dpi=96)
    y = list(range(len(rows)))
    colors = ["tab:green" if r["met"] else "tab:red" for r in rows]
    ax.barh(y, scores, left=0, color=colors, alpha=0.85)
    ax.axvline(1.0, color="black", lw=1.5)
    ax.set_xscale("log")
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
             if min(scores) / 2 <= t <= max(scores) * 2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(["{:g}x".format(t) for t in ticks])
    ax.set_xlim(min(ticks[0], min(scores) * 0.8), max(ticks[-1], max(scores) * 1.2))
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel("headroom against the target (right of the line: met)")
    ax.set_title("bbreceiver benchmarks: {} size, medians of {} runs".format(
        data["size"], data["runs"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _short_figure(row: dict[str, Any]) -> str:
    if row["judge"].startswith("abs"):
        return _figure(row["bbreceiver"], row["unit"])
    return "ratio {:.2f}".format(row["ratio"])


def _short_limit(row: dict[str, Any]) -> str:
    if row["judge"].startswith("abs"):
        return _figure(row["limit"], row["unit"])
    return "{} {}".format(row["judge"], row["limit"])


# -- main ------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def _bounded(seconds: int, name: str, results: Results, rows: list[str],
             func: Callable[[], None]) -> None:
    """
    Run one benchmark group within C{seconds}; its failure is reported in
    its rows and the others still run.
    """
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    before = len(results.rows)
    try:
        func()
    except (_Timeout, BenchError, OSError, subprocess.SubprocessError) as e:
        why = "timed out after {}s".format(seconds) if isinstance(
            e, _Timeout) else str(e)
        print("bench: {} failed: {}".format(name, why), file=sys.stderr)
        done = {r["id"] for r in results.rows[before:]}
        for row_id in rows:
            if row_id not in done:
                text, unit, how, limit = TARGETS[row_id]
                results.rows.append({"id": row_id, "target": text, "unit": unit,
                                     "judge": how, "limit": limit,
                                     "error": why, "met": None})
    finally:
        signal.alarm(0)
        common.stop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs per figure; medians are reported")
    parser.add_argument("--only", default="1,2,3,4,5",
                        help="targets to run, e.g. 1,3 (default: all)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy profiles of the hot paths (1, 3, 4)")
    parser.add_argument("--experiments", nargs="*", default=None,
                        metavar="NAME",
                        help="measure bench/experiments.py changes instead")
    parser.add_argument("--out", default=str(RESULTS),
                        help="where JSON results go (default bench/results)")
    parser.add_argument("--plot", default=None,
                        help="also draw the ratios into this PNG (matplotlib)")
    args = parser.parse_args(argv)
    common.install_signal_handlers()
    size = SIZES[args.size]
    only = set(args.only.split(","))
    results = Results(args.size, args.runs)
    work = common.new_workdir(None, args.size)
    began = time.monotonic()
    if args.experiments is not None:
        from bench import experiment_runs

        experiment_runs.run(args.experiments, size, args.runs, work, results)
    else:
        if only & {"1", "2", "3"}:
            rows = [r for r in TARGETS if r[0] in only and r[0] in "123"]
            _bounded(1800, "serving (1, 2, 3)", results, rows,
                     lambda: bench_serving(size, args.runs, work, results, only,
                                           args.profile))
        if "4" in only:
            _bounded(1800, "index (4)", results,
                     ["4-memory", "4-sync", "4-watch-p99"],
                     lambda: bench_index(size, args.runs, work, results,
                                         args.profile))
        if "5" in only:
            _bounded(300, "start-up (5)", results, ["5-startup"],
                     lambda: bench_startup(size, args.runs, work, results))
    data = results.to_json()
    data["seconds"] = round(time.monotonic() - began, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / "results-{}-{}.json".format(args.size, stamp)
    path.write_text(json.dumps(data, indent=2) + "\n")
    (out / "latest-{}.json".format(args.size)).write_text(
        json.dumps(data, indent=2) + "\n")
    print(render_table(results.rows))
    for name, summary in results.profiles.items():
        from bench.profiles import render

        print("\nprofile {}: {}".format(name, render(summary)))
    if args.plot:
        drawn = plot(data, Path(args.plot))
        print("plot: " + (drawn or "skipped: matplotlib not installed"))
    print("results: {} ({}s)".format(path, data["seconds"]))
    if any(row.get("error") for row in results.rows):
        print("kept the logs of this run in {}".format(work))
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0
