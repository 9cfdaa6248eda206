"""
C{bbreceiver url} and C{bbreceiver send}, run as the user runs them.
"""

import json
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource
from twisted.trial.unittest import TestCase

from bbreceiver.config import Limits
from bbreceiver.index import SubscriptionIndex
from bbreceiver.web import DeliverySite, Route, StaticRoutes, WebhookApp
from tests.kargo import warehouse
from tests.web_support import PATH, SECRET, RecordingRefresher

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = "815f15fa9a82267ba4ffc270d226930dc67472906be11bf4e922bbf0371cd569"


def run(*args: str) -> "Deferred[tuple[bytes, bytes, int]]":
    return getProcessOutputAndValue(
        sys.executable, ["-m", "bbreceiver.cli", *args], env=dict(os.environ),
        path=ROOT)


class URLCommandTests(TestCase):
    async def test_url(self) -> None:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        config = folder.child("c.yaml")
        config.setContent(b"""
baseURL: https://hooks.example.com/kargo/
receivers:
  - {project: kargo-demo, name: bb-wh-receiver, secret: {value: mysupersecrettoken}}
  - {project: "", name: cluster, secret: {value: x}}
""")
        out, err, code = await run("url", "--config", config.path)
        self.assertEqual((code, err), (0, b""))
        lines = out.decode().splitlines()
        self.assertEqual(lines[0], "kargo-demo bb-wh-receiver "
                         "https://hooks.example.com/kargo/bitbucket/" + GOLDEN)
        self.assertTrue(lines[1].startswith('"" cluster '
                                            "https://hooks.example.com/kargo/"
                                            "bitbucket/"))

    async def test_url_embedded_secret_ref(self) -> None:
        """
        The demo's receivers, one of them with its secret in a Secret of the
        embedded objects.
        """
        out, err, code = await run("url", "--config", "etc/demo.yaml")
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(out.decode().splitlines()[0],
                         "kargo-demo bb-wh-receiver /bitbucket/" + GOLDEN)

    async def test_bad_config(self) -> None:
        out, err, code = await run("url", "--config", "nope.yaml")
        self.assertEqual(code, 1)
        self.assertEqual(err, b"bbreceiver: nope.yaml: cannot read the file: "
                         b"No such file or directory\n")


class SendCommandTests(TestCase):
    def setUp(self) -> None:
        self.index = SubscriptionIndex()
        self.refresher = RecordingRefresher()
        self.seen: list[Any] = []
        app = WebhookApp(
            StaticRoutes({PATH.encode(): Route("kargo-demo/bb-wh-receiver",
                                               "kargo-demo", SECRET)}),
            self.index, self.refresher, reactor, ready=lambda: True)
        site = DeliverySite(app, Limits(), reactor=reactor)
        root = site.resource
        seen = self.seen

        class Recording(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                seen.append(request.requestHeaders)
                return root.render(request)

        site.resource = Recording()
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = "http://127.0.0.1:{}{}".format(self.port.getHost().port,
                                                  PATH)

    async def test_send_cloud(self) -> None:
        self.index.warehouses.upsert(warehouse(
            "kargo-demo", "guestbook",
            {"repoURL": "https://bitbucket.org/example/guestbook.git"}))
        out, err, code = await run(
            "send", "--url", self.url, "--secret", "mysupersecrettoken",
            "--event", "repo:push", "--payload",
            "etc/samples/cloud-push-main.json")
        self.assertEqual((code, err), (0, b""))
        status, body = out.decode().splitlines()
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(json.loads(body), {"msg": "refreshed 1 warehouse(s)"})
        [headers] = self.seen
        for name in [b"x-hook-uuid", b"x-request-uuid", b"x-attempt-number",
                     b"user-agent", b"x-hub-signature"]:
            self.assertTrue(headers.hasHeader(name), name)

    async def test_send_server_sha512_failure_exit(self) -> None:
        out, err, code = await run(
            "send", "--url", self.url, "--secret", "wrong", "--event",
            "repo:refs_changed", "--flavor", "server", "--algorithm",
            "sha512", "--payload", "etc/samples/datacenter-push.json")
        self.assertEqual(code, 1)
        self.assertEqual(out.decode().splitlines(),
                         ["HTTP/1.1 401 Unauthorized",
                          '{"error":"unauthorized"}'])
        [headers] = self.seen
        self.assertTrue(headers.hasHeader(b"x-request-id"))
        self.assertFalse(headers.hasHeader(b"x-hook-uuid"))
        self.assertTrue(headers.getRawHeaders(b"x-hub-signature")[0]
                        .startswith(b"sha512="))

    async def test_send_unsigned_ping(self) -> None:
        out, err, code = await run(
            "send", "--url", self.url, "--unsigned", "--event",
            "diagnostics:ping", "--flavor", "server", "--payload",
            "tests/fixtures/server-diagnostics-ping.json")
        self.assertEqual((code, out.decode().splitlines()[1]),
                         (0, '{"msg":"pong"}'))
        self.assertFalse(self.seen[0].hasHeader(b"x-hub-signature"))

    async def test_send_secret_file(self) -> None:
        secret = FilePath(self.mktemp())
        secret.setContent(SECRET)
        out, err, code = await run(
            "send", "--url", self.url, "--secret-file", secret.path,
            "--event", "repo:fork", "--payload",
            "etc/samples/cloud-push-main.json")
        self.assertEqual((code, out.decode().splitlines()[1]),
                         (0, '{"msg":"ignored event repo:fork"}'))

    async def test_connection_refused(self) -> None:
        out, err, code = await run(
            "send", "--url", "http://127.0.0.1:1/x", "--secret", "s",
            "--event", "repo:push", "--payload",
            "etc/samples/cloud-push-main.json")
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith(b"bbreceiver: POST http://127.0.0.1:1/x"
                                       b" failed: "), err)
        self.assertEqual(err.count(b"\n"), 1)
