"""
``python -m bench --experiments [NAME...]``: each experiment of
bench/experiments.py against the unpatched daemon (both started through
bench/twistwrap.py, so that they differ in the patch alone), on the
benchmark it concerns, runs interleaved; the ratio is patched / unpatched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import common, experiments, payloads
from bench.common import BenchError, Daemon, FakeAPI, median


def run(names: list[str], size: Any, runs: int, work: Path,
        results: Any) -> None:
    names = names or sorted(experiments.EXPERIMENTS)
    by_bench: dict[str, list[str]] = {}
    for name in names:
        by_bench.setdefault(experiments.bench_of(name), []).append(name)
    if "throughput" in by_bench:
        _serving(by_bench.pop("throughput"), by_bench.pop("fanout", []), size,
                 runs, work, results)
    if "fanout" in by_bench:
        _serving([], by_bench.pop("fanout"), size, runs, work, results)
    if "index" in by_bench:
        _index(by_bench.pop("index"), size, runs, work, results)


def _record(results: Any, name: str, bench: str, unit: str, better: str,
            patched: list[float], plain: list[float], **extra: Any) -> None:
    ratio = median(patched) / median(plain)
    if better == "higher":
        gain = ratio - 1.0
    else:
        gain = 1.0 - ratio
    summary = "{}: {:.4g} -> {:.4g} {} ({:+.1f}%{})".format(
        bench, median(plain), median(patched), unit, 100.0 * gain,
        "" if abs(gain) > 0.05 else ", within noise")
    results.experiments.append({
        "name": name, "bench": bench, "unit": unit, "better": better,
        "plain": plain, "patched": patched, "ratio": ratio,
        "gain_percent": 100.0 * gain, "summary": summary, **extra})
    print("experiment {}: {}".format(name, summary), flush=True)


def _serving(throughput: list[str], fanout: list[str], size: Any, runs: int,
             work: Path, results: Any) -> None:
    fake = FakeAPI(work, warehouses=size.warehouses, fanout=size.fanout)
    try:
        body = payloads.push_body(payloads.NOMATCH_REPO)
        if throughput:
            _throughput(throughput, size, runs, work, results, fake, body)
        if fanout:
            _fanout(fanout, size, runs, work, results, fake)
    finally:
        fake.stop()


def _throughput(names: list[str], size: Any, runs: int, work: Path,
                results: Any, fake: FakeAPI, body: bytes) -> None:
    klein = common.Proc("bare-klein", [common.PYTHON, "-m", "bench.bare_klein"],
                        workdir=work, lines=True)
    plain = Daemon(work, fake.port, name="plain", wrap=[])
    try:
        klein_port = int(klein.expect(r"listening on [\d.]+:(\d+)", 30).group(1))
        plain.wait_ready(size.ready_timeout)
        for name in names:
            patched = Daemon(work, fake.port, name="exp-" + name,
                             wrap=["--experiment", name])
            try:
                patched.wait_ready(size.ready_timeout)
                code, answer = patched.deliver(body)
                if code != 200:
                    raise BenchError("{}: answered {} {}".format(name, code,
                                                                 answer))
                a, b, k = [], [], []
                for n in range(runs):
                    order = [(a, patched.port), (b, plain.port), (k, klein_port)]
                    if n % 2:
                        order.reverse()
                    for values, port in order:
                        values.append(common.measure_load(
                            port, payloads.RECEIVER_PATH, body,
                            payloads.push_headers(body), concurrency=10,
                            duration=size.load_seconds, workdir=work)["rps"])
                _record(results, name, "throughput c=10", "req/s", "higher",
                        a, b, klein=k,
                        plain_vs_klein=median(b) / median(k),
                        patched_vs_klein=median(a) / median(k))
            finally:
                patched.stop()
    finally:
        plain.stop()
        klein.stop()


def _fanout(names: list[str], size: Any, runs: int, work: Path,
            results: Any, fake: FakeAPI) -> None:
    """
    One daemon at a time (a second one would take in every watch event the
    PATCHes cause, on the same two cores): each run starts it, warms it up
    with one delivery, times three.
    """
    body = payloads.push_body(payloads.FANOUT_REPO)

    def one(wrap: list[str], tag: str) -> float:
        daemon = Daemon(work, fake.port, name=tag, wrap=wrap)
        try:
            daemon.wait_ready(size.ready_timeout)
            times = []
            for _ in range(4):
                sent = time.monotonic()
                code, answer = daemon.deliver(body)
                if code != 200:
                    raise BenchError("fan-out answered {} {}".format(code,
                                                                     answer))
                times.append(time.monotonic() - sent)
                time.sleep(0.5)
            return median(times[1:])
        finally:
            daemon.stop()

    for name in names:
        a, b = [], []
        for n in range(runs):
            pair = [(a, ["--experiment", name]), (b, [])]
            if n % 2:
                pair.reverse()
            for values, wrap in pair:
                values.append(one(wrap, "exp-{}-{}".format(name, n)))
        _record(results, name, "fan-out of {}".format(size.fanout), "s",
                "lower", a, b)


def _index(names: list[str], size: Any, runs: int, work: Path,
           results: Any) -> None:
    from bench.run import _sync_seconds

    fake = FakeAPI(work, warehouses=size.index_warehouses, cache_lists=True,
                   name="fakeapi-index", timeout=600)
    try:
        from bench.run import _list_baseline

        _list_baseline(fake, work)
        empty = Daemon(work, fake.port, name="exp-empty",
                       namespaces=["bench-none"],
                       wrap=[])
        empty.wait_ready(size.ready_timeout)
        time.sleep(1.0)
        empty_rss = common.rss_kib(empty.proc.pid)["VmRSS"]
        empty.stop()

        def one(wrap: list[str], tag: str) -> tuple[float, float]:
            daemon = Daemon(work, fake.port, name=tag, wrap=wrap)
            try:
                daemon.wait_ready(size.ready_timeout)
                seconds = _sync_seconds(daemon, size.index_warehouses)
                time.sleep(1.0)
                rss = common.rss_kib(daemon.proc.pid)["VmRSS"]
                return seconds, (rss - empty_rss) * 1024.0 / size.index_warehouses
            finally:
                daemon.stop()

        for name in names:
            sync_a, sync_b, mem_a, mem_b, base = [], [], [], [], []
            for n in range(runs):
                base.append(_list_baseline(fake, work))
                pair = [("a", ["--experiment", name]),
                        ("b", [])]
                if n % 2:
                    pair.reverse()
                for which, wrap in pair:
                    seconds, per = one(wrap, "exp-{}-{}-{}".format(name, which, n))
                    if which == "a":
                        sync_a.append(seconds)
                        mem_a.append(per)
                    else:
                        sync_b.append(seconds)
                        mem_b.append(per)
            _record(results, name, "sync of {}".format(size.index_warehouses),
                    "s", "lower", sync_a, sync_b, download_and_loads=base,
                    plain_vs_baseline=median(sync_b) / median(base),
                    patched_vs_baseline=median(sync_a) / median(base))
            _record(results, name, "RSS per Warehouse", "B", "lower", mem_a,
                    mem_b)
    finally:
        fake.stop()
