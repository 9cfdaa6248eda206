"""
The Kubernetes API stand-in of the benchmarks, in a process of its own:
``bbreceiver.testing.fakekube.FakeKube`` loaded with generated Warehouses
(building them in Python takes seconds where parsing the same YAML would
take minutes), plus a few bench-only controls read from standard input, one
command a line, each answered with one line on standard output:

``events FILE``
    from now on, append ``MONOTONIC_TIME TYPE NAMESPACE/NAME`` to FILE for
    every committed change of a Warehouse (what "a PATCH seen by the API"
    means in the end-to-end benchmarks); ``events off`` stops.
``churn RATE COUNT FILE [FIRST]``
    change the first git subscription of COUNT Warehouses, RATE a second, to
    a repository ``bitbucket.org/bench/churn-SEQ`` never seen before (SEQ
    counts from FIRST, default 0), and
    write ``SEQ MONOTONIC_TIME`` to FILE for each (the moment the API
    committed it); answers ``churned`` when done.
``cache off``
    stop answering list requests from the page cache (see ``--cache-lists``).
``quit``
    exit.

``--cache-lists`` answers a repeated list request (same path and query)
with the bytes it answered the first time, as long as nothing was written
meanwhile: the sync benchmark then times what the client does with the
pages, not how long the stand-in takes to build them (it sorts the whole
collection for every page).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, cast

from twisted.internet import reactor as _reactor
from twisted.internet import stdio
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.task import LoopingCall, react
from twisted.protocols.basic import LineReceiver
from twisted.web.resource import Resource

from bbreceiver.testing.fakekube import FakeKube

from bench import payloads

reactor = cast(Any, _reactor)


class PageCache:
    """
    Answers of list requests by URI, valid until the next write.
    """

    def __init__(self, fake: FakeKube) -> None:
        self.enabled = True
        self.pages: dict[bytes, bytes] = {}
        self.hits = 0
        fake._store.listeners.append(lambda event: self.pages.clear())

    def wrap(self, inner: Resource) -> Resource:
        cache = self

        class Caching(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                uri = request.uri
                if not (cache.enabled and request.method == b"GET"
                        and b"limit=" in uri and b"watch" not in uri):
                    return inner.render(request)
                hit = cache.pages.get(uri)
                if hit is not None:
                    cache.hits += 1
                    request.setResponseCode(200)
                    request.setHeader(b"content-type", b"application/json")
                    request.setHeader(b"content-length",
                                      str(len(hit)).encode())
                    return hit
                chunks: list[bytes] = []
                write = request.write

                def capture(data: bytes) -> None:
                    chunks.append(data)
                    write(data)

                request.write = capture

                def done(_: object) -> None:
                    if request.code == 200:
                        cache.pages[uri] = b"".join(chunks)

                request.notifyFinish().addCallback(done)
                return inner.render(request)

        return Caching()


class Control(LineReceiver):
    delimiter = b"\n"

    def __init__(self, fake: FakeKube, cache: PageCache | None,
                 done: Deferred[None]) -> None:
        self.fake = fake
        self.cache = cache
        self.done = done
        self.events_file: Any = None
        self._listening = False

    def say(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _event(self, event: Any) -> None:
        if self.events_file is None or event.resource.plural != "warehouses":
            return
        self.events_file.write("{:.6f} {} {}/{}\n".format(
            time.monotonic(), event.type, event.key[0], event.key[1]))
        self.events_file.flush()

    def lineReceived(self, line: bytes) -> None:
        words = line.decode().split()
        if not words:
            return
        if words[0] == "events":
            if self.events_file is not None:
                self.events_file.close()
                self.events_file = None
            if words[1] != "off":
                self.events_file = open(words[1], "a")
                if not self._listening:
                    self.fake._store.listeners.append(self._event)
                    self._listening = True
            self.say("ok")
        elif words[0] == "cache" and words[1] == "off":
            if self.cache is not None:
                self.cache.enabled = False
                self.cache.pages.clear()
            self.say("ok")
        elif words[0] == "churn":
            self.churn(float(words[1]), int(words[2]), words[3],
                       int(words[4]) if len(words) > 4 else 0)
        elif words[0] == "quit":
            if not self.done.called:
                self.done.callback(None)
        else:
            self.say("error unknown command " + words[0])

    def connectionLost(self, reason: object = None) -> None:
        # The benchmark that started us is gone: so are we.
        if not self.done.called:
            self.done.callback(None)

    def churn(self, rate: float, count: int, path: str, first: int) -> None:
        out = open(path, "w")
        names = [
            (obj["metadata"]["namespace"], obj["metadata"]["name"])
            for obj in self.fake.list_objects("warehouses")[:count]
        ]
        state = {"seq": 0}

        def step() -> None:
            seq = state["seq"]
            if seq >= count:
                loop.stop()
                return
            state["seq"] = seq + 1
            namespace, name = names[seq % len(names)]
            obj = self.fake.get("warehouses", namespace, name)
            obj["spec"]["subscriptions"][0]["git"]["repoURL"] = (
                "https://bitbucket.org/bench/churn-{}".format(first + seq))
            committed = time.monotonic()
            self.fake.update(obj)
            out.write("{} {:.6f}\n".format(first + seq, committed))

        loop = LoopingCall(step)
        loop.clock = reactor

        def finished(_: object) -> None:
            out.close()
            self.say("churned {}".format(state["seq"]))

        loop.start(1.0 / rate, now=True).addCallback(finished)


async def _run(reactor: IReactorCore, args: argparse.Namespace) -> None:
    fake = FakeKube(cast(IReactorTime, reactor), history_capacity=10000)
    started = time.perf_counter()
    # The receiver's namespaces, so that namespaced lists find something.
    for obj in payloads.objects(args.warehouses, args.fanout, args.e2e):
        fake.create(obj)
    loaded = time.perf_counter() - started
    cache = PageCache(fake) if args.cache_lists else None
    site = fake.site(idle_timeout=None)
    if cache is not None:
        site.resource = cache.wrap(site.resource)
    from twisted.internet.endpoints import serverFromString

    port = await serverFromString(reactor, args.listen).listen(site)
    address = port.getHost()
    print("listening on {}:{} (loaded {} objects in {:.2f}s)".format(
        address.host, address.port,
        args.warehouses + args.fanout + int(args.e2e), loaded), flush=True)
    done: Deferred[None] = Deferred()
    stdio.StandardIO(Control(fake, cache, done))
    await done
    await port.stopListening()
    fake.close_watches()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fakeapi")
    parser.add_argument("--listen", default="tcp:0:interface=127.0.0.1")
    parser.add_argument("--warehouses", type=int, default=0)
    parser.add_argument("--fanout", type=int, default=0)
    parser.add_argument("--e2e", action="store_true")
    parser.add_argument("--cache-lists", action="store_true")
    args = parser.parse_args(argv)
    react(lambda r: _run(r, args))


if __name__ == "__main__":
    main()
