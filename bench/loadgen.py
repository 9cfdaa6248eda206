"""
The load generator used when ``wrk`` is not installed: N keep-alive
HTTP/1.1 connections, each sending the same prebuilt POST as soon as the
previous answer is in, for a fixed time.  Raw Twisted protocols rather than
treq, so that the generator costs far less per request than the servers it
measures (it runs in a process of its own, on the other core).

Prints one JSON line: requests, seconds, rps, non2xx, errors.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import react


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.non2xx = 0
        self.errors = 0
        self.measuring = False


class Client(Protocol):
    def __init__(self, request: bytes, stats: Stats, until: float) -> None:
        self.request = request
        self.stats = stats
        self.until = until
        self.buffer = b""
        self.finished: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value.strip())
                elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                stop = self.buffer.find(b"\r\n0\r\n\r\n", end)
                if stop < 0:
                    return
                total = stop + 7
            else:
                total = end + 4 + length
                if len(self.buffer) < total:
                    return
            status = head[9:12]
            self.buffer = self.buffer[total:]
            if self.stats.measuring:
                self.stats.requests += 1
                if not status.startswith(b"2"):
                    self.stats.non2xx += 1
            if time.monotonic() >= self.until:
                self.transport.loseConnection()
                return
            self.transport.write(self.request)

    def connectionLost(self, reason: Any = None) -> None:
        if time.monotonic() < self.until:
            self.stats.errors += 1
        if not self.finished.called:
            self.finished.callback(None)


async def run(reactor: Any, args: argparse.Namespace) -> None:
    with open(args.body, "rb") as f:
        body = f.read()
    with open(args.headers) as f:
        headers = json.load(f)
    lines = ["POST {} HTTP/1.1".format(args.path),
             "Host: 127.0.0.1:{}".format(args.port),
             "Content-Length: {}".format(len(body))]
    lines += ["{}: {}".format(k, v) for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    stats = Stats()
    start = time.monotonic()
    until = start + args.duration
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", args.port)
    clients = []
    for _ in range(args.concurrency):
        client = Client(request, stats, until)
        await endpoint.connect(Factory.forProtocol(lambda c=client: c))
        clients.append(client)
    stats.measuring = True
    began = time.monotonic()
    await DeferredList([c.finished for c in clients])
    seconds = time.monotonic() - began
    print(json.dumps({
        "requests": stats.requests,
        "seconds": seconds,
        "rps": stats.requests / seconds if seconds else 0.0,
        "non2xx": stats.non2xx,
        "errors": stats.errors,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--headers", required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
