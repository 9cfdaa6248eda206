"""
Driving the web app in memory: a real DeliverySite behind treq's in-memory
agent, and a refresher that records instead of patching.
"""

import hashlib
from collections.abc import Iterable
from typing import Any

import treq
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent, _SynchronousProducer
from twisted.internet.defer import succeed
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer
from twisted.internet.defer import Deferred
from twisted.web.iweb import IResponse

from bbreceiver.bitbucket import sign
from bbreceiver.config import Limits, join_url_path
from bbreceiver.index import SubscriptionIndex
from bbreceiver.plan import Target
from bbreceiver.refresh import Outcome
from bbreceiver.web import DeliverySite, Route, StaticRoutes, WebhookApp

SECRET = b"mysupersecrettoken"
PROJECT = "kargo-demo"
NAME = "bb-wh-receiver"


def receiver_path(project: str, name: str, secret: bytes,
                  base: str = "/") -> str:
    digest = hashlib.sha256(
        project.encode() + name.encode() + secret).hexdigest()
    return join_url_path(base, "bitbucket", digest)


PATH = receiver_path(PROJECT, NAME, SECRET)
DEFAULT_LIMITS = Limits()


class RecordingRefresher:
    """
    Records what it is asked to refresh; answers with a set outcome.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Target, ...]] = []
        self.failed = 0
        self.pending = 0

    async def refresh(self, targets: Iterable[Target]) -> Outcome:
        chosen = tuple(targets)
        self.calls.append(chosen)
        return Outcome(len(chosen), min(self.failed, len(chosen)),
                       min(self.pending, len(chosen)))


@implementer(IBodyProducer)
class ChunkedBody:
    """
    A body of unknown length, so that it is sent chunked.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def startProducing(self, consumer: Any) -> Deferred[None]:
        for chunk in self.chunks:
            consumer.write(chunk)
        return succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


def _producer(data: Any) -> Any:
    if IBodyProducer.providedBy(data):
        return data
    return _SynchronousProducer(data)


class Observer:
    """
    Records what the app reports of each delivery.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def delivered(self, route: Route, event: str, code: int,
                  seconds: float) -> None:
        self.seen.append((route.label, event, code))


class Harness:
    """
    One app and an HTTP client talking to it in memory.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, ready: bool = True,
                 project: str = PROJECT) -> None:
        self.index = SubscriptionIndex()
        self.refresher = RecordingRefresher()
        self.is_ready = ready
        self.observer = Observer()
        self.agent = RequestTraversalAgent(None)
        self.reactor = self.agent._memoryReactor
        routes = StaticRoutes({PATH.encode(): Route(
            PROJECT + "/" + NAME, project, SECRET)})
        self.app = WebhookApp(
            routes, self.index, self.refresher, self.reactor,
            ready=lambda: self.is_ready,
            readiness=lambda: {"resources": {"warehouses": self.is_ready}},
            observer=self.observer, max_body_bytes=limits.max_body_bytes)
        self.site = DeliverySite(self.app, limits, reactor=self.reactor)
        self.agent._serverFactory = self.site
        self.http = HTTPClient(self.agent,
                               data_to_body_producer=_producer)

    def request(self, method: str, path: str, body: Any = b"",
                headers: dict[str, Any] | None = None) -> Deferred[IResponse]:
        d = self.http.request(method, "http://example.com" + path,
                              data=body, headers=headers or {})
        self.agent.flush()
        return d

    def deliver(self, event: str | None, body: bytes,
                secret: bytes | None = SECRET, path: str = PATH,
                extra: dict[str, Any] | None = None) -> Deferred[IResponse]:
        headers: dict[str, Any] = {"Content-Type": "application/json"}
        if event is not None:
            headers["X-Event-Key"] = event
        if secret is not None:
            headers["X-Hub-Signature"] = sign(body, secret).decode()
        headers.update(extra or {})
        return self.request("POST", path, body, headers)


def body_of(response: IResponse) -> Deferred[bytes]:
    return treq.content(response)
