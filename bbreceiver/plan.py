"""
Planning: which objects a delivery refreshes.  Pure: the event, the index
and the receiver's scope in; de-duplicated targets out.
"""

from __future__ import annotations

from dataclasses import dataclass

from bbreceiver.bitbucket import Event, PushEvent
from bbreceiver.giturls import pr_key, repo_key
from bbreceiver.index import SubscriptionIndex

WAREHOUSE = "warehouse"
PROMOTION = "promotion"


@dataclass(frozen=True, order=True)
class Target:
    """
    One object to refresh.
    """

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Plan:
    """
    What one delivery refreshes: C{kind} names the kind of object the event
    concerns even when there are no targets, for the answer's wording.
    """

    kind: str
    targets: tuple[Target, ...]


def plan(event: Event, index: SubscriptionIndex, project: str) -> Plan:
    """
    The objects C{event} concerns, within the scope of a receiver of
    C{project} (every namespace when empty), each once.
    """
    if isinstance(event, PushEvent):
        return Plan(WAREHOUSE, _warehouses(event, index, project))
    found: list[Target] = []
    key = pr_key(event.url) if event.url else None
    if key is not None:
        found.extend(
            Target(PROMOTION, namespace, name)
            for namespace, name in index.promotions.waiting_on(key)
            if not project or namespace == project
        )
    return Plan(PROMOTION, tuple(sorted(found)))


def _warehouses(
    event: PushEvent, index: SubscriptionIndex, project: str
) -> tuple[Target, ...]:
    if not event.refs and not event.every_ref:
        return ()
    keys = {key for key in map(repo_key, event.repo_urls) if key is not None}
    chosen: set[Target] = set()
    for key in keys:
        for (namespace, name), selector in index.warehouses.subscribed(
            key
        ).items():
            if project and namespace != project:
                continue
            if event.every_ref or selector.accepts_any(event.refs):
                chosen.add(Target(WAREHOUSE, namespace, name))
    return tuple(sorted(chosen))
