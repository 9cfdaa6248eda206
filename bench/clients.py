"""
The bare clients that fan-out and sync are divided by, each in a process of
its own, printing one JSON line:

``python -m bench.clients patch --port P --namespace NS --names N
--concurrency C``
    N merge PATCHes of the refresh annotation (the daemon's exact request:
    path, ``fieldManager``, headers, body), at most C in flight, with treq
    over one keep-alive connection pool: the seconds from the first sent to
    the last answered.

``python -m bench.clients list --port P --limit 500``
    every page of the Warehouse list, downloaded with treq over a
    keep-alive pool and decoded with ``json.loads``, nothing else: the
    seconds from the first request to the last page decoded.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet.defer import DeferredList, DeferredSemaphore
from twisted.internet.task import react
from twisted.web.client import Agent, HTTPConnectionPool

WAREHOUSES = "/apis/kargo.akuity.io/v1alpha1"


def _client(reactor: Any, size: int) -> Any:
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = size
    return treq.client.HTTPClient(Agent(reactor, pool=pool)), pool


def _token(n: int) -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S") + ".{:06d}Z".format(
        (now.microsecond + n) % 1000000)


async def patch(reactor: Any, args: argparse.Namespace) -> None:
    http, pool = _client(reactor, max(args.concurrency, 32))
    semaphore = DeferredSemaphore(args.concurrency)
    base = "http://127.0.0.1:{}{}/namespaces/{}/warehouses/".format(
        args.port, WAREHOUSES, args.namespace)
    headers = {"Content-Type": "application/merge-patch+json",
               "Accept": "application/json", "User-Agent": "bench"}
    failures = []

    async def one(n: int) -> None:
        body = json.dumps(
            {"metadata": {"annotations": {"kargo.akuity.io/refresh":
                                          _token(n)}}},
            separators=(",", ":")).encode()
        response = await http.request(
            "PATCH", base + args.prefix + "{:06d}".format(n)
            + "?fieldManager=bbreceiver", headers=headers, data=body)
        content = await response.content()
        json.loads(content)
        if response.code != 200:
            failures.append(response.code)

    start = time.monotonic()
    await DeferredList([semaphore.run(one, n) for n in range(args.names)],
                       fireOnOneErrback=True)
    seconds = time.monotonic() - start
    await pool.closeCachedConnections()
    print(json.dumps({"seconds": seconds, "patches": args.names,
                      "failures": len(failures), "started": start}))


async def list_pages(reactor: Any, args: argparse.Namespace) -> None:
    http, pool = _client(reactor, 4)
    url = "http://127.0.0.1:{}{}/warehouses".format(args.port, WAREHOUSES)
    headers = {"Accept": "application/json", "User-Agent": "bench"}
    token = None
    items = pages = 0
    start = time.monotonic()
    while True:
        query = "?limit={}".format(args.limit)
        if token:
            query += "&continue=" + quote(token, safe="")
        response = await http.get(url + query, headers=headers)
        page = json.loads(await response.content())
        pages += 1
        items += len(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
    seconds = time.monotonic() - start
    await pool.closeCachedConnections()
    print(json.dumps({"seconds": seconds, "pages": pages, "items": items}))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("patch")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--prefix", default="fan-")
    p.add_argument("--names", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=32)
    ls = sub.add_parser("list")
    ls.add_argument("--port", type=int, required=True)
    ls.add_argument("--limit", type=int, default=500)
    args = parser.parse_args()
    run = patch if args.what == "patch" else list_pages
    react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
