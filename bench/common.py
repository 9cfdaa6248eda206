"""
What every benchmark needs: processes started on loopback and always
stopped, free ports, polling, medians, the HTTP load generator (wrk when
installed, else bench/loadgen.py in a process of its own) and the runs of
the daemon itself.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench import payloads

PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)
TWIST = os.path.join(BIN, "twist")
ROOT = Path(__file__).resolve().parent.parent

_running: list["Proc"] = []


def free_port() -> int:
    """
    A loopback port nobody listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


class BenchError(Exception):
    """
    A benchmark could not be run (a process did not start, a request was
    refused): reported in its row, the others still run.
    """


class Proc:
    """
    A child process in its own session (so that it and its children are
    stopped together, by its id), with its output in a file or read line by
    line.
    """

    def __init__(self, name: str, args: Sequence[str], *, workdir: Path,
                 lines: bool = False, stdin: bool = False,
                 env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = workdir / (name + ".log")
        self._log = open(self.log_path, "wb")
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.popen = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if lines else self._log,
            stderr=self._log if lines else subprocess.STDOUT,
            env=env if env is not None else dict(os.environ),
            cwd=cwd or str(ROOT),
            start_new_session=True,
        )
        self.started = time.monotonic()
        _running.append(self)
        if lines:
            threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            text = raw.decode(errors="replace")
            self._log.write(raw)
            self._log.flush()
            self._lines.put(text.rstrip("\n"))
        self._lines.put(None)

    def expect(self, pattern: str, timeout: float) -> re.Match[str]:
        """
        The next output line matching C{pattern} (earlier ones are skipped).
        """
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("{}: no line matching {!r} in {}s; see {}".format(
                    self.name, pattern, timeout, self.log_path))
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise BenchError("{} exited ({}); see {}".format(
                    self.name, self.popen.wait(), self.log_path))
            match = rx.search(line)
            if match:
                return match

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """
        SIGTERM to its process group, SIGKILL after C{timeout}.
        """
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        if self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        self._log.close()
        if self in _running:
            _running.remove(self)
        return self.popen.returncode


def stop_all() -> None:
    for proc in list(reversed(_running)):
        try:
            proc.stop(5)
        except Exception:  # noqa: BLE001 - clean up what can be
            pass


atexit.register(stop_all)


def _on_signal(signum: int, frame: Any) -> None:
    stop_all()
    sys.exit(128 + signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


# -- HTTP -----------------------------------------------------------------


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0,
                 ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(port: int, path: str, *, status: int = 200, timeout: float,
              interval: float = 0.01, proc: Proc | None = None) -> float:
    """
    Poll until C{path} answers C{status}; the monotonic time it did.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError("{} exited ({}) before {} answered; see {}".format(
                proc.name, proc.popen.returncode, path, proc.log_path))
        try:
            code, _ = http_request(port, "GET", path, timeout=2.0)
            if code == status:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(interval)
    raise BenchError("127.0.0.1:{}{} did not answer {} in {}s".format(
        port, path, status, timeout))


def rss_kib(pid: int) -> dict[str, int]:
    """
    VmRSS and VmHWM (peak) of a process, in KiB.
    """
    found = {}
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                found[key] = int(value.split()[0])
    return found


# -- load generation ------------------------------------------------------


def have_wrk() -> bool:
    return shutil.which("wrk") is not None and not os.environ.get("BENCH_NO_WRK")


def load(port: int, path: str, body: bytes, headers: dict[str, str], *,
         concurrency: int, duration: float, workdir: Path) -> dict[str, Any]:
    """
    POST C{body} to C{path} from C{concurrency} keep-alive connections for
    C{duration} seconds; requests/s and whether every answer was a 2xx.
    """
    body_file = workdir / "body.bin"
    body_file.write_bytes(body)
    if have_wrk():
        return _wrk(port, path, body_file, headers, concurrency, duration,
                    workdir)
    return _loadgen(port, path, body_file, headers, concurrency, duration,
                    workdir)


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk(port: int, path: str, body_file: Path, headers: dict[str, str],
         concurrency: int, duration: float, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    lines = [
        'wrk.method = "POST"',
        "local f = io.open({}, \"rb\")".format(_lua_string(str(body_file))),
        "wrk.body = f:read(\"*all\")",
        "f:close()",
    ]
    lines += ["wrk.headers[{}] = {}".format(_lua_string(k), _lua_string(v))
              for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    seconds = max(1, int(round(duration)))
    args = ["wrk", "-t1", "-c{}".format(concurrency), "-d{}s".format(seconds),
            "--timeout", "10s", "-s", str(script),
            "http://127.0.0.1:{}{}".format(port, path)]
    out = subprocess.run(args, capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        out)
    if rps is None or total is None:
        raise BenchError("wrk printed no result:\n" + out)
    return {
        "tool": "wrk",
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def _loadgen(port: int, path: str, body_file: Path, headers: dict[str, str],
             concurrency: int, duration: float, workdir: Path
             ) -> dict[str, Any]:
    headers_file = workdir / "headers.json"
    headers_file.write_text(json.dumps(headers))
    args = [PYTHON, "-m", "bench.loadgen", "--port", str(port), "--path", path,
            "--body", str(body_file), "--headers", str(headers_file),
            "--concurrency", str(concurrency), "--duration", str(duration)]
    done = subprocess.run(args, capture_output=True, text=True,
                          timeout=duration + 60, cwd=str(ROOT))
    if done.returncode != 0:
        raise BenchError("loadgen failed: " + done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["tool"] = "twisted-loadgen"
    return result


def measure_load(port: int, path: str, body: bytes, headers: dict[str, str],
                 *, concurrency: int, duration: float, workdir: Path
                 ) -> dict[str, Any]:
    """
    A short warm-up, then the measured load; refuses a run in which not
    every answer was a 2xx (it would be measuring errors).
    """
    load(port, path, body, headers, concurrency=concurrency,
         duration=min(1.0, duration / 4), workdir=workdir)
    result = load(port, path, body, headers, concurrency=concurrency,
                  duration=duration, workdir=workdir)
    if result["non2xx"] or result["errors"] or not result["requests"]:
        raise BenchError("load run had {} non-2xx answers and {} errors".format(
            result["non2xx"], result["errors"]))
    return result


# -- the daemon -----------------------------------------------------------


DAEMON_CONFIG = """\
listen: "tcp:{port}:interface=127.0.0.1"
kubernetes:
  server: "http://127.0.0.1:{api}"
{kube_extra}receivers:
  - project: ""
    name: {name}
    secret:
      value: "{secret}"
"""


class Daemon:
    """
    C{twist bbreceiver} (or the same through bench/twistwrap.py, to apply
    bench-only probes and experiments) against an API on loopback.
    """

    def __init__(self, workdir: Path, api_port: int, *, name: str = "daemon",
                 wrap: Sequence[str] | None = None, twist_args: Sequence[str] = (),
                 namespaces: Sequence[str] = (),
                 config_extra: str = "") -> None:
        self.workdir = workdir
        self.port = free_port()
        config = workdir / (name + ".yaml")
        config.write_text(DAEMON_CONFIG.format(
            port=self.port, api=api_port, name=payloads.RECEIVER_NAME,
            kube_extra="  namespaces: {}\n".format(json.dumps(list(namespaces)))
            if namespaces else "",
            secret=payloads.SECRET.decode()) + config_extra)
        if wrap is not None:
            head = [PYTHON, "-m", "bench.twistwrap", *wrap, "--"]
        else:
            head = [TWIST]
        self.proc = Proc(name, [*head, *twist_args, "bbreceiver", "--config",
                                str(config)], workdir=workdir)

    def wait_ready(self, timeout: float) -> float:
        return wait_http(self.port, "/readyz", timeout=timeout, proc=self.proc)

    def deliver(self, body: bytes, delivery: str = "bench") -> tuple[int, Any]:
        code, answer = http_request(
            self.port, "POST", payloads.RECEIVER_PATH, body,
            payloads.push_headers(body, delivery), timeout=30)
        return code, json.loads(answer)

    def logs(self) -> list[dict[str, Any]]:
        events = []
        with open(self.proc.log_path, "rb") as f:
            for line in f:
                try:
                    events.append(json.loads(line.lstrip(b"\x1e")))
                except ValueError:
                    pass
        return events

    def stop(self) -> None:
        self.proc.stop(20)


class FakeAPI:
    """
    bench/fakeapi.py in a process of its own.
    """

    def __init__(self, workdir: Path, *, warehouses: int = 0, fanout: int = 0,
                 e2e: bool = False, cache_lists: bool = False,
                 name: str = "fakeapi", timeout: float = 300) -> None:
        args = [PYTHON, "-m", "bench.fakeapi", "--warehouses", str(warehouses),
                "--fanout", str(fanout)]
        if e2e:
            args.append("--e2e")
        if cache_lists:
            args.append("--cache-lists")
        self.proc = Proc(name, args, workdir=workdir, lines=True, stdin=True)
        match = self.proc.expect(r"listening on [\d.]+:(\d+)", timeout)
        self.port = int(match.group(1))

    def command(self, line: str, answer: str = r"^ok", timeout: float = 30
                ) -> re.Match[str]:
        self.proc.send(line)
        return self.proc.expect(answer, timeout)

    def stop(self) -> None:
        if self.proc.alive():
            try:
                self.proc.send("quit")
                self.proc.popen.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.proc.stop(5)


def wait_for(check: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.001) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise BenchError("timed out waiting for " + what)


def new_workdir(parent: Path | None, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="bench-" + name + "-",
                                 dir=str(parent) if parent else None))
    return path
