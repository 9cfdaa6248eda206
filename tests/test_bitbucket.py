"""
Signatures and payloads (reference/bitbucket-deliveries.md §6 A-F, the
parts that need no HTTP).
"""

import hashlib
import hmac
import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.bitbucket import (
    InvalidPayload,
    PullRequestEvent,
    PushEvent,
    parse_event,
    sign,
    verify_signature,
)
from tests.fixtures import fixture

VECTOR_SECRET = b"Gkvl$k$wyNpQAF42"
VECTOR_SIGNATURE = (
    b"sha256=f205c729821c6954aff2afe72b965c34015b4baf96ea8ddc2cc44999c014a035"
)


class SignatureTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.body = fixture("cloud-repo-push-branch-created-signed.json")

    def test_vector(self) -> None:
        """
        The published Cloud test vector verifies, and sign() reproduces it.
        """
        self.assertTrue(
            verify_signature(VECTOR_SIGNATURE, self.body, VECTOR_SECRET))
        self.assertEqual(sign(self.body, VECTOR_SECRET), VECTOR_SIGNATURE)

    def test_tampered(self) -> None:
        self.assertFalse(verify_signature(VECTOR_SIGNATURE[:-1] + b"6",
                                          self.body, VECTOR_SECRET))
        self.assertFalse(verify_signature(VECTOR_SIGNATURE, self.body + b"\n",
                                          VECTOR_SECRET))
        self.assertFalse(verify_signature(VECTOR_SIGNATURE, self.body,
                                          VECTOR_SECRET + b"\n"))

    def test_upper_case_hex(self) -> None:
        algorithm, hexdigest = VECTOR_SIGNATURE.split(b"=")
        self.assertTrue(verify_signature(algorithm + b"=" + hexdigest.upper(),
                                         self.body, VECTOR_SECRET))

    def test_prefix_is_lower_case(self) -> None:
        self.assertFalse(verify_signature(b"SHA256=" + VECTOR_SIGNATURE[7:],
                                          self.body, VECTOR_SECRET))

    def test_sha512(self) -> None:
        signature = sign(self.body, VECTOR_SECRET, "sha512")
        self.assertTrue(signature.startswith(b"sha512="))
        self.assertTrue(verify_signature(signature, self.body, VECTOR_SECRET))

    def test_sha1_refused(self) -> None:
        mac = hmac.new(VECTOR_SECRET, self.body, hashlib.sha1).hexdigest()
        self.assertFalse(verify_signature(b"sha1=" + mac.encode(), self.body,
                                          VECTOR_SECRET))

    def test_malformed(self) -> None:
        for header in [b"sha256=", b"sha256=zz" + b"0" * 62, b"sha256",
                       b"abc", b"=", b"sha256==" + VECTOR_SIGNATURE[7:],
                       b"sha256= " + VECTOR_SIGNATURE[7:],
                       b"sha256=" + VECTOR_SIGNATURE[7:-2],
                       b"sha256=\xff\xfe", b"md5=00"]:
            self.assertFalse(verify_signature(header, self.body,
                                              VECTOR_SECRET), header)

    @given(st.binary(), st.binary(), st.binary(min_size=1))
    def test_fuzz(self, header: bytes, body: bytes, secret: bytes) -> None:
        self.assertFalse(verify_signature(header, body, secret))
        self.assertTrue(verify_signature(sign(body, secret), body, secret))


class CloudPushTests(SynchronousTestCase):
    def test_branch_created(self) -> None:
        event = parse_event("repo:push", fixture(
            "cloud-repo-push-branch-created-signed.json"))
        self.assertEqual(event, PushEvent(
            repo_urls=("https://bitbucket.org/nfalco79/test-repos",),
            refs=("refs/heads/feature/webhook",)))

    def test_multiple_changes(self) -> None:
        event = parse_event("repo:push", fixture(
            "cloud-repo-push-multiple-changes-truncated.json"))
        assert isinstance(event, PushEvent)
        self.assertEqual(event.repo_urls,
                         ("https://bitbucket.org/cloudbeers/temp",))
        self.assertEqual(event.refs, ("refs/heads/main", "refs/heads/manchu",
                                      "refs/tags/v0.1"))

    def test_deleted(self) -> None:
        event = parse_event("repo:push", fixture(
            "cloud-repo-push-branch-deleted.json"))
        assert isinstance(event, PushEvent)
        self.assertEqual(event.refs, ())

    def push(self, *changes: object, repository: object = None) -> bytes:
        if repository is None:
            repository = {"links": {"html": {
                "href": "https://bitbucket.org/example/repo"}}}
        return json.dumps({"repository": repository,
                           "push": {"changes": list(changes)}}).encode()

    def test_types(self) -> None:
        event = parse_event("repo:push", self.push(
            {"new": {"type": "branch", "name": "refs/heads/x"}},
            {"new": {"type": "tag", "name": "v1"}},
            {"new": {"type": "named_branch", "name": "hg"}},
            {"new": {"type": "branch", "name": ""}},
            {"new": None, "old": {"type": "branch", "name": "gone"}},
            {"new": {"type": "branch", "name": "feature/a", "extra": [1]}},
            {"new": {"type": "branch", "name": "feature/a"}},
        ))
        assert isinstance(event, PushEvent)
        self.assertEqual(event.refs, ("refs/heads/refs/heads/x",
                                      "refs/tags/v1", "refs/heads/feature/a"))

    def test_forced_and_truncated(self) -> None:
        """
        Matrix 23, 24: flags that change nothing here.
        """
        event = parse_event("repo:push", self.push(
            {"new": {"type": "branch", "name": "main"}, "forced": True,
             "truncated": True, "commits": [{"hash": "x"}] * 5}))
        self.assertEqual(event, PushEvent(
            ("https://bitbucket.org/example/repo",), ("refs/heads/main",)))

    def test_nothing_there(self) -> None:
        for body in [b"{}", b'{"push": null, "repository": null}',
                     b'{"push": {"changes": []}}',
                     b'{"repository": {"links": {}}}']:
            event = parse_event("repo:push", body)
            self.assertEqual(event, PushEvent((), ()), body)

    def test_wrong_types(self) -> None:
        bodies = [
            self.push({"new": {"type": "branch", "name": 1}}),
            self.push({"new": {"type": 2, "name": "x"}}),
            self.push({"new": "main"}),
            self.push("main"),
            json.dumps({"push": {"changes": {}}}).encode(),
            json.dumps({"push": []}).encode(),
            self.push(repository={"links": {"html": {"href": 1}}}),
            self.push(repository={"links": {"html": "https://x/y"}}),
            self.push(repository="https://x/y"),
        ]
        for body in bodies:
            self.assertRaises(InvalidPayload, parse_event, "repo:push", body)

    def test_not_json(self) -> None:
        for body in [b"", b"invalid json", b"[]", b"null", b"1", b'"x"',
                     b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe{}",
                     b"\xef\xbb\xbf{}", "{}".encode("utf-16"),
                     b"[" * 100000, b'{"a": 1' + b"0" * 5000 + b"}"]:
            self.assertRaises(InvalidPayload, parse_event, "repo:push", body)


class ServerPushTests(SynchronousTestCase):
    def test_update(self) -> None:
        event = parse_event("repo:refs_changed", fixture(
            "server-repo-refs-changed-update.json"))
        assert isinstance(event, PushEvent)
        self.assertEqual(set(event.repo_urls), {
            "ssh://git@bitbucketserver:7999/myproject/test-repo.git",
            "https://bitbucketserver/scm/myproject/test-repo.git"})
        self.assertEqual(event.refs, ("refs/heads/master",))

    def test_delete(self) -> None:
        event = parse_event("repo:refs_changed", fixture(
            "server-repo-refs-changed-delete-context-path.json"))
        assert isinstance(event, PushEvent)
        self.assertIn(
            "http://localhost:7990/bitbucket/scm/amuniz/test-repos.git",
            event.repo_urls)
        self.assertEqual(event.refs, ())

    def test_dc10(self) -> None:
        event = parse_event("repo:refs_changed", fixture(
            "server-repo-refs-changed-add-dc10.json"))
        assert isinstance(event, PushEvent)
        self.assertEqual(event.refs, ("refs/heads/feature/BB-1",))
        self.assertEqual(len(event.repo_urls), 2)

    def test_no_links(self) -> None:
        event = parse_event("repo:refs_changed", fixture(
            "server-repo-refs-changed-no-links.json"))
        self.assertEqual(event, PushEvent((), ("refs/heads/master",)))

    def test_mirror(self) -> None:
        event = parse_event("mirror:repo_synchronized", fixture(
            "server-mirror-repo-synchronized.json"))
        assert isinstance(event, PushEvent)
        self.assertEqual(event.refs, ("refs/heads/main",))
        self.assertFalse(event.every_ref)
        event = parse_event("mirror:repo_synchronized", fixture(
            "server-mirror-repo-synchronized-ref-limit.json"))
        assert isinstance(event, PushEvent)
        self.assertEqual(event.refs, ())
        self.assertTrue(event.every_ref)

    def test_any_link_name(self) -> None:
        body = json.dumps({
            "repository": {"links": {"clone": [
                {"href": "https://h/scm/p/r.git", "name": "https"},
                {"href": "ssh://git@h:7999/p/r.git"}, None, {"href": None}]}},
            "changes": [
                {"ref": {"id": "refs/tags/v1.0.0", "type": "TAG"},
                 "type": "ADD"},
                {"ref": {"id": "refs/heads/x"}, "type": "DELETE"},
                {"ref": None, "type": "UPDATE"},
                None,
            ]}).encode()
        event = parse_event("repo:refs_changed", body)
        self.assertEqual(event, PushEvent(
            ("https://h/scm/p/r.git", "ssh://git@h:7999/p/r.git"),
            ("refs/tags/v1.0.0",)))

    def test_wrong_types(self) -> None:
        for document in [
            {"changes": [{"ref": {"id": 5}}]},
            {"changes": [{"ref": "refs/heads/x"}]},
            {"changes": [{"ref": {"id": "refs/heads/x"}, "type": 1}]},
            {"changes": "x"},
            {"repository": {"links": {"clone": {"href": "x"}}}},
            {"repository": {"links": {"clone": ["x"]}}},
            {"repository": {"links": {"clone": [{"href": ["x"]}]}}},
            {"repository": {"links": []}},
        ]:
            self.assertRaises(InvalidPayload, parse_event,
                              "repo:refs_changed", json.dumps(document).encode())
        self.assertRaises(InvalidPayload, parse_event,
                          "mirror:repo_synchronized",
                          b'{"refLimitExceeded": "true"}')


class PullRequestTests(SynchronousTestCase):
    def test_cloud(self) -> None:
        self.assertEqual(
            parse_event("pullrequest:fulfilled",
                        fixture("cloud-pullrequest-fulfilled.json")),
            PullRequestEvent(
                "https://bitbucket.org/cloudbeers/temp/pull-requests/2"))
        self.assertEqual(
            parse_event("pullrequest:rejected",
                        fixture("cloud-pullrequest-rejected.json")),
            PullRequestEvent(
                "https://bitbucket.org/amuniz/test-repos/pull-requests/735"))

    def test_server(self) -> None:
        self.assertEqual(
            parse_event("pr:merged",
                        fixture("server-pr-merged-personal-repo.json")),
            PullRequestEvent("https://server.bitbucket.local/users/gopher/"
                             "repos/webhook-test/pull-requests/5"))
        self.assertEqual(
            parse_event("pr:declined", fixture("server-pr-declined.json")),
            PullRequestEvent("http://bitbucket:7990/projects/PPRPLUG/repos/"
                             "hellophp/pull-requests/7"))

    def test_missing(self) -> None:
        for key, body in [
            ("pr:merged", b'{"pullRequest": {"links": {"self": []}}}'),
            ("pr:merged", b'{"pullRequest": {"links": {"self": [{}]}}}'),
            ("pr:merged", b'{"pullRequest": {"links": {}}}'),
            ("pr:merged", b"{}"),
            ("pullrequest:fulfilled", b'{"pullrequest": null}'),
            ("pullrequest:fulfilled",
             b'{"pullrequest": {"links": {"html": {"href": ""}}}}'),
        ]:
            self.assertEqual(parse_event(key, body), PullRequestEvent(None),
                             body)

    def test_wrong_types(self) -> None:
        for key, body in [
            ("pr:merged", b'{"pullRequest": {"links": {"self": {}}}}'),
            ("pr:merged", b'{"pullRequest": {"links": {"self": ["x"]}}}'),
            ("pr:merged", b'{"pullRequest": {"links": {"self": [{"href": 1}]}}}'),
            ("pullrequest:rejected", b'{"pullrequest": {"links": []}}'),
            ("pullrequest:rejected",
             b'{"pullrequest": {"links": {"html": {"href": false}}}}'),
        ]:
            self.assertRaises(InvalidPayload, parse_event, key, body)
