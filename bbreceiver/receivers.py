"""
Receivers and their URLs: the path of a receiver is Kargo's
C{PREFIX/bitbucket/sha256(project + name + secret)} (SPEC §4), so the table
of served paths changes whenever a secret does.

L{ReceiverRoutes} is that table.  Receivers whose secret is in the file are
routed from the start; those with a C{secretRef} are routed once their
Secret is known (fed by a Secret watch), and follow its changes: the new
path serves the new secret at once while the old path keeps serving the old
secret for the rotation grace period (SPEC §8).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from bbreceiver.config import Config, ReceiverConfig, base_path, join_url_path
from bbreceiver.web import Route

log = Logger()


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


@dataclass
class _Claim:
    route: Route
    expiry: IDelayedCall | None = None


class ReceiverRoutes:
    """
    The receiver paths served now.
    """

    def __init__(self, config: Config, clock: IReactorTime) -> None:
        self._base_url = config.base_url
        self._grace = config.kargo.rotation_grace_seconds
        self._clock = clock
        self._claims: dict[bytes, list[_Claim]] = {}
        self._current: dict[ReceiverConfig, bytes] = {}
        self._by_ref: dict[tuple[str, str], list[ReceiverConfig]] = {}
        self._explained: dict[ReceiverConfig, str] = {}
        for receiver in config.receivers:
            if receiver.secret is not None:
                self._set(receiver, receiver.secret)
            elif receiver.secret_ref is not None:
                ref = receiver.secret_ref
                self._by_ref.setdefault((ref.namespace, ref.name),
                                        []).append(receiver)

    @property
    def secret_refs(self) -> list[tuple[str, str]]:
        """
        The C{(namespace, name)} of every Secret a receiver needs.
        """
        return sorted(self._by_ref)

    def lookup(self, path: bytes) -> Route | None:
        claims = self._claims.get(path)
        if claims is None or len(claims) != 1:
            return None
        return claims[0].route

    def conflicts(self) -> list[str]:
        """
        Paths claimed by more than one receiver (served by none).
        """
        return sorted(
            ", ".join(sorted({c.route.label for c in claims}))
            for claims in self._claims.values() if len(claims) > 1
        )

    def _route(self, receiver: ReceiverConfig, secret: bytes) -> Route:
        return Route(receiver.label, receiver.project, secret)

    def _set(self, receiver: ReceiverConfig, secret: bytes | None) -> None:
        """
        Route C{receiver} with C{secret} (unroute it when C{None}); a
        replaced path keeps serving its old secret for the grace period.
        """
        old = self._current.pop(receiver, None)
        new = (receiver_path(self._base_url, receiver.project, receiver.name,
                             secret) if secret is not None else None)
        if old == new and old is not None:
            self._current[receiver] = old
            return
        if old is not None:
            self._retire(receiver, old)
        if new is not None and secret is not None:
            claims = self._claims.setdefault(new, [])
            for claim in list(claims):
                if claim.route.label == receiver.label:
                    # Back to a secret still in its grace period.
                    if claim.expiry is not None and claim.expiry.active():
                        claim.expiry.cancel()
                    claims.remove(claim)
            claims.append(_Claim(self._route(receiver, secret)))
            self._current[receiver] = new
            if len(self._claims[new]) > 1:
                log.error("path {path} is claimed by {receivers}: serving "
                          "neither", path=new.decode(),
                          receivers=", ".join(sorted(
                              c.route.label for c in self._claims[new])))

    def _retire(self, receiver: ReceiverConfig, path: bytes) -> None:
        claims = self._claims.get(path, [])
        for claim in claims:
            if claim.route.label == receiver.label and not claim.route.retiring:
                claim.route = Route(claim.route.label, claim.route.project,
                                    claim.route.secret, retiring=True)
                claim.expiry = self._clock.callLater(
                    self._grace, self._expire, path, claim)
                log.info("receiver {receiver} has a new secret; its previous "
                         "URL keeps working for {grace:.0f}s",
                         receiver=receiver.label, grace=self._grace)
                return

    def _expire(self, path: bytes, claim: _Claim) -> None:
        claims = self._claims.get(path, [])
        if claim in claims:
            claims.remove(claim)
            if not claims:
                del self._claims[path]

    def _explain(self, receiver: ReceiverConfig, why: str | None) -> None:
        """
        Log once why a receiver is not routed, and once when it is again.
        """
        before = self._explained.get(receiver)
        if why == before:
            return
        if why is None:
            self._explained.pop(receiver, None)
            log.info("receiver {receiver} is routed", receiver=receiver.label)
        else:
            self._explained[receiver] = why
            log.warn("receiver {receiver} is not routed: {why}",
                     receiver=receiver.label, why=why)

    # The Secret sink (a reflector's ResourceSink).

    def upsert(self, obj: Mapping[str, Any]) -> None:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            return
        key = (metadata.get("namespace") or "", metadata.get("name") or "")
        for receiver in self._by_ref.get(key, ()):  # type: ignore[call-overload]
            secret = secret_value(obj)
            self._explain(receiver, None if secret is not None else
                          "Secret {}/{} has no key 'secret'".format(*key))
            self._set(receiver, secret)

    def delete(self, obj: Mapping[str, Any]) -> None:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            return
        key = (metadata.get("namespace") or "", metadata.get("name") or "")
        for receiver in self._by_ref.get(key, ()):  # type: ignore[call-overload]
            self._explain(receiver, "Secret {}/{} does not exist".format(*key))
            self._set(receiver, None)

    def replace(self, namespace: str | None,
                objects: Iterable[Mapping[str, Any]]) -> None:
        seen = set()
        for obj in objects:
            metadata = obj.get("metadata")
            if isinstance(metadata, dict):
                seen.add((metadata.get("namespace") or "",
                          metadata.get("name") or ""))
            self.upsert(obj)
        for key in self._by_ref:
            if key not in seen and (namespace is None or key[0] == namespace):
                self.delete({"metadata": {"namespace": key[0],
                                          "name": key[1]}})


async def resolve_secrets(
    reactor: Any, config: Config
) -> list[tuple[ReceiverConfig, bytes | None]]:
    """
    Every receiver with its current secret, reading C{secretRef} Secrets
    through the file's Kubernetes settings (for C{bbreceiver url}).
    """
    needed = [r.secret_ref for r in config.receivers if r.secret_ref]
    found: dict[tuple[str, str], bytes | None] = {}
    if needed:
        found = await _read_secrets(reactor, config, needed)
    return [
        (r, r.secret if r.secret is not None else found.get(
            (r.secret_ref.namespace, r.secret_ref.name)) if r.secret_ref
         else None)
        for r in config.receivers
    ]


async def _read_secrets(
    reactor: Any, config: Config, refs: list[Any]
) -> dict[tuple[str, str], bytes | None]:
    from bbreceiver.kube.client import SECRETS, KubeError, NotFound

    embedded = config.kubernetes.embedded
    if embedded is not None:
        from bbreceiver.testing.fakekube import parse_yaml_objects

        objects = []
        if embedded.objects:
            from bbreceiver.cli import CommandError

            try:
                with open(embedded.objects, "rb") as f:
                    objects = parse_yaml_objects(f.read())
            except (OSError, ValueError) as e:
                raise CommandError("{}: {}".format(embedded.objects, e))
        table = {
            (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in objects if o.get("kind") == "Secret"
        }
        return {(r.namespace, r.name): secret_value(
            table.get((r.namespace, r.name), {})) for r in refs}
    from bbreceiver.cli import CommandError
    from bbreceiver.kube.auth import KubeConfigError, client_from_config

    try:
        client = await client_from_config(reactor, config.kubernetes)
    except KubeConfigError as e:
        raise CommandError(str(e))
    result: dict[tuple[str, str], bytes | None] = {}
    for ref in refs:
        try:
            secret = await client.get(SECRETS, ref.namespace, ref.name)
        except NotFound:
            result[(ref.namespace, ref.name)] = None
        except KubeError as e:
            raise CommandError("cannot read Secret {}/{}: {}".format(
                ref.namespace, ref.name, e))
        else:
            result[(ref.namespace, ref.name)] = secret_value(secret)
    return result
