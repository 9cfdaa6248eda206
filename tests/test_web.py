"""
The HTTP answers of SPEC §4, row by row, through a real Site in memory.
"""

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IResponse

from bbreceiver.config import Limits
from bbreceiver.plan import PROMOTION, WAREHOUSE, Target
from tests.fixtures import fixture
from tests.kargo import promotion, warehouse
from tests.web_support import PATH, SECRET, ChunkedBody, Harness, body_of

PUSH = fixture("cloud-repo-push-branch-created-signed.json")
REPO = "https://bitbucket.org/nfalco79/test-repos"


class AnswerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness()

    def answer(self, d: Any) -> tuple[int, Any, IResponse]:
        response = self.successResultOf(d)
        body = self.successResultOf(body_of(response))
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"),
            [b"application/json"])
        return response.code, json.loads(body), response

    def test_row1_unknown_path(self) -> None:
        for path in ["/bitbucket/0000", PATH + "/", PATH.upper(),
                     PATH.replace("/bitbucket/", "/bitbucket//"),
                     "//" + PATH.lstrip("/"), "/", "/bitbucket/%ff",
                     PATH.replace("b", "%62", 1), "/healthz/"]:
            code, body, _ = self.answer(self.h.deliver("repo:push", PUSH,
                                                       path=path))
            self.assertEqual((code, body), (404, {"error": "not found"}),
                             path)
        self.assertEqual(self.h.observer.seen, [])

    def test_query_ignored(self) -> None:
        code, body, _ = self.answer(self.h.deliver(
            "repo:push", PUSH, path=PATH + "?x=1"))
        self.assertEqual(code, 200)

    def test_row2_method(self) -> None:
        for method in ["GET", "PUT", "DELETE", "PATCH"]:
            code, body, _ = self.answer(self.h.request(
                method, PATH, PUSH, {"X-Event-Key": "repo:push"}))
            self.assertEqual((code, body),
                             (405, {"error": "method not allowed"}), method)

    def test_row3_too_large(self) -> None:
        h = Harness(Limits(max_body_bytes=100))
        body = b"{" + b" " * 200 + b"}"
        # by Content-Length, answered at once, and by a chunked body
        for data in [body, ChunkedBody(body[:60], body[60:])]:
            response = self.successResultOf(h.request(
                "POST", PATH, data, {"X-Event-Key": "repo:push"}))
            self.assertEqual(response.code, 413)
        self.assertEqual(h.refresher.calls, [])
        self.assertEqual(h.observer.seen,
                         [("kargo-demo/bb-wh-receiver", "repo:push", 413)] * 2)

    def test_limit_is_inclusive(self) -> None:
        h = Harness(Limits(max_body_bytes=len(PUSH)))
        response = self.successResultOf(h.deliver("repo:push", PUSH))
        self.assertEqual(response.code, 200)

    def test_row4_ping(self) -> None:
        ping = fixture("server-diagnostics-ping.json")
        code, body, _ = self.answer(self.h.deliver("diagnostics:ping", ping,
                                                   secret=None))
        self.assertEqual((code, body), (200, {"msg": "pong"}))
        # signed: verified first, then the same answer
        code, body, _ = self.answer(self.h.deliver("diagnostics:ping", ping))
        self.assertEqual((code, body), (200, {"msg": "pong"}))
        code, body, _ = self.answer(self.h.deliver("diagnostics:ping", ping,
                                                   secret=b"wrong"))
        self.assertEqual((code, body), (401, {"error": "unauthorized"}))
        # a ping carrying a push body refreshes nothing
        self.h.index.warehouses.upsert(warehouse("kargo-demo", "w", {
            "repoURL": REPO, "branch": "feature/webhook"}))
        code, _, _ = self.answer(self.h.deliver("diagnostics:ping", PUSH,
                                                secret=None))
        self.assertEqual(code, 200)
        self.assertEqual(self.h.refresher.calls, [])

    def test_row5_missing_signature(self) -> None:
        for extra in [{}, {"X-Hub-Signature": ""}]:
            code, body, _ = self.answer(self.h.deliver(
                "repo:push", PUSH, secret=None, extra=extra))
            self.assertEqual((code, body), (401, {"error": "missing signature"}))
        code, body, _ = self.answer(self.h.deliver(None, PUSH, secret=None))
        self.assertEqual(code, 401)

    def test_basic_auth_is_no_signature(self) -> None:
        """
        Matrix 59: a Data Center webhook with basic auth and no secret is
        refused, whatever its Authorization header says.
        """
        code, body, _ = self.answer(self.h.deliver(
            "repo:refs_changed", b"{}", secret=None,
            extra={"Authorization": "Basic YWRtaW46YWRtaW4="}))
        self.assertEqual((code, body), (401, {"error": "missing signature"}))

    def test_row6_bad_signature(self) -> None:
        good = self.h.deliver  # noqa
        for signature in ["sha1=" + "0" * 40, "sha256=", "sha256", "abc",
                          "sha256=f205c729821c6954aff2afe72b965c34015b4baf96"
                          "ea8ddc2cc44999c014a036"]:
            code, body, _ = self.answer(self.h.deliver(
                "repo:push", PUSH, secret=None,
                extra={"X-Hub-Signature": signature}))
            self.assertEqual((code, body), (401, {"error": "unauthorized"}))
        # signed with another receiver's secret; unknown events too
        for event in ["repo:push", "pullrequest:created", None]:
            code, body, _ = self.answer(self.h.deliver(event, PUSH,
                                                       secret=b"other"))
            self.assertEqual((code, body), (401, {"error": "unauthorized"}))
        # the body must be the signed bytes
        d = self.h.request("POST", PATH, PUSH + b"\n", {
            "X-Event-Key": "repo:push",
            "X-Hub-Signature": "sha256=f205c729821c6954aff2afe72b965c34015b4"
                               "baf96ea8ddc2cc44999c014a035"})
        self.assertEqual(self.answer(d)[0], 401)
        self.assertEqual(self.h.refresher.calls, [])

    def test_cloud_vector(self) -> None:
        """
        The published Cloud test vector, through a receiver with its secret.
        """
        from tests.web_support import receiver_path
        from bbreceiver.web import Route, StaticRoutes
        path = receiver_path("p", "r", b"Gkvl$k$wyNpQAF42")
        self.h.app.routes = StaticRoutes({path.encode(): Route(
            "p/r", "p", b"Gkvl$k$wyNpQAF42")})
        code, body, _ = self.answer(self.h.request("POST", path, PUSH, {
            "X-Event-Key": "repo:push",
            "X-Hub-Signature": "sha256=f205c729821c6954aff2afe72b965c34015b4"
                               "baf96ea8ddc2cc44999c014a035"}))
        self.assertEqual((code, body), (200, {"msg": "refreshed 0 "
                                                     "warehouse(s)"}))

    def test_row7_missing_event(self) -> None:
        for extra in [{}, {"X-Event-Key": ""}]:
            code, body, _ = self.answer(self.h.deliver(None, PUSH,
                                                       extra=extra))
            self.assertEqual((code, body),
                             (400, {"error": "missing event type"}))

    def test_row8_ignored(self) -> None:
        for event in ["pullrequest:created", "repo:fork", "pr:opened",
                      "pr:reviewer:approved", "pr:deleted", "<b>&"]:
            code, body, _ = self.answer(self.h.deliver(event, b"not json"))
            self.assertEqual((code, body),
                             (200, {"msg": "ignored event " + event}))
        self.assertEqual(self.h.refresher.calls, [])
        self.assertEqual({e for _, e, _ in self.h.observer.seen}, {"other"})

    def test_row9_invalid_body(self) -> None:
        for event, body in [
            ("repo:push", b"invalid json"),
            ("repo:push", b"[]"),
            ("repo:push", b"\xff"),
            ("repo:push", b'{"push": {"changes": [{"new": {"name": 1}}]}}'),
            ("pr:merged", b'{"pullRequest": {"links": {"self": "x"}}}'),
            ("repo:refs_changed", b"[" * 50000),
        ]:
            code, answer, _ = self.answer(self.h.deliver(event, body))
            self.assertEqual((code, answer),
                             (400, {"error": "invalid request body"}), body)
        self.assertEqual(self.h.refresher.calls, [])

    def test_row10_not_ready(self) -> None:
        self.h.is_ready = False
        code, body, response = self.answer(self.h.deliver("repo:push", PUSH))
        self.assertEqual((code, body), (503, {"error": "not ready"}))
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"),
                         [b"5"])
        self.assertEqual(self.h.refresher.calls, [])
        # checks before it still come first
        code, _, _ = self.answer(self.h.deliver("repo:push", PUSH,
                                                secret=b"x"))
        self.assertEqual(code, 401)

    def test_row11_refreshed(self) -> None:
        self.h.index.warehouses.upsert(warehouse(
            "kargo-demo", "w", {"repoURL": REPO + ".git",
                                "branch": "feature/webhook"}))
        self.h.index.warehouses.upsert(warehouse(
            "elsewhere", "w", {"repoURL": REPO, "branch": "feature/webhook"}))
        code, body, _ = self.answer(self.h.deliver("repo:push", PUSH))
        self.assertEqual((code, body),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        self.assertEqual(self.h.refresher.calls,
                         [(Target(WAREHOUSE, "kargo-demo", "w"),)])
        url = "https://bitbucket.org/cloudbeers/temp/pull-requests/2"
        self.h.index.promotions.upsert(promotion("kargo-demo", "p", url))
        code, body, _ = self.answer(self.h.deliver(
            "pullrequest:fulfilled", fixture("cloud-pullrequest-fulfilled.json")))
        self.assertEqual((code, body),
                         (200, {"msg": "refreshed 1 promotion(s)"}))
        self.assertEqual(self.h.refresher.calls[-1],
                         (Target(PROMOTION, "kargo-demo", "p"),))
        code, body, _ = self.answer(self.h.deliver(
            "pr:declined", fixture("server-pr-declined.json")))
        self.assertEqual((code, body),
                         (200, {"msg": "refreshed 0 promotion(s)"}))

    def test_row12_failed(self) -> None:
        self.h.index.warehouses.upsert(warehouse(
            "kargo-demo", "w", {"repoURL": REPO, "branch": "feature/webhook"}))
        self.h.refresher.failed = 1
        code, body, _ = self.answer(self.h.deliver("repo:push", PUSH))
        self.assertEqual((code, body), (500, {
            "error": "failed to refresh 1 of 1 warehouse(s)"}))

    def test_row13_pending(self) -> None:
        self.h.index.warehouses.upsert(warehouse(
            "kargo-demo", "w", {"repoURL": REPO, "branch": "feature/webhook"}))
        self.h.refresher.pending = 1
        code, body, _ = self.answer(self.h.deliver("repo:push", PUSH))
        self.assertEqual((code, body),
                         (202, {"msg": "refreshing 1 warehouse(s)"}))

    def test_header_names_and_content_types(self) -> None:
        """
        Matrix 63, 64.
        """
        for extra in [{"Content-Type": "application/json; charset=UTF-8"},
                      {"Content-Type": "text/plain"}]:
            code, _, _ = self.answer(self.h.deliver("repo:push", PUSH,
                                                    extra=extra))
            self.assertEqual(code, 200)
        from bbreceiver.bitbucket import sign
        code, _, _ = self.answer(self.h.request("POST", PATH, PUSH, {
            "x-event-key": "repo:push",
            "X-HUB-SIGNATURE": sign(PUSH, SECRET).decode()}))
        self.assertEqual(code, 200)

    def test_observed(self) -> None:
        self.h.deliver("repo:push", PUSH)
        self.h.deliver(None, PUSH)
        self.h.deliver("repo:push", PUSH, secret=None)
        self.assertEqual(self.h.observer.seen, [
            ("kargo-demo/bb-wh-receiver", "repo:push", 200),
            ("kargo-demo/bb-wh-receiver", "none", 400),
            ("kargo-demo/bb-wh-receiver", "repo:push", 401),
        ])


class ProbeTests(SynchronousTestCase):
    def test_healthz(self) -> None:
        h = Harness()
        response = self.successResultOf(h.request("GET", "/healthz"))
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(self.successResultOf(body_of(response))),
                         {"ok": True})
        response = self.successResultOf(h.request("POST", "/healthz"))
        self.assertEqual(response.code, 405)

    def test_readyz(self) -> None:
        h = Harness(ready=False)
        response = self.successResultOf(h.request("GET", "/readyz"))
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(self.successResultOf(body_of(response))),
                         {"ready": False,
                          "resources": {"warehouses": False}})
        h.is_ready = True
        response = self.successResultOf(h.request("GET", "/readyz"))
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(self.successResultOf(body_of(response))),
                         {"ready": True, "resources": {"warehouses": True}})


class ConnectionTests(SynchronousTestCase):
    """
    The channel's own limits.
    """

    def test_receive_timeout(self) -> None:
        from twisted.internet.testing import StringTransport
        h = Harness(Limits(request_timeout_seconds=5))
        channel = h.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        self.assertEqual(h.site.connections, 1)
        channel.dataReceived(b"POST " + PATH.encode() + b" HTTP/1.1\r\n")
        h.reactor.advance(3)
        channel.dataReceived(b"Host: x\r\n")  # trickling resets no deadline
        h.reactor.advance(2.5)
        self.assertTrue(transport.disconnecting or transport.disconnected
                        or getattr(transport, "aborted", False))

    def test_connection_cap(self) -> None:
        h = Harness(Limits(max_connections=2))
        from twisted.internet.testing import StringTransport
        for _ in range(2):
            protocol = h.site.buildProtocol(None)
            protocol.makeConnection(StringTransport())
        self.assertIsNone(h.site.buildProtocol(None))
