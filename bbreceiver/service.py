"""
The daemon's service tree and lifecycle: the Kubernetes side (reflectors
feeding the index, and the client the refresher patches through), the web
listener, the metrics listener, and, for the embedded default, an
in-process Kubernetes API stand-in.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site

from bbreceiver.config import Config
from bbreceiver.index import SubscriptionIndex
from bbreceiver.kube.client import (
    CLUSTERCONFIGS,
    PROJECTCONFIGS,
    PROMOTIONS,
    SECRETS,
    WAREHOUSES,
    KubeClient,
    KubeError,
    NotFound,
    ResourceType,
    TooManyRequests,
    TransportError,
    make_http_client,
)
from bbreceiver.kube.reflector import Reflector, ResourceSink
from bbreceiver.metrics import Metrics
from bbreceiver.plan import PROMOTION, WAREHOUSE, Target
from bbreceiver.receivers import ClusterConfigs, ProjectConfigs, ReceiverRoutes
from bbreceiver.refresh import FAIL, GONE, RETRY, Refresher, Verdict
from bbreceiver.web import DeliverySite, WebhookApp

log = Logger()

_RESOURCES = {WAREHOUSE: WAREHOUSES, PROMOTION: PROMOTIONS}


def classify(error: BaseException) -> Verdict:
    """
    What a failed refresh PATCH means (SPEC §4): a deleted object is done;
    429, 5xx and connection errors are worth retrying; the rest is final.
    """
    if isinstance(error, NotFound):
        return Verdict(GONE)
    if isinstance(error, TooManyRequests) or (
        isinstance(error, KubeError) and error.code >= 500
    ):
        return Verdict(RETRY, retry_after=error.retry_after,
                       reason=str(error))
    if isinstance(error, TransportError):
        return Verdict(RETRY, reason=str(error))
    if isinstance(error, KubeError):
        return Verdict(FAIL, reason=str(error))
    log.failure("unexpected error refreshing", Failure(error))
    return Verdict(FAIL, reason=type(error).__name__)


class _ProblemLog:
    """
    Logs each object that cannot be fully understood, once per problem.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}

    def __call__(self, namespace: str, name: str, problem: str) -> None:
        if self._seen.get((namespace, name)) == problem:
            return
        if len(self._seen) > 10000:
            self._seen.clear()
        self._seen[(namespace, name)] = problem
        log.warn("{namespace}/{name}: {problem}", namespace=namespace,
                 name=name, problem=problem)


class _QuietSite(Site):
    """
    A site that writes no access log (Prometheus scrapes every few
    seconds).
    """

    noisy = False

    def log(self, request: Any) -> None:
        pass


class ReceiverService(MultiService):
    """
    The whole daemon.

    @ivar index: what deliveries are matched against.
    @ivar routes: the receiver paths served.
    @ivar reflectors: one per watched collection.
    """

    def __init__(self, config: Config, reactor: Any,
                 connection: Any = None) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.connection = connection
        self.metrics = Metrics()
        self.index = SubscriptionIndex(_ProblemLog())
        self.routes = ReceiverRoutes(config, reactor)
        self.reflectors: list[Reflector] = []
        self.client: KubeClient | None = None
        self.embedded: Any = None
        self._ports: list[IListeningPort] = []
        self._embedded_port: IListeningPort | None = None
        self.site: DeliverySite | None = None
        self.refresher: Refresher | None = None

    # -- start -------------------------------------------------------------

    def startService(self) -> None:
        limits = self.config.limits
        self.client = self._client()
        self.refresher = Refresher(
            self._patch, classify, self.reactor,
            concurrency=limits.refresh_concurrency,
            deadline=limits.response_deadline_seconds,
            observe=self.metrics.refreshed)
        self._watch()
        self.metrics.count_objects(WAREHOUSE, lambda: len(
            self.index.warehouses))
        self.metrics.count_objects(PROMOTION, lambda: len(
            self.index.promotions))
        app = WebhookApp(
            self.routes, self.index, self.refresher, self.reactor,
            ready=self.ready, readiness=self.readiness,
            observer=self.metrics, max_body_bytes=limits.max_body_bytes)
        self.site = DeliverySite(app, limits, reactor=self.reactor)
        self._ports.append(self._listen(self.config.listen, self.site,
                                        "listen"))
        if self.config.metrics_listen is not None:
            from prometheus_client.twisted import MetricsResource

            root = Resource()
            root.putChild(b"metrics", MetricsResource(self.metrics.registry))
            self._ports.append(self._listen(
                self.config.metrics_listen, _QuietSite(root),
                "metrics.listen"))
        super().startService()
        DeferredList([r.when_synced() for r in self.reflectors]).addCallback(
            _settled)
        log.info("bbreceiver serving {count} receiver(s) on {listen}",
                 count=len(self.config.receivers), listen=self.config.listen)

    def _client(self) -> KubeClient:
        embedded = self.config.kubernetes.embedded
        if embedded is None:
            from bbreceiver.kube.auth import build_client

            return build_client(self.reactor, self.connection)
        from bbreceiver.testing.fakekube import FakeKube

        self.embedded = FakeKube(self.reactor)
        if embedded.objects:
            try:
                self.embedded.load_yaml_file(embedded.objects)
            except Exception as e:
                raise SystemExit(_fatal(
                    "kubernetes.embedded.objects: cannot load {}: {}".format(
                        embedded.objects, " ".join(str(e).split())
                        or type(e).__name__))) from None
        port = self._listen(embedded.listen, self.embedded.site(),
                            "kubernetes.embedded.listen")
        self._embedded_port = port
        address: Any = port.getHost()
        server = "http://{}:{}".format(address.host, address.port)
        log.info("embedded Kubernetes API stand-in at {server} (kubectl "
                 "--server {server} get warehouses -A)", server=server)
        return KubeClient(make_http_client(self.reactor, None), server, None,
                          clock=self.reactor)

    def _watch(self) -> None:
        """
        One reflector per resource and namespace, and one per Secret that a
        receiver names.
        """
        settings = self.config.kubernetes
        namespaces: list[str | None] = list(settings.namespaces) or [None]
        assert self.client is not None

        client = self.client

        def watch(resource: ResourceType,
                  scopes: Sequence[tuple[str | None, str | None]],
                  sink: ResourceSink) -> None:
            group: list[Reflector] = []
            restarted, relisted = self.metrics.watch(
                resource.plural, lambda: all(r.synced for r in group))
            for namespace, field_selector in scopes:
                reflector = Reflector(
                    client, resource, namespace, sink, self.reactor,
                    watch_timeout_seconds=settings.watch_timeout_seconds,
                    inactivity_seconds=settings.inactivity_seconds,
                    backoff_max_seconds=settings.backoff_max_seconds,
                    field_selector=field_selector,
                    on_restart=restarted, on_relist=relisted)
                reflector.setServiceParent(self)
                group.append(reflector)
            self.reflectors.extend(group)

        everywhere = [(namespace, None) for namespace in namespaces]
        watch(WAREHOUSES, everywhere, self.index.warehouses)
        watch(PROMOTIONS, everywhere, self.index.promotions)
        kargo = self.config.kargo
        if kargo.project_configs:
            # Any Secret of a project (or of the system namespace) may be
            # named by a receiver that appears later.
            watch(PROJECTCONFIGS, everywhere, ProjectConfigs(self.routes))
            watch(CLUSTERCONFIGS, [(None, "metadata.name=cluster")],
                  ClusterConfigs(self.routes, kargo.system_namespace))
            scopes: list[tuple[str | None, str | None]] = [(None, None)]
            if settings.namespaces:
                scopes = [(namespace, None) for namespace in sorted(
                    {*settings.namespaces, kargo.system_namespace})]
            watch(SECRETS, scopes, self.routes.secrets)
        elif self.routes.secret_refs:
            watch(SECRETS, [(namespace, "metadata.name=" + name)
                            for namespace, name in self.routes.secret_refs],
                  self.routes.secrets)

    def _listen(self, description: str, factory: Any, key: str
                ) -> IListeningPort:
        """
        Listen now; a listener that cannot be had stops start-up with one
        line and a non-zero exit (every endpoint Twisted ships listens
        synchronously).
        """
        endpoint = serverFromString(self.reactor, description)
        result: list[Any] = []
        endpoint.listen(factory).addBoth(result.append)
        if not result:
            raise SystemExit(_fatal("{}: {} did not start listening at "
                                    "once".format(key, description)))
        if isinstance(result[0], Failure):
            raise SystemExit(_fatal("{}: cannot listen on {}: {}".format(
                key, description, result[0].getErrorMessage())))
        port: IListeningPort = result[0]
        return port

    # -- state -------------------------------------------------------------

    def ready(self) -> bool:
        """
        Whether every reflector completed its first list.
        """
        return all(r.synced for r in self.reflectors)

    def readiness(self) -> dict[str, Any]:
        """
        The detail C{/readyz} shows.
        """
        resources: dict[str, Any] = {}
        for r in self.reflectors:
            name = r.resource.plural + ("/" + r.namespace if r.namespace
                                        else "")
            if r.field_selector:
                name += "/" + r.field_selector.split("=", 1)[1]
            resources[name] = {"synced": r.synced,
                               **({"error": r.last_error}
                                  if r.last_error else {})}
        detail: dict[str, Any] = {"resources": resources}
        conflicts = self.routes.conflicts()
        if conflicts:
            detail["conflicts"] = conflicts
        return detail

    async def _patch(self, target: Target, body: bytes) -> Any:
        assert self.client is not None
        return await self.client.merge_patch(
            _RESOURCES[target.kind], target.namespace, target.name, body)

    # -- stop --------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """
        Stop accepting, let deliveries and their PATCHes finish (bounded by
        the response deadline), close the connections once their answers
        are out, then close the watches.
        """
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        ports, self._ports = self._ports, []
        for port in ports:
            await maybeDeferred(port.stopListening)
        deadline = self.config.limits.response_deadline_seconds
        busy = []
        if self.site is not None:
            busy.append(self.site.drained())
        if self.refresher is not None:
            busy.append(self.refresher.when_idle())
        if not await self._within(2 * deadline, DeferredList(busy)):
            log.warn("stopping with deliveries or refreshes still in flight")
        if self.site is not None:
            await self._within(deadline, self.site.close_connections())
        await MultiService.stopService(self)
        if self._embedded_port is not None:
            await maybeDeferred(self._embedded_port.stopListening)
        log.info("bbreceiver stopped")

    async def _within(self, seconds: float, d: Deferred[Any]) -> bool:
        """
        Wait for C{d}, at most C{seconds}; say whether it fired.
        """
        done: Deferred[bool] = Deferred()

        def fire(result: bool) -> None:
            if not done.called:
                done.callback(result)

        timer = self.reactor.callLater(seconds, fire, False)
        d.addBoth(lambda _: fire(True))
        result = await done
        if timer.active():
            timer.cancel()
        return result


def _settled(_: object) -> None:
    """
    Once the index is built, keep the cyclic garbage collector off it: the
    index lives as long as the process, and every full collection would
    walk all of it again.
    """
    gc.collect()
    gc.freeze()


def _fatal(message: str) -> int:
    """
    Say why the daemon cannot start, before logging is set up.
    """
    sys.stderr.write("bbreceiver: " + message + "\n")
    sys.stderr.flush()
    return 1

