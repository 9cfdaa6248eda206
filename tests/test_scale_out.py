"""
Load and scale out: a burst of a thousand deliveries against one daemon,
and two daemons sharing one API with deliveries alternating between them.
The same ledger as tests/test_faults.py holds every delivery to its
refreshes.
"""

from __future__ import annotations

import random
import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.python.filepath import FilePath

from tests.daemon import Daemon, sleep
from tests.test_faults import (
    NAMESPACE,
    OTHER_NAMESPACE,
    Delivery,
    FaultTestCase,
    bounded_concurrency,
    config,
    namespace,
    object_path,
    pr_body,
    promotion,
    push_body,
    standard_objects,
    warehouse,
)

REPOS = 12
PULL_REQUESTS = 5


def repo(i: int) -> str:
    return "https://bitbucket.org/load/repo-{}".format(i)


def pull_request(i: int) -> str:
    return repo(i) + "/pull-requests/{}".format(i + 1)


def load_objects() -> list[dict[str, Any]]:
    """
    Ten repositories with three Warehouses each (two of them on main, in
    two namespaces, one on another branch), two repositories nobody
    subscribes to, and pull requests with one or two Promotions waiting.
    """
    objects = [namespace(NAMESPACE), namespace(OTHER_NAMESPACE)]
    for i in range(REPOS - 2):
        objects += [
            warehouse("r{}-a".format(i), repo=repo(i)),
            warehouse("r{}-b".format(i), repo=repo(i) + ".git",
                      ns=OTHER_NAMESPACE),
            warehouse("r{}-dev".format(i), repo=repo(i), branch="dev"),
        ]
    for i in range(PULL_REQUESTS):
        objects.append(promotion("p{}-a".format(i), url=pull_request(i)))
        if i % 2:
            objects.append(promotion("p{}-b".format(i), url=pull_request(i),
                                     ns=OTHER_NAMESPACE))
    return objects


def paths(kind: str, objects: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(object_path(kind, o) for o in objects)


def rss(found: dict[Any, float]) -> float:
    return found[("process_resident_memory_bytes", ())]


class LoadTests(FaultTestCase):
    timeout = 120

    async def test_burst(self) -> None:
        """
        1,000 deliveries for a mix of repositories and pull requests, 50
        at a time: every one answered 200 with every refresh written after
        it arrived, and the daemon's memory does not grow with them.
        """
        objects = load_objects()
        h = await self.bench(objects=objects,
                             config_text=config(deadline=8, concurrency=32))
        h.deadline = 8
        by_repo = {
            i: paths("warehouses", [o for o in objects
                                    if o["kind"] == "Warehouse"
                                    and o["metadata"]["name"] in (
                                        "r{}-a".format(i), "r{}-b".format(i))])
            for i in range(REPOS)}
        by_pr = {
            i: paths("promotions", [o for o in objects
                                    if o["kind"] == "Promotion"
                                    and o["metadata"]["name"].startswith(
                                        "p{}-".format(i))])
            for i in range(PULL_REQUESTS)}
        rng = random.Random(1234)

        async def one(i: int) -> Delivery:
            if rng.random() < 0.8:
                r = rng.randrange(REPOS)
                return await h.send("repo:push", push_body(repo=repo(r)),
                                    "warehouse", by_repo[r])
            p = rng.randrange(PULL_REQUESTS)
            return await h.send("pullrequest:fulfilled",
                                pr_body(pull_request(p)), "promotion",
                                by_pr[p])

        await bounded_concurrency(100, 50, one)  # warm up
        before = rss(await h.metrics())
        start = time.time()
        await bounded_concurrency(1000, 50, one)
        took = time.time() - start
        after = rss(await h.metrics())
        deliveries = h.deliveries[100:]
        self.assertEqual(len(deliveries), 1000)
        self.assertEqual({d.code for d in deliveries}, {200})
        # not a copy of anything per delivery: a few MB of allocator slack
        self.assertLess(after - before, 16 * 2 ** 20,
                        "RSS grew {:.1f} MB".format((after - before) / 2**20))
        self.done(h, "load", seconds=took,
                  rss_growth_mb=(after - before) / 2 ** 20,
                  rss_mb=after / 2 ** 20,
                  patches=len(h.patches(start)))


class ScaleOutTests(FaultTestCase):
    timeout = 90

    async def test_two_daemons_one_api(self) -> None:
        """
        Two daemons watch one API; deliveries alternate between them (as
        behind a load balancer), including copies of one delivery sent to
        both at once: all refresh correctly.  Objects changed are seen by
        both, and when one stops the other goes on alone: nothing is kept
        in a daemon that the other needs.
        """
        h = await self.bench(objects=standard_objects(), config_text=config())
        folder = FilePath(self.mktemp())
        folder.makedirs()
        second = Daemon(folder, config(), h.fake)
        self.addCleanup(self.stop_second, second)
        assert h.daemon.api_port is not None
        await second.start_against(h.daemon.api_port.getHost().port)
        daemons = [h.daemon, second]

        async def one(i: int) -> Delivery:
            daemon = daemons[i % 2]
            if i % 3:
                return await h.push(daemon=daemon)
            return await h.merged(daemon=daemon)

        await bounded_concurrency(200, 10, one)
        # one delivery, a copy at each daemon at once
        body = push_body()
        must = h.warehouse_paths()
        await gatherResults([Deferred.fromCoroutine(h.send(
            "repo:push", body, "warehouse", must, delivery_id="twice",
            daemon=daemon)) for daemon in daemons])
        self.assertEqual({d.code for d in h.deliveries}, {200})

        # both see what changes
        h.fake.delete("warehouses", NAMESPACE, "shop-a")
        h.fake.upsert(warehouse("shop-z", ns=OTHER_NAMESPACE))
        h.fake.upsert(promotion("promo-z"))
        took = [await h.converged(daemon=daemon) for daemon in daemons]

        # one goes away; the other serves alone
        h.daemon.process.signalProcess("TERM")
        for _ in range(200):
            if h.daemon.output.ended.called:
                break
            await sleep(0.05)
        self.assertIn(h.daemon.output.ended.result, (0, -15))
        for i in range(20):
            await (h.push if i % 2 else h.merged)(daemon=second)
        self.done(h, "scale out", converged=max(took))

    async def stop_second(self, daemon: Daemon) -> None:
        if daemon.process is not None and not daemon.output.ended.called:
            daemon.process.signalProcess("TERM")
        code = await daemon.output.ended
        self.assertIn(code, (0, -15))
        self.assertNotIn(b"Traceback", bytes(daemon.output.out))
        self.assertNotIn(b"Traceback", bytes(daemon.output.err))

