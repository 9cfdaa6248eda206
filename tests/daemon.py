"""
The real daemon, started with C{twist} as a user starts it, against the
Kubernetes API stand-in served on loopback from the test process.
"""

import json
import os
import signal
import socket
import sys
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from bbreceiver.bitbucket import sign
from bbreceiver.testing.fakekube import FakeKube, serve

TWIST = os.path.join(os.path.dirname(sys.executable), "twist")


def free_port() -> int:
    """
    A loopback port nobody listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Output(ProcessProtocol):
    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.extend(data)

    def errReceived(self, data: bytes) -> None:
        self.err.extend(data)

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        signal_ = getattr(reason.value, "signal", None)
        self.ended.callback(code if code is not None else -(signal_ or 0))


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def run_twist(args: list[str], cwd: str,
                    timeout: float = 20) -> tuple[int, bytes, bytes]:
    """
    Run C{twist} to its end (for start-up failures).
    """
    output = _Output()
    process = reactor.spawnProcess(output, TWIST, [TWIST, *args],
                                   env=dict(os.environ), path=cwd)
    timer = reactor.callLater(timeout, process.signalProcess, "KILL")
    code = await output.ended
    if timer.active():
        timer.cancel()
    return code, bytes(output.out), bytes(output.err)


class Daemon:
    """
    A running C{twist bbreceiver} and the API stand-in it watches.
    """

    def __init__(self, folder: FilePath, config: str,
                 fake: FakeKube | None = None, *,
                 listen: str = "tcp:{port}:interface=127.0.0.1",
                 scheme: str = "http") -> None:
        self.folder = folder
        self.config_text = config
        self.fake = fake if fake is not None else FakeKube(
            reactor, bookmark_interval=1.0)
        self.api_port: IListeningPort | None = None
        self.port = free_port()
        self.metrics_port = free_port()
        self.listen = listen.format(port=self.port)
        self.scheme = scheme
        self.process: Any = None
        self.output = _Output()

    @property
    def base(self) -> str:
        return "{}://127.0.0.1:{}".format(self.scheme, self.port)

    async def start(self, wait: bool = True) -> None:
        self.api_port = await serve(reactor, "tcp:0:interface=127.0.0.1",
                                    self.fake, idle_timeout=None)
        await self.start_against(self.api_port.getHost().port, wait)

    async def start_against(self, api_port: int, wait: bool = True) -> None:
        """
        Start the daemon against an API served on C{api_port} (its own, or
        one another daemon's test already serves).
        """
        api = "http://127.0.0.1:{}".format(api_port)
        config = self.folder.child("bbreceiver.yaml")
        config.setContent(self.config_text.format(
            listen=self.listen, api=api,
            metrics="tcp:{}:interface=127.0.0.1".format(self.metrics_port),
        ).encode())
        self.process = reactor.spawnProcess(
            self.output, TWIST,
            [TWIST, "--log-format=json", "bbreceiver", "--config",
             config.path],
            env=dict(os.environ), path=self.folder.path)
        if wait:
            await self.wait_ready()

    async def wait_ready(self) -> None:
        """
        Poll C{/readyz} (over plain http on the same port only when the
        listener is plain) until it answers 200.
        """
        for _ in range(200):
            try:
                response = await self.get("/readyz")
                await treq.content(response)
                if response.code == 200:
                    return
            except Exception:
                pass
            if self.output.ended.called:
                break
            await sleep(0.05)
        raise AssertionError("the daemon did not become ready:\n"
                             + self.output.out.decode(errors="replace")
                             + self.output.err.decode(errors="replace"))

    async def get(self, path: str) -> Any:
        """
        GET a path of the daemon.
        """
        return await self.http.get(self.base + path, **self._kwargs)

    client: Any = None
    """
    An HTTP client to use instead of treq's own (for https).
    """

    @property
    def http(self) -> Any:
        return self.client or treq

    @property
    def _kwargs(self) -> dict[str, Any]:
        return {} if self.client else {"persistent": False}

    async def stop(self) -> int:
        """
        SIGTERM, then the exit status.
        """
        if self.process is not None and not self.output.ended.called:
            self.process.signalProcess("TERM")
        timer = reactor.callLater(20, self._kill)
        code = await self.output.ended
        if timer.active():
            timer.cancel()
        port, self.api_port = self.api_port, None
        if port is not None:
            await port.stopListening()
            await self.fake.shutdown()
        return code

    def _kill(self) -> None:
        if not self.output.ended.called:
            self.process.signalProcess(signal.SIGKILL)

    def logs(self) -> list[dict[str, Any]]:
        """
        The daemon's log events so far.
        """
        events = []
        for line in bytes(self.output.out).splitlines():
            try:
                events.append(json.loads(line.lstrip(b"\x1e")))
            except ValueError:
                pass
        return events

    async def deliver(self, path: str, event: str | None, body: bytes,
                      secret: bytes | None, *, flavor: str = "cloud",
                      ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if event is not None:
            headers["X-Event-Key"] = event
        if secret is not None:
            headers["X-Hub-Signature"] = sign(body, secret).decode()
        headers["X-Request-UUID" if flavor == "cloud" else
                "X-Request-Id"] = "test-delivery"
        response = await self.http.post(self.base + path, data=body,
                                        headers=headers, **self._kwargs)
        answer = await treq.content(response)
        return response.code, json.loads(answer)

    async def eventually(self, check: Any, timeout: float = 10) -> None:
        """
        Wait until C{check()} holds (for what the daemon learns by watch).
        """
        for _ in range(int(timeout / 0.05)):
            if await check():
                return
            await sleep(0.05)
        raise AssertionError("condition not met in {}s".format(timeout))
