"""
The HTTP side: the Klein application that answers deliveries (SPEC §4), and
the C{Site} around it that keeps clients from holding more than their share.

twisted.web reads a whole body before any resource sees the request, so the
body limit, the request timeout and the connection cap live in the channel,
the request and the site, not in a route.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Protocol

from klein import Klein
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request, Site

from bbreceiver.bitbucket import (
    PING,
    PULL_REQUEST_EVENTS,
    PUSH_EVENTS,
    InvalidPayload,
    parse_event,
    verify_signature,
)
from bbreceiver.config import Limits
from bbreceiver.index import SubscriptionIndex
from bbreceiver.plan import plan
from bbreceiver.refresh import Outcome

log = Logger()

HANDLED_EVENTS = PUSH_EVENTS | PULL_REQUEST_EVENTS

_SUMMARY = (
    "delivery {delivery} {event} to {receiver}: {code} (matched {matched}, "
    "failed {failed}, pending {pending}) in {duration:.3f}s"
)


@dataclass(frozen=True)
class Route:
    """
    What a receiver path leads to: the receiver, its project (the scope of
    what it refreshes) and the secret its deliveries are signed with.

    @ivar retiring: the secret was replaced and this path only serves out
        its grace period.
    """

    label: str
    project: str
    secret: bytes = field(repr=False)
    retiring: bool = False


class Routes(Protocol):
    """
    The receiver paths currently served.
    """

    def lookup(self, path: bytes) -> Route | None:
        """
        The route of an exact request path, or C{None}.
        """


class StaticRoutes:
    """
    A fixed table of routes.
    """

    def __init__(self, routes: Mapping[bytes, Route]) -> None:
        self._routes = dict(routes)

    def lookup(self, path: bytes) -> Route | None:
        return self._routes.get(path)


class RefreshRunner(Protocol):
    """
    Sends the refreshes a delivery calls for (L{bbreceiver.refresh.Refresher}
    in the daemon, a recorder in tests).
    """

    async def refresh(self, targets: Any) -> Outcome:
        """
        Refresh C{targets}; say how things stand at the response deadline.
        """


class DeliveryObserver(Protocol):
    """
    Told about every request to a receiver path, for metrics.
    """

    def delivered(
        self, route: Route, event: str, code: int, seconds: float
    ) -> None:
        """
        A request to C{route} with event label C{event} was answered
        C{code} after C{seconds}.
        """


def event_label(key: str | None) -> str:
    """
    The metric label of an C{X-Event-Key}: one of the events the daemon
    knows, C{"other"} or C{"none"}, so that clients cannot make labels up.
    """
    if not key:
        return "none"
    if key in HANDLED_EVENTS or key == PING:
        return key
    return "other"


def json_body(document: Mapping[str, Any]) -> bytes:
    """
    The bytes of a JSON answer.
    """
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _header(request: IRequest, name: bytes) -> bytes | None:
    value = request.getHeader(name)
    return value or None


class WebhookApp:
    """
    Routes and answers; everything they need is handed in.

    @ivar ready: whether the index completed its first sync.
    @ivar readiness: the detail C{/readyz} shows.
    """

    app = Klein()

    def __init__(
        self,
        routes: Routes,
        index: SubscriptionIndex,
        refresher: RefreshRunner,
        clock: IReactorTime,
        *,
        ready: Callable[[], bool],
        readiness: Callable[[], Mapping[str, Any]] = dict,
        observer: DeliveryObserver | None = None,
        max_body_bytes: int = Limits.max_body_bytes,
    ) -> None:
        self.routes = routes
        self.index = index
        self.refresher = refresher
        self.clock = clock
        self.ready = ready
        self.readiness = readiness
        self.observer = observer
        self.max_body_bytes = max_body_bytes

    def resource(self) -> Resource:
        """
        The root resource to serve.
        """
        return _Root(self)

    @staticmethod
    def answer(request: IRequest, code: int, document: Mapping[str, Any]
               ) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        return json_body(document)

    @app.route("/healthz")
    def healthz(self, request: IRequest) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            return self.answer(request, 405, {"error": "method not allowed"})
        return self.answer(request, 200, {"ok": True})

    @app.route("/readyz")
    def readyz(self, request: IRequest) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            return self.answer(request, 405, {"error": "method not allowed"})
        ready = self.ready()
        document = {"ready": ready, **self.readiness()}
        return self.answer(request, 200 if ready else 503, document)

    async def deliver(self, request: IRequest, route: Route) -> bytes:
        """
        Answer a request to a receiver's path (SPEC §4 from row 2 on).
        """
        start = self.clock.seconds()
        raw_key = _header(request, b"x-event-key")
        key = raw_key.decode("utf-8", "replace") if raw_key else None
        code, document, counts = await self._deliver(request, route, key)
        seconds = self.clock.seconds() - start
        label = event_label(key)
        delivery = _header(request, b"x-request-uuid") or _header(
            request, b"x-request-id"
        )
        fields = dict(
            delivery=delivery.decode("utf-8", "replace") if delivery else "-",
            event=label,
            receiver=route.label,
            code=code,
            duration=seconds,
            **counts,
        )
        # Every field is in the event (and so in --log-format=json); the
        # message is formatted here once, because twisted.logger's JSON
        # output would otherwise flatten each field of the format twice:
        # 40% of the cost of the line, which is paid per delivery.
        log.info("{delivery_summary}",
                 delivery_summary=_SUMMARY.format(**fields), **fields)
        if self.observer is not None:
            self.observer.delivered(route, label, code, seconds)
        return self.answer(request, code, document)

    async def _deliver(
        self, request: IRequest, route: Route, key: str | None
    ) -> tuple[int, dict[str, str], dict[str, int]]:
        none = {"matched": 0, "failed": 0, "pending": 0}
        if request.method != b"POST":
            return 405, {"error": "method not allowed"}, none
        assert request.content is not None
        body = request.content.read()
        if len(body) > self.max_body_bytes:
            return 413, {"error": "content exceeds limit of {} bytes".format(
                self.max_body_bytes)}, none
        signature = _header(request, b"x-hub-signature")
        if signature is None:
            if key == PING:
                return 200, {"msg": "pong"}, none
            return 401, {"error": "missing signature"}, none
        if not verify_signature(signature, body, route.secret):
            return 401, {"error": "unauthorized"}, none
        if key is None:
            return 400, {"error": "missing event type"}, none
        if key == PING:
            return 200, {"msg": "pong"}, none
        if key not in HANDLED_EVENTS:
            return 200, {"msg": "ignored event " + key}, none
        try:
            event = parse_event(key, body)
        except InvalidPayload:
            return 400, {"error": "invalid request body"}, none
        if not self.ready():
            request.setHeader(b"retry-after", b"5")
            return 503, {"error": "not ready"}, none
        chosen = plan(event, self.index, route.project)
        outcome = await self.refresher.refresh(chosen.targets)
        noun = chosen.kind + "(s)"
        counts = {"matched": outcome.total, "failed": outcome.failed,
                  "pending": outcome.pending}
        if outcome.failed:
            return 500, {"error": "failed to refresh {} of {} {}".format(
                outcome.failed, outcome.total, noun)}, counts
        if outcome.pending:
            return 202, {"msg": "refreshing {} {}".format(outcome.total,
                                                          noun)}, counts
        return 200, {"msg": "refreshed {} {}".format(outcome.total, noun)
                     }, counts


class _Root(Resource):
    """
    Exact paths only: a receiver path, C{/healthz} or C{/readyz}, as sent
    (no slash merging, no decoding); everything else is a JSON 404.
    """

    isLeaf = True

    def __init__(self, app: WebhookApp) -> None:
        super().__init__()
        self._app = app
        self._klein = app.app.resource()

    def render(self, request: IRequest) -> Any:
        path = request.path
        route = self._app.routes.lookup(path)
        if path not in (b"/healthz", b"/readyz") and route is None:
            return self._app.answer(request, 404, {"error": "not found"})
        if not _decodable_host(request):
            # The Host plays no part here, but Klein (and werkzeug's URL
            # map) answer one they cannot decode with a logged traceback,
            # and a 500 when IDNA refuses it: malformed HTTP, a 400.
            log.info("request to {receiver}: 400 (Host not a host name)",
                     receiver=route.label if route else "-")
            if route is not None and self._app.observer is not None:
                key = _header(request, b"x-event-key")
                self._app.observer.delivered(route, event_label(
                    key.decode("utf-8", "replace") if key else None), 400,
                    0.0)
            return self._app.answer(request, 400, {"error": "bad request"})
        if route is None:
            return self._klein.render(request)
        # Deliveries skip Klein's URL map, which would only match the path
        # looked up above once more: a quarter of the throughput.
        delivering = Deferred.fromCoroutine(self._app.deliver(request, route))
        finished: list[object] = []
        notify: Any = request
        notify.notifyFinish().addBoth(finished.append)
        notify.notifyFinish().addErrback(lambda _: delivering.cancel())

        def respond(body: bytes) -> None:
            if not finished:
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                return  # the client went away
            log.failure("delivery to {receiver} failed", failure,
                        receiver=route.label)
            if not finished:
                request.write(self._app.answer(
                    request, 500, {"error": "internal error"}))
                request.finish()

        delivering.addCallbacks(respond, failed)
        return NOT_DONE_YET


def _decodable_host(request: IRequest) -> bool:
    """
    Whether the request's host name decodes as Klein and werkzeug decode
    it.
    """
    try:
        host = request.getRequestHostname().decode("utf-8")
        host.lower().partition(":")[0].encode("idna")
    except UnicodeError:
        return False
    return True


class _Discard:
    """
    Where the body of a request nobody reads goes.
    """

    def write(self, data: bytes) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


class DeliveryRequest(Request):
    """
    Keeps the body in memory, and only for a POST to a receiver path, up to
    the limit; its channel answers 413 beyond that.
    """

    keep_body = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO() if self.keep_body else _Discard()

    @property
    def _channel(self) -> DeliveryChannel:
        channel = self.channel
        assert isinstance(channel, DeliveryChannel)
        return channel

    def requestReceived(
        self, command: bytes, path: bytes, version: bytes
    ) -> None:
        self._channel.site.busy(self)
        # A body is never form data here; without its Content-Type,
        # twisted.web does not try to parse it as such (and answer 400 for
        # what does not parse) before the app has looked at the request.
        content_type = self.requestHeaders.getRawHeaders(b"content-type")
        self.requestHeaders.removeHeader(b"content-type")
        try:
            super().requestReceived(command, path, version)
        finally:
            if content_type is not None:
                self.requestHeaders.setRawHeaders(b"content-type",
                                                  content_type)

    def handleContentChunk(self, data: bytes) -> None:
        channel = self._channel
        if not self.keep_body or channel.rejecting:
            return
        self._received += len(data)
        if self._received > channel.site.limits.max_body_bytes:
            channel.reject_too_large()
            return
        assert self.content is not None
        self.content.write(data)


class DeliveryChannel(HTTPChannel):
    """
    Answers 413 as soon as a body is known to be too large, and closes a
    connection whose request is not fully received within the request
    timeout however slowly it trickles in.
    """

    site: DeliverySite
    rejecting = False
    _receiving: IDelayedCall | None = None

    @property
    def _transport(self) -> Any:
        assert self.transport is not None
        return self.transport

    def dataReceived(self, data: bytes) -> None:
        if self.rejecting:
            return
        if not self._handlingRequest and self._receiving is None:
            self._receiving = self.callLater(
                self.site.limits.request_timeout_seconds, self._too_slow
            )
        super().dataReceived(data)

    def _too_slow(self) -> None:
        self._receiving = None
        log.info("closing connection from {peer}: request not received in "
                 "time", peer=_peer(self._transport.getPeer()))
        self._transport.abortConnection()

    def _stop_receiving_timer(self) -> None:
        if self._receiving is not None:
            if self._receiving.active():
                self._receiving.cancel()
            self._receiving = None

    def allHeadersReceived(self) -> None:
        request: DeliveryRequest = self.requests[-1]
        path = self._path.split(b"?", 1)[0]
        if self._command == b"POST" and self.site.is_receiver(path):
            request.keep_body = True
            if self.length is not None and (
                self.length > self.site.limits.max_body_bytes
            ):
                self.reject_too_large()
                return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if not self.rejecting:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self.rejecting:
            return
        self._stop_receiving_timer()
        super().allContentReceived()

    def reject_too_large(self) -> None:
        """
        Answer 413 without reading the rest of the body, then close.
        """
        self.rejecting = True
        self._stop_receiving_timer()
        self.setTimeout(None)
        limit = self.site.limits.max_body_bytes
        body = json_body(
            {"error": "content exceeds limit of {} bytes".format(limit)}
        )
        self._transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        self.site.rejected(self._path.split(b"?", 1)[0], self.requests[-1])
        # Close our side but read (and drop) what the client still sends for
        # a moment: closing with unread data would reset the connection and
        # could destroy the answer before the client reads it.
        half_close = getattr(self._transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
            self.callLater(2.0, self._transport.abortConnection)
        else:
            self._transport.loseConnection()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.opened(self)

    def connectionLost(self, reason: Any = None) -> None:
        self._stop_receiving_timer()
        self.site.closed(self)
        super().connectionLost(reason)


def _peer(address: IAddress) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    return "{}:{}".format(host, port) if host is not None else str(address)


class DeliverySite(Site):
    """
    The site: no access log (the app logs each delivery itself), no
    tracebacks shown, and a cap on open connections.
    """

    requestFactory = DeliveryRequest
    protocol = DeliveryChannel  # type: ignore[assignment]
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        app: WebhookApp,
        limits: Limits,
        reactor: Any = None,
    ) -> None:
        super().__init__(
            app.resource(),
            timeout=limits.request_timeout_seconds,
            reactor=reactor,
        )
        self.app = app
        self.limits = limits
        self.channels: set[DeliveryChannel] = set()
        self._requests: set[Request] = set()
        self._drained: list[Deferred[None]] = []
        self._closed: list[Deferred[None]] = []

    @property
    def connections(self) -> int:
        """
        Client connections open now.
        """
        return len(self.channels)

    def opened(self, channel: DeliveryChannel) -> None:
        self.channels.add(channel)

    def closed(self, channel: DeliveryChannel) -> None:
        self.channels.discard(channel)
        if not self.channels:
            self._fire(self._closed)

    def busy(self, request: Request) -> None:
        """
        Track C{request} until its answer is written.
        """
        self._requests.add(request)
        request.notifyFinish().addBoth(self._done, request)

    def _done(self, _: object, request: Request) -> None:
        self._requests.discard(request)
        if not self._requests:
            self._fire(self._drained)

    @staticmethod
    def _fire(waiters: list[Deferred[None]]) -> None:
        pending = list(waiters)
        del waiters[:]
        for d in pending:
            d.callback(None)

    def drained(self) -> Deferred[None]:
        """
        Fires once no request is being answered.
        """
        if not self._requests:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        return d

    def close_connections(self) -> Deferred[None]:
        """
        Close every client connection once what was written to it is sent
        (a reactor shutting down would drop it); fires when all are closed.
        """
        if not self.channels:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._closed.append(d)
        for channel in list(self.channels):
            channel._transport.loseConnection()
        return d

    def is_receiver(self, path: bytes) -> bool:
        """
        Whether C{path} is a receiver's, whose POST bodies are read.
        """
        return self.app.routes.lookup(path) is not None

    def rejected(self, path: bytes, request: Request) -> None:
        """
        Account for a delivery refused with 413 before it reached the app.
        """
        route = self.app.routes.lookup(path)
        key = request.requestHeaders.getRawHeaders(b"x-event-key", [b""])[0]
        label = event_label(key.decode("utf-8", "replace") if key else None)
        log.info("delivery to {receiver}: 413 (body over {limit} bytes)",
                 receiver=route.label if route else "-",
                 limit=self.limits.max_body_bytes)
        if route is not None and self.app.observer is not None:
            self.app.observer.delivered(route, label, 413, 0.0)

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if self.connections >= self.limits.max_connections:
            return None
        return super().buildProtocol(addr)

    def log(self, request: Any) -> None:
        pass
