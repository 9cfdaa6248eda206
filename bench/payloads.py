"""
What the benchmarks send and index: Kargo Warehouses shaped like real ones
(two git subscriptions each, a status with conditions) and Bitbucket Cloud
``repo:push`` bodies padded with commits to a realistic 10 KB.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SECRET = b"bench-shared-secret"
RECEIVER_NAME = "bench"
#: The receiver serves every namespace (project ""), so its path is
#: BASE/bitbucket/sha256("" + name + secret).
RECEIVER_PATH = "/bitbucket/" + hashlib.sha256(
    RECEIVER_NAME.encode() + SECRET
).hexdigest()

FANOUT_NAMESPACE = "bench-fanout"
FANOUT_REPO = "https://bitbucket.org/bench/fanout"
E2E_NAMESPACE = "bench-e2e"
E2E_NAME = "e2e"
E2E_REPO = "https://bitbucket.org/bench/e2e"
NOMATCH_REPO = "https://bitbucket.org/bench/nomatch"
NAMESPACES = 10


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def warehouse(namespace: str, name: str, subscriptions: list[dict[str, Any]]
              ) -> dict[str, Any]:
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "bench"},
        },
        "spec": {
            "interval": "5m0s",
            "freightCreationPolicy": "Automatic",
            "subscriptions": subscriptions,
        },
        "status": {
            "observedGeneration": 1,
            "lastHandledRefresh": "2025-01-01T00:00:00.000000Z",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Synced",
                 "message": "Warehouse is ready", "observedGeneration": 1,
                 "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Healthy", "status": "True", "reason": "Healthy",
                 "message": "", "observedGeneration": 1,
                 "lastTransitionTime": "2025-01-01T00:00:00Z"},
            ],
        },
    }


def plain_warehouse(i: int) -> dict[str, Any]:
    """
    Warehouse number C{i}: its own application repository (main branch, by
    https) and a library repository shared with a few hundred others
    (semantic-version tags, by ssh).
    """
    return warehouse(
        "bench-{}".format(i % NAMESPACES),
        "wh-{:06d}".format(i),
        [
            {"git": {
                "repoURL": "https://bitbucket.org/bench/app-{}.git".format(i),
                "branch": "main",
                "commitSelectionStrategy": "NewestFromBranch",
                "discoveryLimit": 20,
            }},
            {"git": {
                "repoURL": "git@bitbucket.org:bench/lib-{}.git".format(i % 250),
                "commitSelectionStrategy": "SemVer",
                "semverConstraint": "^1.0.0",
                "discoveryLimit": 20,
            }},
        ],
    )


def fanout_warehouse(i: int) -> dict[str, Any]:
    """
    One of the Warehouses every push to L{FANOUT_REPO} main refreshes.
    """
    return warehouse(
        FANOUT_NAMESPACE,
        "fan-{:06d}".format(i),
        [
            {"git": {"repoURL": FANOUT_REPO + ".git", "branch": "main"}},
            {"git": {
                "repoURL": "git@bitbucket.org:bench/lib-{}.git".format(i % 250),
                "commitSelectionStrategy": "SemVer",
                "semverConstraint": "^1.0.0",
            }},
        ],
    )


def e2e_warehouse() -> dict[str, Any]:
    return warehouse(E2E_NAMESPACE, E2E_NAME, [
        {"git": {"repoURL": E2E_REPO + ".git", "branch": "main"}},
        {"git": {"repoURL": "git@bitbucket.org:bench/lib-0.git",
                 "commitSelectionStrategy": "SemVer",
                 "semverConstraint": "^1.0.0"}},
    ])


def objects(plain: int, fanout: int = 0, e2e: bool = False
            ) -> list[dict[str, Any]]:
    """
    C{plain} ordinary Warehouses, C{fanout} matched by every push to
    L{FANOUT_REPO}, and the one end-to-end target.
    """
    found = [plain_warehouse(i) for i in range(plain)]
    found.extend(fanout_warehouse(i) for i in range(fanout))
    if e2e:
        found.append(e2e_warehouse())
    return found


def _commit(repo: str, n: int) -> dict[str, Any]:
    digest = hashlib.sha1(b"%d" % n).hexdigest()
    web = repo.replace("https://bitbucket.org/", "")
    return {
        "type": "commit",
        "hash": digest,
        "date": "2025-01-01T00:00:{:02d}+00:00".format(n % 60),
        "author": {
            "type": "author",
            "raw": "Bench Developer <dev{}@example.com>".format(n),
            "user": {"display_name": "Bench Developer", "type": "user",
                     "uuid": "{0b1b2b3b-0000-4000-8000-00000000000%d}" % (n % 10),
                     "nickname": "bench-dev"},
        },
        "message": "Change number {}: make the thing faster\n\nA body that "
                   "explains why, as commit messages do.\n".format(n),
        "links": {
            "self": {"href": "https://api.bitbucket.org/2.0/repositories/{}/"
                             "commit/{}".format(web, digest)},
            "html": {"href": "{}/commits/{}".format(repo, digest)},
        },
        "parents": [{"type": "commit", "hash": hashlib.sha1(
            b"%d" % (n - 1)).hexdigest()}],
    }


def push_body(repo: str = NOMATCH_REPO, branch: str = "main",
              size: int = 10 * 1024) -> bytes:
    """
    A Bitbucket Cloud C{repo:push} of C{branch} of C{repo}, with as many
    commits as make it at least C{size} bytes.
    """
    commits: list[dict[str, Any]] = []
    web = repo.replace("https://bitbucket.org/", "")
    document = {
        "actor": {"display_name": "Bench Developer", "type": "user",
                  "nickname": "bench-dev"},
        "repository": {
            "type": "repository",
            "full_name": web,
            "name": web.rsplit("/", 1)[-1],
            "is_private": True,
            "scm": "git",
            "links": {
                "self": {"href": "https://api.bitbucket.org/2.0/repositories/"
                                 + web},
                "html": {"href": repo},
                "avatar": {"href": "https://bytebucket.org/ravatar/bench"},
            },
        },
        "push": {"changes": [{
            "old": {"type": "branch", "name": branch,
                    "target": {"type": "commit", "hash": "1" * 40}},
            "new": {"type": "branch", "name": branch,
                    "target": {"type": "commit", "hash": "2" * 40}},
            "created": False, "closed": False, "forced": False,
            "truncated": False,
            "commits": commits,
        }]},
    }
    n = 0
    while True:
        body = json.dumps(document, indent=2).encode()
        if len(body) >= size:
            return body
        n += 1
        commits.append(_commit(repo, n))


def push_headers(body: bytes, delivery: str = "bench-delivery"
                 ) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Bitbucket-Webhooks/2.0",
        "X-Event-Key": "repo:push",
        "X-Hub-Signature": sign(body),
        "X-Request-UUID": delivery,
        "X-Attempt-Number": "1",
    }
