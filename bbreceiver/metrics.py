"""
Prometheus metrics (SPEC §7), in a registry of the daemon's own so that two
daemons in one process (tests) do not share counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from bbreceiver.plan import Target
from bbreceiver.web import Route

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    8.0, 10.0, 20.0)


class Metrics:
    """
    Every metric the daemon exports; the components are told only the
    callables they report through.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.deliveries = Counter(
            "bbreceiver_deliveries", "Requests to receiver paths, by answer.",
            ["receiver", "event", "code"], registry=self.registry)
        self.refreshes = Counter(
            "bbreceiver_refreshes", "Refresh PATCH jobs by final result.",
            ["kind", "result"], registry=self.registry)
        self.duration = Histogram(
            "bbreceiver_delivery_duration_seconds",
            "Time from a delivery's arrival to its answer.", ["event"],
            buckets=DURATION_BUCKETS, registry=self.registry)
        self.index_objects = Gauge(
            "bbreceiver_index_objects", "Objects in the index, by kind.",
            ["kind"], registry=self.registry)
        self.watch_restarts = Counter(
            "bbreceiver_watch_restarts", "Watch streams restarted, by reason.",
            ["resource", "reason"], registry=self.registry)
        self.relists = Counter(
            "bbreceiver_relists", "Complete lists handed to the index.",
            ["resource"], registry=self.registry)
        self.synced = Gauge(
            "bbreceiver_index_synced",
            "1 once a resource's first list reached the index.",
            ["resource"], registry=self.registry)
        self.retiring = Counter(
            "bbreceiver_retiring_secret_deliveries",
            "Deliveries accepted on a secret in its rotation grace period.",
            ["receiver"], registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def delivered(self, route: Route, event: str, code: int,
                  seconds: float) -> None:
        """
        The web app's L{bbreceiver.web.DeliveryObserver}.
        """
        key = (route.label, event, code)
        children = self._children.get(key)
        if children is None:
            # Looking labelled children up costs more than counting; the
            # label values are bounded (receivers x events x codes).
            children = self._children[key] = (
                self.deliveries.labels(route.label, event, str(code)),
                self.duration.labels(event))
        children[0].inc()
        children[1].observe(seconds)
        if route.retiring and 200 <= code < 300:
            self.retiring.labels(route.label).inc()

    def refreshed(self, target: Target, result: str) -> None:
        """
        The refresher's result observer.
        """
        self.refreshes.labels(target.kind, result).inc()

    def count_objects(self, kind: str, count: Callable[[], int]) -> None:
        """
        Report C{count()} as the number of indexed objects of C{kind}.
        """
        self.index_objects.labels(kind).set_function(count)

    def watch(self, resource: str, synced: Callable[[], bool]
              ) -> tuple[Callable[[str], None], Callable[[], None]]:
        """
        The C{on_restart} and C{on_relist} callbacks of a reflector.
        """
        self.synced.labels(resource).set_function(lambda: float(synced()))
        restarts = self.watch_restarts
        relists = self.relists.labels(resource)
        return (lambda reason: restarts.labels(resource, reason).inc(),
                relists.inc)
