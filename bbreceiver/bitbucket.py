"""
Bitbucket deliveries: the signature check and the payloads, as small event
objects.  Pure: no reactor, no I/O.

Parsing is tolerant of everything it does not use (extra fields, nulls,
Data Center 10 shapes, pre-5.14 payloads without links) and strict about
the type of every field it does use (SPEC §4 row 9).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PUSH_EVENTS = frozenset({
    "repo:push",
    "repo:refs_changed",
    "mirror:repo_synchronized",
})
PULL_REQUEST_EVENTS = frozenset({
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pr:merged",
    "pr:declined",
})
PING = "diagnostics:ping"
EVENTS = PUSH_EVENTS | PULL_REQUEST_EVENTS | {PING}

_DIGESTS = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}


def verify_signature(header: bytes, body: bytes, secret: bytes) -> bool:
    """
    Whether C{header}, an C{X-Hub-Signature} value, is a C{sha256=HEX} or
    C{sha512=HEX} HMAC of the exact C{body} bytes under C{secret}.

    SHA-1 is refused: Bitbucket never sends it.  The comparison is over the
    raw digests in constant time; a malformed header costs no less time to
    refuse than a wrong MAC, beyond the digest itself.
    """
    algorithm, equals, hex_digest = header.partition(b"=")
    digest = _DIGESTS.get(algorithm)
    if digest is None or not equals:
        return False
    try:
        claimed = binascii.a2b_hex(hex_digest)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret, body, digest).digest()
    return hmac.compare_digest(expected, claimed)


def sign(body: bytes, secret: bytes, algorithm: str = "sha256") -> bytes:
    """
    The C{X-Hub-Signature} value Bitbucket would send for C{body}.
    """
    digest = _DIGESTS[algorithm.encode("ascii")]
    return (
        algorithm.encode("ascii")
        + b"="
        + hmac.new(secret, body, digest).hexdigest().encode("ascii")
    )


class InvalidPayload(ValueError):
    """
    The body is not JSON, or a field the event uses has the wrong type.
    """


@dataclass(frozen=True)
class PushEvent:
    """
    A push (Cloud C{repo:push}, Data Center C{repo:refs_changed}, or a
    mirror's C{mirror:repo_synchronized}).

    @ivar repo_urls: every URL the delivery names the repository by.
    @ivar refs: the fully qualified refs that now point somewhere new;
        deletions are left out.
    @ivar every_ref: the mirror could not list its changes (C{refLimitExceeded}),
        so every subscriber of the repository is concerned.
    """

    repo_urls: tuple[str, ...]
    refs: tuple[str, ...]
    every_ref: bool = False


@dataclass(frozen=True)
class PullRequestEvent:
    """
    A pull request merged or declined.

    @ivar url: the pull request's web URL, or C{None} when the delivery
        carries none.
    """

    url: str | None


Event = PushEvent | PullRequestEvent


def _reject_constant(name: str) -> Any:
    raise ValueError("not JSON: " + name)


def load_json(body: bytes) -> dict[str, Any]:
    """
    Decode C{body} as UTF-8 JSON whose top level is an object.
    """
    try:
        document = json.loads(
            body.decode("utf-8"), parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidPayload(str(e)[:200]) from None
    if not isinstance(document, dict):
        raise InvalidPayload("the top level is not an object")
    return document


def parse_event(event_key: str, body: bytes) -> Event:
    """
    The event that C{body} describes, for one of the keys of
    L{PUSH_EVENTS} and L{PULL_REQUEST_EVENTS}.

    @raise InvalidPayload: for bad JSON or a wrongly typed field.
    """
    document = load_json(body)
    if event_key == "repo:push":
        return _cloud_push(document)
    if event_key in ("repo:refs_changed", "mirror:repo_synchronized"):
        return _server_push(document, event_key)
    if event_key.startswith("pullrequest:"):
        url = _string(_path(document, "pullrequest", "links", "html"), "href")
        return PullRequestEvent(url or None)
    if event_key.startswith("pr:"):
        links = _object(_object(document, "pullRequest"), "links")
        first = _list(links, "self")[:1]
        url = _string(_as_object(first[0], "pullRequest.links.self[0]"),
                      "href") if first else ""
        return PullRequestEvent(url or None)
    raise ValueError("not a handled event: " + event_key)


def _cloud_push(document: Mapping[str, Any]) -> PushEvent:
    href = _string(_path(document, "repository", "links", "html"), "href")
    refs = []
    for i, change in enumerate(_list(_object(document, "push"), "changes")):
        where = "push.changes[{}]".format(i)
        new = _object(_as_object(change, where), "new")
        kind = _string(new, "type")
        name = _string(new, "name")
        if not name:
            continue
        if kind == "branch":
            refs.append("refs/heads/" + name)
        elif kind == "tag":
            refs.append("refs/tags/" + name)
    return PushEvent(
        repo_urls=(href,) if href else (),
        refs=_unique(refs),
    )


def _server_push(document: Mapping[str, Any], event_key: str) -> PushEvent:
    links = _object(_object(document, "repository"), "links")
    urls = []
    for i, link in enumerate(_list(links, "clone")):
        href = _string(_as_object(link, "repository.links.clone[{}]".format(
            i)), "href")
        if href:
            urls.append(href)
    refs = []
    for i, change in enumerate(_list(document, "changes")):
        change = _as_object(change, "changes[{}]".format(i))
        ref_id = _string(_object(change, "ref"), "id")
        if ref_id and _string(change, "type") != "DELETE":
            refs.append(ref_id)
    every_ref = False
    if event_key == "mirror:repo_synchronized":
        flag = document.get("refLimitExceeded")
        if flag is not None and not isinstance(flag, bool):
            raise InvalidPayload("refLimitExceeded is not a boolean")
        every_ref = bool(flag)
    return PushEvent(repo_urls=_unique(urls), refs=_unique(refs),
                     every_ref=every_ref)


_EMPTY: Mapping[str, Any] = {}


def _as_object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise InvalidPayload(where + " is not an object")
    return value


def _object(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _as_object(parent.get(key), key)


def _path(parent: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        parent = _object(parent, key)
    return parent


def _list(parent: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = parent.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPayload(key + " is not an array")
    return value


def _string(parent: Mapping[str, Any], key: str) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidPayload(key + " is not a string")
    return value


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
