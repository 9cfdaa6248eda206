"""
Nothing lost under faults: C{twist bbreceiver} as a subprocess, against the
Kubernetes API stand-in on loopback, while the stand-in misbehaves.

Every test keeps a ledger of the deliveries it sends and of every request
the API received (stamped with its arrival time), and holds the daemon to
the same rules whatever the fault:

  - a delivery answered 2xx led to a PATCH of every object it concerns,
    received by the API after the delivery was sent, carrying a refresh
    token taken after that moment (so Kargo looks again after the push,
    not just after some earlier one), and answered 200 (or 404: the
    object was deleted meanwhile);
  - a delivery that could not be served was answered 500 or 503, so that
    Bitbucket Cloud retries it; an authentic delivery never gets a 4xx;
  - once the fault is over, a push to the shared repository refreshes
    exactly the Warehouses the API now holds, and a merged pull request
    exactly the Promotions waiting on it, within 5 s: the index equals the
    API's objects, checked from outside;
  - the daemon's requests to the API stay bounded while the fault lasts
    (no tight retry loop).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from bbreceiver.bitbucket import sign
from bbreceiver.testing.fakekube import FakeKube, RecordedRequest, serve
from tests.daemon import Daemon, sleep

NAMESPACE = "faults"
OTHER_NAMESPACE = "elsewhere"
REPO = "https://bitbucket.org/acme/shop"
OTHER_REPO = "https://bitbucket.org/acme/unrelated"
PR_URL = REPO + "/pull-requests/42"
SECRET = b"fault-secret"
RECEIVER = "faults"
PATH = "/bitbucket/" + hashlib.sha256(
    b"" + RECEIVER.encode() + SECRET).hexdigest()
ANNOTATION = "kargo.akuity.io/refresh"
GROUP = "/apis/kargo.akuity.io/v1alpha1/namespaces/{}/{}/{}"

CONFIG = """
listen: "{{listen}}"
kubernetes:
  server: "{{api}}"
  watchTimeoutSeconds: 30
  inactivitySeconds: 2
  backoffMaxSeconds: 0.5
metrics:
  listen: "{{metrics}}"
receivers:
  - project: ""
    name: {receiver}
    secret:
      value: {secret}
limits:
  responseDeadlineSeconds: {deadline}
  refreshConcurrency: {concurrency}
"""


def config(deadline: float = 2, concurrency: int = 32) -> str:
    return CONFIG.format(receiver=RECEIVER, secret=SECRET.decode(),
                         deadline=deadline, concurrency=concurrency)


# -- objects -------------------------------------------------------------


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name}}


def warehouse(name: str, repo: str = REPO, branch: str = "main",
              ns: str = NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"subscriptions": [{"git": {"repoURL": repo,
                                            "branch": branch}}]},
    }


def promotion(name: str, url: str = PR_URL, phase: str = "Running",
              ns: str = NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"stage": "prod", "freight": "f" * 40, "steps": [
            {"uses": "git-open-pr", "as": "open"},
            {"uses": "git-wait-for-pr", "as": "wait"}]},
        "status": {"phase": phase, "currentStep": 1, "state": {
            "wait": {"pr": {"id": 42, "url": url}}}},
    }


def standard_objects() -> list[dict[str, Any]]:
    """
    What each test starts with: Warehouses of the shared repository in two
    namespaces, some that a push to it must not refresh, and Promotions
    waiting on its pull request (or done with it).
    """
    return [
        namespace(NAMESPACE), namespace(OTHER_NAMESPACE),
        warehouse("shop-a"), warehouse("shop-b"),
        warehouse("shop-c", ns=OTHER_NAMESPACE),
        warehouse("shop-git", repo="git@bitbucket.org:acme/shop.git"),
        warehouse("shop-release", branch="release"),
        warehouse("unrelated", repo=OTHER_REPO),
        promotion("promo-a"), promotion("promo-b", ns=OTHER_NAMESPACE),
        promotion("promo-done", phase="Succeeded"),
    ]


def _subscribes(obj: dict[str, Any], branch: str) -> bool:
    for sub in obj.get("spec", {}).get("subscriptions", []):
        url = sub["git"]["repoURL"].lower()
        if url.endswith(".git"):
            url = url[:-4]
        url = url.replace("git@bitbucket.org:", "https://bitbucket.org/")
        if url == REPO and sub["git"].get("branch", "main") == branch:
            return True
    return False


def _waits(obj: dict[str, Any]) -> bool:
    status = obj.get("status", {})
    return status.get("phase") == "Running" and any(
        (s.get("pr") or {}).get("url") == PR_URL
        for s in status.get("state", {}).values())


def object_path(kind: str, obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    return GROUP.format(metadata["namespace"], kind, metadata["name"])


# -- payloads ------------------------------------------------------------


def push_body(repo: str = REPO, branch: str = "main") -> bytes:
    return json.dumps({
        "repository": {"full_name": "acme/shop", "links": {
            "html": {"href": repo}}},
        "push": {"changes": [{
            "old": None,
            "new": {"type": "branch", "name": branch,
                    "target": {"hash": uuid.uuid4().hex[:40]}}}]},
    }).encode()


def pr_body(url: str = PR_URL) -> bytes:
    return json.dumps({"pullrequest": {"id": 42, "links": {
        "html": {"href": url}}}}).encode()


def token_time(token: str) -> float:
    """
    The moment a refresh token names, as a POSIX timestamp.
    """
    moment = datetime.strptime(token, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=timezone.utc).timestamp()


# -- the ledger ----------------------------------------------------------


class StampedLog(list):  # type: ignore[type-arg]
    """
    Stands in for a stand-in's request log: stamps each request with the
    wall-clock time it arrived, and copies it into a log that outlives the
    stand-in (an API restart brings a new one).
    """

    def __init__(self, everything: list[RecordedRequest]) -> None:
        super().__init__()
        self.everything = everything

    def append(self, entry: RecordedRequest) -> None:
        entry.arrived = time.time()  # type: ignore[attr-defined]
        super().append(entry)
        self.everything.append(entry)


@dataclass
class Delivery:
    """
    One delivery sent, and what it must have caused.

    @ivar must: paths of the objects it must have refreshed if answered
        2xx.
    @ivar may: paths it may have refreshed besides (objects that came or
        went while the index may lag); C{None}: only C{must}.
    """

    event: str
    kind: str
    sent: float
    must: frozenset[str]
    may: frozenset[str] | None = None
    code: int = 0
    answer: Any = None
    answered: float = 0.0
    uuid: str = ""
    retry_after: list[bytes] | None = None


class Bench:
    """
    A daemon, the stand-in it watches, and the ledger.
    """

    def __init__(self, test: TestCase, config_text: str | None = None,
                 objects: Iterable[dict[str, Any]] | None = None,
                 fake: FakeKube | None = None) -> None:
        self.test = test
        self.log: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []
        folder = FilePath(test.mktemp())
        folder.makedirs()
        self.fake = fake or FakeKube(reactor, bookmark_interval=1.0)
        self.watch_requests(self.fake)
        for obj in standard_objects() if objects is None else objects:
            self.fake.upsert(obj)
        self.daemon = Daemon(folder, config_text or config(), self.fake)
        self.deadline = 2.0
        self.probes = 0
        self.checked = 0

    def watch_requests(self, fake: FakeKube) -> None:
        fake.requests = StampedLog(self.log)

    async def start(self) -> Bench:
        self.test.addCleanup(self.stopped)
        await self.daemon.start()
        return self

    async def stopped(self) -> None:
        code = await self.daemon.stop()
        out = bytes(self.daemon.output.out) + bytes(self.daemon.output.err)
        self.test.assertIn(code, (0, -15), out[-2000:])
        for bad in [b"Traceback", b"Unhandled error", b"Unhandled Error"]:
            self.test.assertNotIn(bad, out)

    # -- what the API holds ------------------------------------------------

    def warehouse_paths(self, branch: str = "main") -> frozenset[str]:
        return frozenset(object_path("warehouses", w)
                         for w in self.fake.list_objects("warehouses")
                         if _subscribes(w, branch))

    def promotion_paths(self) -> frozenset[str]:
        return frozenset(object_path("promotions", p)
                         for p in self.fake.list_objects("promotions")
                         if _waits(p))

    # -- deliveries --------------------------------------------------------

    async def send(self, event: str, body: bytes, kind: str,
                   must: frozenset[str], may: frozenset[str] | None = None,
                   *, delivery_id: str | None = None,
                   daemon: Daemon | None = None,
                   signature: bytes | None = None) -> Delivery:
        daemon = daemon or self.daemon
        delivery = Delivery(event, kind, time.time(), must, may,
                            uuid=delivery_id or str(uuid.uuid4()))
        self.deliveries.append(delivery)
        headers = {
            "Content-Type": "application/json",
            "X-Event-Key": event,
            "X-Request-UUID": delivery.uuid,
            "X-Hub-Signature": (signature or sign(body, SECRET)).decode(),
        }
        try:
            response = await treq.post(daemon.base + PATH, data=body,
                                       headers=headers, persistent=False,
                                       timeout=20)
            delivery.code = response.code
            delivery.retry_after = response.headers.getRawHeaders(
                b"retry-after")
            delivery.answer = json.loads(await treq.content(response))
        except Exception as e:  # recorded, and failed in verify()
            delivery.answer = repr(e)
        delivery.answered = time.time()
        return delivery

    async def push(self, branch: str = "main",
                   may: frozenset[str] | None = None,
                   **kw: Any) -> Delivery:
        """
        A push to the shared repository: it must refresh the Warehouses the
        API holds now, unless told otherwise.
        """
        must = kw.pop("must", None)
        return await self.send(
            "repo:push", push_body(branch=branch), "warehouse",
            self.warehouse_paths(branch) if must is None else must, may,
            **kw)

    async def merged(self, may: frozenset[str] | None = None,
                     **kw: Any) -> Delivery:
        must = kw.pop("must", None)
        return await self.send(
            "pullrequest:fulfilled", pr_body(), "promotion",
            self.promotion_paths() if must is None else must, may, **kw)

    # -- checks ------------------------------------------------------------

    def patches(self, since: float = 0.0) -> list[RecordedRequest]:
        return [r for r in self.log if r.method == "PATCH"
                and r.arrived >= since]  # type: ignore[attr-defined]

    def api_reads(self, start: float, end: float) -> list[RecordedRequest]:
        return [r for r in self.log if r.method == "GET"
                and start <= r.arrived <= end]  # type: ignore[attr-defined]

    def _patch_index(self) -> dict[str, list[tuple[float, float, int]]]:
        """
        Every PATCH the API answered, by path: C{(arrived, token time,
        code)} in arrival order.
        """
        found: dict[str, list[tuple[float, float, int]]] = {}
        for r in self.patches():
            if r.code is None:
                continue
            body = r.json()
            if list(body) != ["metadata"] or list(body["metadata"]) != [
                    "annotations"]:
                continue
            [(key, token)] = body["metadata"]["annotations"].items()
            if key != ANNOTATION:
                continue
            found.setdefault(r.path, []).append(
                (r.arrived, token_time(token), r.code))  # type: ignore
        return found

    @staticmethod
    def _refreshed(found: dict[str, list[tuple[float, float, int]]],
                   path: str, moment: float, until: float | None) -> bool:
        """
        Whether a PATCH of C{path}, received after C{moment} (and by
        C{until}) and carrying a token taken after it, was applied (or
        found the object gone).
        """
        entries = found.get(path, [])
        for arrived, taken, code in entries[bisect.bisect_left(
                entries, (moment,)):]:
            if until is not None and arrived > until:
                break
            if taken >= moment and code in (200, 404):
                return True
        return False

    async def settle(self) -> None:
        """
        Wait for PATCHes still going on in the background (after a 202:
        at most one more response deadline) to be answered.
        """
        for _ in range(int(3 * self.deadline / 0.1) + 1):
            if all(r.code is not None for r in self.patches()):
                return
            await sleep(0.1)

    def verify(self) -> None:
        """
        Hold every delivery sent so far to the rules of the module
        docstring.
        """
        noun = {"warehouse": "warehouse(s)", "promotion": "promotion(s)"}
        found = self._patch_index()
        for d in self.deliveries:
            where = "delivery {} ({}) answered {} {!r}".format(
                d.uuid, d.event, d.code, d.answer)
            self.test.assertIn(d.code, (200, 202, 500, 503), where)
            if d.code >= 500:
                continue
            allowed = d.must | (d.may or frozenset())
            words = d.answer["msg"].split()
            self.test.assertEqual(words[2], noun[d.kind], where)
            self.test.assertTrue(len(d.must) <= int(words[1]) <= len(allowed),
                                 where + ": must " + repr(sorted(d.must)))
            # a 200 means done by the answer; a 202, done in the background
            until = d.answered if d.code == 200 else None
            for path in d.must:
                self.checked += 1
                if not self._refreshed(found, path, d.sent, until):
                    self.test.fail(where + ": no refresh of " + path)

    async def converged(self, within: float = 5.0,
                        daemon: Daemon | None = None) -> float:
        """
        Probe until a push and a merged pull request refresh exactly what
        the API holds; fail after C{within} seconds.  Returns how long it
        took.
        """
        start = time.time()
        while True:
            push = await self.probe("repo:push", push_body(),
                                    self.warehouse_paths(), daemon)
            merged = await self.probe("pullrequest:fulfilled", pr_body(),
                                      self.promotion_paths(), daemon)
            if push and merged:
                return time.time() - start
            if time.time() - start > within:
                self.test.fail("the index did not match the API within "
                               "{} s: {}".format(within, self.last_probe))
            await sleep(0.1)

    last_probe: Any = None

    async def probe(self, event: str, body: bytes, expected: frozenset[str],
                    daemon: Daemon | None = None) -> bool:
        """
        One delivery, sent alone: whether it refreshed exactly C{expected}
        (and said so).  Probes stay out of the ledger: they are expected
        to miss while the index catches up.
        """
        daemon = daemon or self.daemon
        sent = time.time()
        self.probes += 1
        response = await treq.post(
            daemon.base + PATH, data=body, persistent=False, timeout=20,
            headers={"X-Event-Key": event,
                     "X-Hub-Signature": sign(body, SECRET).decode(),
                     "X-Request-UUID": "probe-" + uuid.uuid4().hex})
        answer = json.loads(await treq.content(response))
        answered = time.time()
        seen = frozenset(r.path for r in self.patches(sent)
                         if r.arrived <= answered)  # type: ignore
        applied = frozenset(r.path for r in self.patches(sent)
                            if r.code == 200 and r.arrived <= answered)
        self.last_probe = (event, response.code, answer, sorted(seen),
                           sorted(expected))
        if response.code != 200:
            return False
        self.test.assertEqual(int(answer["msg"].split()[1]), len(seen),
                              self.last_probe)
        return seen == expected and applied == expected

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                    float]:
        response = await treq.get("http://127.0.0.1:{}/metrics".format(
            self.daemon.metrics_port), persistent=False)
        found = {}
        text = (await treq.content(response)).decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return found

    async def restarts(self, reason: str) -> float:
        found = await self.metrics()
        return sum(v for (name, labels), v in found.items()
                   if name == "bbreceiver_watch_restarts_total"
                   and ("reason", reason) in labels)

    def bounded(self, start: float, end: float, per_second: float = 8,
                slack: int = 20) -> None:
        """
        The reads (list and watch) the API got between C{start} and C{end}
        are few: each reflector backs off, none loops.
        """
        reads = self.api_reads(start, end)
        limit = per_second * (end - start) + slack
        self.test.assertLessEqual(
            len(reads), limit, "{} API reads in {:.1f} s".format(
                len(reads), end - start))


async def concurrently(n: int, work: Callable[[int], Any]) -> list[Any]:
    """
    Run C{work(0)} ... C{work(n - 1)} all at once; their results.
    """
    return await gatherResults([Deferred.fromCoroutine(work(i))
                                for i in range(n)])


async def bounded_concurrency(total: int, limit: int,
                              work: Callable[[int], Any]) -> list[Any]:
    """
    Run C{work(0)} ... C{work(total - 1)}, C{limit} at a time.
    """
    semaphore = DeferredSemaphore(limit)
    return await gatherResults([
        semaphore.run(lambda i=i: Deferred.fromCoroutine(work(i)))
        for i in range(total)])


def record(name: str, **figures: Any) -> None:
    """
    Append a line of figures to the file named by C{$BBRECEIVER_FIGURES}
    (for the closing note of a change; CI does not set it).
    """
    where = os.environ.get("BBRECEIVER_FIGURES")
    if where:
        with open(where, "a") as f:
            f.write(json.dumps({"test": name, **figures}) + "\n")


# -- the faults ----------------------------------------------------------


class FaultTestCase(TestCase):
    timeout = 60

    async def bench(self, **kw: Any) -> Bench:
        return await Bench(self, **kw).start()

    def done(self, h: Bench, fault: str, **figures: Any) -> None:
        h.verify()
        record(self.id(), fault=fault, deliveries=len(h.deliveries),
               probes=h.probes, checked=h.checked, lost=0, **figures)


class WatchFaultTests(FaultTestCase):
    """
    The watch streams misbehave while objects change; the index catches
    up, and deliveries meanwhile are served from the last index.
    """

    def change(self, h: Bench) -> tuple[frozenset[str], frozenset[str]]:
        """
        Add and delete Warehouses and Promotions; return the paths of the
        objects a delivery must refresh (concerned before and after) and
        may refresh (concerned before or after) while the index catches
        up.
        """
        before = h.warehouse_paths() | h.promotion_paths()
        h.fake.delete("warehouses", NAMESPACE, "shop-b")
        h.fake.upsert(warehouse("shop-late", ns=OTHER_NAMESPACE))
        h.fake.delete("promotions", OTHER_NAMESPACE, "promo-b")
        h.fake.upsert(promotion("promo-late"))
        # and one that stops waiting: a change, not a deletion
        h.fake.patch("promotions", NAMESPACE, "promo-a",
                     {"status": {"phase": "Succeeded"}})
        after = h.warehouse_paths() | h.promotion_paths()
        return before & after, before | after

    async def during(self, h: Bench, must: frozenset[str],
                     may: frozenset[str]) -> None:
        """
        Deliveries while the fault lasts: served from the index as it
        was, so they refresh what stayed, and maybe what came or went.
        """
        await h.push(must=frozenset(p for p in must if "/warehouses/" in p),
                     may=frozenset(p for p in may if "/warehouses/" in p))
        await h.merged(must=frozenset(p for p in must if "/promotions/" in p),
                       may=frozenset(p for p in may if "/promotions/" in p))

    async def test_stream_dropped(self) -> None:
        """
        The watch connections are cut: the reflectors resume from the last
        resource version and see what changed meanwhile.
        """
        h = await self.bench()
        start = time.time()
        self.assertEqual(h.fake.drop_watches(), 2)
        must, may = self.change(h)
        await self.during(h, must, may)
        took = await h.converged()
        h.bounded(start, time.time())
        self.done(h, "watch streams dropped", converged=took)

    async def test_objects_changed_while_watch_down(self) -> None:
        """
        The watches are cut and cannot be reopened for a while (500s)
        while objects are added and deleted: once they can, the missed
        events are replayed from the last resource version.
        """
        h = await self.bench()
        start = time.time()
        refusals = h.fake.fail_next(1000, 500, method="GET",
                                    path="watch=true")
        h.fake.drop_watches()
        must, may = self.change(h)
        for _ in range(2):
            await self.during(h, must, may)
        await sleep(1.5)
        self.assertGreater(1000 - refusals.remaining, 2)
        h.fake.clear_faults()
        ended = time.time()
        took = await h.converged()
        h.bounded(start, time.time())
        self.done(h, "objects added and deleted while the watch is down",
                  converged=took, down=ended - start)

    async def test_stream_stalled(self) -> None:
        """
        The watch streams go silent without closing (a dead network path):
        each is abandoned after inactivitySeconds (2 s here) and resumed.
        """
        h = await self.bench()
        start = time.time()
        self.assertEqual(h.fake.stall_watches(), 2)
        must, may = self.change(h)
        await self.during(h, must, may)
        took = await h.converged()
        self.assertGreaterEqual(await h.restarts("stalled"), 2)
        h.bounded(start, time.time())
        self.done(h, "watch streams stalled", converged=took)

    async def test_stream_closed_cleanly(self) -> None:
        """
        The server ends the watches cleanly (its timeoutSeconds): the
        reflectors watch again from where they were, without a relist.
        """
        h = await self.bench()
        await sleep(1.1)  # older than a "very short watch"
        start = time.time()
        self.assertEqual(h.fake.close_watches(), 2)
        must, may = self.change(h)
        await self.during(h, must, may)
        took = await h.converged()
        end = time.time()
        self.assertEqual([r for r in h.api_reads(start, end)
                          if not r.is_watch], [])
        h.bounded(start, end)
        self.done(h, "watch streams closed cleanly", converged=took)

    async def test_expired_http_410(self) -> None:
        """
        History is compacted while the watches are down, and the server
        refuses every watch from then on with an HTTP 410: the reflectors
        relist (deletions missed meanwhile leave the index) and back off.
        """
        h = await self.bench()
        start = time.time()
        h.fake.fail_next(1000, 410, method="GET", path="watch=true")
        h.fake.drop_watches()
        must, may = self.change(h)
        h.fake.compact()
        await self.during(h, must, may)
        took = await h.converged()
        await sleep(1)  # watches keep being refused: no tight loop
        end = time.time()
        h.fake.clear_faults()
        self.assertGreater(await h.restarts("expired"), 2)
        h.bounded(start, end)
        self.done(h, "watch answered HTTP 410 after compaction",
                  converged=took)

    async def test_expired_error_event(self) -> None:
        """
        The same, with the 410 sent the way the watch cache sends it: a
        200 whose stream holds one ERROR event.
        """
        h = await self.bench()
        start = time.time()
        h.fake.fail_next(1000, 410, method="GET", path="watch=true",
                         in_stream=True)
        h.fake.drop_watches()
        must, may = self.change(h)
        h.fake.compact()
        await self.during(h, must, may)
        took = await h.converged()
        await sleep(1)
        end = time.time()
        h.fake.clear_faults()
        self.assertGreater(await h.restarts("expired"), 2)
        h.bounded(start, end)
        self.done(h, "watch answered a 410 ERROR event after compaction",
                  converged=took)

    async def test_expired_after_compaction(self) -> None:
        """
        No injected answer at all: objects change and history is
        compacted while the watches are down, so the stand-in itself
        answers the resumed watch with its ERROR 410.
        """
        h = await self.bench()
        start = time.time()
        h.fake.drop_watches()
        must, may = self.change(h)
        h.fake.compact()
        await self.during(h, must, may)
        took = await h.converged()
        h.bounded(start, time.time())
        self.done(h, "history compacted while the watch was down",
                  converged=took)

    async def test_api_restarted_with_lower_resource_versions(self) -> None:
        """
        The API goes away and comes back on the same port with other
        objects and a history that starts lower than what the daemon saw
        (an etcd restored from a backup): deliveries meanwhile are answered
        500 (Bitbucket Cloud retries them), and the index is rebuilt from
        the new API.
        """
        h = await self.bench()
        for i in range(5):  # a history well above the new API's
            h.fake.patch("warehouses", NAMESPACE, "unrelated",
                         {"metadata": {"labels": {"n": str(i)}}})
        await h.converged()
        old = h.fake
        assert h.daemon.api_port is not None
        port = h.daemon.api_port.getHost().port
        await h.daemon.api_port.stopListening()
        await old.shutdown()
        down = time.time()
        # nothing can be refreshed: every delivery asks to be retried
        answers = await concurrently(3, lambda i: h.push())
        self.assertEqual({d.code for d in answers}, {500})
        await h.merged()
        new = FakeKube(reactor, bookmark_interval=1.0,
                       initial_resource_version=10)
        h.watch_requests(new)
        for obj in standard_objects():
            if obj["metadata"]["name"] not in ("shop-b", "promo-a"):
                new.upsert(obj)
        new.upsert(warehouse("shop-new"))
        new.upsert(promotion("promo-new"))
        self.assertLess(new.resource_version, old.resource_version)
        before = h.warehouse_paths(), h.promotion_paths()
        h.fake = h.daemon.fake = new
        self.assertNotEqual((h.warehouse_paths(), h.promotion_paths()),
                            before)
        h.daemon.api_port = await serve(
            reactor, "tcp:{}:interface=127.0.0.1".format(port), new,
            idle_timeout=None)
        up = time.time()
        took = await h.converged()
        h.bounded(down, time.time())
        self.done(h, "API stopped and restarted with lower resource "
                  "versions", converged=took, down=up - down)


class PatchFaultTests(FaultTestCase):
    """
    The API refuses or delays the refresh PATCHes.
    """

    def first_patches(self, h: Bench, since: float) -> dict[str, list[float]]:
        arrivals: dict[str, list[float]] = {}
        for r in h.patches(since):
            arrivals.setdefault(r.path, []).append(r.arrived)  # type: ignore
        return arrivals

    async def test_too_many_requests(self) -> None:
        """
        429 with Retry-After: the PATCH is retried no sooner than asked,
        within the deadline (200); a Retry-After beyond the deadline is
        answered 500 at once, so Bitbucket retries.
        """
        h = await self.bench()
        sent = time.time()
        h.fake.fail_next(1, 429, method="PATCH", retry_after=1)
        delivery = await h.push()
        self.assertEqual(delivery.code, 200, delivery.answer)
        [throttled] = [r for r in h.patches(sent) if r.code == 429]
        retries = self.first_patches(h, sent)[throttled.path]
        self.assertEqual(len(retries), 2)
        self.assertGreaterEqual(retries[1] - retries[0], 1.0)

        h.fake.fail_next(1, 429, method="PATCH", retry_after=5)
        delivery = await h.push()
        self.assertEqual(delivery.code, 500, delivery.answer)
        self.assertLess(delivery.answered - delivery.sent, h.deadline)
        self.assertEqual(delivery.answer, {
            "error": "failed to refresh 1 of {} warehouse(s)".format(
                len(h.warehouse_paths()))})
        # Bitbucket's retry, once the API is willing again
        await h.push()
        await h.converged()
        self.done(h, "PATCH answered 429 with Retry-After")

    async def test_server_errors(self) -> None:
        """
        5xx and dropped connections on PATCH are retried with backoff
        inside the deadline; when the API keeps failing, the delivery is
        answered 500 after a bounded number of attempts.
        """
        h = await self.bench()
        h.fake.fail_next(2, 503, method="PATCH")
        h.fake.fail_next(1, 500, method="PATCH")
        h.fake.abort_next(1, method="PATCH")
        for delivery in [await h.push(), await h.merged()]:
            self.assertEqual(delivery.code, 200, delivery.answer)
        sent = time.time()
        h.fake.fail_next(100000, 500, method="PATCH")
        delivery = await h.push()
        self.assertEqual(delivery.code, 500, delivery.answer)
        await h.settle()
        for path, arrivals in self.first_patches(h, sent).items():
            # 0.25 s doubling with jitter, for one more deadline at most
            self.assertLessEqual(len(arrivals), 8, path)
        h.fake.clear_faults()
        await h.push()  # Bitbucket's retry
        await h.converged()
        self.done(h, "PATCH answered 5xx or dropped")

    async def test_latency_beyond_deadline(self) -> None:
        """
        The API answers after the response deadline: the delivery is
        answered 202 and its PATCHes complete in the background.
        """
        h = await self.bench()
        h.fake.latency = 1.5 * h.deadline
        deliveries = await concurrently(2, lambda i: h.push())
        deliveries.append(await h.merged())
        for delivery in deliveries:
            self.assertEqual(delivery.code, 202, delivery.answer)
            self.assertTrue(delivery.answer["msg"].startswith("refreshing "))
            self.assertLess(delivery.answered - delivery.sent,
                            h.deadline + 1)
        await h.settle()
        h.fake.latency = 0
        await h.converged()
        self.done(h, "API latency beyond the response deadline")


class NotReadyTests(FaultTestCase):
    async def test_not_ready_answers_503(self) -> None:
        """
        Until the first list completes (here the API fails the lists for a
        while), authentic deliveries are answered 503 with Retry-After,
        never a 200 that refreshed nothing.
        """
        h = Bench(self)
        h.fake.fail_next(3, 500, method="GET", path="/warehouses")
        h.fake.latency = 0.3
        self.addCleanup(h.stopped)
        starting = Deferred.fromCoroutine(h.daemon.start())
        codes = []
        give_up = time.time() + 20
        while time.time() < give_up:
            delivery = await h.push()
            if delivery.code == 0:  # not listening yet
                h.deliveries.remove(delivery)
            else:
                codes.append(delivery.code)
            if delivery.code == 503:
                self.assertEqual(delivery.answer, {"error": "not ready"})
                self.assertEqual(delivery.retry_after, [b"5"])
            if delivery.code == 200:
                break
            await sleep(0.05)
        await starting
        self.assertIn(503, codes)
        self.assertEqual(set(codes), {503, 200})
        self.assertEqual(codes.index(200), len(codes) - 1)
        h.fake.latency = 0
        self.done(h, "API failing lists at start-up")


class DuplicateTests(FaultTestCase):
    """
    Retries, resends and concurrent identical deliveries (SPEC matrix 61).
    """

    async def test_identical_deliveries(self) -> None:
        """
        One delivery sent ten times at once and three times after: no
        error, and each copy gets its refresh.
        """
        h = await self.bench()
        body = push_body()
        must = h.warehouse_paths()

        async def copy(i: int) -> Delivery:
            return await h.send("repo:push", body, "warehouse", must,
                                delivery_id="the-same-delivery")

        await concurrently(10, copy)
        for i in range(3):
            await copy(i)
        self.assertEqual({d.code for d in h.deliveries}, {200})
        self.done(h, "identical deliveries")

    async def test_retry_after_failure(self) -> None:
        """
        A delivery answered 500 (the API forbade the PATCH) and retried by
        Bitbucket once the API is fixed: the retry refreshes everything.
        """
        h = await self.bench()
        body = push_body()
        must = h.warehouse_paths()
        h.fake.fail_next(1, 403, method="PATCH")
        first = await h.send("repo:push", body, "warehouse", must,
                             delivery_id="retried")
        self.assertEqual(first.code, 500)
        for _ in range(2):
            retry = await h.send("repo:push", body, "warehouse", must,
                                 delivery_id="retried")
            self.assertEqual(retry.code, 200)
        self.done(h, "a delivery retried after a 500")

    async def test_burst_merges_queued_refreshes(self) -> None:
        """
        Thirty pushes to one repository within a second, with one PATCH in
        flight at a time and a slow API: refreshes of an object asked for
        while its PATCH is still queued ride on that PATCH, so the burst
        costs a few PATCHes per Warehouse, not thirty; and every push still
        gets a refresh of each Warehouse written after it was sent (a push
        arriving while a PATCH is in flight gets another one).
        """
        h = await self.bench(config_text=config(deadline=6, concurrency=1))
        h.deadline = 6
        h.fake.latency = 0.1
        warehouses = h.warehouse_paths()
        sent = time.time()

        async def push(i: int) -> Delivery:
            await sleep(i * 0.03)
            return await h.push()

        deliveries = await concurrently(30, push)
        self.assertEqual({d.code for d in deliveries}, {200})
        patches = h.patches(sent)
        per_warehouse = len(patches) / len(warehouses)
        self.assertLessEqual(per_warehouse, 8, len(patches))
        self.assertEqual({r.path for r in patches}, warehouses)
        h.fake.latency = 0
        self.done(h, "a burst of pushes to one repository",
                  patches_per_warehouse=per_warehouse)
