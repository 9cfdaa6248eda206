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
        self.routes.secrets.replace("team", [secret("team", "s", b"one"),
                                     secret("team", "other", b"x")])
        route = self.routes.lookup(first)
        assert route is not None
        self.assertEqual((route.label, route.secret), ("team/ref", b"one"))

    def test_rotation(self) -> None:
        old, new = self.path("team", "ref", b"one"), self.path(
            "team", "ref", b"two")
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        self.clock.advance(100)
        self.routes.secrets.upsert(secret("team", "s", b"two"))
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
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        self.routes.secrets.upsert(secret("team", "s", b"two"))
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        route = self.routes.lookup(one)
        # one claim is retiring, one current: a conflict would answer None
        self.assertIsNotNone(route)

    def test_unchanged(self) -> None:
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        route = self.routes.lookup(self.path("team", "ref", b"one"))
        assert route is not None
        self.assertFalse(route.retiring)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_missing(self) -> None:
        """
        A Secret without the key, or deleted, unroutes the receiver at once
        (SPEC §3: 404), grace period or not; it routes again when the
        Secret comes back.
        """
        path = self.path("team", "ref", b"one")
        self.routes.secrets.upsert(secret("team", "s", b"zero"))
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        self.routes.secrets.upsert(secret("team", "s", None))
        self.assertIsNone(self.routes.lookup(path))
        self.assertIsNone(self.routes.lookup(self.path("team", "ref",
                                                       b"zero")))
        self.routes.secrets.upsert(secret("team", "s", b"one"))
        self.assertIsNotNone(self.routes.lookup(path))
        self.routes.secrets.delete(secret("team", "s", None))
        self.assertIsNone(self.routes.lookup(path))
        self.routes.secrets.replace(None, [secret("team", "s", b"three")])
        three = self.path("team", "ref", b"three")
        self.assertIsNotNone(self.routes.lookup(three))
        self.routes.secrets.replace("team", [])
        self.assertIsNone(self.routes.lookup(three))
        self.assertEqual(self.routes._claims.keys(), {
            b"/kargo/bitbucket/" + GOLDEN.encode()})


def project_config(namespace: str, *receivers: tuple[str, str | None]
                   ) -> dict:
    entries = []
    for name, secret_name in receivers:
        if secret_name is None:
            entries.append({"name": name, "github": {"secretRef": {
                "name": "gh"}}})
        else:
            entries.append({"name": name, "bitbucket": {"secretRef": {
                "name": secret_name}}})
    return {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
            "metadata": {"namespace": namespace, "name": namespace},
            "spec": {"webhookReceivers": entries}}


KARGO_ONLY = """
kargo: {projectConfigs: true, systemNamespace: kargo-system-resources,
        rotationGraceSeconds: 60}
"""


class DiscoveryTests(SynchronousTestCase):
    """
    Receivers declared by ProjectConfigs and the ClusterConfig (SPEC §8).
    """

    def setUp(self) -> None:
        from bbreceiver.receivers import ClusterConfigs, ProjectConfigs
        self.clock = Clock()
        self.routes = ReceiverRoutes(parse_config(KARGO_ONLY, "c.yaml"),
                                     self.clock)
        self.projects = ProjectConfigs(self.routes)
        self.cluster = ClusterConfigs(self.routes, "kargo-system-resources")

    def test_golden(self) -> None:
        """
        Kargo's documentation example, routed at Kargo's own path.
        """
        self.projects.replace(None, [project_config(
            "kargo-demo", ("bb-wh-receiver", "bb-wh-secret"),
            ("gh-receiver", None))])
        golden = b"/bitbucket/" + GOLDEN.encode()
        self.assertIsNone(self.routes.lookup(golden))
        self.routes.secrets.upsert(secret("kargo-demo", "bb-wh-secret",
                                          b"mysupersecrettoken"))
        route = self.routes.lookup(golden)
        assert route is not None
        self.assertEqual((route.label, route.project),
                         ("kargo-demo/bb-wh-receiver", "kargo-demo"))
        self.assertEqual(len(self.routes.receivers()), 1)

    def test_cluster(self) -> None:
        self.routes.secrets.upsert(secret("kargo-system-resources", "s",
                                          b"x"))
        obj = {"metadata": {"name": "cluster"}, "spec": {"webhookReceivers": [
            {"name": "all", "bitbucket": {"secretRef": {"name": "s"}}}]}}
        self.cluster.upsert({**obj, "metadata": {"name": "other"}})
        path = receiver_path("/", "", "all", b"x")
        self.assertIsNone(self.routes.lookup(path))
        self.cluster.upsert(obj)
        route = self.routes.lookup(path)
        assert route is not None
        self.assertEqual((route.label, route.project), ("/all", ""))
        self.cluster.replace(None, [])
        self.clock.advance(60)
        self.assertIsNone(self.routes.lookup(path))

    def test_appear_change_disappear(self) -> None:
        self.routes.secrets.upsert(secret("p", "s", b"one"))
        one = receiver_path("/", "p", "r", b"one")
        self.projects.upsert(project_config("p", ("r", "s")))
        self.assertIsNotNone(self.routes.lookup(one))
        # renamed receiver: the old name's path retires
        self.projects.upsert(project_config("p", ("r2", "s")))
        self.assertIsNotNone(self.routes.lookup(receiver_path("/", "p", "r2",
                                                              b"one")))
        self.projects.delete(project_config("p"))
        self.clock.advance(60)
        self.assertEqual(self.routes._claims, {})

    def test_conflict(self) -> None:
        """
        Two receivers with one path: served by neither, and reported.
        """
        from bbreceiver.receivers import Declared
        self.routes.secrets.upsert(secret("p", "s", b"x"))
        self.projects.upsert(project_config("p", ("r", "s")))
        self.routes.declare("the configuration file",
                            [Declared("p", "r", secret=b"x")])
        path = receiver_path("/", "p", "r", b"x")
        self.assertIsNone(self.routes.lookup(path))
        [conflict] = self.routes.conflicts()
        self.assertIn("p/r (ProjectConfig p/p)", conflict)
        self.assertIn("p/r (the configuration file)", conflict)
        self.routes.declare("the configuration file", [])
        self.clock.advance(60)
        self.assertIsNotNone(self.routes.lookup(path))
        self.assertEqual(self.routes.conflicts(), [])

    def test_rotation_grace(self) -> None:
        self.routes.secrets.upsert(secret("p", "s", b"old"))
        self.projects.upsert(project_config("p", ("r", "s")))
        self.routes.secrets.upsert(secret("p", "s", b"new"))
        old = self.routes.lookup(receiver_path("/", "p", "r", b"old"))
        assert old is not None
        self.assertTrue(old.retiring)
        self.assertEqual(old.secret, b"old")
        self.clock.advance(59.9)
        self.assertIsNotNone(self.routes.lookup(receiver_path("/", "p", "r",
                                                              b"old")))
        self.clock.advance(0.1)
        self.assertIsNone(self.routes.lookup(receiver_path("/", "p", "r",
                                                           b"old")))
        self.assertIsNotNone(self.routes.lookup(receiver_path("/", "p", "r",
                                                              b"new")))
