"""
A stand-in for the Kubernetes API server, for the embedded default and for
tests: Kargo Warehouses, Promotions, Stages, ProjectConfigs, ClusterConfigs,
Secrets and Namespaces behind the real REST protocol (discovery, list with
pagination, watch with bookmarks and 410s, get, create, update, merge and
JSON patch, delete), served by twisted.web.

It exists because no real apiserver can run on our machines, and a client
is only as right as the server it was tested against: the rules it follows
(resource versions, history compaction, watch-list, no-op patches, error
C{Status} bodies) are the real server's, checked against real C{kubectl} in
C{tests/test_kubectl_conformance.py}.  All time goes through the injected
L{IReactorTime}, so tests drive bookmarks, timeouts and latency with a
C{Clock}.

Public API
==========

Serving:

  - C{FakeKube(reactor, *, token=None, resources=DEFAULT_RESOURCES,
    initial_resource_version=100, history_capacity=1000,
    bookmark_interval=60.0, watch_timeout=(1800.0, 3600.0), watch_list=True,
    too_large_wait=3.0, server_version="v1.36.0", rng=None)}
  - C{fake.resource() -> IResource}: for C{treq.testing.StubTreq}.
  - C{fake.site(idle_timeout=90.0) -> Site}: for any server endpoint.
  - C{fake.shutdown() -> Deferred}: after C{stopListening()}, close the
    watches and drop the connections of those sites; fires when all are
    gone (a clean reactor for trial, a prompt stop for the daemon).
  - C{await serve(reactor, "tcp:0:interface=127.0.0.1", fake) ->
    IListeningPort}
  - C{python -m bbreceiver.testing.fakekube --listen ENDPOINT
    [--objects FILE]... [--token T] [--bookmark-interval S]} prints
    C{listening on HOST:PORT} and serves until killed.

Objects (Python-level writes behave like API writes: new RV, watch events;
but they may set C{status}, and an update needs no C{resourceVersion}):

  - C{fake.load_yaml(text_or_bytes_or_PathLike) -> list[dict]}:
    multi-document YAML or C{kind: List}; creates or replaces each object.
    C{fake.load_yaml_file(path)} does the same for a file name.
  - C{fake.create(obj)}, C{fake.update(obj)}, C{fake.upsert(obj)} -> stored
    object.
  - C{fake.patch(resource, namespace, name, patch, patch_type="merge")} (or
    C{"json"}, or a content type) -> stored object.
  - C{fake.delete(resource, namespace, name)} -> last state.
  - C{fake.get(resource, namespace, name)} -> copy, or raises L{KubeError}
    (404).  C{fake.list_objects(resource, namespace=None)} -> list of copies.
  - C{resource} is a plural, singular, kind or short name
    (C{"warehouses"}, C{"Promotion"}, C{"promo"}); C{namespace} is C{None}
    for cluster-scoped types.
  - C{fake.resource_version} (current RV, int);
    C{fake.oldest_resource_version} (lowest RV a watch can resume from);
    C{fake.compact()} forgets all history (any older RV now gets 410) and
    returns the current RV.  C{fake.resource_type(name) -> ResourceType}.

Authentication: C{fake.token} (settable at any time; C{None} = open).

Faults and hooks:

  - C{fake.fail_next(count=1, code=500, *, method=None, path=None,
    retry_after=None, message=None, in_stream=False) -> Fault}: the next
    C{count} matching requests (method; substring of the percent-decoded
    path and query) fail.
    429 is plain text with C{Retry-After} like the APF filter; other codes
    are C{Status} JSON; C{in_stream=True} (which matches only watches)
    answers with 200 and one C{ERROR} event carrying the Status.
  - C{fake.abort_next(count=1, *, method=None, path=None) -> Fault}: drop
    the connection without an answer.
  - C{fake.clear_faults()}; C{fake.latency} (seconds before each request
    is handled).
  - C{fake.watches} (open L{WatchStream}s); C{fake.next_watch()} ->
    Deferred firing with the next watch once its initial events are out;
    C{fake.drop_watches()}, C{fake.close_watches()}, C{fake.stall_watches()}
    (each takes an optional resource name; returns how many).
  - C{fake.requests}: the L{RecordedRequest} log (method, path, query,
    headers, body, code); C{fake.requests_matching(method=None,
    path=None)}; C{fake.clear_requests()}.

Where it is simpler than a cluster, on purpose: one RV and one history for
all types together (like etcd; the watch cache keeps one per type);
bookmarks are sent on schedule even when nothing was written (a real
cluster's RV always moves); namespaces come into being with their first
object and deleting one leaves its contents; no server-side apply, no
Table output, no aggregated discovery, no admission or RBAC (inject a 403
with C{fail_next}); C{managedFields} treat lists as leaves.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import os
import random
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IReactorCore,
    IReactorTime,
)
from twisted.internet.task import deferLater, react
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from twisted.web.http import Request as HTTPRequest
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Site

from ._kubeapi import (
    CLUSTERCONFIGS,
    DEFAULT_RESOURCES,
    INCONSISTENT_CONTINUE,
    JSON,
    JSON_PATCH,
    LIST_TOO_OLD,
    MERGE_PATCH,
    NAMESPACES,
    PROJECTCONFIGS,
    PROMOTIONS,
    SECRETS,
    STAGES,
    WAREHOUSES,
    KubeError,
    ResourceType,
    api_group,
    api_resource_list,
    bad_request,
    expired,
    generic_error,
    group_versions,
    list_options_invalid,
    method_not_allowed,
    path_not_found,
    too_large_resource_version,
    too_old_watch,
    unauthorized,
    validate_list_options,
    version_info,
)
from ._kubeselectors import (
    FieldSelector,
    FieldTerm,
    LabelSelector,
    SelectorError,
    object_fields,
    parse_field_selector,
    parse_label_selector,
)
from ._kubestore import Event, Key, Store, sort_key

__all__ = [
    "CLUSTERCONFIGS",
    "DEFAULT_RESOURCES",
    "NAMESPACES",
    "PROJECTCONFIGS",
    "PROMOTIONS",
    "SECRETS",
    "STAGES",
    "WAREHOUSES",
    "FakeKube",
    "Fault",
    "KubeError",
    "RecordedRequest",
    "ResourceType",
    "WatchStream",
    "main",
    "parse_yaml_objects",
    "serve",
]

log = Logger()

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
_TOO_MANY_REQUESTS = b"Too many requests, please try again later.\n"


def _parse_bool(value: str | None) -> bool:
    """
    The apiserver's query bool (C{Convert_Slice_string_To_bool}): absent is
    false, and only C{0} and C{false} (any case) are false when present, so
    a bare C{?watch} or C{watch=1} is a watch.
    """
    if value is None:
        return False
    return not (value == "0" or value.lower() == "false")


def _parse_int(value: str | None) -> int:
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except ValueError:
        raise bad_request(
            f'strconv.ParseInt: parsing "{value}": invalid syntax'
        ) from None


def _parse_rv(value: str) -> int:
    try:
        rv = int(value)
        if rv < 0:
            raise ValueError(value)
    except ValueError:
        raise bad_request(
            f'invalid resource version: resourceVersion: Invalid value: "{value}": '
            f'strconv.ParseUint: parsing "{value}": invalid syntax'
        ) from None
    return rv


def _encode_continue(start: str, resource_version: int) -> str:
    """
    A continue token as etcd3's storage layer makes it: unpadded URL-safe
    base64 of C{{"v","rv","start"}}; clients must treat it as opaque.
    """
    raw = json.dumps(
        {"v": "meta.k8s.io/v1", "rv": resource_version, "start": start},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, int]:
    def invalid(why: str) -> KubeError:
        return bad_request(f"invalid continue token: continue key is not valid{why}")

    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error) as e:
        raise invalid(f": {e}") from None
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        raise invalid(": server does not recognize this encoded version")
    rv, start = data.get("rv"), data.get("start")
    if not isinstance(rv, int) or rv == 0:
        raise invalid(
            ": incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        )
    if not isinstance(start, str) or not start:
        raise invalid(": encoded start key empty (version meta.k8s.io/v1)")
    return start, rv


def _dumps(obj: Any) -> bytes:
    # Like Go's json.Encoder.Encode: compact, one trailing newline.
    return (
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        + b"\n"
    )


class _Loader(yaml.SafeLoader):
    """
    YAML as Kubernetes reads it: timestamps stay strings.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml_objects(text: str | bytes) -> list[JSON]:
    """
    The objects in a multi-document YAML text, with C{kind: List} documents
    (what C{kubectl get -o yaml} prints) expanded into their items.
    """
    objects: list[JSON] = []
    for index, doc in enumerate(yaml.load_all(text, Loader=_Loader)):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"YAML document {index} is not a mapping")
        if doc.get("kind") == "List" or (
            str(doc.get("kind", "")).endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            items = doc.get("items") or []
            objects.extend(item for item in items if isinstance(item, dict))
        else:
            objects.append(doc)
    return objects


class _ServerRequest(Protocol):
    """
    The part of C{twisted.web.server.Request} the stand-in uses, typed
    (Twisted leaves those methods unannotated).
    """

    uri: bytes
    method: bytes
    content: IO[bytes] | None
    requestHeaders: Headers
    channel: Any

    def setResponseCode(self, code: int, message: bytes | None = None) -> None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def notifyFinish(self) -> Deferred[None]: ...


@dataclass
class RecordedRequest:
    """
    One request as the stand-in received it.

    @ivar path: the percent-decoded path.
    @ivar query: every query parameter with all its values.
    @ivar headers: request headers by lower-case name (first value).
    @ivar code: the status answered; C{None} while pending or when the
        connection was dropped by L{FakeKube.abort_next}.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    code: int | None = None

    def param(self, name: str) -> str | None:
        """
        The first value of a query parameter, or C{None}.
        """
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """
        The body decoded as JSON.
        """
        return json.loads(self.body)

    @property
    def is_watch(self) -> bool:
        return (
            self.method == "GET"
            and "watch" in self.query
            and _parse_bool(self.param("watch"))
        )


@dataclass
class Fault:
    """
    An injected failure for the next C{remaining} matching requests.
    """

    remaining: int
    code: int
    method: str | None = None
    path: str | None = None
    retry_after: int | None = None
    message: str | None = None
    abort: bool = False
    in_stream: bool = False

    def matches(self, entry: RecordedRequest, target: str) -> bool:
        """
        Whether this fault applies to a request (an C{in_stream} fault
        only to watches).
        """
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == entry.method)
            and (self.path is None or self.path in target)
            and (entry.is_watch or not self.in_stream)
        )


@dataclass
class _Call:
    """
    The state of one request being handled.
    """

    request: _ServerRequest
    entry: RecordedRequest
    target: str
    gone: bool = False
    started: bool = False

    def param(self, name: str) -> str | None:
        return self.entry.param(name)

    def has(self, name: str) -> bool:
        return name in self.entry.query


@dataclass
class _ListOptions:
    resource_version: str
    match: str
    continue_token: str
    limit: int
    send_initial_events: bool | None
    timeout_seconds: int


class WatchStream:
    """
    One open watch.  Events are written as one JSON object plus C{"\\n"}
    each, flushed at once, on a chunked C{application/json} response.

    @ivar resource: the L{ResourceType} watched.
    @ivar namespace: the namespace, or C{None} for all.
    @ivar query: the request's query parameters.
    @ivar state: C{"open"}, C{"stalled"} or C{"closed"}.
    """

    def __init__(
        self,
        fake: FakeKube,
        call: _Call,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        bookmarks: bool,
        timeout: float,
        start_resource_version: int,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.query = call.entry.query
        self.state = "open"
        self._fake = fake
        self._call = call
        self._labels = labels
        self._fields = fields
        self._bookmarks = bookmarks
        self._timeout = timeout
        self._last_rv = start_resource_version
        self._deadline_at = 0.0
        self._deadline: IDelayedCall | None = None
        self._bookmark_call: IDelayedCall | None = None
        self._final_bookmark_done = False

    # -- hooks ----------------------------------------------------------------

    def close(self) -> None:
        """
        End the stream cleanly (the zero-length chunk), as a server-side
        timeout does.
        """
        if self.state == "closed":
            return
        self._shut()
        if not self._call.gone:
            self._call.request.finish()

    def abort(self) -> None:
        """
        Drop the connection mid-stream, as a proxy or a dying server would.
        """
        if self.state == "closed":
            return
        self._shut()
        _abort_transport(self._call.request)

    def stall(self) -> None:
        """
        Keep the connection open but send nothing more, not even the close
        at the deadline: a dead network path, as the client sees it.
        """
        if self.state == "open":
            self._cancel_timers()
            self.state = "stalled"

    # -- internals ----------------------------------------------------------

    def _visible(self, key: Key, obj: Mapping[str, Any]) -> bool:
        if self.namespace is not None and key[0] != self.namespace:
            return False
        labels = obj.get("metadata", {}).get("labels") or {}
        if not self._labels.matches(labels):
            return False
        return self._fields.matches(object_fields(obj, self.resource.selectable_fields))

    def _start(self) -> None:
        request = self._call.request
        request.setResponseCode(200)
        _common_headers(request)
        request.setHeader(b"content-type", b"application/json")
        self._call.entry.code = 200
        self._call.started = True
        request.write(b"")
        clock = self._fake._reactor
        self._deadline_at = clock.seconds() + self._timeout
        self._deadline = clock.callLater(self._timeout, self._expire)
        request.notifyFinish().addBoth(self._finished)

    def _send(self, event_type: str, obj: JSON) -> None:
        if self._call.gone:
            return
        self._call.request.write(_dumps({"type": event_type, "object": obj}))

    def _offer(self, event: Event) -> None:
        if (
            self.state != "open"
            or event.resource != self.resource
            or event.resource_version <= self._last_rv
        ):
            return
        now_visible = event.type != "DELETED" and self._visible(event.key, event.object)
        was_visible = event.previous is not None and self._visible(
            event.key, event.previous
        )
        if now_visible:
            self._send("MODIFIED" if was_visible else "ADDED", event.object)
        elif was_visible:
            if event.type == "DELETED":
                gone = event.object
            else:
                # Left the selector: its previous state, at this event's RV.
                assert event.previous is not None
                gone = dict(event.previous)
                gone["metadata"] = dict(
                    gone["metadata"],
                    resourceVersion=event.object["metadata"]["resourceVersion"],
                )
            self._send("DELETED", gone)
        else:
            return
        self._last_rv = event.resource_version

    def _bookmark(self, *, initial_events_end: bool = False) -> None:
        rv = max(self._fake._store.resource_version, self._last_rv)
        metadata: JSON = {"resourceVersion": str(rv)}
        if initial_events_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        self._send(
            "BOOKMARK",
            {
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version,
                "metadata": metadata,
            },
        )

    def _schedule_bookmark(self) -> None:
        # The cacher's nextBookmarkTime: every interval, and once 2 s
        # before the deadline so a client resumes from a fresh RV.
        if not self._bookmarks or self.state != "open" or self._final_bookmark_done:
            return
        clock = self._fake._reactor
        now = clock.seconds()
        at = now + self._fake.bookmark_interval
        final = False
        if self._deadline_at - 2.0 <= at:
            at = self._deadline_at - 2.0
            final = True
        if at < now:
            return
        self._bookmark_call = clock.callLater(at - now, self._bookmark_tick, final)

    def _bookmark_tick(self, final: bool) -> None:
        self._bookmark_call = None
        self._final_bookmark_done = final
        self._bookmark()
        self._schedule_bookmark()

    def _error(self, error: KubeError) -> None:
        self._send("ERROR", error.status())
        self.close()

    def _expire(self) -> None:
        self._deadline = None
        self.close()

    def _cancel_timers(self) -> None:
        for call in (self._deadline, self._bookmark_call):
            if call is not None and call.active():
                call.cancel()
        self._deadline = self._bookmark_call = None

    def _shut(self) -> None:
        self._cancel_timers()
        self.state = "closed"
        self._fake._forget_watch(self)

    def _finished(self, result: object) -> None:
        if self.state != "closed":
            self._shut()


def _common_headers(request: _ServerRequest) -> None:
    request.setHeader(b"audit-id", str(uuid.uuid4()).encode())
    request.setHeader(b"cache-control", b"no-cache, private")
    request.setHeader(b"x-kubernetes-pf-flowschema-uid", b"fakekube-flowschema")
    request.setHeader(b"x-kubernetes-pf-prioritylevel-uid", b"fakekube-prioritylevel")


def _abort_transport(request: _ServerRequest) -> None:
    _abort(request.channel.transport if request.channel is not None else None)


def _abort(transport: Any) -> None:
    if transport is None:
        return
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


class _APIResource(Resource):
    """
    The whole API as one leaf resource: the path is parsed by the stand-in,
    so every response, streaming ones included, is under its control.
    """

    isLeaf = True

    def __init__(self, fake: FakeKube) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._fake = fake

    def render(self, request: IRequest) -> int:
        self._fake._receive(cast(_ServerRequest, request))
        return NOT_DONE_YET


class _QuietSite(Site):
    """
    A Site without the access log and factory start/stop messages (the
    embedded stand-in must not flood the daemon's log) that tracks its
    connections, so L{FakeKube.shutdown} can end them all.
    """

    noisy = False

    def __init__(self, fake: FakeKube, **kwargs: Any) -> None:
        super().__init__(fake.resource(), **kwargs)  # type: ignore[no-untyped-call]
        self._fake = fake

    def log(self, request: HTTPRequest) -> None:
        pass

    def buildProtocol(self, addr: IAddress | None) -> Any:  # type: ignore[override]
        channel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        if channel is None:
            return None
        return ProtocolWrapper(self, channel)  # type: ignore[arg-type]

    def registerProtocol(self, connection: ProtocolWrapper) -> None:
        self._fake._connections.add(connection)

    def unregisterProtocol(self, connection: ProtocolWrapper) -> None:
        self._fake._connection_lost(connection)


class FakeKube:
    """
    The Kubernetes API stand-in.  See the module docstring for its API.

    @ivar token: the bearer token requests must carry, or C{None} to accept
        any request; change it at any time to simulate rotation.
    @ivar latency: seconds every request waits before it is handled.
    @ivar bookmark_interval: seconds between C{BOOKMARK}s on watches that
        allow them (the real watch cache: about a minute).
    @ivar requests: the request log, oldest first.
    @ivar faults: pending injected faults, in matching order.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        token: str | None = None,
        resources: Iterable[ResourceType] = DEFAULT_RESOURCES,
        initial_resource_version: int = 100,
        history_capacity: int = 1000,
        bookmark_interval: float = 60.0,
        watch_timeout: float | tuple[float, float] = (1800.0, 3600.0),
        watch_list: bool = True,
        too_large_wait: float = 3.0,
        server_version: str = "v1.36.0",
        rng: random.Random | None = None,
    ) -> None:
        """
        @param watch_timeout: a watch's lifetime when the request has no
            C{timeoutSeconds}: a fixed number, or the bounds of a uniform
            random choice (the apiserver: 1800-3600 s).
        @param watch_list: the server's C{WatchList} feature gate (on since
            1.34): C{sendInitialEvents} is accepted, and a watch from RV
            C{""}/C{"0"} is defaulted to it; off, C{sendInitialEvents} gets
            422 and clients fall back to list + watch.
        @param too_large_wait: how long a read for an RV not reached yet
            waits before the 504 C{Too large resource version}.
        """
        self._reactor = reactor
        self._rng = rng if rng is not None else random.Random()
        self._store = Store(
            resources,
            now=reactor.seconds,
            rng=self._rng,
            initial_resource_version=initial_resource_version,
            history_capacity=history_capacity,
        )
        self._store.listeners.append(self._dispatch_event)
        self.token = token
        self.latency = 0.0
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.watch_list = watch_list
        self.too_large_wait = too_large_wait
        self.server_version = server_version
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._watches: list[WatchStream] = []
        self._watch_waiters: list[Deferred[WatchStream]] = []
        self._rv_waiters: list[tuple[int, Deferred[bool]]] = []
        self._pending: set[Deferred[Any]] = set()
        self._connections: set[ProtocolWrapper] = set()
        self._connections_gone: list[Deferred[None]] = []

    # -- serving ------------------------------------------------------------

    def resource(self) -> IResource:
        """
        The root resource, for C{StubTreq} or a C{Site} of one's own.
        """
        return _APIResource(self)

    def site(self, idle_timeout: float | None = 90.0) -> Site:
        """
        A C{Site} serving the API.  C{idle_timeout} closes idle keep-alive
        connections like the apiserver does after 90 s (never an open
        watch: Twisted pauses it while a response is in progress).
        """
        return _QuietSite(self, timeout=idle_timeout, reactor=self._reactor)

    def shutdown(self) -> Deferred[None]:
        """
        End everything in flight: close the watches, cancel waiting
        requests and drop every connection of the sites from L{site};
        fires once they are all gone.  Stop listening first.
        """
        self.close_watches()
        for pending in list(self._pending):
            pending.cancel()
        for connection in list(self._connections):
            _abort(connection.transport)
        if not self._connections:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._connections_gone.append(d)
        return d

    def _connection_lost(self, connection: ProtocolWrapper) -> None:
        self._connections.discard(connection)
        if not self._connections:
            waiters, self._connections_gone = self._connections_gone, []
            for waiter in waiters:
                waiter.callback(None)

    # -- objects (Python API) ---------------------------------------------

    @property
    def resource_version(self) -> int:
        """
        The RV of the last write.
        """
        return self._store.resource_version

    @property
    def oldest_resource_version(self) -> int:
        """
        The lowest RV a watch can still resume from.
        """
        return self._store.oldest_resource_version

    def resource_type(self, name: str) -> ResourceType:
        """
        Resolve a plural, singular, kind or short name to its type.
        """
        return self._store.resource_named(name)

    def load_yaml(self, source: str | bytes | os.PathLike[str]) -> list[JSON]:
        """
        Create or replace the objects of a YAML text (or of a file, given
        as a path object): multi-document, or C{kind: List}.
        """
        if isinstance(source, os.PathLike):
            with open(source, "rb") as f:
                source = f.read()
        return [self.upsert(obj) for obj in parse_yaml_objects(source)]

    def load_yaml_file(self, path: str | os.PathLike[str]) -> list[JSON]:
        """
        L{load_yaml} of a file named by a string or path object.
        """
        return self.load_yaml(Path(path))

    def create(self, obj: Mapping[str, Any]) -> JSON:
        """
        Create an object (its C{apiVersion}/C{kind} say of which type).
        """
        rt = self._store.resource_for_object(obj)
        namespace = (obj.get("metadata") or {}).get("namespace")
        return _copy(self._store.create(rt, namespace, dict(obj), api=False))

    def update(self, obj: Mapping[str, Any]) -> JSON:
        """
        Replace an object whole; a C{metadata.resourceVersion} in it is a
        precondition, none means unconditional.
        """
        rt = self._store.resource_for_object(obj)
        metadata = obj.get("metadata") or {}
        namespace = (metadata.get("namespace") or "default") if rt.namespaced else None
        return _copy(
            self._store.replace(
                rt, namespace, metadata.get("name") or "", dict(obj), api=False
            )
        )

    def upsert(self, obj: Mapping[str, Any]) -> JSON:
        """
        Create the object, or replace it if it exists.
        """
        rt = self._store.resource_for_object(obj)
        metadata = dict(obj.get("metadata") or {})
        namespace = (metadata.get("namespace") or "default") if rt.namespaced else None
        try:
            self._store.get(rt, namespace, metadata.get("name") or "")
        except KubeError:
            return self.create(obj)
        metadata.pop("resourceVersion", None)
        if namespace is not None:
            metadata["namespace"] = namespace
        return self.update(dict(obj, metadata=metadata))

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = "merge",
    ) -> JSON:
        """
        Patch an object: C{patch_type} is C{"merge"}, C{"json"} or a PATCH
        content type.
        """
        rt = self._store.resource_named(resource)
        content_type = {"merge": MERGE_PATCH, "json": JSON_PATCH}.get(
            patch_type, patch_type
        )
        return _copy(
            self._store.patch(rt, namespace, name, content_type, patch, api=False)
        )

    def delete(self, resource: str, namespace: str | None, name: str) -> JSON:
        """
        Delete an object (or mark it, while it has finalizers).
        """
        rt = self._store.resource_named(resource)
        return _copy(self._store.delete(rt, namespace, name))

    def get(self, resource: str, namespace: str | None, name: str) -> JSON:
        """
        A copy of an object; L{KubeError} 404 if there is none.
        """
        rt = self._store.resource_named(resource)
        return _copy(self._store.get(rt, namespace, name))

    def list_objects(self, resource: str, namespace: str | None = None) -> list[JSON]:
        """
        Copies of the objects of a type, in list order.
        """
        rt = self._store.resource_named(resource)
        items = self._store.current(rt)
        return [
            _copy(items[k])
            for k in sorted(items, key=sort_key)
            if namespace is None or k[0] == namespace
        ]

    def compact(self) -> int:
        """
        Forget all history: resuming a watch, a continue token or an exact
        list from any older RV now gets 410.  Returns the current RV.
        """
        return self._store.compact()

    # -- faults -------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        code: int = 500,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = None,
        message: str | None = None,
        in_stream: bool = False,
    ) -> Fault:
        """
        Fail the next C{count} requests whose method is C{method} and whose
        path-and-query contains C{path} (C{None} matches all).
        """
        if code == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(
            count, code, method, path, retry_after, message, in_stream=in_stream
        )
        self.faults.append(fault)
        return fault

    def abort_next(
        self, count: int = 1, *, method: str | None = None, path: str | None = None
    ) -> Fault:
        """
        Close the connection of the next C{count} matching requests without
        answering (the client sees C{ResponseNeverReceived}).
        """
        fault = Fault(count, 0, method, path, abort=True)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- watches ------------------------------------------------------------

    @property
    def watches(self) -> list[WatchStream]:
        """
        The open (or stalled) watch streams.
        """
        return list(self._watches)

    def next_watch(self) -> Deferred[WatchStream]:
        """
        Fires with the next watch stream once its initial events are out, so
        a test can change objects knowing the client will see it.
        """
        d: Deferred[WatchStream] = Deferred()
        self._watch_waiters.append(d)
        return d

    def _selected(self, resource: str | None) -> list[WatchStream]:
        rt = None if resource is None else self._store.resource_named(resource)
        return [w for w in self._watches if rt is None or w.resource == rt]

    def drop_watches(self, resource: str | None = None) -> int:
        """
        Abort the connections of the open watches.
        """
        streams = self._selected(resource)
        for stream in streams:
            stream.abort()
        return len(streams)

    def close_watches(self, resource: str | None = None) -> int:
        """
        End the open watches cleanly, as their timeout would.
        """
        streams = self._selected(resource)
        for stream in streams:
            stream.close()
        return len(streams)

    def stall_watches(self, resource: str | None = None) -> int:
        """
        Make the open watches silent without closing them.
        """
        streams = [w for w in self._selected(resource) if w.state == "open"]
        for stream in streams:
            stream.stall()
        return len(streams)

    # -- request log --------------------------------------------------------

    def requests_matching(
        self, method: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """
        The logged requests with this method and whose path contains
        C{path}.
        """
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path is None or path in r.path)
        ]

    def clear_requests(self) -> None:
        self.requests.clear()

    # -- request handling ---------------------------------------------------

    def _receive(self, request: _ServerRequest) -> None:
        uri = request.uri.decode("utf-8", "replace")
        split = urlsplit(uri)
        headers = {
            name.decode("latin-1").lower(): values[0].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
            if values
        }
        body = request.content.read() if request.content is not None else b""
        entry = RecordedRequest(
            method=request.method.decode("ascii", "replace").upper(),
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        self.requests.append(entry)
        call = _Call(request, entry, unquote(uri))

        def gone(reason: Failure) -> None:
            call.gone = True

        request.notifyFinish().addErrback(gone)
        d = Deferred.fromCoroutine(self._serve(call))
        d.addErrback(self._internal_error, call)

    async def _serve(self, call: _Call) -> None:
        try:
            if self.latency > 0:
                delay: Deferred[None] = deferLater(self._reactor, self.latency)
                self._pending.add(delay)
                try:
                    await delay
                finally:
                    self._pending.discard(delay)
                if call.gone:
                    return
            self._authenticate(call)
            for fault in self.faults:
                if fault.matches(call.entry, call.target):
                    fault.remaining -= 1
                    if not fault.remaining:
                        self.faults.remove(fault)
                    self._fault(call, fault)
                    return
            await self._route(call)
        except KubeError as e:
            self._respond_error(call, e)
        except CancelledError:
            # shutdown(): the connection is being dropped.
            pass

    def _internal_error(self, failure: Failure, call: _Call) -> None:
        log.failure(
            "fakekube failed on {method} {target}",
            failure,
            method=call.entry.method,
            target=call.target,
        )
        if not call.started and not call.gone:
            self._respond_error(
                call,
                KubeError(
                    500,
                    "InternalError",
                    f"Internal error occurred: {failure.getErrorMessage()}",
                    {},
                ),
            )

    def _authenticate(self, call: _Call) -> None:
        if self.token is None:
            return
        header = call.entry.headers.get("authorization")
        if header is None and call.entry.path in _PUBLIC_PATHS:
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        ):
            return
        raise unauthorized()

    def _fault(self, call: _Call, fault: Fault) -> None:
        request = call.request
        if fault.abort:
            call.started = True
            _abort_transport(request)
            return
        if fault.code == 429:
            # The APF filter answers with http.Error: plain text, no Status.
            request.setResponseCode(429)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"x-content-type-options", b"nosniff")
            request.setHeader(b"retry-after", str(fault.retry_after).encode())
            request.setHeader(b"x-kubernetes-pf-flowschema-uid", b"fakekube-flowschema")
            request.setHeader(
                b"x-kubernetes-pf-prioritylevel-uid", b"fakekube-prioritylevel"
            )
            body = (
                _TOO_MANY_REQUESTS
                if fault.message is None
                else fault.message.encode() + b"\n"
            )
            self._finish(call, 429, body)
            return
        error = generic_error(fault.code, fault.message)
        if fault.retry_after is not None:
            error.headers = {"retry-after": str(fault.retry_after)}
            if error.details is not None:
                error.details["retryAfterSeconds"] = fault.retry_after
        if fault.in_stream:
            request.setResponseCode(200)
            _common_headers(request)
            request.setHeader(b"content-type", b"application/json")
            call.started = True
            call.entry.code = 200
            request.write(_dumps({"type": "ERROR", "object": error.status()}))
            request.finish()
            return
        self._respond_error(call, error)

    def _finish(self, call: _Call, code: int, body: bytes) -> None:
        call.entry.code = code
        call.started = True
        log.debug(
            "{method} {target} -> {code}",
            method=call.entry.method,
            target=call.target,
            code=code,
        )
        if call.gone:
            return
        call.request.setHeader(b"content-length", str(len(body)).encode())
        call.request.write(body)
        call.request.finish()

    def _respond(self, call: _Call, code: int, obj: Any) -> None:
        call.request.setResponseCode(code)
        _common_headers(call.request)
        call.request.setHeader(b"content-type", b"application/json")
        self._finish(call, code, _dumps(obj))

    def _respond_error(self, call: _Call, error: KubeError) -> None:
        for name, value in error.headers.items():
            call.request.setHeader(name.encode(), value.encode())
        self._respond(call, error.code, error.status())

    async def _route(self, call: _Call) -> None:
        segments = call.entry.path.split("/")[1:]
        if segments and segments[-1] == "":
            segments.pop()
        method = call.entry.method
        store = self._store
        if segments[:1] == ["api"] and len(segments) > 2 and segments[1] == "v1":
            await self._resource_request(call, "", "v1", segments[2:])
            return
        if segments[:1] == ["apis"] and len(segments) > 3:
            await self._resource_request(call, segments[1], segments[2], segments[3:])
            return
        groups = group_versions(store.resources)
        document: JSON | None = None
        if segments == []:
            document = {
                "paths": [
                    "/api",
                    "/api/v1",
                    "/apis",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                ]
                + [f"/apis/{g}" for g in groups]
                + [f"/apis/{g}/{v}" for g, vs in groups.items() for v in vs]
            }
        elif segments == ["version"]:
            document = version_info(self.server_version)
        elif segments in (["healthz"], ["livez"], ["readyz"]):
            if method != "GET":
                raise method_not_allowed()
            call.request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self._finish(call, 200, b"ok")
            return
        elif segments == ["api"]:
            host = call.entry.headers.get("host", "127.0.0.1")
            document = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": host}
                ],
            }
        elif segments == ["api", "v1"]:
            document = api_resource_list(
                "v1", [rt for rt in store.resources if not rt.group]
            )
        elif segments == ["apis"]:
            document = {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [api_group(g, vs) for g, vs in groups.items()],
            }
        elif len(segments) == 2 and segments[0] == "apis" and segments[1] in groups:
            document = dict(
                {"kind": "APIGroup", "apiVersion": "v1"},
                **api_group(segments[1], groups[segments[1]]),
            )
        elif (
            len(segments) == 3
            and segments[0] == "apis"
            and segments[2] in groups.get(segments[1], [])
        ):
            document = api_resource_list(
                f"{segments[1]}/{segments[2]}",
                [
                    rt
                    for rt in store.resources
                    if (rt.group, rt.version) == (segments[1], segments[2])
                ],
            )
        if document is None:
            if segments[:1] in (["api"], ["apis"]):
                raise path_not_found()
            call.request.setResponseCode(404)
            call.request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self._finish(call, 404, b"404 page not found\n")
            return
        if method != "GET":
            raise method_not_allowed()
        self._respond(call, 200, document)

    def _target(
        self, group: str, version: str, rest: Sequence[str]
    ) -> tuple[ResourceType, str | None, str | None, str | None]:
        """
        (type, namespace, name, subresource) of a resource path below
        C{/api/v1} or C{/apis/GROUP/VERSION}.
        """
        store = self._store
        if len(rest) >= 3 and rest[0] == "namespaces":
            rt = store.resource_for_path(group, version, rest[2])
            if rt is not None and rt.namespaced:
                if len(rest) > 5:
                    raise path_not_found()
                return (
                    rt,
                    rest[1],
                    (rest[3] if len(rest) > 3 else None),
                    (rest[4] if len(rest) > 4 else None),
                )
        rt = store.resource_for_path(group, version, rest[0])
        if rt is None:
            raise path_not_found()
        if rt.namespaced:
            if len(rest) > 1:
                raise path_not_found()
            return rt, None, None, None
        if len(rest) > 3:
            raise path_not_found()
        return (
            rt,
            None,
            (rest[1] if len(rest) > 1 else None),
            (rest[2] if len(rest) > 2 else None),
        )

    async def _resource_request(
        self, call: _Call, group: str, version: str, rest: Sequence[str]
    ) -> None:
        rt, namespace, name, subresource = self._target(group, version, rest)
        method = call.entry.method
        if subresource is not None and not (
            subresource == "status" and rt.status_subresource
        ):
            raise path_not_found()
        dry_run = call.param("dryRun") == "All"
        # managerOrUserAgent: the fieldManager, else the User-Agent's
        # product name.
        product = call.entry.headers.get("user-agent", "").split("/")[0]
        manager = (
            call.param("fieldManager")
            or "".join(c for c in product if c.isprintable())[:128]
        )
        store = self._store
        if name is None:
            if method == "GET":
                if _parse_bool(call.param("watch")):
                    await self._watch(call, rt, namespace, None)
                else:
                    await self._list(call, rt, namespace)
            elif method == "POST" and (namespace is not None or not rt.namespaced):
                obj = store.create(
                    rt,
                    namespace,
                    self._body(call),
                    api=True,
                    dry_run=dry_run,
                    manager=manager,
                )
                self._respond(call, 201, obj)
            elif (
                method == "DELETE"
                and "deletecollection" in rt.verbs
                and (namespace is not None or not rt.namespaced)
            ):
                self._delete_collection(call, rt, namespace, dry_run)
            else:
                raise method_not_allowed()
            return
        if method == "GET":
            if subresource is None and _parse_bool(call.param("watch")):
                await self._watch(call, rt, namespace, name)
            else:
                self._respond(call, 200, store.get(rt, namespace, name))
        elif method == "PUT":
            obj = store.replace(
                rt,
                namespace,
                name,
                self._body(call),
                api=True,
                subresource=subresource,
                dry_run=dry_run,
                manager=manager,
            )
            self._respond(call, 200, obj)
        elif method == "PATCH":
            content_type = (
                (call.entry.headers.get("content-type") or "").split(";")[0].strip()
            )
            obj = store.patch(
                rt,
                namespace,
                name,
                content_type,
                self._body(call) if content_type in rt.patch_types else None,
                api=True,
                subresource=subresource,
                dry_run=dry_run,
                manager=manager,
            )
            self._respond(call, 200, obj)
        elif method == "DELETE" and subresource is None:
            options = self._body(call, optional=True) or {}
            preconditions = (
                options.get("preconditions") if isinstance(options, dict) else None
            )
            obj = store.delete(
                rt, namespace, name, preconditions=preconditions, dry_run=dry_run
            )
            self._respond(call, 200, obj)
        else:
            raise method_not_allowed()

    def _body(self, call: _Call, optional: bool = False) -> Any:
        raw = call.entry.body
        if not raw.strip():
            if optional:
                return None
            raise bad_request("the body of the request was empty")
        content_type = call.entry.headers.get("content-type", "")
        try:
            if "yaml" in content_type:
                return yaml.load(raw, Loader=_Loader)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(
                f"couldn't get version/kind; json parse error: {e}"
            ) from None

    def _delete_collection(
        self, call: _Call, rt: ResourceType, namespace: str | None, dry_run: bool
    ) -> None:
        labels, fields = self._selectors(call, rt, None)
        store = self._store
        deleted = []
        for key in sorted(store.current(rt), key=sort_key):
            obj = store.current(rt).get(key)
            if obj is None or (namespace is not None and key[0] != namespace):
                continue
            if labels.matches(obj["metadata"].get("labels") or {}) and fields.matches(
                object_fields(obj, rt.selectable_fields)
            ):
                deleted.append(
                    store.delete(rt, key[0] or None, key[1], dry_run=dry_run)
                )
        self._respond(
            call,
            200,
            self._list_document(
                rt, deleted, {"resourceVersion": str(store.resource_version)}
            ),
        )

    def _list_options(self, call: _Call, *, watch: bool) -> _ListOptions:
        """
        Parse, default and validate list/watch options exactly in the order
        the apiserver's C{listOpts} does (defaults, then
        C{ValidateListOptions} with its 422s).
        """
        rv = call.param("resourceVersion") or ""
        match = call.param("resourceVersionMatch") or ""
        token = call.param("continue") or ""
        send: bool | None = (
            _parse_bool(call.param("sendInitialEvents"))
            if call.has("sendInitialEvents")
            else None
        )
        limit = _parse_int(call.param("limit"))
        timeout = _parse_int(call.param("timeoutSeconds"))
        if watch and self.watch_list and send is None and not match and rv in ("", "0"):
            send, match = True, "NotOlderThan"
        causes = validate_list_options(
            watch=watch,
            resource_version=rv,
            match=match,
            continue_token=token,
            send_initial_events=send,
            watch_list=self.watch_list,
        )
        if causes:
            raise list_options_invalid(causes)
        return _ListOptions(rv, match, token, limit, send, timeout)

    def _selectors(
        self, call: _Call, rt: ResourceType, name: str | None
    ) -> tuple[LabelSelector, FieldSelector]:
        try:
            labels = parse_label_selector(call.param("labelSelector") or "")
            fields = parse_field_selector(
                call.param("fieldSelector") or "", rt.selectable_fields
            )
        except SelectorError as e:
            raise bad_request(str(e)) from None
        if name is not None:
            if fields.empty:
                fields = FieldSelector((FieldTerm("metadata.name", name, False),))
            elif fields.exact("metadata.name") != name:
                raise bad_request(
                    "fieldSelector metadata.name doesn't match requested name"
                )
        return labels, fields

    def _visible_items(
        self,
        state: Mapping[Key, JSON],
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> list[tuple[str, JSON]]:
        items = [
            (sort_key(key), obj)
            for key, obj in state.items()
            if (namespace is None or key[0] == namespace)
            and labels.matches(obj["metadata"].get("labels") or {})
            and fields.matches(object_fields(obj, rt.selectable_fields))
        ]
        items.sort(key=lambda item: item[0])
        return items

    def _list_document(
        self, rt: ResourceType, items: Iterable[JSON], metadata: JSON
    ) -> JSON:
        if not rt.custom:
            # Typed lists of built-in kinds leave kind/apiVersion off items.
            items = [
                {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                for obj in items
            ]
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": metadata,
            "items": list(items),
        }

    async def _reach(self, resource_version: int) -> None:
        """
        Wait (up to L{too_large_wait}) for the store to reach an RV a client
        asked for, then give up with the 504 the watch cache sends.
        """
        store = self._store
        if resource_version <= store.resource_version:
            return
        d: Deferred[bool] = Deferred()
        waiter = (resource_version, d)
        self._rv_waiters.append(waiter)
        self._pending.add(d)
        timer = self._reactor.callLater(self.too_large_wait, d.callback, False)
        try:
            reached = await d
        finally:
            self._pending.discard(d)
            if waiter in self._rv_waiters:
                self._rv_waiters.remove(waiter)
            if timer.active():
                timer.cancel()
        if not reached:
            raise too_large_resource_version(resource_version, store.resource_version)

    async def _list(self, call: _Call, rt: ResourceType, namespace: str | None) -> None:
        options = self._list_options(call, watch=False)
        labels, fields = self._selectors(call, rt, None)
        store = self._store
        start = ""
        state: Mapping[Key, JSON]
        if options.continue_token:
            start, token_rv = _decode_continue(options.continue_token)
            if options.resource_version not in ("", "0"):
                raise bad_request(
                    "specifying resource version is not allowed when using continue"
                )
            if token_rv > 0:
                if token_rv < store.oldest_resource_version:
                    raise expired(INCONSISTENT_CONTINUE, _encode_continue(start, -1))
                list_rv, state = token_rv, store.state_at(rt, token_rv)
            else:
                list_rv, state = store.resource_version, store.current(rt)
        elif options.resource_version in ("", "0"):
            list_rv, state = store.resource_version, store.current(rt)
        else:
            wanted = _parse_rv(options.resource_version)
            await self._reach(wanted)
            if options.match == "Exact" or (not options.match and options.limit > 0):
                if wanted < store.oldest_resource_version:
                    raise expired(LIST_TOO_OLD)
                list_rv, state = wanted, store.state_at(rt, wanted)
            else:
                list_rv, state = store.resource_version, store.current(rt)
        items = self._visible_items(state, rt, namespace, labels, fields)
        if start:
            items = [item for item in items if item[0] >= start]
        metadata: JSON = {"resourceVersion": str(list_rv)}
        if 0 < options.limit < len(items):
            metadata["continue"] = _encode_continue(
                items[options.limit - 1][0] + "\x00", list_rv
            )
            if labels.empty and fields.empty:
                metadata["remainingItemCount"] = len(items) - options.limit
            items = items[: options.limit]
        self._respond(
            call, 200, self._list_document(rt, (obj for _, obj in items), metadata)
        )

    def _default_watch_timeout(self) -> float:
        if isinstance(self.watch_timeout, tuple):
            return self._rng.uniform(*self.watch_timeout)
        return float(self.watch_timeout)

    async def _watch(
        self, call: _Call, rt: ResourceType, namespace: str | None, name: str | None
    ) -> None:
        options = self._list_options(call, watch=True)
        labels, fields = self._selectors(call, rt, name)
        bookmarks = _parse_bool(call.param("allowWatchBookmarks"))
        timeout = (
            float(options.timeout_seconds)
            if options.timeout_seconds > 0
            else self._default_watch_timeout()
        )
        store = self._store
        wanted = (
            None
            if options.resource_version in ("", "0")
            else _parse_rv(options.resource_version)
        )

        def open_stream(start_rv: int) -> WatchStream:
            stream = WatchStream(
                self, call, rt, namespace, labels, fields, bookmarks, timeout, start_rv
            )
            stream._start()
            return stream

        if options.send_initial_events or (
            options.send_initial_events is None and wanted is None
        ):
            # Synthetic ADDEDs for the current state: a watch-list request,
            # or a legacy watch from RV ""/"0" with the WatchList gate off.
            if wanted is not None:
                try:
                    await self._reach(wanted)
                except KubeError as e:
                    # After authn and RV parsing, errors travel as ERROR events.
                    open_stream(store.resource_version)._error(e)
                    return
            if call.gone:
                return
            stream = open_stream(store.resource_version)
            for _, obj in self._visible_items(
                store.current(rt), rt, namespace, labels, fields
            ):
                stream._send("ADDED", obj)
            if options.send_initial_events and bookmarks:
                stream._bookmark(initial_events_end=True)
        else:
            start_rv = wanted if wanted is not None else store.resource_version
            if start_rv < store.oldest_resource_version:
                open_stream(start_rv)._error(
                    too_old_watch(start_rv, store.oldest_resource_version)
                )
                return
            stream = open_stream(start_rv)
            for event in list(store.events_after(rt, start_rv)):
                stream._offer(event)
        if stream.state != "open":
            return
        self._watches.append(stream)
        stream._schedule_bookmark()
        waiters, self._watch_waiters = self._watch_waiters, []
        for waiter in waiters:
            waiter.callback(stream)

    def _dispatch_event(self, event: Event) -> None:
        for stream in list(self._watches):
            stream._offer(event)
        for waiter in list(self._rv_waiters):
            if waiter[0] <= event.resource_version:
                self._rv_waiters.remove(waiter)
                waiter[1].callback(True)

    def _forget_watch(self, stream: WatchStream) -> None:
        if stream in self._watches:
            self._watches.remove(stream)


def _copy(obj: JSON) -> JSON:
    result: JSON = json.loads(json.dumps(obj))
    return result


async def serve(
    reactor: IReactorCore,
    endpoint: str,
    fake: FakeKube,
    *,
    idle_timeout: float | None = 90.0,
) -> IListeningPort:
    """
    Serve C{fake} on a Twisted server endpoint string (C{tcp:0:interface=
    127.0.0.1}, C{ssl:...}, C{unix:...}); stop with C{stopListening()} (and
    L{FakeKube.close_watches} for the open streams).
    """
    server = serverFromString(reactor, endpoint)  # type: ignore[no-untyped-call]
    port: IListeningPort = await server.listen(fake.site(idle_timeout=idle_timeout))
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bbreceiver.testing.fakekube",
        description="Serve a stand-in Kubernetes API with Kargo's resources.",
    )
    parser.add_argument(
        "--listen",
        default="tcp:0:interface=127.0.0.1",
        help="Twisted server endpoint string",
    )
    parser.add_argument(
        "--objects",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML objects to load (repeatable)",
    )
    parser.add_argument("--token", default=None, help="require this bearer token")
    parser.add_argument(
        "--bookmark-interval", type=float, default=60.0, metavar="SECONDS"
    )
    return parser


async def _run(reactor: IReactorCore, args: argparse.Namespace) -> None:
    fake = FakeKube(
        cast(IReactorTime, reactor),
        token=args.token,
        bookmark_interval=args.bookmark_interval,
    )
    for path in args.objects:
        fake.load_yaml(Path(path))
    port = await serve(reactor, args.listen, fake)
    address = port.getHost()
    host = getattr(address, "host", None)
    where = (
        f"{host}:{getattr(address, 'port', '')}" if host is not None else str(address)
    )
    # The one line a test or script reads to find the port.
    print(f"listening on {where}", flush=True)
    forever: Deferred[None] = Deferred()
    await forever


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The runner: serve until killed.
    """
    args = _parser().parse_args(argv)
    react(lambda reactor: _run(reactor, args))


if __name__ == "__main__":
    main(sys.argv[1:])
