"""
What every consumer of watched Kubernetes objects needs: their identity,
and a relist expressed through a sink's own upsert and sweep.  Pure.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

ObjectKey = tuple[str, str]
"""
C{(namespace, name)} of an object (namespace C{""} when cluster-scoped).
"""


def object_key(obj: Mapping[str, Any]) -> ObjectKey | None:
    """
    The namespace and name of a Kubernetes object, or C{None} when it has
    none (which no real API object lacks).
    """
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return None
    namespace = metadata.get("namespace") or ""
    name = metadata.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not name:
        return None
    return sys.intern(namespace), name


class Sweeping(Protocol):
    """
    A sink that forgets, after a list, what the list did not hold.
    """

    def upsert(self, obj: Mapping[str, Any]) -> ObjectKey | None:
        """
        Add or replace C{obj}; its key (C{None} when it has none).
        """

    def sweep(self, namespace: str | None,
              listed: Collection[ObjectKey | None]) -> None: ...


def replace_all(sink: Sweeping, namespace: str | None,
                objects: Iterable[Mapping[str, Any]]) -> None:
    """
    Make C{sink} hold exactly C{objects} for C{namespace} (every namespace
    when C{None}): each is upserted, then the rest swept.
    """
    listed = set()
    for obj in objects:
        listed.add(sink.upsert(obj))
    sink.sweep(namespace, listed)


def in_scope(key: ObjectKey, namespace: str | None) -> bool:
    """
    Whether an object is in a list's scope.
    """
    return namespace is None or key[0] == namespace
