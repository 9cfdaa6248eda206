"""
The stand-in's storage: objects, the global resource version, and the event
history watches resume from.  No I/O and no reactor: time comes in as a
callable so tests drive it with a C{Clock}.

It plays etcd plus the registry's write rules, because those are what make
list/watch clients right or wrong: one increasing integer RV for every write
of every type (like etcd's revision), copy-on-write objects so any past
state can be rebuilt from the history (a continue token or an C{Exact} list
reads at its RV), a "compacted below" mark after which that rebuilding, and
resuming a watch, fail with 410, and writes that change nothing leave the RV
and the history alone (C{GuaranteedUpdate} skips byte-identical writes).
"""

from __future__ import annotations

import base64
import copy
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from twisted.logger import Logger

from ._kubeapi import (
    APPLY_PATCH,
    JSON,
    JSON_PATCH,
    MERGE_PATCH,
    NAMESPACES,
    STRATEGIC_MERGE_PATCH,
    NAMESPACE_MISMATCH,
    Cause,
    ResourceType,
    already_exists,
    bad_request,
    conflict,
    generic_error,
    invalid,
    name_mismatch,
    not_found,
    unsupported_media_type,
)
from ._kubepatch import InvalidPatch, PatchConflict, json_equal, json_patch, merge_patch

log = Logger()

Key = tuple[str, str]
"""
(namespace, name) of a stored object; the namespace is C{""} for
cluster-scoped types.
"""

# Metadata the server owns: a client's values are ignored on update.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
)
# Fields left out of managedFields' field sets.
_UNMANAGED = {
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "resourceVersion"),
} | {("metadata", f) for f in _SERVER_METADATA}

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def timestamp(seconds: float) -> str:
    """
    Format a time as Kubernetes does (RFC 3339, whole seconds, UTC).
    """
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    """
    One committed change.  C{object} is the state after it (for C{DELETED},
    the last state carrying the deletion's RV); C{previous} the state before
    (C{None} for C{ADDED}), which is what lets a watch turn a change that
    moves an object out of its selector into C{DELETED}, and lets the store
    rebuild past states.
    """

    resource_version: int
    type: str
    resource: ResourceType
    key: Key
    object: JSON
    previous: JSON | None


def sort_key(key: Key) -> str:
    """
    The order lists come in and continue tokens point into: etcd's key order
    under the resource's prefix.
    """
    namespace, name = key
    return f"{namespace}/{name}" if namespace else name


def _without(obj: JSON, *metadata_keys: str) -> JSON:
    out = dict(obj)
    metadata = dict(out.get("metadata") or {})
    for k in metadata_keys:
        metadata.pop(k, None)
    out["metadata"] = metadata
    return out


def _leaf_paths(value: Any, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        out: set[tuple[str, ...]] = set()
        for k, v in value.items():
            out |= _leaf_paths(v, prefix + (k,))
        return out
    return {prefix}


def _changed_paths(
    old: Any, new: Any, prefix: tuple[str, ...] = ()
) -> set[tuple[str, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[tuple[str, ...]] = set()
        for k, v in new.items():
            if k not in old:
                out |= _leaf_paths(v, prefix + (k,))
            elif not json_equal(old[k], v):
                out |= _changed_paths(old[k], v, prefix + (k,))
        return out
    return _leaf_paths(new, prefix)


def _path_exists(obj: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return False
        obj = obj[part]
    return True


def _fields_v1(paths: Iterable[tuple[str, ...]]) -> JSON:
    root: JSON = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault("f:" + part, {})
    return root


def _paths_of(fields: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not isinstance(fields, dict) or not fields:
        return {prefix} if prefix else set()
    out: set[tuple[str, ...]] = set()
    for k, v in fields.items():
        if k.startswith("f:"):
            out |= _paths_of(v, prefix + (k[2:],))
    return out


class Store:
    """
    Objects of the given resource types plus their change history.

    Every write goes through one commit path that bumps the RV, appends to
    the bounded history and tells the listeners (the open watches).  Stored
    objects are never mutated, only replaced, so history entries and the
    state handed to listeners stay valid.

    @ivar resource_version: the RV of the last write (the "current" RV).
    @ivar oldest_resource_version: the lowest RV a watch may resume from or
        an exact read may ask for; compaction raises it.
    @ivar listeners: called with every committed L{Event}.
    """

    def __init__(
        self,
        resources: Iterable[ResourceType],
        *,
        now: Callable[[], float],
        rng: random.Random,
        initial_resource_version: int = 100,
        history_capacity: int = 1000,
    ) -> None:
        self.resources: tuple[ResourceType, ...] = tuple(resources)
        self._now = now
        self._rng = rng
        self._objects: dict[ResourceType, dict[Key, JSON]] = {
            rt: {} for rt in self.resources
        }
        self._history: deque[Event] = deque()
        self._capacity = history_capacity
        self.resource_version = initial_resource_version
        self.oldest_resource_version = initial_resource_version
        self.listeners: list[Callable[[Event], None]] = []

    # -- resource types ---------------------------------------------------

    def resource_for_path(
        self, group: str, version: str, plural: str
    ) -> ResourceType | None:
        """
        The type served at C{/api(s)/GROUP/VERSION/PLURAL}, if any.
        """
        for rt in self.resources:
            if (rt.group, rt.version, rt.plural) == (group, version, plural):
                return rt
        return None

    def resource_named(self, name: str) -> ResourceType:
        """
        Resolve a plural, singular, kind, short name or C{plural.group}.
        """
        for rt in self.resources:
            if name in rt.names():
                return rt
        raise KeyError(f"no resource type named {name!r}")

    def resource_for_object(self, obj: Mapping[str, Any]) -> ResourceType:
        """
        The type of an object by its C{apiVersion} and C{kind}.
        """
        for rt in self.resources:
            if rt.api_version == obj.get("apiVersion") and rt.kind == obj.get("kind"):
                return rt
        raise KeyError(
            f"no resource type for apiVersion {obj.get('apiVersion')!r} "
            f"kind {obj.get('kind')!r}"
        )

    # -- reads --------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        """
        The current object (shared, do not modify), or a 404 L{KubeError}.
        """
        obj = self._objects[rt].get(self._key(rt, namespace, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    def state_at(self, rt: ResourceType, resource_version: int) -> dict[Key, JSON]:
        """
        All objects of a type as they were at an RV, rebuilt by undoing the
        history after it.  The caller checks that the RV is not older than
        L{oldest_resource_version} (the history after it is then complete).
        """
        state = dict(self._objects[rt])
        for event in reversed(self._history):
            if event.resource_version <= resource_version:
                break
            if event.resource != rt:
                continue
            if event.type == "ADDED":
                state.pop(event.key, None)
            else:
                assert event.previous is not None
                state[event.key] = event.previous
        return state

    def current(self, rt: ResourceType) -> Mapping[Key, JSON]:
        return self._objects[rt]

    def events_after(self, rt: ResourceType, resource_version: int) -> Iterator[Event]:
        """
        History entries of a type after an RV, oldest first.
        """
        for event in self._history:
            if event.resource_version > resource_version and event.resource == rt:
                yield event

    def compact(self) -> int:
        """
        Forget all history up to now, as etcd compaction plus a watch cache
        that rolled over would: only a watch from the current RV can resume.
        """
        self._history.clear()
        self.oldest_resource_version = self.resource_version
        return self.resource_version

    # -- writes -------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        api: bool,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> JSON:
        """
        Store a new object.  With C{api}, the registry's create rules apply
        (a custom resource's status is dropped when it has a status
        subresource); without, the object is stored as given, like seeding
        etcd.
        """
        obj = self._check_body(rt, body)
        metadata = obj["metadata"]
        if rt.namespaced:
            given = metadata.get("namespace") or None
            ns = namespace or given or "default"
            if namespace and given and given != namespace:
                raise bad_request(NAMESPACE_MISMATCH)
            metadata["namespace"] = ns
        else:
            metadata.pop("namespace", None)
            ns = ""
        name = metadata.get("name") or ""
        if not name:
            prefix = metadata.get("generateName") or ""
            if not prefix:
                raise invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [
                        Cause(
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                            "metadata.name",
                        )
                    ],
                )
            name = prefix + "".join(
                self._rng.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5)
            )
            metadata["name"] = name
        key = (ns, name)
        if key in self._objects[rt]:
            raise already_exists(rt, name)
        if api and rt.status_subresource and rt.custom:
            obj.pop("status", None)
        for k in _SERVER_METADATA + ("resourceVersion", "selfLink"):
            metadata.pop(k, None)
        metadata["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        metadata["creationTimestamp"] = timestamp(self._now())
        if rt.custom:
            metadata["generation"] = 1
        self._normalize(rt, obj)
        if manager is not None:
            self._record_manager(obj, {}, manager, None)
        if dry_run:
            return obj
        if ns:
            self._ensure_namespace(ns)
        return self._commit("ADDED", rt, key, obj, None)

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        api: bool,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> JSON:
        """
        An update (PUT).  With C{api}, a custom resource needs
        C{metadata.resourceVersion}; a given one must be current.
        """
        old = self.get(rt, namespace, name)
        obj = self._check_body(rt, body)
        metadata = obj["metadata"]
        if metadata.get("name", name) != name:
            raise name_mismatch(metadata["name"], name)
        if rt.namespaced and metadata.get(
            "namespace", old["metadata"].get("namespace")
        ) != old["metadata"].get("namespace"):
            raise bad_request(NAMESPACE_MISMATCH)
        given_rv = metadata.get("resourceVersion") or ""
        if given_rv:
            if given_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
        elif api and rt.custom:
            raise invalid(
                rt.group,
                rt.plural,
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                        "metadata.resourceVersion",
                    )
                ],
            )
        return self._update(
            rt,
            old,
            obj,
            api=api,
            subresource=subresource,
            dry_run=dry_run,
            manager=manager,
        )

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        *,
        api: bool,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> JSON:
        """
        Apply a merge or JSON patch to the current object.  A
        C{metadata.resourceVersion} the patch puts into the object is a
        precondition, as on the real server.
        """
        if content_type not in rt.patch_types or content_type == APPLY_PATCH:
            # Server-side apply is not implemented; refusing it the way an
            # unknown type is refused keeps clients from assuming it worked.
            raise unsupported_media_type(rt.patch_types)
        old = self.get(rt, namespace, name)
        if content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if not isinstance(patch, dict):
                raise bad_request(
                    "error decoding patch: a merge patch must be a JSON object"
                )
            new = merge_patch(old, patch)
        else:
            assert content_type == JSON_PATCH
            try:
                new = json_patch(old, patch)
            except InvalidPatch as e:
                raise bad_request(str(e)) from None
            except PatchConflict:
                raise generic_error(422) from None
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            raise bad_request("the patched object is not a valid object")
        new = copy.deepcopy(new)
        metadata = new.setdefault("metadata", {})
        if metadata.get("name") != name:
            raise name_mismatch(metadata.get("name"), name)
        given_rv = metadata.get("resourceVersion") or ""
        if given_rv and given_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        return self._update(
            rt,
            old,
            new,
            api=api,
            subresource=subresource,
            dry_run=dry_run,
            manager=manager,
        )

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> JSON:
        """
        Delete an object, or only mark it (C{deletionTimestamp}) while it has
        finalizers; it goes once an update empties them.
        """
        old = self.get(rt, namespace, name)
        metadata = old["metadata"]
        storage_key = sort_key(self._key(rt, namespace, name))
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = (preconditions or {}).get(field)
            if wanted is not None and wanted != metadata.get(field):
                raise conflict(
                    rt,
                    name,
                    "StorageError: invalid object, Code: 4, Key: "
                    f"/{rt.group_resource}/{storage_key}, ResourceVersion: 0, "
                    f"AdditionalErrorMsg: Precondition failed: {label} in "
                    f"precondition: {wanted}, {label} in object meta: "
                    f"{metadata.get(field)}",
                )
        if metadata.get("finalizers"):
            if metadata.get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = timestamp(self._now())
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if new["metadata"].get("generation"):
                new["metadata"]["generation"] += 1
            if dry_run:
                return new
            return self._commit(
                "MODIFIED", rt, self._key(rt, namespace, name), new, old
            )
        if dry_run:
            return old
        return self._commit("DELETED", rt, self._key(rt, namespace, name), old, old)

    # -- internals ----------------------------------------------------------

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if rt.namespaced else "", name)

    def _check_body(self, rt: ResourceType, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj: JSON = copy.deepcopy(body)
        api_version = obj.setdefault("apiVersion", rt.api_version)
        kind = obj.setdefault("kind", rt.kind)
        if api_version != rt.api_version or kind != rt.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the "
                f"expected API version ({rt.api_version})"
                if api_version != rt.api_version
                else f"the kind in the data ({kind}) does not match the expected "
                f"kind ({rt.kind})"
            )
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be a JSON object")
        return obj

    def _normalize(self, rt: ResourceType, obj: JSON) -> None:
        """
        What decoding and defaulting do to built-in types: a Secret's
        C{stringData} is folded into C{data}; a Namespace gets its name
        label and phase.
        """
        if rt.kind == "Secret" and not rt.group:
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = dict(obj.get("data") or {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode("utf-8")).decode("ascii")
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif rt.kind == "Namespace" and not rt.group:
            name = obj["metadata"]["name"]
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {})
            status = obj.setdefault("status", {})
            status.setdefault("phase", "Active")

    def _ensure_namespace(self, namespace: str) -> None:
        """
        Namespaces exist implicitly: the first object in one creates it (a
        real server would answer 404 instead; tests need not care).
        """
        if (
            NAMESPACES in self._objects
            and ("", namespace) not in self._objects[NAMESPACES]
        ):
            self.create(NAMESPACES, None, {"metadata": {"name": namespace}}, api=False)

    def _update(
        self,
        rt: ResourceType,
        old: JSON,
        new: JSON,
        *,
        api: bool,
        subresource: str | None,
        dry_run: bool,
        manager: str | None,
    ) -> JSON:
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif api and rt.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        metadata = new["metadata"]
        old_metadata = old["metadata"]
        for k in _SERVER_METADATA + ("name", "namespace"):
            if k in old_metadata:
                metadata[k] = copy.deepcopy(old_metadata[k])
            else:
                metadata.pop(k, None)
        metadata.pop("selfLink", None)
        metadata["resourceVersion"] = old_metadata["resourceVersion"]
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        self._normalize(rt, new)
        if json_equal(_without(new, "managedFields"), _without(old, "managedFields")):
            # Nothing changed: no write, no RV, no event.
            return old
        if rt.custom:
            ignore = ("metadata", "status") if rt.status_subresource else ("metadata",)
            before = {k: v for k, v in old.items() if k not in ignore}
            after = {k: v for k, v in new.items() if k not in ignore}
            if not json_equal(before, after):
                metadata["generation"] = int(old_metadata.get("generation") or 0) + 1
        if manager is not None:
            self._record_manager(new, old, manager, subresource)
        if dry_run:
            return new
        key = self._key(rt, old_metadata.get("namespace"), old_metadata["name"])
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            return self._commit("DELETED", rt, key, new, old)
        return self._commit("MODIFIED", rt, key, new, old)

    def _record_manager(
        self, new: JSON, old: JSON, manager: str, subresource: str | None
    ) -> None:
        """
        Keep C{metadata.managedFields} roughly as the server does for
        C{Update} operations: each manager owns the fields it changed,
        fields that disappear are owned by nobody.  Lists count as leaves.
        """
        changed = {
            p
            for p in _changed_paths(old, new)
            if p[:2] not in _UNMANAGED and p[:1] not in _UNMANAGED
        }
        entries = []
        found = False
        for entry in new["metadata"].get("managedFields") or []:
            paths = {
                p for p in _paths_of(entry.get("fieldsV1")) if _path_exists(new, p)
            }
            if (
                entry.get("manager") == manager
                and entry.get("subresource") == subresource
                and entry.get("operation") == "Update"
            ):
                found = True
                paths |= changed
                entry = dict(entry, time=timestamp(self._now()))
            else:
                paths -= changed
            if paths:
                entries.append(dict(entry, fieldsV1=_fields_v1(paths)))
        if not found and changed:
            entry = {
                "manager": manager,
                "operation": "Update",
                "apiVersion": new["apiVersion"],
                "time": timestamp(self._now()),
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields_v1(changed),
            }
            if subresource:
                entry["subresource"] = subresource
            entries.append(entry)
        if entries:
            new["metadata"]["managedFields"] = entries
        else:
            new["metadata"].pop("managedFields", None)

    def _commit(
        self,
        event_type: str,
        rt: ResourceType,
        key: Key,
        obj: JSON,
        previous: JSON | None,
    ) -> JSON:
        self.resource_version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        if event_type == "DELETED":
            del self._objects[rt][key]
        else:
            self._objects[rt][key] = obj
        event = Event(self.resource_version, event_type, rt, key, obj, previous)
        self._history.append(event)
        while len(self._history) > self._capacity:
            self.oldest_resource_version = self._history.popleft().resource_version
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.failure(
                    "watch listener failed on {type} of {key}", type=event_type, key=key
                )
        return obj
