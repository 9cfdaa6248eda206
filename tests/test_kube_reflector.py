"""
Tests for bbreceiver.kube.reflector: one test class per behaviour of the
protocol study's "Recommendation" list (reference/kubernetes-client.md),
numbered as there, against a small scripted API served through StubTreq and
driven by a Clock.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request

from bbreceiver.kube.client import (
    PROMOTIONS,
    WAREHOUSES,
    KubeClient,
    NotFound,
    ResourceType,
)
from bbreceiver.kube.reflector import INITIAL_EVENTS_END, Reflector

from .test_kube_client import (
    BASE,
    FailingHTTP,
    FakeCredentials,
    Scripted,
    Seen,
    Stream,
    pump,
    reply_hang,
    reply_json,
    reply_text,
    status,
)


def key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


class FakeKube(Scripted):
    """
    One collection with a resource-version counter: lists are served from
    ``objects`` in pages (``limit``/``continue``, every page at the same list
    RV, or all at once when ``honour_limit`` is false); watches become
    ``Stream``s the test writes into.  Anything queued in ``replies`` is
    answered first.
    """

    def __init__(self, resource: ResourceType = WAREHOUSES) -> None:
        super().__init__()
        self.resource = resource
        self.rv = 100
        self.objects: dict[str, dict[str, Any]] = {}
        self.honour_limit = True

    def put(self, name: str, namespace: str = "demo", **spec: Any) -> dict[str, Any]:
        self.rv += 1
        obj = {
            "apiVersion": self.resource.api_version,
            "kind": self.resource.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": str(self.rv),
                "managedFields": [{"manager": "kubectl"}],
            },
            "spec": spec,
        }
        self.objects[key(obj)] = obj
        copy: dict[str, Any] = json.loads(json.dumps(obj))
        return copy

    def remove(self, name: str, namespace: str = "demo") -> dict[str, Any]:
        self.rv += 1
        obj = self.objects.pop(f"{namespace}/{name}")
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return obj

    def default(self, request: Request) -> Any:
        query = self.seen[-1].query
        if query.get("watch") == "true":
            return self.open_stream(request)
        items = [self.objects[k] for k in sorted(self.objects)]
        offset = 0
        list_rv = str(self.rv)
        if "continue" in query:
            offset_text, list_rv = query["continue"].split(":")
            offset = int(offset_text)
        limit = int(query.get("limit", "0"))
        metadata: dict[str, Any] = {"resourceVersion": list_rv}
        if self.honour_limit and limit and offset + limit < len(items):
            metadata["continue"] = f"{offset + limit}:{list_rv}"
            items = items[offset : offset + limit]
        else:
            items = items[offset:]
        body = {
            "kind": self.resource.kind + "List",
            "apiVersion": self.resource.api_version,
            "metadata": metadata,
            "items": items,
        }
        return reply_json(200, body)(request)

    @property
    def current(self) -> Stream:
        """The latest watch stream."""
        return self.streams[-1]

    def list_starts(self) -> list[Seen]:
        """The first page of every list, in order."""
        return [
            s
            for s in self.seen
            if not s.query.get("watch") and "continue" not in s.query
        ]

    def requests(self) -> list[str]:
        """``list`` / ``watch`` for each request seen, in order."""
        return ["watch" if s.query.get("watch") else "list" for s in self.seen]


class RecordingSink:
    """An index keyed by namespace/name that records every call."""

    def __init__(self) -> None:
        self.index: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_on: str | None = None

    def replace(self, namespace: str | None, objects: list[dict[str, Any]]) -> None:
        self.calls.append(("replace", (namespace, sorted(key(o) for o in objects))))
        self.index = {key(o): o for o in objects}

    def upsert(self, obj: dict[str, Any]) -> None:
        if self.fail_on == key(obj):
            raise RuntimeError("index bug")
        self.calls.append(("upsert", key(obj)))
        self.index[key(obj)] = obj

    def delete(self, obj: dict[str, Any]) -> None:
        self.calls.append(("delete", key(obj)))
        self.index.pop(key(obj), None)


class Harness:
    """A reflector wired to a FakeKube, a Clock and a recording sink."""

    def __init__(
        self,
        api: FakeKube | None = None,
        *,
        http: Any = None,
        clock: Clock | None = None,
        resource: ResourceType = WAREHOUSES,
        namespace: str | None = None,
        client_attempts: int = 1,
        credentials: Any = None,
        random: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.api = api or FakeKube(resource)
        self.stub = StubTreq(self.api)
        self.clock = clock or Clock()
        self.client = KubeClient(
            http or self.stub,
            BASE,
            credentials,
            clock=self.clock,
            random=lambda: random,
            max_attempts=client_attempts,
        )
        self.sink = RecordingSink()
        self.restarts: list[str] = []
        self.relists = 0
        kwargs.setdefault("page_size", 2)
        self.reflector = Reflector(
            self.client,
            resource,
            namespace,
            self.sink,
            self.clock,
            watch_timeout_seconds=300,
            inactivity_seconds=90,
            backoff_max_seconds=5,
            random=lambda: random,
            on_restart=self.restarts.append,
            on_relist=self._relisted,
            **kwargs,
        )

    def _relisted(self) -> None:
        self.relists += 1

    def start(self) -> Harness:
        self.reflector.startService()
        self.pump()
        return self

    def pump(self) -> None:
        pump(self.stub)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pump()

    def stop(self) -> Deferred[None]:
        d = self.reflector.stopService()
        self.pump()
        return d


class ReflectorTestCase(SynchronousTestCase):
    def harness(self, api: FakeKube | None = None, **kwargs: Any) -> Harness:
        h = Harness(api, **kwargs)
        self.addCleanup(self.stopped, h)
        return h

    def stopped(self, h: Harness) -> None:
        if h.reflector.running:
            self.successResultOf(h.stop())
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def started(self, objects: int = 3, **kwargs: Any) -> Harness:
        api = FakeKube()
        for i in range(objects):
            api.put(f"wh-{i}")
        h = self.harness(api, **kwargs).start()
        self.assertEqual(api.requests()[-1], "watch")
        return h


# 1 ------------------------------------------------------------------------


class InitialListTests(ReflectorTestCase):
    def test_paged_list_then_watch_from_list_rv(self) -> None:
        api = FakeKube()
        for i in range(5):
            api.put(f"wh-{i}")
        api.rv = 120  # the list RV is not any item's RV
        h = self.harness(api)
        synced = h.reflector.when_synced()
        self.assertFalse(h.reflector.synced)
        h.start()
        self.assertEqual(api.requests(), ["list", "list", "list", "watch"])
        first, second, third, watch = api.seen
        self.assertEqual(first.query, {"limit": "2"})
        self.assertEqual(second.query, {"limit": "2", "continue": "2:120"})
        self.assertEqual(third.query, {"limit": "2", "continue": "4:120"})
        self.assertEqual(
            watch.query,
            {
                "watch": "true",
                "resourceVersion": "120",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            },
        )
        self.assertEqual(watch.path, "/apis/kargo.akuity.io/v1alpha1/warehouses")
        self.assertEqual(
            h.sink.calls,
            [("replace", (None, [f"demo/wh-{i}" for i in range(5)]))],
        )
        self.assertTrue(h.reflector.synced)
        self.assertIsNone(self.successResultOf(synced))
        self.assertEqual(h.reflector.resource_version, "120")
        self.assertEqual(h.relists, 1)
        # Bulky managed fields never reach the index.
        self.assertNotIn("managedFields", h.sink.index["demo/wh-0"]["metadata"])

    def test_server_ignoring_limit(self) -> None:
        api = FakeKube()
        api.honour_limit = False
        for i in range(5):
            api.put(f"wh-{i}")
        h = self.harness(api).start()
        self.assertEqual(api.requests(), ["list", "watch"])
        self.assertEqual(len(h.sink.index), 5)

    def test_namespaced_and_field_selector(self) -> None:
        h = self.harness(namespace="demo", field_selector="metadata.name=wh-1").start()
        for seen in h.api.seen:
            self.assertEqual(
                seen.path, "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/warehouses"
            )
            self.assertEqual(seen.query["fieldSelector"], "metadata.name=wh-1")
        self.assertEqual(h.sink.calls, [("replace", ("demo", []))])

    def test_core_items_get_kind(self) -> None:
        api = FakeKube()
        api.replies.append(
            reply_json(
                200,
                {
                    "kind": "SecretList",
                    "metadata": {"resourceVersion": "9"},
                    "items": [{"metadata": {"name": "s", "namespace": "n"}}],
                },
            )
        )
        h = self.harness(api).start()
        self.assertEqual(h.sink.index["n/s"]["kind"], "Warehouse")
        self.assertEqual(h.sink.index["n/s"]["apiVersion"], "kargo.akuity.io/v1alpha1")


# 2 ------------------------------------------------------------------------


class ContinueExpiryTests(ReflectorTestCase):
    def test_expired_continue_restarts_whole_list(self) -> None:
        api = FakeKube()
        for i in range(3):
            api.put(f"wh-{i}")
        api.replies.append(api.default)  # first page as usual
        api.replies.append(
            reply_json(
                410,
                status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a "
                    "consistent list result.",
                    metadata={"continue": "spliced-would-be-wrong"},
                ),
            )
        )
        h = self.harness(api).start()
        self.assertEqual(api.requests(), ["list", "list", "list", "list", "watch"])
        restart = api.seen[2]
        self.assertEqual(restart.query, {"limit": "2"})  # from scratch
        self.assertEqual(
            h.sink.calls, [("replace", (None, ["demo/wh-0", "demo/wh-1", "demo/wh-2"]))]
        )
        self.assertEqual(h.restarts, [])

    def test_second_expiry_backs_off(self) -> None:
        api = FakeKube()
        for i in range(3):
            api.put(f"wh-{i}")
        expired = reply_json(410, status(410, "Expired", "too old"))
        api.replies.extend([api.default, expired, api.default, expired])
        h = self.harness(api).start()
        self.assertEqual(api.requests(), ["list"] * 4)
        self.assertEqual(h.restarts, ["error"])
        self.assertFalse(h.reflector.synced)
        h.advance(0.5)
        self.assertEqual(api.requests()[-1], "watch")
        self.assertTrue(h.reflector.synced)


# 3, 4, 5 --------------------------------------------------------------------


class EventTests(ReflectorTestCase):
    def test_added_modified_deleted(self) -> None:
        h = self.started(objects=1)
        h.sink.calls.clear()
        api = h.api
        api.current.event("ADDED", api.put("new"))
        api.current.event("MODIFIED", api.put("wh-0", changed=True))
        gone = api.remove("new")
        api.current.event("DELETED", gone)
        h.pump()
        self.assertEqual(
            h.sink.calls,
            [("upsert", "demo/new"), ("upsert", "demo/wh-0"), ("delete", "demo/new")],
        )
        self.assertEqual(h.sink.index["demo/wh-0"]["spec"], {"changed": True})
        self.assertEqual(
            h.reflector.resource_version, gone["metadata"]["resourceVersion"]
        )

    def test_framing_unknown_types_and_extra_fields(self) -> None:
        h = self.started(objects=0)
        line = json.dumps(
            {"type": "ADDED", "object": h.api.put("a"), "new": 1}
        ).encode()
        odd = json.dumps({"type": "SOMETHING", "object": {"x": 1}}).encode()
        h.api.current.raw(line[:10])
        h.pump()
        h.api.current.raw(line[10:] + b"\n\n" + odd + b"\n")
        h.pump()
        self.assertEqual(h.sink.calls[1:], [("upsert", "demo/a")])
        self.assertEqual(h.restarts, [])

    def test_bookmark_moves_rv_only(self) -> None:
        h = self.started(objects=1)
        calls = list(h.sink.calls)
        h.api.current.event(
            "BOOKMARK",
            {
                "kind": "Warehouse",
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "metadata": {"resourceVersion": "150"},
            },
        )
        h.api.current.event(
            "BOOKMARK",
            {
                "kind": "Warehouse",
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "metadata": {
                    "resourceVersion": "151",
                    "annotations": {INITIAL_EVENTS_END: "true"},
                },
            },
        )
        h.pump()
        self.assertEqual(h.sink.calls, calls)
        self.assertEqual(h.reflector.resource_version, "151")
        self.assertEqual(h.restarts, [])

    def test_sink_failure_does_not_stop_the_watch(self) -> None:
        h = self.started(objects=0)
        h.sink.fail_on = "demo/bad"
        h.api.current.event("ADDED", h.api.put("bad"))
        h.api.current.event("ADDED", h.api.put("good"))
        h.pump()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("demo/good", h.sink.index)
        self.assertEqual(h.restarts, [])


# 6 ------------------------------------------------------------------------


class CleanCloseTests(ReflectorTestCase):
    def test_rewatch_from_last_rv_without_relist(self) -> None:
        h = self.started()
        h.advance(10)
        h.api.current.event("ADDED", h.api.put("x"))
        h.api.current.close()
        h.pump()
        self.assertEqual(h.api.requests(), ["list", "list", "watch", "watch"])
        self.assertEqual(h.api.seen[-1].query["resourceVersion"], str(h.api.rv))
        self.assertEqual(h.restarts, ["closed"])
        self.assertEqual(h.relists, 1)

    def test_quick_close_with_events_still_paced(self) -> None:
        h = self.started()
        h.api.current.event("ADDED", h.api.put("x"))
        h.api.current.close()
        h.pump()
        self.assertEqual(h.restarts, ["closed"])
        watches = h.api.requests().count("watch")
        h.advance(0.49)
        self.assertEqual(h.api.requests().count("watch"), watches)
        h.advance(0.01)
        self.assertEqual(h.api.requests().count("watch"), watches + 1)

    def test_very_short_empty_stream_backs_off(self) -> None:
        h = self.started()
        h.api.current.close()
        h.pump()
        self.assertEqual(h.restarts, ["error"])
        self.assertEqual(h.api.requests()[-1], "watch")
        watches = h.api.requests().count("watch")
        h.advance(0.49)
        self.assertEqual(h.api.requests().count("watch"), watches)
        h.advance(0.01)
        self.assertEqual(h.api.requests().count("watch"), watches + 1)
        self.assertEqual(h.api.requests().count("list"), 2)  # no relist


# 7, 8 ---------------------------------------------------------------------


class ExpiryTests(ReflectorTestCase):
    def expire_and_check_relist(self, h: Harness, last_rv: str) -> None:
        self.assertEqual(h.restarts, ["expired"])
        relist = h.api.list_starts()[-1]
        self.assertEqual(
            relist.query,
            {
                "limit": "2",
                "resourceVersion": last_rv,
                "resourceVersionMatch": "NotOlderThan",
            },
        )
        watch = h.api.seen[-1]
        self.assertEqual(watch.query["resourceVersion"], str(h.api.rv))

    def test_410_error_event_relists_and_finds_deletes(self) -> None:
        h = self.started(objects=3)
        last = h.reflector.resource_version
        assert last is not None
        # Deleted while the watch could not deliver it (compaction).
        h.api.remove("wh-1")
        h.api.put("wh-9")
        h.api.current.event(
            "ERROR", status(410, "Expired", "too old resource version: 103 (104)")
        )
        h.pump()
        self.expire_and_check_relist(h, last)
        self.assertEqual(sorted(h.sink.index), ["demo/wh-0", "demo/wh-2", "demo/wh-9"])
        self.assertEqual(h.sink.calls[-1][0], "replace")
        self.assertTrue(h.reflector.synced)
        self.assertEqual(h.relists, 2)

    def test_410_gone_reason(self) -> None:
        h = self.started()
        last = h.reflector.resource_version
        assert last is not None
        h.api.current.event("ERROR", status(410, "Gone", "gone"))
        h.pump()
        self.expire_and_check_relist(h, last)

    def test_http_410_on_watch_request(self) -> None:
        h = self.started()
        h.advance(10)
        last = h.reflector.resource_version
        assert last is not None
        h.api.replies.append(reply_json(410, status(410, "Expired", "too old")))
        h.api.current.close()
        h.pump()
        self.assertEqual(h.restarts, ["closed", "expired"])
        self.assertEqual(
            h.api.requests(),
            ["list", "list", "watch", "watch", "list", "list", "watch"],
        )
        self.assertEqual(h.api.list_starts()[-1].query["resourceVersion"], last)

    def test_relist_falls_back_to_consistent_read(self) -> None:
        h = self.started()
        # The "not older than" relist fails too.
        h.api.replies.append(reply_json(410, status(410, "Expired", "too old")))
        h.api.current.event("ERROR", status(410, "Expired", "too old"))
        h.pump()
        lists = h.api.list_starts()
        self.assertIn("resourceVersion", lists[-2].query)
        self.assertEqual(lists[-1].query, {"limit": "2"})
        self.assertEqual(h.api.requests()[-1], "watch")
        self.assertEqual(h.restarts, ["expired"])

    def test_repeated_expiry_backs_off(self) -> None:
        h = self.started()
        h.api.current.event("ERROR", status(410, "Expired", "too old"))
        h.pump()
        count = len(h.api.seen)
        h.api.current.event("ERROR", status(410, "Expired", "too old"))
        h.pump()
        self.assertEqual(h.restarts, ["expired", "expired"])
        self.assertEqual(len(h.api.seen), count)  # waiting
        h.advance(1.0)  # second failure in a row: 1 s
        self.assertEqual(h.api.requests()[-2:], ["list", "watch"])


# 9 ------------------------------------------------------------------------


class OtherErrorTests(ReflectorTestCase):
    def test_500_error_event_backs_off_then_consistent_relist(self) -> None:
        h = self.started()
        h.api.current.event("ERROR", status(500, "InternalError", "etcd hiccup"))
        h.pump()
        self.assertEqual(h.restarts, ["error"])
        count = len(h.api.seen)
        h.advance(0.49)
        self.assertEqual(len(h.api.seen), count)
        h.advance(0.01)
        self.assertEqual(h.api.seen[count].query, {"limit": "2"})
        self.assertEqual(h.api.list_starts()[-1], h.api.seen[count])
        self.assertEqual(h.api.requests()[-1], "watch")

    def test_too_large_rv_error_event(self) -> None:
        h = self.started()
        h.api.current.event(
            "ERROR",
            status(
                504,
                "Timeout",
                "Too large resource version: 500, current: 120",
                details={"causes": [{"reason": "ResourceVersionTooLarge"}]},
            ),
        )
        h.pump()
        h.advance(0.5)
        self.assertEqual(h.api.list_starts()[-1].query, {"limit": "2"})
        self.assertEqual(len(h.api.list_starts()), 2)
        self.assertEqual(h.restarts, ["error"])

    def test_broken_stream_rewatches_after_backoff(self) -> None:
        h = self.started()
        h.api.current.drop()
        h.pump()
        self.assertEqual(h.restarts, ["error"])
        h.advance(0.5)
        self.assertEqual(h.api.requests(), ["list", "list", "watch", "watch"])

    def test_garbage_in_stream(self) -> None:
        h = self.started()
        h.api.current.raw(b"not json\n")
        h.pump()
        self.assertEqual(h.restarts, ["error"])
        self.assertTrue(h.api.streams[0].lost)


# 10 -----------------------------------------------------------------------


class StallTests(ReflectorTestCase):
    def test_silent_stream_aborted_and_resumed(self) -> None:
        h = self.started()
        h.advance(60)
        h.api.current.event("BOOKMARK", {"metadata": {"resourceVersion": "140"}})
        h.pump()
        h.advance(89)
        self.assertEqual(h.restarts, [])
        h.advance(1)
        self.assertEqual(h.restarts, ["stalled"])
        self.assertTrue(h.api.streams[0].lost, "the transport was not aborted")
        h.advance(0.5)
        self.assertEqual(h.api.requests()[-1], "watch")
        self.assertEqual(h.api.seen[-1].query["resourceVersion"], "140")
        self.assertEqual(h.api.requests().count("list"), 2)


# 11 -----------------------------------------------------------------------


class BackoffTests(ReflectorTestCase):
    def test_delays_double_to_cap_and_jitter(self) -> None:
        h = self.harness(random=0.0)
        nominal = [h.reflector.backoff_delay(n) for n in range(1, 9)]
        self.assertEqual(nominal, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0])
        jittered = self.harness(random=0.99).reflector
        for n, top in enumerate(nominal, 1):
            delay = jittered.backoff_delay(n)
            self.assertLess(delay, top)
            self.assertGreaterEqual(delay, 0.75 * top)

    def test_refused_watch_backs_off_growing_then_resets(self) -> None:
        h = self.started()
        for _ in range(5):
            h.api.replies.append(reply_json(500, status(500, "InternalError", "down")))
        h.api.current.drop()
        h.pump()
        times = []
        for _ in range(6):
            before = len(h.api.seen)
            waited = 0.0
            while len(h.api.seen) == before:
                h.advance(0.25)
                waited += 0.25
                self.assertLess(waited, 60, "no retry")
            times.append(waited)
        self.assertEqual(times, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0])
        self.assertEqual(h.restarts, ["error"] * 6)
        # A healthy stream resets the backoff.
        h.advance(40)
        h.api.current.drop()
        h.pump()
        before = len(h.api.seen)
        h.advance(0.5)
        self.assertEqual(len(h.api.seen), before + 1)

    def test_connection_refused(self) -> None:
        api = FakeKube()
        stub = StubTreq(api)
        flaky = FailingHTTP([ConnectionRefusedError()] * 3, stub)
        h = self.harness(api, http=flaky)
        h.stub = stub
        h.start()
        self.assertEqual(h.restarts, ["error"])
        h.advance(0.5)
        h.advance(1.0)
        self.assertEqual(h.restarts, ["error"] * 3)
        self.assertFalse(h.reflector.synced)
        self.assertIn("Connection was refused", h.reflector.last_error or "")
        h.advance(2.0)
        self.assertTrue(h.reflector.synced)
        self.assertIsNone(h.reflector.last_error)


# 12 -----------------------------------------------------------------------


class ThrottlingTests(ReflectorTestCase):
    def test_watch_429_retry_after_honoured(self) -> None:
        h = self.started()
        h.api.replies.append(
            reply_text(
                429, "Too many requests, please try again later.", {"Retry-After": "3"}
            )
        )
        h.api.current.drop()
        h.pump()
        h.advance(0.5)  # backoff over, but the server asked for 3 s
        watches = h.api.requests().count("watch")
        self.assertEqual(h.restarts, ["error", "error"])
        h.advance(2.4)
        self.assertEqual(h.api.requests().count("watch"), watches)
        h.advance(0.6)
        self.assertEqual(h.api.requests().count("watch"), watches + 1)

    def test_list_429_retried_by_client(self) -> None:
        api = FakeKube()
        api.put("a")
        api.replies.append(reply_text(429, "Too many requests", {"Retry-After": "2"}))
        api.replies.append(reply_json(503, status(503, "ServiceUnavailable", "later")))
        h = self.harness(api, client_attempts=5).start()
        self.assertFalse(h.reflector.synced)
        h.advance(2)
        h.advance(1)
        self.assertTrue(h.reflector.synced)
        self.assertEqual(h.restarts, [])


# 13 -----------------------------------------------------------------------


class AuthTests(ReflectorTestCase):
    def test_401_rereads_token_and_retries(self) -> None:
        api = FakeKube()
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        creds = FakeCredentials("old", "new")
        h = self.harness(api, credentials=creds).start()
        self.assertTrue(h.reflector.synced)
        self.assertEqual(creds.rejected, ["old"])
        self.assertEqual(h.api.seen[-1].header("authorization"), "Bearer new")
        self.assertEqual(h.restarts, [])

    def test_401_persisting_backs_off(self) -> None:
        api = FakeKube()
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        with capturedLogs() as events:
            h = self.harness(api, credentials=FakeCredentials("only")).start()
        self.assertEqual(h.restarts, ["error"])
        self.assertTrue(any(e["log_level"] == LogLevel.error for e in events))
        h.advance(0.5)
        self.assertTrue(h.reflector.synced)

    def test_403_reported_and_retried(self) -> None:
        api = FakeKube()
        message = (
            'warehouses.kargo.akuity.io is forbidden: User "system:serviceaccount:'
            'kargo:receiver" cannot list resource "warehouses"'
        )
        for _ in range(3):
            api.replies.append(reply_json(403, status(403, "Forbidden", message)))
        with capturedLogs() as events:
            h = self.harness(api).start()
            h.advance(0.5)
            h.advance(1.0)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 3)
        self.assertEqual(errors[0]["detail"], message)
        self.assertIn("forbids", errors[0]["log_format"])
        self.assertEqual(h.restarts, ["error"] * 3)
        self.assertFalse(h.reflector.synced)
        h.advance(2.0)
        self.assertTrue(h.reflector.synced)


# History going backwards -----------------------------------------------------


class HistoryBackwardsTests(ReflectorTestCase):
    def test_event_older_than_seen_relists(self) -> None:
        h = self.started()
        h.api.current.event(
            "MODIFIED",
            {"metadata": {"name": "wh-0", "namespace": "demo", "resourceVersion": "5"}},
        )
        h.pump()
        self.assertEqual(h.restarts, ["expired"])
        lists = h.api.list_starts()
        self.assertEqual(len(lists), 2)
        self.assertEqual(lists[-1].query, {"limit": "2"})  # a consistent read

    def test_api_restarted_with_lower_resource_versions(self) -> None:
        h = self.started(objects=3)
        self.assertEqual(h.reflector.resource_version, "103")
        # The API comes back from a restore: lower RVs, fewer objects.
        h.api.objects.clear()
        h.api.rv = 10
        h.api.put("restored")
        h.api.replies.append(
            reply_json(
                504,
                status(
                    504,
                    "Timeout",
                    "Too large resource version: 103, current: 11",
                    details={"causes": [{"reason": "ResourceVersionTooLarge"}]},
                ),
            )
        )
        h.api.current.drop()
        with capturedLogs() as events:
            h.pump()
            h.advance(0.5)  # the failed stream's backoff
            h.advance(1.0)  # the refused watch's backoff
        self.assertEqual(h.restarts, ["error", "error"])
        self.assertEqual(sorted(h.sink.index), ["demo/restored"])
        self.assertEqual(h.reflector.resource_version, "11")
        self.assertEqual(h.api.seen[-1].query["resourceVersion"], "11")
        self.assertTrue(any("went backwards" in e["log_format"] for e in events))


# 16 -----------------------------------------------------------------------


class IndependenceTests(ReflectorTestCase):
    def test_two_reflectors(self) -> None:
        clock = Clock()
        warehouses = self.harness(clock=clock)
        promotions = self.harness(
            FakeKube(PROMOTIONS), clock=clock, resource=PROMOTIONS
        )
        warehouses.api.put("w")
        for _ in range(5):
            promotions.api.put("p")
        warehouses.start()
        promotions.start()
        self.assertEqual(warehouses.reflector.resource_version, "101")
        self.assertEqual(promotions.reflector.resource_version, "105")
        promotions.api.current.drop()
        promotions.pump()
        self.assertEqual(promotions.restarts, ["error"])
        warehouses.api.current.event("ADDED", warehouses.api.put("w2"))
        warehouses.pump()
        self.assertIn("demo/w2", warehouses.sink.index)
        self.assertEqual(warehouses.restarts, [])
        self.assertEqual(warehouses.reflector.resource_version, "102")
        self.assertEqual(promotions.reflector.resource_version, "105")
        self.assertEqual(
            promotions.api.seen[-1].path, "/apis/kargo.akuity.io/v1alpha1/promotions"
        )
        # They share the clock: stop both before the cleanups look at it.
        self.successResultOf(promotions.stop())
        self.successResultOf(warehouses.stop())


# Lifecycle ------------------------------------------------------------------


class LifecycleTests(ReflectorTestCase):
    def test_stop_while_watching(self) -> None:
        h = self.started()
        d = h.stop()
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(h.api.streams[0].lost)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.restarts, [])

    def test_stop_while_listing(self) -> None:
        h = self.harness()
        h.api.replies.append(reply_hang)
        h.start()
        self.successResultOf(h.stop())
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.advance(100)
        self.assertEqual(len(h.api.seen), 1)

    def test_stop_during_backoff(self) -> None:
        h = self.started()
        h.api.current.drop()
        h.pump()
        self.assertEqual(len(h.clock.getDelayedCalls()), 1)
        self.successResultOf(h.stop())
        self.assertEqual(h.clock.getDelayedCalls(), [])
        seen = len(h.api.seen)
        h.advance(100)
        self.assertEqual(len(h.api.seen), seen)

    def test_stop_before_start(self) -> None:
        h = self.harness()
        self.successResultOf(h.reflector.stopService())

    def test_synced_stays_true_across_relists(self) -> None:
        h = self.started()
        h.api.current.event("ERROR", status(410, "Expired", "too old"))
        h.api.replies.append(reply_json(500, status(500, "InternalError", "x")))
        h.pump()
        self.assertTrue(h.reflector.synced)
        self.successResultOf(h.reflector.when_synced())

    def test_restart_after_stop(self) -> None:
        h = self.started()
        self.successResultOf(h.stop())
        h.start()
        self.assertEqual(h.api.requests()[-1], "watch")
        self.assertFalse(h.api.streams[-1].ended)


# Against the project's API stand-in ------------------------------------------

try:
    from bbreceiver.testing import fakekube as _fakekube
except ImportError:  # pragma: no cover - written concurrently
    _fakekube = None  # type: ignore[assignment]


class AgainstFakeKubeTests(SynchronousTestCase):
    """
    The same reflector and client against bbreceiver.testing.fakekube, whose
    resource versions, history, bookmarks and 410s follow the real server.
    """

    if _fakekube is None:
        skip = "bbreceiver.testing.fakekube is not available"

    def setUp(self) -> None:
        assert _fakekube is not None
        self.clock = Clock()
        self.fake = _fakekube.FakeKube(self.clock, bookmark_interval=60.0)
        self.stub = StubTreq(self.fake.resource())
        self.client = KubeClient(self.stub, BASE, clock=self.clock, random=lambda: 0.0)
        self.sink = RecordingSink()
        self.restarts: list[str] = []
        self.reflector = Reflector(
            self.client,
            WAREHOUSES,
            None,
            self.sink,
            self.clock,
            watch_timeout_seconds=300,
            inactivity_seconds=90,
            backoff_max_seconds=5,
            page_size=2,
            random=lambda: 0.0,
            on_restart=self.restarts.append,
        )
        for i in range(3):
            self.create(f"wh-{i}")

    def tearDown(self) -> None:
        if self.reflector.running:
            d = self.reflector.stopService()
            self.pump()
            self.successResultOf(d)
        self.pump()
        self.fake.close_watches()
        self.pump()

    def create(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.fake.create(
            {
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "kind": "Warehouse",
                "metadata": {"name": name, "namespace": "demo"},
                "spec": {},
            }
        )
        return result

    def pump(self) -> None:
        pump(self.stub, 10)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pump()

    def start(self) -> None:
        self.reflector.startService()
        self.pump()
        self.assertTrue(self.reflector.synced)

    def test_list_watch_and_bookmarks(self) -> None:
        self.start()
        self.assertEqual(sorted(self.sink.index), [f"demo/wh-{i}" for i in range(3)])
        self.create("new")
        self.pump()
        self.assertIn("demo/new", self.sink.index)
        self.fake.delete("warehouses", "demo", "wh-0")
        self.pump()
        self.assertNotIn("demo/wh-0", self.sink.index)
        rv = self.reflector.resource_version
        self.create("unrelated-bump")  # the bookmark will carry a newer RV
        self.pump()
        self.advance(60)
        self.assertEqual(
            self.reflector.resource_version, str(self.fake.resource_version)
        )
        self.assertNotEqual(self.reflector.resource_version, rv)
        self.assertEqual(self.restarts, [])
        pages = [r for r in self.fake.requests if r.method == "GET" and not r.is_watch]
        self.assertEqual(len(pages), 2)

    def test_compaction_while_disconnected_relists_and_finds_deletes(self) -> None:
        self.start()
        self.fake.drop_watches()
        self.fake.delete("warehouses", "demo", "wh-1")
        self.fake.compact()
        self.pump()
        self.assertIn("demo/wh-1", self.sink.index)  # the delete was missed
        self.advance(0.5)  # reconnect → ERROR 410 → relist
        self.advance(1.0)
        self.assertEqual(self.restarts, ["error", "expired"])
        self.assertNotIn("demo/wh-1", self.sink.index)
        self.assertEqual(
            self.reflector.resource_version, str(self.fake.resource_version)
        )
        self.create("after")
        self.pump()
        self.assertIn("demo/after", self.sink.index)

    def test_server_timeout_rewatches(self) -> None:
        self.start()
        for _ in range(10):  # bookmarks every 60 s keep it alive meanwhile
            self.advance(30)
        self.assertEqual(self.restarts, ["closed"])
        self.create("later")
        self.pump()
        self.assertIn("demo/later", self.sink.index)
        self.assertEqual(len([r for r in self.fake.requests if not r.is_watch]), 2)

    def test_throttled_watch_and_stall(self) -> None:
        self.start()
        self.fake.fail_next(code=429, retry_after=3, path="watch=true")
        self.fake.drop_watches()
        self.pump()
        self.advance(0.5)
        self.assertEqual(self.restarts, ["error", "error"])
        self.assertEqual(self.fake.watches, [])
        self.advance(3)
        self.assertEqual(len(self.fake.watches), 1)
        self.fake.stall_watches()
        self.advance(90)
        self.assertEqual(self.restarts, ["error", "error", "stalled"])
        self.advance(0.5)
        self.create("resumed")
        self.pump()
        self.assertIn("demo/resumed", self.sink.index)

    def test_merge_patch(self) -> None:
        self.start()
        patch = b'{"metadata":{"annotations":{"kargo.akuity.io/refresh":"t1"}}}'
        d = Deferred.fromCoroutine(
            self.client.merge_patch(WAREHOUSES, "demo", "wh-2", patch)
        )
        self.pump()
        patched = self.successResultOf(d)
        self.assertEqual(
            patched["metadata"]["annotations"], {"kargo.akuity.io/refresh": "t1"}
        )
        self.assertEqual(
            self.sink.index["demo/wh-2"]["metadata"]["annotations"],
            {"kargo.akuity.io/refresh": "t1"},
        )
        upserts = len([c for c in self.sink.calls if c[0] == "upsert"])
        # The same token again: a no-op, no new resource version, no event.
        d = Deferred.fromCoroutine(
            self.client.merge_patch(WAREHOUSES, "demo", "wh-2", patch)
        )
        self.pump()
        self.successResultOf(d)
        self.assertEqual(len([c for c in self.sink.calls if c[0] == "upsert"]), upserts)
        request = self.fake.requests[-1]
        self.assertEqual(request.method, "PATCH")
        self.assertEqual(request.body, patch)
        d = Deferred.fromCoroutine(
            self.client.merge_patch(WAREHOUSES, "demo", "missing", patch)
        )
        self.pump()
        self.failureResultOf(d, NotFound)


class StreamingSink(RecordingSink):
    """A sink that takes lists page by page (it has ``sweep``)."""

    def upsert(self, obj: dict[str, Any]) -> tuple[str, str]:  # type: ignore[override]
        super().upsert(obj)
        namespace, name = key(obj).split("/", 1)
        return namespace, name

    def sweep(self, namespace: str | None, listed: set[tuple[str, str]]) -> None:
        self.calls.append(("sweep", (namespace, sorted("/".join(k) for k in listed))))
        self.index = {
            k: o for k, o in self.index.items() if tuple(k.split("/", 1)) in listed
        }


class StreamingListTests(ReflectorTestCase):
    def test_pages_upserted_as_they_come_then_swept(self) -> None:
        api = FakeKube()
        for i in range(3):
            api.put(f"wh-{i}")
        h = self.harness(api)
        h.reflector.sink = h.sink = StreamingSink()
        h.sink.index["demo/gone"] = {"metadata": {"name": "gone"}}
        h.start()
        self.assertEqual(
            h.sink.calls,
            [("upsert", f"demo/wh-{i}") for i in range(3)]
            + [("sweep", (None, [f"demo/wh-{i}" for i in range(3)]))],
        )
        self.assertEqual(sorted(h.sink.index), [f"demo/wh-{i}" for i in range(3)])
        self.assertTrue(h.reflector.synced)

    def test_refused_object_is_kept_not_swept(self) -> None:
        """
        An object the sink refuses during a list is logged, the list goes
        on, and what the index held of it stays: it was listed.
        """
        api = FakeKube()
        for name in ("bad", "good"):
            api.put(name)
        h = self.harness(api)
        h.reflector.sink = h.sink = StreamingSink()
        h.sink.index["demo/bad"] = {"metadata": {"name": "bad"}}
        h.sink.fail_on = "demo/bad"
        h.start()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(h.sink.calls[-1],
                         ("sweep", (None, ["demo/bad", "demo/good"])))
        self.assertEqual(sorted(h.sink.index), ["demo/bad", "demo/good"])
        self.assertTrue(h.reflector.synced)

    def test_no_collection_while_listing(self) -> None:
        import gc

        api = FakeKube()
        api.put("wh-0")
        h = self.harness(api)
        seen: list[bool] = []
        h.reflector.sink = h.sink = StreamingSink()
        original = h.sink.upsert

        def upsert(obj: dict[str, Any]) -> tuple[str, str]:
            seen.append(gc.isenabled())
            return original(obj)

        h.sink.upsert = upsert  # type: ignore[method-assign]
        self.assertTrue(gc.isenabled())
        h.start()
        self.assertEqual(seen, [False])
        self.assertTrue(gc.isenabled())
