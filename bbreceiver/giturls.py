"""
Repository identity (SPEC §5): every URL a Warehouse or a delivery may use
for a repository maps to one key, and two URLs denote the same repository
when their keys are equal.

Kargo compares normalised URLs and so keeps scheme, user and ssh port
apart; that is why a Warehouse subscribed by ssh never hears of a Bitbucket
Cloud push (kargo-receiver.md §11.2).  The key here keeps only what names
the repository: the host (C{altssh.bitbucket.org} is C{bitbucket.org}), a
non-default http(s) port, and the path, in lower case, without one trailing
C{/} and then one C{.git}.
"""

from __future__ import annotations

import re
from functools import lru_cache

_ALIASES = {"altssh.bitbucket.org": "bitbucket.org"}

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.ASCII)

# Kargo's scp-style pattern: [user@]host[:path] (\w is ASCII in Go's RE2).
_SCP = re.compile(r"^(?:[\w.-]+@)?([\w-]+(?:\.[\w-]+)*)(?::(.*))?$", re.ASCII)

_WEB_PORTS = frozenset({"", "80", "443"})


# The usual spelling, with nothing to normalise but a trailing "/" or
# ".git": scheme://[user@]host/path in lower case, no port, query or
# fragment.  Its key needs no parsing beyond this match.
_PLAIN = re.compile(
    r"[a-z][a-z0-9+.-]*://(?:[\w.-]+@)?([a-z0-9.-]+)((?:/[a-z0-9_.~-]*)*)",
    re.ASCII,
)


@lru_cache(maxsize=4096)
def repo_key(url: str) -> str | None:
    """
    The identity key of the repository C{url} names, or C{None} when
    C{url} names no repository at all.

    Many Warehouses name the same repositories, and a relist names them
    all again: a bounded cache of recent answers spares most of the work.
    """
    plain = _PLAIN.fullmatch(url)
    if plain is not None:
        return _key(plain.group(1), "", plain.group(2))
    return _parsed_key(url)


def _parsed_key(url: str) -> str | None:
    """
    L{repo_key} of any spelling.
    """
    if not url.isprintable():
        url = "".join(ch for ch in url if ch.isprintable())
    text = url.strip().lower()
    if not text:
        return None
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        scp = _SCP.match(text)
        if scp is None:
            return None
        host, path = scp.group(1), scp.group(2) or ""
        return _key(host, "", "/" + path if path else "")
    scheme = scheme_match.group(1)
    rest = text[scheme_match.end():]
    for stop in "?#":
        rest = rest.partition(stop)[0]
    authority, slash, path = rest.partition("/")
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, tail = hostport.partition("]")
        if not bracket:
            return None
        host += "]"
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host:
        return None
    if scheme not in ("http", "https") or port in _WEB_PORTS:
        port = ""
    return _key(host, port, slash + path)


def _key(host: str, port: str, path: str) -> str:
    host = _ALIASES.get(host, host)
    path = path.removesuffix("/").removesuffix(".git")
    return host + (":" + port if port else "") + path


def pr_key(url: str) -> str | None:
    """
    The comparison key of a pull request URL: scheme and host in lower
    case, one trailing C{/} removed, the path as it is (SPEC §5).
    """
    text = url.strip()
    match = _SCHEME.match(text.lower())
    if match is None:
        return None
    rest = text[match.end():]
    authority, slash, path = rest.partition("/")
    if not authority:
        return None
    key = match.group(1) + "://" + authority.lower() + slash + path
    return key.removesuffix("/")
