"""
Receiver URLs and the routing table, with secrets from the file and from
watched Secrets, rotation grace and conflicts.
"""

import base64

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.config import parse_config
from bbreceiver.receivers import (
    ReceiverRoutes,
    receiver_hash,
    receiver_path,
    receiver_url,
    secret_value,
)

GOLDEN = "815f15fa9a82267ba4ffc270d226930dc67472906be11bf4e922bbf0371cd569"


def secret(namespace: str, name: str, value: bytes | None) -> dict:
    data = {} if value is None else {
        "secret": base64.b64encode(value).decode()}
    return {"metadata": {"namespace": namespace, "name": name}, "data": data}


class URLTests(SynchronousTestCase):
    def test_golden(self) -> None:
        """
        Kargo's documented example (kargo-receiver.md §1.2).
        """
        self.assertEqual(receiver_hash("kargo-demo", "bb-wh-receiver",
                                       b"mysupersecrettoken"), GOLDEN)
        self.assertEqual(receiver_url("https://host/webhooks", "kargo-demo",
                                      "bb-wh-receiver", b"mysupersecrettoken"),
                         "https://host/webhooks/bitbucket/" + GOLDEN)
        self.assertEqual(receiver_path("https://host/webhooks/", "kargo-demo",
                                       "bb-wh-receiver", b"mysupersecrettoken"),
                         b"/webhooks/bitbucket/" + GOLDEN.encode())
        self.assertEqual(receiver_path("/", "kargo-demo", "bb-wh-receiver",
                                       b"mysupersecrettoken"),
                         b"/bitbucket/" + GOLDEN.encode())

    def test_secret_value(self) -> None:
        self.assertEqual(secret_value(secret("a", "b", b"s\n")), b"s\n")
        self.assertIsNone(secret_value(secret("a", "b", None)))
        self.assertIsNone(secret_value({"data": {"secret": "!!"}}))
        self.assertIsNone(secret_value({"data": None}))
        self.assertIsNone(secret_value({}))


CONFIG = """
baseURL: https://hooks.example.com/kargo
kargo: {rotationGraceSeconds: 60}
receivers:
  - {project: kargo-demo, name: bb-wh-receiver, secret: {value: mysupersecrettoken}}
  - {project: team, name: ref, secret: {secretRef: {name: s}}}
"""


class RoutesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.routes = ReceiverRoutes(parse_config(CONFIG, "c.yaml"),
                                     self.clock)

    def path(self, project: str, name: str, value: bytes) -> bytes:
        return receiver_path("/kargo", project, name, value)

    def test_static(self) -> None:
        route = self.routes.lookup(b"/kargo/bitbucket/" + GOLDEN.encode())
        assert route is not None
        self.assertEqual(route.label, "kargo-demo/bb-wh-receiver")
        self.assertEqual(route.project, "kargo-demo")
        self.assertEqual(route.secret, b"mysupersecrettoken")
        self.assertFalse(route.retiring)
        self.assertIsNone(self.routes.lookup(b"/bitbucket/" + GOLDEN.encode()))
        self.assertEqual(self.routes.secret_refs, [("team", "s")])

    def test_secret_ref(self) -> None:
        first = self.path("team", "ref", b"one")
        self.assertIsNone(self.routes.lookup(first))
        self.routes.replace("team", [secret("team", "s", b"one"),
                                     secret("team", "other", b"x")])
        route = self.routes.lookup(first)
        assert route is not None
        self.assertEqual((route.label, route.secret), ("team/ref", b"one"))

    def test_rotation(self) -> None:
        old, new = self.path("team", "ref", b"one"), self.path(
            "team", "ref", b"two")
        self.routes.upsert(secret("team", "s", b"one"))
        self.clock.advance(100)
        self.routes.upsert(secret("team", "s", b"two"))
        route = self.routes.lookup(new)
        assert route is not None
        self.assertFalse(route.retiring)
        retiring = self.routes.lookup(old)
        assert retiring is not None
        self.assertTrue(retiring.retiring)
        self.assertEqual(retiring.secret, b"one")
        self.clock.advance(59)
        self.assertIsNotNone(self.routes.lookup(old))
        self.clock.advance(1)
        self.assertIsNone(self.routes.lookup(old))
        self.assertIsNotNone(self.routes.lookup(new))

    def test_rotating_back(self) -> None:
        one = self.path("team", "ref", b"one")
        self.routes.upsert(secret("team", "s", b"one"))
        self.routes.upsert(secret("team", "s", b"two"))
        self.routes.upsert(secret("team", "s", b"one"))
        route = self.routes.lookup(one)
        # one claim is retiring, one current: a conflict would answer None
        self.assertIsNotNone(route)

    def test_unchanged(self) -> None:
        self.routes.upsert(secret("team", "s", b"one"))
        self.routes.upsert(secret("team", "s", b"one"))
        route = self.routes.lookup(self.path("team", "ref", b"one"))
        assert route is not None
        self.assertFalse(route.retiring)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_missing(self) -> None:
        path = self.path("team", "ref", b"one")
        self.routes.upsert(secret("team", "s", b"one"))
        self.routes.upsert(secret("team", "s", None))
        route = self.routes.lookup(path)
        assert route is not None
        self.assertTrue(route.retiring)
        self.routes.delete(secret("team", "s", None))
        self.clock.advance(60)
        self.assertIsNone(self.routes.lookup(path))
        self.routes.replace(None, [secret("team", "s", b"three")])
        self.assertIsNotNone(self.routes.lookup(self.path("team", "ref",
                                                          b"three")))
        self.routes.replace("team", [])
        self.clock.advance(60)
        self.assertIsNone(self.routes.lookup(self.path("team", "ref",
                                                       b"three")))
