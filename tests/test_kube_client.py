"""
Tests for bbreceiver.kube.client: paths, the one request path (auth header,
status → exception, retries, timeouts), PATCH, and watch stream framing.

HTTP goes through ``treq.testing.StubTreq`` around small scripted
``twisted.web`` resources; time through ``Clock``.  The helpers at the top
(``Scripted``, ``Stream``, ``reply_*``) are shared with the reflector tests.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from bbreceiver.kube.client import (
    CLUSTERCONFIGS,
    PROMOTIONS,
    SECRETS,
    WAREHOUSES,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeClient,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    WatchDecodeError,
    WatchStalled,
    WatchStream,
    error_from_response,
    error_from_status,
    is_retryable,
    make_http_client,
)

BASE = "http://kube.test"

# --------------------------------------------------------------------------
# Shared helpers


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


Reply = Callable[[Request], Any]


def status(code: int, reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    """A Kubernetes Status body."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or reason,
        "reason": reason,
        "code": code,
        **extra,
    }


def reply_json(code: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    def reply(request: Request) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        for k, v in (headers or {}).items():
            request.setHeader(k.encode(), v.encode())
        return json.dumps(obj).encode()

    return reply


def reply_text(code: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    def reply(request: Request) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        for k, v in (headers or {}).items():
            request.setHeader(k.encode(), v.encode())
        return text.encode()

    return reply


def reply_hang(request: Request) -> object:
    """Never answer (not even headers)."""
    return NOT_DONE_YET


class Stream:
    """
    A watch response the test writes into: headers go out at once, then
    whatever the test sends, until it closes or drops the connection.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.ended = False
        self.lost = False
        request.notifyFinish().addBoth(self._finished)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")

    def _finished(self, result: object) -> None:
        self.ended = True
        self.lost = isinstance(result, Failure)

    def raw(self, data: bytes) -> None:
        self.request.write(data)

    def event(self, type_: str, obj: dict[str, Any]) -> None:
        self.raw(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

    def close(self) -> None:
        """End the response cleanly (the zero-length chunk)."""
        self.request.finish()

    def drop(self) -> None:
        """Cut the connection mid-stream."""
        transport: Any = self.request.channel.transport
        transport.loseConnection()


class Scripted(Resource):
    """
    Answers requests with the replies queued in ``replies``, in order, and
    records what it saw; ``stream()`` queues a watch stream (kept in
    ``streams``).
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.replies: deque[Reply] = deque()
        self.streams: list[Stream] = []

    def render(self, request: Request) -> Any:
        query = {k.decode(): v[-1].decode() for k, v in (request.args or {}).items()}
        self.seen.append(
            Seen(
                request.method.decode(),
                request.path.decode(),
                query,
                request.requestHeaders.copy(),
                request.content.read() if request.content else b"",
            )
        )
        if not self.replies:
            return self.default(request)
        return self.replies.popleft()(request)

    def default(self, request: Request) -> Any:
        """What to answer when nothing is queued."""
        return reply_json(500, status(500, "InternalError", "nothing scripted"))(
            request
        )

    def stream(self) -> None:
        """Queue a watch stream."""
        self.replies.append(self.open_stream)

    def open_stream(self, request: Request) -> object:
        self.streams.append(Stream(request))
        return NOT_DONE_YET


def pump(stub: StubTreq, times: int = 6) -> None:
    """Let requests and responses cross the in-memory connections."""
    for _ in range(times):
        stub.flush()


class FakeCredentials:
    """Tokens handed out in order; each 401 moves to the next if any."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.rejected: list[str | None] = []

    def token(self) -> str | None:
        return self.tokens[0] if self.tokens else None

    def token_rejected(self, token: str | None) -> bool:
        self.rejected.append(token)
        if len(self.tokens) > 1:
            self.tokens.pop(0)
            return True
        return False


class FailingHTTP:
    """Fails the first requests with the given errors, then delegates."""

    def __init__(self, errors: list[BaseException], then: Any) -> None:
        self.errors = errors
        self.then = then
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        self.calls += 1
        if self.errors:
            return fail(self.errors.pop(0))
        result: Deferred[Any] = self.then.request(method, url, **kwargs)
        return result


def make(
    api: Scripted | None = None, **kwargs: Any
) -> tuple[Scripted, StubTreq, Clock, KubeClient]:
    api = api or Scripted()
    stub = StubTreq(api)
    clock = Clock()
    kwargs.setdefault("random", lambda: 0.0)
    client = KubeClient(stub, BASE, clock=clock, **kwargs)
    return api, stub, clock, client


def run(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


WH = {
    "apiVersion": "kargo.akuity.io/v1alpha1",
    "kind": "Warehouse",
    "metadata": {"name": "wh-1", "namespace": "demo", "resourceVersion": "7"},
}


# --------------------------------------------------------------------------
# Resource types and errors


class ResourceTypeTests(SynchronousTestCase):
    def test_paths(self) -> None:
        self.assertEqual(
            WAREHOUSES.collection_path(None),
            "/apis/kargo.akuity.io/v1alpha1/warehouses",
        )
        self.assertEqual(
            PROMOTIONS.object_path("demo", "p-1"),
            "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/promotions/p-1",
        )
        self.assertEqual(SECRETS.collection_path("ns"), "/api/v1/namespaces/ns/secrets")
        self.assertEqual(SECRETS.api_version, "v1")
        self.assertEqual(WAREHOUSES.name, "warehouses.kargo.akuity.io")
        self.assertEqual(
            CLUSTERCONFIGS.object_path(None, "cluster"),
            "/apis/kargo.akuity.io/v1alpha1/clusterconfigs/cluster",
        )

    def test_scope_checked_and_segments_quoted(self) -> None:
        self.assertRaises(ValueError, CLUSTERCONFIGS.collection_path, "ns")
        self.assertRaises(ValueError, WAREHOUSES.object_path, None, "x")
        self.assertRaises(ValueError, WAREHOUSES.object_path, "ns", "..")
        self.assertEqual(
            WAREHOUSES.object_path("a b", "x/y"),
            "/apis/kargo.akuity.io/v1alpha1/namespaces/a%20b/warehouses/x%2Fy",
        )


class ErrorMappingTests(SynchronousTestCase):
    def test_status_bodies(self) -> None:
        cases = [
            (401, "Unauthorized", Unauthorized),
            (403, "Forbidden", Forbidden),
            (404, "NotFound", NotFound),
            (409, "Conflict", Conflict),
            (410, "Expired", Gone),
            (410, "Gone", Gone),
            (422, "Invalid", Invalid),
            (429, "TooManyRequests", TooManyRequests),
            (500, "InternalError", ServerError),
            (503, "ServiceUnavailable", ServerError),
        ]
        for code, reason, cls in cases:
            body = json.dumps(status(code, reason, "msg " + reason)).encode()
            error = error_from_response(code, "Phrase", body)
            self.assertIs(type(error), cls, (code, reason))
            self.assertEqual((error.code, error.reason), (code, reason))
            self.assertEqual(error.message, "msg " + reason)

    def test_plain_text_429_with_retry_after(self) -> None:
        error = error_from_response(
            429,
            "Too Many Requests",
            b"Too many requests, please try again later.\n",
            "7",
        )
        self.assertIsInstance(error, TooManyRequests)
        self.assertEqual(error.retry_after, 7.0)
        self.assertEqual(error.reason, "Too Many Requests")
        self.assertEqual(error.message, "Too many requests, please try again later.")
        self.assertIsNone(error.status)
        self.assertTrue(is_retryable(error))

    def test_retry_after_from_status_details(self) -> None:
        error = error_from_status(
            status(429, "TooManyRequests", details={"retryAfterSeconds": 2})
        )
        self.assertEqual(error.retry_after, 2.0)

    def test_too_large_resource_version(self) -> None:
        body = status(
            504,
            "Timeout",
            "Too large resource version: 200, current: 100",
            details={"causes": [{"reason": "ResourceVersionTooLarge"}]},
        )
        error = error_from_response(504, "Gateway Timeout", json.dumps(body).encode())
        self.assertIsInstance(error, ServerError)
        self.assertTrue(error.resource_version_too_large)

    def test_retryable(self) -> None:
        self.assertTrue(is_retryable(TransportError("x")))
        self.assertTrue(is_retryable(ServerError(502, "x", "y")))
        self.assertFalse(is_retryable(NotFound(404, "NotFound", "y")))
        self.assertFalse(is_retryable(Forbidden(403, "Forbidden", "y")))


# --------------------------------------------------------------------------
# Requests


class RequestTests(SynchronousTestCase):
    def test_bearer_token_and_accept(self) -> None:
        api, stub, clock, client = make(credentials=FakeCredentials("tok-1"))
        api.replies.append(reply_json(200, WH))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.assertEqual(self.successResultOf(d), WH)
        seen = api.seen[0]
        self.assertEqual(
            (seen.method, seen.path),
            ("GET", "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/warehouses/wh-1"),
        )
        self.assertEqual(seen.header("authorization"), "Bearer tok-1")
        self.assertEqual(seen.header("accept"), "application/json")

    def test_no_credentials_no_header(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(reply_json(200, WH))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.successResultOf(d)
        self.assertIsNone(api.seen[0].header("authorization"))

    def test_401_rereads_token_and_retries_once(self) -> None:
        creds = FakeCredentials("old", "new")
        api, stub, clock, client = make(credentials=creds)
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        api.replies.append(reply_json(200, WH))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.successResultOf(d)
        self.assertEqual(
            [s.header("authorization") for s in api.seen], ["Bearer old", "Bearer new"]
        )
        self.assertEqual(creds.rejected, ["old"])

    def test_401_twice_raises(self) -> None:
        creds = FakeCredentials("old", "new", "newer")
        api, stub, clock, client = make(credentials=creds)
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.failureResultOf(d, Unauthorized)
        self.assertEqual(len(api.seen), 2)

    def test_401_with_unchanged_token_not_retried(self) -> None:
        api, stub, clock, client = make(credentials=FakeCredentials("only"))
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.failureResultOf(d, Unauthorized)
        self.assertEqual(len(api.seen), 1)

    def test_list_query(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(reply_json(200, {"metadata": {"resourceVersion": "5"}}))
        token = "eyJ2Ijo+/ab==+c"
        d = run(
            client.list_page(
                WAREHOUSES,
                None,
                limit=500,
                continue_=token,
                resource_version="12",
                resource_version_match="NotOlderThan",
                label_selector="a=b,c!=d",
                field_selector="metadata.name=wh-1",
            )
        )
        pump(stub)
        self.successResultOf(d)
        self.assertEqual(
            api.seen[0].query,
            {
                "limit": "500",
                "continue": token,
                "resourceVersion": "12",
                "resourceVersionMatch": "NotOlderThan",
                "labelSelector": "a=b,c!=d",
                "fieldSelector": "metadata.name=wh-1",
            },
        )
        self.assertEqual(api.seen[0].path, "/apis/kargo.akuity.io/v1alpha1/warehouses")

    def test_list_retries_429_honouring_retry_after(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(
            reply_text(
                429, "Too many requests, please try again later.", {"Retry-After": "3"}
            )
        )
        api.replies.append(reply_json(200, {"metadata": {"resourceVersion": "5"}}))
        d = run(client.list_page(WAREHOUSES, "demo", limit=10))
        pump(stub)
        self.assertNoResult(d)
        clock.advance(2.9)
        pump(stub)
        self.assertEqual(len(api.seen), 1)
        clock.advance(0.1)
        pump(stub)
        self.assertEqual(self.successResultOf(d)["metadata"]["resourceVersion"], "5")
        self.assertEqual(len(api.seen), 2)

    def test_retry_after_capped(self) -> None:
        api, stub, clock, client = make(retry_after_cap=10.0)
        api.replies.append(reply_text(429, "slow down", {"Retry-After": "3600"}))
        api.replies.append(reply_json(200, WH))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        clock.advance(10)
        pump(stub)
        self.successResultOf(d)

    def test_5xx_retried_with_backoff_then_gives_up(self) -> None:
        api, stub, clock, client = make(max_attempts=3)
        for _ in range(3):
            api.replies.append(reply_json(503, status(503, "ServiceUnavailable")))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.assertEqual(len(api.seen), 1)
        # random() == 0: half the nominal 0.5 s, then half of 1 s.
        clock.advance(0.25)
        pump(stub)
        self.assertEqual(len(api.seen), 2)
        clock.advance(0.49)
        pump(stub)
        self.assertEqual(len(api.seen), 2)
        clock.advance(0.01)
        pump(stub)
        self.failureResultOf(d, ServerError)
        self.assertEqual(len(api.seen), 3)

    def test_transport_errors_retried(self) -> None:
        api = Scripted()
        api.replies.append(reply_json(200, WH))
        stub = StubTreq(api)
        flaky = FailingHTTP([ConnectionRefusedError(), ConnectionRefusedError()], stub)
        clock = Clock()
        client = KubeClient(flaky, BASE, clock=clock, random=lambda: 0.0)
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        clock.advance(0.25)
        clock.advance(0.5)
        pump(stub)
        self.assertEqual(self.successResultOf(d), WH)
        self.assertEqual(flaky.calls, 3)

    def test_client_errors_not_retried(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(reply_json(404, status(404, "NotFound")))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.failureResultOf(d, NotFound)
        self.assertEqual(len(api.seen), 1)

    def test_too_large_resource_version_not_retried(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(
            reply_json(
                504,
                status(
                    504,
                    "Timeout",
                    "Too large resource version: 9, current: 3",
                    details={"causes": [{"reason": "ResourceVersionTooLarge"}]},
                ),
            )
        )
        d = run(client.list_page(WAREHOUSES, None, resource_version="9"))
        pump(stub)
        self.failureResultOf(d, ServerError)
        self.assertEqual(len(api.seen), 1)

    def test_headers_timeout(self) -> None:
        api, stub, clock, client = make(request_timeout=5.0, max_attempts=1)
        api.replies.append(reply_hang)
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.assertNoResult(d)
        clock.advance(5)
        pump(stub)
        f = self.failureResultOf(d, TransportError)
        self.assertIn("timed out", str(f.value))

    def test_cancel_is_cancel_not_transport_error(self) -> None:
        """
        A cancelled request must not look retryable: a stopping service would
        otherwise keep retrying.
        """
        api, stub, clock, client = make()
        api.replies.append(reply_hang)
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        d.cancel()
        pump(stub)
        self.failureResultOf(d, CancelledError)
        self.assertEqual(len(api.seen), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_non_json_success_is_transport_error(self) -> None:
        api, stub, clock, client = make(max_attempts=1)
        api.replies.append(reply_text(200, "<html>proxy</html>"))
        d = run(client.get(WAREHOUSES, "demo", "wh-1"))
        pump(stub)
        self.failureResultOf(d, TransportError)


class MergePatchTests(SynchronousTestCase):
    PATCH = (
        b'{"metadata":{"annotations":'
        b'{"kargo.akuity.io/refresh":"2026-11-26T23:59:59.123456Z"}}}'
    )

    def test_patch_request(self) -> None:
        api, stub, clock, client = make(credentials=FakeCredentials("t"))
        api.replies.append(reply_json(200, WH))
        d = run(client.merge_patch(WAREHOUSES, "demo", "wh-1", self.PATCH))
        pump(stub)
        self.assertEqual(self.successResultOf(d), WH)
        seen = api.seen[0]
        self.assertEqual(seen.method, "PATCH")
        self.assertEqual(
            seen.path, "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/warehouses/wh-1"
        )
        self.assertEqual(seen.header("content-type"), "application/merge-patch+json")
        self.assertEqual(seen.body, self.PATCH)
        self.assertEqual(seen.query, {"fieldManager": "bbreceiver"})

    def test_one_attempt_on_429(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(reply_text(429, "Too many requests", {"Retry-After": "4"}))
        d = run(client.merge_patch(PROMOTIONS, "demo", "p", self.PATCH))
        pump(stub)
        error = self.failureResultOf(d, TooManyRequests).value
        self.assertEqual(error.retry_after, 4.0)
        self.assertEqual(len(api.seen), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_one_attempt_on_5xx_and_404(self) -> None:
        for code, reason, cls in [
            (500, "InternalError", ServerError),
            (404, "NotFound", NotFound),
            (409, "Conflict", Conflict),
        ]:
            api, stub, clock, client = make()
            api.replies.append(reply_json(code, status(code, reason)))
            d = run(client.merge_patch(WAREHOUSES, "demo", "wh-1", self.PATCH))
            pump(stub)
            self.failureResultOf(d, cls)
            self.assertEqual(len(api.seen), 1)

    def test_response_never_received_is_transport_error(self) -> None:
        """
        Twisted does not re-send a PATCH on a stale pooled connection: the
        caller sees a retryable TransportError.
        """
        stub = StubTreq(Scripted())
        flaky = FailingHTTP(
            [ResponseNeverReceived([Failure(ConnectionRefusedError())])], stub
        )
        client = KubeClient(flaky, BASE, clock=Clock())
        d = run(client.merge_patch(WAREHOUSES, "demo", "wh-1", self.PATCH))
        error = self.failureResultOf(d, TransportError).value
        self.assertTrue(is_retryable(error))
        self.assertEqual(flaky.calls, 1)

    def test_401_rotation_resends_patch(self) -> None:
        api, stub, clock, client = make(credentials=FakeCredentials("a", "b"))
        api.replies.append(reply_json(401, status(401, "Unauthorized")))
        api.replies.append(reply_json(200, WH))
        d = run(client.merge_patch(WAREHOUSES, "demo", "wh-1", self.PATCH))
        pump(stub)
        self.successResultOf(d)
        self.assertEqual([s.body for s in api.seen], [self.PATCH, self.PATCH])


# --------------------------------------------------------------------------
# Watch streams


class WatchTests(SynchronousTestCase):
    def open(
        self, inactivity: float = 30.0, stop_on: str | None = None
    ) -> tuple[Scripted, StubTreq, Clock, WatchStream, list[dict[str, Any]]]:
        api, stub, clock, client = make()
        api.stream()
        events: list[dict[str, Any]] = []

        def on_event(event: dict[str, Any]) -> bool:
            events.append(event)
            return event.get("type") != stop_on

        d = run(
            client.watch(
                WAREHOUSES,
                "demo",
                resource_version="41",
                timeout_seconds=300,
                field_selector="metadata.name=wh-1",
                on_event=on_event,
                inactivity_seconds=inactivity,
            )
        )
        pump(stub)
        stream = self.successResultOf(d)
        return api, stub, clock, stream, events

    def test_query(self) -> None:
        api, stub, clock, stream, events = self.open()
        self.assertEqual(
            api.seen[0].query,
            {
                "watch": "true",
                "resourceVersion": "41",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
                "fieldSelector": "metadata.name=wh-1",
            },
        )

    def test_event_split_over_chunks(self) -> None:
        api, stub, clock, stream, events = self.open()
        line = json.dumps({"type": "ADDED", "object": WH}).encode() + b"\n"
        for i in range(0, len(line), 7):
            api.streams[0].raw(line[i : i + 7])
            pump(stub)
            if i + 7 < len(line):
                self.assertEqual(events, [])
        self.assertEqual(events, [{"type": "ADDED", "object": WH}])
        self.assertEqual(stream.events, 1)

    def test_several_events_per_chunk_and_blank_lines(self) -> None:
        api, stub, clock, stream, events = self.open()
        lines = [
            json.dumps({"type": t, "object": WH, "extra": 1}).encode()
            for t in ("ADDED", "MODIFIED", "SOMETHING_NEW")
        ]
        api.streams[0].raw(b"\n" + lines[0] + b"\n\r\n" + lines[1] + b"\n" + lines[2])
        pump(stub)
        self.assertEqual([e["type"] for e in events], ["ADDED", "MODIFIED"])
        api.streams[0].raw(b"\n")
        pump(stub)
        self.assertEqual(
            [e["type"] for e in events], ["ADDED", "MODIFIED", "SOMETHING_NEW"]
        )

    def test_clean_close(self) -> None:
        api, stub, clock, stream, events = self.open()
        api.streams[0].event("BOOKMARK", {"metadata": {"resourceVersion": "50"}})
        # A final event without its newline is still delivered.
        api.streams[0].raw(json.dumps({"type": "DELETED", "object": WH}).encode())
        api.streams[0].close()
        pump(stub)
        self.assertIsNone(self.successResultOf(stream.done))
        self.assertEqual([e["type"] for e in events], ["BOOKMARK", "DELETED"])
        self.assertFalse(stream.stopped)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_connection_lost_midstream(self) -> None:
        api, stub, clock, stream, events = self.open()
        api.streams[0].event("ADDED", WH)
        pump(stub)
        api.streams[0].drop()
        pump(stub)
        f = self.failureResultOf(stream.done, TransportError)
        self.assertNotIsInstance(f.value, WatchStalled)

    def test_garbage_aborts(self) -> None:
        api, stub, clock, stream, events = self.open()
        api.streams[0].raw(b"<html>\n")
        pump(stub)
        self.failureResultOf(stream.done, WatchDecodeError)
        self.assertTrue(api.streams[0].lost)

    def test_inactivity_aborts_transport(self) -> None:
        api, stub, clock, stream, events = self.open(inactivity=10.0)
        clock.advance(9)
        api.streams[0].raw(b"\n")  # any byte counts
        pump(stub)
        clock.advance(9)
        self.assertNoResult(stream.done)
        clock.advance(1)
        self.failureResultOf(stream.done, WatchStalled)
        pump(stub)
        self.assertTrue(api.streams[0].lost, "the connection was not closed")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_consumer_stops_stream(self) -> None:
        api, stub, clock, stream, events = self.open(stop_on="ERROR")
        api.streams[0].event(
            "ERROR", status(410, "Expired", "too old resource version")
        )
        api.streams[0].event("ADDED", WH)
        pump(stub)
        self.assertIsNone(self.successResultOf(stream.done))
        self.assertTrue(stream.stopped)
        self.assertEqual([e["type"] for e in events], ["ERROR"])
        self.assertTrue(api.streams[0].lost)

    def test_cancel(self) -> None:
        api, stub, clock, stream, events = self.open()
        stream.done.cancel()
        pump(stub)
        self.failureResultOf(stream.done, CancelledError)
        self.assertTrue(api.streams[0].lost)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_watch_refused(self) -> None:
        api, stub, clock, client = make()
        api.replies.append(reply_json(410, status(410, "Expired", "too old")))
        d = run(
            client.watch(
                WAREHOUSES,
                None,
                resource_version="1",
                timeout_seconds=5,
                on_event=lambda e: None,
                inactivity_seconds=5,
            )
        )
        pump(stub)
        self.failureResultOf(d, Gone)


class MakeHTTPClientTests(SynchronousTestCase):
    def test_pool_settings(self) -> None:
        http = make_http_client(MemoryReactorClock())
        pool = http._agent._pool  # type: ignore[attr-defined]
        self.assertTrue(pool.persistent)
        self.assertEqual(pool.cachedConnectionTimeout, 60)
        self.assertGreaterEqual(pool.maxPersistentPerHost, 32)

    def test_kube_error_str(self) -> None:
        self.assertEqual(str(KubeError(404, "NotFound", "gone")), "404 NotFound: gone")
