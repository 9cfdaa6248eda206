"""
The subscription index: what deliveries are matched against, kept current by
the list/watch reflectors.  Synchronous and free of I/O.

It keeps only what matching needs, never whole objects: for a Warehouse, the
repository keys of its git subscriptions and their selectors; for a Running
Promotion, the pull request URLs it waits on.  Updates are applied in place:
the reactor is single-threaded and every update is one synchronous call, so
a delivery never sees half of one, and nothing is copied per event.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from bbreceiver.giturls import pr_key, repo_key
from bbreceiver.objects import ObjectKey, in_scope, object_key, replace_all
from bbreceiver.selectors import AnySelector, Selector, compile_selector

ProblemReporter = Callable[[str, str, str], None]
"""
Told C{(namespace, name, problem)} when an object cannot be fully
understood; the object is indexed as well as it can be.
"""


class _Table:
    """
    Objects of one kind, indexed under any number of string keys each.

    Subclasses say which keys (and values stored under them) an object
    yields; this class keeps the forward and reverse maps in step.

    An object's entry is one flat tuple C{(key, value, key, value, ...)}.
    Most keys have one object: the key then maps to that object's
    C{(namespace, name)} (its value is in its entry), and to a dict of
    objects and values only once a second object shares the key.  A
    hundred thousand Warehouses so cost two small objects each, which
    matters for memory and for every pass of the garbage collector.
    """

    def __init__(self, report: ProblemReporter | None = None) -> None:
        self._report = report
        self._entries: dict[ObjectKey, tuple[Any, ...]] = {}
        self._by_key: dict[str, ObjectKey | dict[ObjectKey, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> Iterator[ObjectKey]:
        """
        Every object in the table.
        """
        return iter(self._entries)

    def _extract(
        self, obj: Mapping[str, Any], where: ObjectKey
    ) -> tuple[Any, ...]:
        """
        The flat C{(key, value, ...)} entry of C{obj}, each key once.
        """
        raise NotImplementedError()

    def _problem(self, where: ObjectKey, problem: str) -> None:
        if self._report is not None:
            self._report(where[0], where[1], problem)

    def upsert(self, obj: Mapping[str, Any]) -> ObjectKey | None:
        """
        Add an object, or replace what is known of it.

        @return: the object's key, or C{None} when it has none.
        """
        where = object_key(obj)
        if where is None:
            return None
        entries = self._extract(obj, where)
        known = self._entries.get(where)
        if known is not None:
            if known == entries:
                # Most updates (status, other fields) change nothing we keep.
                return where
            self._remove(where)
        if not entries:
            return where
        self._entries[where] = entries
        by_key = self._by_key
        for i in range(0, len(entries), 2):
            key = entries[i]
            bucket = by_key.get(key)
            if bucket is None:
                by_key[key] = where
            elif isinstance(bucket, dict):
                bucket[where] = entries[i + 1]
            else:
                by_key[key] = {bucket: self._value(bucket, key),
                               where: entries[i + 1]}
        return where

    def delete(self, obj: Mapping[str, Any]) -> None:
        """
        Forget an object (given its last known state).
        """
        where = object_key(obj)
        if where is not None:
            self._remove(where)

    def replace(
        self, namespace: str | None, objects: Iterable[Mapping[str, Any]]
    ) -> None:
        """
        Make the table hold exactly C{objects} for C{namespace} (every
        namespace when C{None}): what a relist found.
        """
        replace_all(self, namespace, objects)

    def sweep(
        self, namespace: str | None, listed: Collection[ObjectKey | None]
    ) -> None:
        """
        Forget the objects of C{namespace} (every namespace when C{None})
        that a list which ended did not hold; its objects were upserted as
        they came.
        """
        gone = [
            where
            for where in self._entries
            if where not in listed and in_scope(where, namespace)
        ]
        for where in gone:
            self._remove(where)

    def _remove(self, where: ObjectKey) -> None:
        entries = self._entries.pop(where, None)
        if entries is None:
            return
        by_key = self._by_key
        for key in entries[::2]:
            bucket = by_key.get(key)
            if isinstance(bucket, dict):
                bucket.pop(where, None)
                if len(bucket) == 1:
                    by_key[key] = next(iter(bucket))
            elif bucket == where:
                del by_key[key]

    def _value(self, where: ObjectKey, key: str) -> Any:
        """
        What the entry of C{where} holds under C{key}.
        """
        entries = self._entries[where]
        return entries[entries.index(key) + 1]

    def lookup(self, key: str) -> Mapping[ObjectKey, Any]:
        """
        The objects indexed under C{key}, with the value each stored.
        """
        bucket = self._by_key.get(key)
        if bucket is None:
            return _NOTHING
        if isinstance(bucket, dict):
            return bucket
        return {bucket: self._value(bucket, key)}


_NOTHING: Mapping[ObjectKey, Any] = {}


class WarehouseTable(_Table):
    """
    Warehouses by the repository key of each git subscription; the value
    stored is the selector of the subscription to that repository (an
    L{AnySelector} when there are several).
    """

    def _extract(
        self, obj: Mapping[str, Any], where: ObjectKey
    ) -> tuple[Any, ...]:
        spec = obj.get("spec")
        subscriptions = spec.get("subscriptions") if isinstance(
            spec, dict) else None
        if not isinstance(subscriptions, list):
            return ()
        entries: list[Any] = []
        for subscription in subscriptions:
            git = subscription.get("git") if isinstance(
                subscription, dict) else None
            if not isinstance(git, dict):
                continue
            url = git.get("repoURL")
            if not isinstance(url, str):
                continue
            key = repo_key(url)
            if key is None:
                continue
            selector = compile_selector(git)
            if selector.problem is not None:
                self._problem(where, "subscription to {}: {}; every ref of "
                              "it counts as a match".format(url,
                                                            selector.problem))
            key = sys.intern(key)
            if key in entries:
                # A second subscription to one repository (values are
                # selectors, never strings, so this finds the key).
                i = entries.index(key) + 1
                entries[i] = AnySelector.of(entries[i], selector)
            else:
                entries += (key, selector)
        return tuple(entries)

    def subscribed(self, key: str) -> Mapping[ObjectKey, Selector]:
        """
        The Warehouses subscribed to the repository C{key}, each with the
        selector of its subscriptions to it.
        """
        return self.lookup(key)


class PromotionTable(_Table):
    """
    Running Promotions by the key of each pull request URL a
    C{git-wait-for-pr} step at or before the current one waits on
    (kargo-receiver.md §5.3).
    """

    def _extract(
        self, obj: Mapping[str, Any], where: ObjectKey
    ) -> tuple[Any, ...]:
        status = obj.get("status")
        spec = obj.get("spec")
        if not isinstance(status, dict) or status.get("phase") != "Running":
            return ()
        steps = spec.get("steps") if isinstance(spec, dict) else None
        if not isinstance(steps, list):
            return ()
        current = status.get("currentStep")
        if current is None:
            current = 0
        if isinstance(current, bool) or not isinstance(current, int):
            self._problem(where, "status.currentStep is not an integer")
            return ()
        state = status.get("state")
        if not isinstance(state, dict):
            state = {}
        keys = []
        for step in steps[: current + 1]:
            if not isinstance(step, dict):
                continue
            alias = step.get("as")
            if step.get("uses") != "git-wait-for-pr" or not alias or (
                not isinstance(alias, str)
            ):
                continue
            output = state.get(alias)
            pr = output.get("pr") if isinstance(output, dict) else None
            url = pr.get("url") if isinstance(pr, dict) else None
            key = pr_key(url) if isinstance(url, str) and url else None
            if key is not None:
                keys.append(key)
        entries: list[Any] = []
        for key in dict.fromkeys(keys):
            entries += (key, None)
        return tuple(entries)

    def waiting_on(self, key: str) -> Iterable[ObjectKey]:
        """
        The Promotions waiting on the pull request C{key}.
        """
        return self.lookup(key).keys()


class SubscriptionIndex:
    """
    Everything a delivery is matched against.
    """

    def __init__(self, report: ProblemReporter | None = None) -> None:
        self.warehouses = WarehouseTable(report)
        self.promotions = PromotionTable(report)
