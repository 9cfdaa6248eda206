"""
Receivers and their URLs: the path of a receiver is Kargo's
C{PREFIX/bitbucket/sha256(project + name + secret)} (SPEC §4), so the table
of served paths changes whenever a secret does.

Receivers are declared by sources: the configuration file, and, with
C{kargo.projectConfigs}, every ProjectConfig and the ClusterConfig named
C{cluster} (SPEC §8).  A receiver whose secret lives in a Secret is routed
once that Secret is known, and follows it: a new secret routes its new path
at once while the old path keeps serving the old secret for the rotation
grace period.  A path claimed by two receivers is served by neither.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from bbreceiver.config import Config, SecretRef, base_path, join_url_path
from bbreceiver.objects import ObjectKey, in_scope, object_key, replace_all
from bbreceiver.web import Route

log = Logger()

CONFIG_FILE = "the configuration file"


def receiver_hash(project: str, name: str, secret: bytes) -> str:
    """
    Kargo's hash: lower-case hex SHA-256 of C{project + name + secret}.
    """
    return hashlib.sha256(
        project.encode("utf-8") + name.encode("utf-8") + secret
    ).hexdigest()


def receiver_url(base_url: str, project: str, name: str, secret: bytes) -> str:
    """
    The URL Kargo publishes for a receiver (its path alone when the base URL
    is a path).
    """
    return join_url_path(base_url, "bitbucket",
                         receiver_hash(project, name, secret))


def receiver_path(base_url: str, project: str, name: str,
                  secret: bytes) -> bytes:
    """
    The request path a receiver is served at.
    """
    return join_url_path(base_path(base_url), "bitbucket",
                         receiver_hash(project, name, secret)).encode("utf-8")


def secret_value(secret: Mapping[str, Any]) -> bytes | None:
    """
    The bytes of key C{secret} of a Kubernetes Secret object, or C{None}.
    """
    data = secret.get("data")
    value = data.get("secret") if isinstance(data, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class Declared:
    """
    A receiver as a source declares it: exactly one of C{secret} and
    C{secret_ref} is set.
    """

    project: str
    name: str
    secret: bytes | None = None
    secret_ref: SecretRef | None = None

    @property
    def label(self) -> str:
        return self.project + "/" + self.name


class SecretStore:
    """
    The C{secret} key of every watched Secret (a reflector's sink), and
    who to tell when one changes.
    """

    def __init__(self, changed: Callable[[tuple[str, str]], None]) -> None:
        self._values: dict[tuple[str, str], bytes | None] = {}
        self._changed = changed

    def get(self, key: tuple[str, str]) -> tuple[bool, bytes | None]:
        """
        Whether the Secret exists, and its value.
        """
        return key in self._values, self._values.get(key)

    def upsert(self, obj: Mapping[str, Any]) -> ObjectKey | None:
        key = object_key(obj)
        if key is None:
            return None
        value = secret_value(obj)
        if key not in self._values or self._values[key] != value:
            self._values[key] = value
            self._changed(key)
        return key

    def delete(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        if key is not None and key in self._values:
            del self._values[key]
            self._changed(key)

    def replace(self, namespace: str | None,
                objects: Iterable[Mapping[str, Any]]) -> None:
        replace_all(self, namespace, objects)

    def sweep(self, namespace: str | None,
              listed: Collection[ObjectKey | None]) -> None:
        for key in [k for k in self._values
                    if k not in listed and in_scope(k, namespace)]:
            del self._values[key]
            self._changed(key)


@dataclass
class _Claim:
    source: str
    route: Route
    expiry: IDelayedCall | None = None


def _claimants(claims: Iterable[_Claim]) -> str:
    return ", ".join(sorted(
        "{} ({})".format(c.route.label, c.source) for c in claims))


class ReceiverRoutes:
    """
    The receiver paths served now (the web app's L{bbreceiver.web.Routes}).
    """

    def __init__(self, config: Config, clock: IReactorTime) -> None:
        self._base_url = config.base_url
        self._grace = config.kargo.rotation_grace_seconds
        self._system_namespace = config.kargo.system_namespace
        self._clock = clock
        self.secrets = SecretStore(self._secret_changed)
        self._claims: dict[bytes, list[_Claim]] = {}
        self._declared: dict[str, list[Declared]] = {}
        self._current: dict[tuple[str, str], bytes] = {}
        self._explained: dict[tuple[str, str], str] = {}
        self.declare(CONFIG_FILE, [
            Declared(r.project, r.name, r.secret, r.secret_ref)
            for r in config.receivers])

    @property
    def secret_refs(self) -> list[tuple[str, str]]:
        """
        The C{(namespace, name)} of every Secret the configuration file's
        receivers name.
        """
        return sorted({
            (d.secret_ref.namespace, d.secret_ref.name)
            for d in self._declared.get(CONFIG_FILE, ()) if d.secret_ref})

    def lookup(self, path: bytes) -> Route | None:
        claims = self._claims.get(path)
        if claims is None or len(claims) != 1:
            return None
        return claims[0].route

    def conflicts(self) -> list[str]:
        """
        Receivers that claim one path (served by none).  The path itself is
        left out: it is as good as the secret for reaching the receiver,
        and /readyz is served to anyone.
        """
        return sorted(
            "one URL claimed by " + _claimants(claims)
            for claims in self._claims.values() if len(claims) > 1
        )

    def receivers(self) -> list[tuple[str, Declared, bytes | None]]:
        """
        Every declared receiver, its source and its current secret.
        """
        found = []
        for source, declared in sorted(
                self._declared.items(),
                key=lambda item: (item[0] != CONFIG_FILE, item[0])):
            for receiver in declared:
                found.append((source, receiver, self._secret_of(receiver)[1]))
        return found

    def why_unrouted(self, receiver: Declared) -> str | None:
        """
        Why a receiver has no route now, or C{None}.
        """
        return self._secret_of(receiver)[0]

    def declare(self, source: str, receivers: Iterable[Declared]) -> None:
        """
        Make C{receivers} the ones C{source} declares now.
        """
        new = list(receivers)
        old = self._declared.pop(source, [])
        if new:
            self._declared[source] = new
        for receiver in old:
            if receiver not in new:
                self._route(source, receiver, None)
                self._explained.pop((source, receiver.label), None)
        for receiver in new:
            self._resolve(source, receiver)

    def _secret_of(self, receiver: Declared) -> tuple[str | None, bytes | None]:
        """
        Why the receiver cannot be routed (or C{None}), and its secret.
        """
        if receiver.secret is not None:
            return None, receiver.secret
        assert receiver.secret_ref is not None
        ref = receiver.secret_ref
        exists, value = self.secrets.get((ref.namespace, ref.name))
        if not exists:
            return "Secret {}/{} does not exist".format(
                ref.namespace, ref.name), None
        if value is None:
            return "Secret {}/{} has no key 'secret'".format(
                ref.namespace, ref.name), None
        return None, value

    def _resolve(self, source: str, receiver: Declared) -> None:
        why, secret = self._secret_of(receiver)
        key = (source, receiver.label)
        if why != self._explained.get(key):
            if why is None:
                self._explained.pop(key, None)
                if receiver.secret_ref is not None:
                    log.info("receiver {receiver} ({source}) is routed",
                             receiver=receiver.label, source=source)
            else:
                self._explained[key] = why
                log.warn("receiver {receiver} ({source}) is not routed: "
                         "{why}", receiver=receiver.label, source=source,
                         why=why)
        self._route(source, receiver, secret)

    def _secret_changed(self, key: tuple[str, str]) -> None:
        for source, declared in list(self._declared.items()):
            for receiver in declared:
                ref = receiver.secret_ref
                if ref is not None and (ref.namespace, ref.name) == key:
                    self._resolve(source, receiver)

    def _route(self, source: str, receiver: Declared,
               secret: bytes | None) -> None:
        """
        Serve C{receiver} with C{secret} (nothing when C{None}); a replaced
        path keeps serving its old secret for the grace period.
        """
        key = (source, receiver.label)
        if secret is None:
            # No secret, or no receiver: not routed at all (SPEC §3), old
            # paths in their grace period included.
            self._current.pop(key, None)
            self._unclaim(key)
            return
        new = receiver_path(self._base_url, receiver.project, receiver.name,
                            secret)
        old = self._current.pop(key, None)
        if old == new:
            self._current[key] = new
            return
        if old is not None:
            self._retire(source, receiver, old)
        claims = self._claims.setdefault(new, [])
        for claim in list(claims):
            if (claim.source, claim.route.label) == key:
                # Back to a secret still in its grace period.
                if claim.expiry is not None and claim.expiry.active():
                    claim.expiry.cancel()
                claims.remove(claim)
        claims.append(_Claim(source, Route(receiver.label, receiver.project,
                                           secret)))
        self._current[key] = new
        if len(claims) > 1:
            log.error("one URL is claimed by {claims}: serving none of them",
                      claims=_claimants(claims))

    def _unclaim(self, key: tuple[str, str]) -> None:
        for path, claims in list(self._claims.items()):
            for claim in [c for c in claims
                          if (c.source, c.route.label) == key]:
                if claim.expiry is not None and claim.expiry.active():
                    claim.expiry.cancel()
                claims.remove(claim)
            if not claims:
                del self._claims[path]

    def _retire(self, source: str, receiver: Declared, path: bytes) -> None:
        for claim in self._claims.get(path, []):
            if (claim.source, claim.route.label) == (
                    source, receiver.label) and not claim.route.retiring:
                route = claim.route
                claim.route = Route(route.label, route.project, route.secret,
                                    retiring=True)
                claim.expiry = self._clock.callLater(
                    self._grace, self._expire, path, claim)
                log.info("receiver {receiver}: its previous URL keeps working "
                         "for {grace:.0f}s", receiver=receiver.label,
                         grace=self._grace)
                return

    def _expire(self, path: bytes, claim: _Claim) -> None:
        claims = self._claims.get(path, [])
        if claim in claims:
            claims.remove(claim)
            if not claims:
                del self._claims[path]


def _bitbucket_receivers(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """
    The C{(name, secret name)} of each Bitbucket receiver a ProjectConfig
    or ClusterConfig declares in C{spec.webhookReceivers}.
    """
    spec = obj.get("spec")
    entries = spec.get("webhookReceivers") if isinstance(spec, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        bitbucket = entry.get("bitbucket")
        ref = bitbucket.get("secretRef") if isinstance(bitbucket,
                                                       dict) else None
        secret = ref.get("name") if isinstance(ref, dict) else None
        if isinstance(name, str) and name and isinstance(secret, str) and (
                secret):
            found.append((name, secret))
    return found


class ProjectConfigs:
    """
    The receivers of every ProjectConfig (a reflector's sink): project =
    namespace, Secrets in that namespace.
    """

    def __init__(self, routes: ReceiverRoutes) -> None:
        self._routes = routes
        self._sources: set[tuple[str, str]] = set()

    @staticmethod
    def _source(key: tuple[str, str]) -> str:
        return "ProjectConfig {}/{}".format(*key)

    def upsert(self, obj: Mapping[str, Any]) -> ObjectKey | None:
        key = object_key(obj)
        if key is None:
            return None
        namespace = key[0]
        self._sources.add(key)
        self._routes.declare(self._source(key), [
            Declared(namespace, name, secret_ref=SecretRef(namespace, secret))
            for name, secret in _bitbucket_receivers(obj)])
        return key

    def delete(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        if key is not None:
            self._sources.discard(key)
            self._routes.declare(self._source(key), [])

    def replace(self, namespace: str | None,
                objects: Iterable[Mapping[str, Any]]) -> None:
        replace_all(self, namespace, objects)

    def sweep(self, namespace: str | None,
              listed: Collection[ObjectKey | None]) -> None:
        for key in [k for k in self._sources
                    if k not in listed and in_scope(k, namespace)]:
            self._sources.discard(key)
            self._routes.declare(self._source(key), [])


class ClusterConfigs:
    """
    The receivers of the ClusterConfig named C{cluster} (a reflector's
    sink): project C{""}, Secrets in the system namespace.
    """

    SOURCE = "ClusterConfig cluster"

    def __init__(self, routes: ReceiverRoutes, system_namespace: str) -> None:
        self._routes = routes
        self._namespace = system_namespace

    def upsert(self, obj: Mapping[str, Any]) -> None:
        if object_key(obj) != ("", "cluster"):
            return
        self._routes.declare(self.SOURCE, [
            Declared("", name, secret_ref=SecretRef(self._namespace, secret))
            for name, secret in _bitbucket_receivers(obj)])

    def delete(self, obj: Mapping[str, Any]) -> None:
        if object_key(obj) == ("", "cluster"):
            self._routes.declare(self.SOURCE, [])

    def replace(self, namespace: str | None,
                objects: Iterable[Mapping[str, Any]]) -> None:
        listed = [o for o in objects if object_key(o) == ("", "cluster")]
        if listed:
            self.upsert(listed[0])
        else:
            self._routes.declare(self.SOURCE, [])


async def discovered_routes(reactor: Any, config: Config) -> ReceiverRoutes:
    """
    The routing table as the daemon would build it now, with every Secret
    and Kargo object read once (for C{bbreceiver url}).
    """
    routes = ReceiverRoutes(config, reactor)
    project_configs = ProjectConfigs(routes)
    cluster_configs = ClusterConfigs(routes, config.kargo.system_namespace)
    embedded = config.kubernetes.embedded
    if embedded is not None:
        objects = _embedded_objects(embedded.objects)

        def of(kind: str) -> list[dict[str, Any]]:
            return [o for o in objects if o.get("kind") == kind]

        routes.secrets.replace(None, of("Secret"))
        if config.kargo.project_configs:
            project_configs.replace(None, of("ProjectConfig"))
            cluster_configs.replace(None, of("ClusterConfig"))
        return routes
    needed = routes.secret_refs
    if not needed and not config.kargo.project_configs:
        return routes
    from bbreceiver.cli import CommandError
    from bbreceiver.kube.auth import KubeConfigError, client_from_config
    from bbreceiver.kube.client import (
        CLUSTERCONFIGS,
        PROJECTCONFIGS,
        SECRETS,
        KubeError,
        NotFound,
        TransportError,
    )

    try:
        client = await client_from_config(reactor, config.kubernetes)
        if config.kargo.project_configs:
            namespaces: list[str | None] = list(
                config.kubernetes.namespaces) or [None]
            for namespace in namespaces:
                listed = await _list_all(client, PROJECTCONFIGS, namespace)
                for obj in listed:
                    project_configs.upsert(obj)
            try:
                cluster_configs.upsert(await client.get(
                    CLUSTERCONFIGS, None, "cluster"))
            except NotFound:
                pass
        wanted = {
            (r.secret_ref.namespace, r.secret_ref.name)
            for _, r, _ in routes.receivers() if r.secret_ref is not None}
        for namespace, name in sorted(wanted):
            try:
                routes.secrets.upsert(await client.get(SECRETS, namespace,
                                                       name))
            except NotFound:
                pass
    except KubeConfigError as e:
        raise CommandError(str(e)) from None
    except (KubeError, TransportError) as e:
        raise CommandError("cannot read from the Kubernetes API: {}".format(
            e)) from None
    return routes


async def _list_all(client: Any, resource: Any,
                    namespace: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = await client.list_page(resource, namespace, limit=500,
                                      continue_=token)
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


def _embedded_objects(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    from bbreceiver.cli import CommandError
    from bbreceiver.testing.fakekube import parse_yaml_objects

    try:
        with open(path, "rb") as f:
            return parse_yaml_objects(f.read())
    except (OSError, ValueError) as e:
        raise CommandError("{}: {}".format(path, e)) from None
