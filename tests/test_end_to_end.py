"""
End to end: C{twist bbreceiver} as a subprocess, against the Kubernetes API
stand-in on loopback, driven by signed deliveries of every event type.
"""

import json
import os
import re
import socket
from typing import Any

from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests.daemon import Daemon, run_twist, sleep
from tests.fixtures import fixture

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLES = os.path.join(ROOT, "etc", "samples")
OBJECTS = os.path.join(ROOT, "etc", "demo-objects.yaml")

KARGO = "/bitbucket/815f15fa9a82267ba4ffc270d226930dc67472906be11bf4e922bbf0371cd569"
KARGO_SECRET = b"mysupersecrettoken"
DC_SECRET = b"dc-secret"

CONFIG = """
listen: "{listen}"
kubernetes:
  server: "{api}"
  watchTimeoutSeconds: 30
  inactivitySeconds: 10
  backoffMaxSeconds: 0.5
kargo:
  rotationGraceSeconds: 1
receivers:
  - project: kargo-demo
    name: bb-wh-receiver
    secret:
      secretRef:
        name: bb-wh-secret
  - project: ""
    name: datacenter
    secret:
      value: dc-secret
limits:
  responseDeadlineSeconds: 3
"""

TOKEN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PATCH_PATH = "/apis/kargo.akuity.io/v1alpha1/namespaces/{}/{}/{}"


def sample(name: str) -> bytes:
    with open(os.path.join(SAMPLES, name), "rb") as f:
        return f.read()


def dc_path() -> str:
    import hashlib
    return "/bitbucket/" + hashlib.sha256(b"datacenter" + DC_SECRET).hexdigest()


class EndToEndTests(TestCase):
    timeout = 120

    async def start(self, config: str = CONFIG) -> Daemon:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        daemon = Daemon(folder, config)
        daemon.fake.load_yaml_file(OBJECTS)
        self.addCleanup(self.stopped, daemon)
        await daemon.start()
        return daemon

    async def stopped(self, daemon: Daemon) -> None:
        code = await daemon.stop()
        # twist exits 0, or re-raises SIGTERM (SPEC section 2)
        self.assertIn(code, (0, -15), daemon.output.err.decode())
        self.assertNotIn(b"Traceback", bytes(daemon.output.out))
        self.assertNotIn(b"Traceback", bytes(daemon.output.err))

    async def delivery(self, daemon: Daemon, path: str, event: str | None,
                       body: bytes, secret: bytes | None, **kw: Any
                       ) -> tuple[int, Any, list[Any]]:
        """
        Deliver; return the answer and the API requests made meanwhile.
        """
        daemon.fake.clear_requests()
        code, answer = await daemon.deliver(path, event, body, secret, **kw)
        return code, answer, list(daemon.fake.requests)

    def assertPatches(self, requests: list[Any],
                      expected: set[tuple[str, str, str]]) -> None:
        """
        The requests are exactly one merge patch of each expected object.
        """
        seen = set()
        for request in requests:
            self.assertEqual(request.method, "PATCH", request)
            self.assertEqual(request.headers["content-type"],
                             "application/merge-patch+json")
            body = request.json()
            self.assertEqual(list(body), ["metadata"])
            self.assertEqual(list(body["metadata"]), ["annotations"])
            [(key, token)] = body["metadata"]["annotations"].items()
            self.assertEqual(key, "kargo.akuity.io/refresh")
            self.assertRegex(token, TOKEN)
            seen.add(request.path)
        self.assertEqual(len(seen), len(requests))
        self.assertEqual(seen, {PATCH_PATH.format(*t) for t in expected})

    async def test_pushes(self) -> None:
        daemon = await self.start()
        code, answer, requests = await self.delivery(
            daemon, KARGO, "repo:push", sample("cloud-push-main.json"),
            KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        self.assertPatches(requests, {("kargo-demo", "warehouses",
                                       "guestbook")})
        token = requests[0].json()["metadata"]["annotations"][
            "kargo.akuity.io/refresh"]
        stored = daemon.fake.get("warehouses", "kargo-demo", "guestbook")
        self.assertEqual(stored["metadata"]["annotations"],
                         {"kargo.akuity.io/refresh": token})

        code, answer, requests = await self.delivery(
            daemon, KARGO, "repo:push", sample("cloud-push-tag.json"),
            KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        self.assertPatches(requests, {("kargo-demo", "warehouses",
                                       "guestbook-tags")})

        # Data Center, for a receiver of every namespace
        code, answer, requests = await self.delivery(
            daemon, dc_path(), "repo:refs_changed",
            sample("datacenter-push.json"), DC_SECRET, flavor="server")
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 2 warehouse(s)"}))
        self.assertPatches(requests, {("platform", "warehouses", "platform"),
                                      ("platform", "warehouses",
                                       "platform-tags")})
        # the same push to the kargo-demo receiver: out of its scope
        code, answer, requests = await self.delivery(
            daemon, KARGO, "repo:refs_changed",
            sample("datacenter-push.json"), KARGO_SECRET, flavor="server")
        self.assertEqual((code, answer, requests),
                         (200, {"msg": "refreshed 0 warehouse(s)"}, []))

        mirror = json.loads(sample("datacenter-push.json"))
        mirror.update(eventKey="mirror:repo_synchronized", changes=[],
                      refLimitExceeded=True)
        code, answer, requests = await self.delivery(
            daemon, dc_path(), "mirror:repo_synchronized",
            json.dumps(mirror).encode(), DC_SECRET, flavor="server")
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 2 warehouse(s)"}))
        self.assertPatches(requests, {("platform", "warehouses", "platform"),
                                      ("platform", "warehouses",
                                       "platform-tags")})

        # deletions refresh nothing
        code, answer, requests = await self.delivery(
            daemon, dc_path(), "repo:refs_changed",
            fixture("server-repo-refs-changed-delete-context-path.json"),
            DC_SECRET, flavor="server")
        self.assertEqual((code, answer, requests),
                         (200, {"msg": "refreshed 0 warehouse(s)"}, []))

    async def test_pull_requests(self) -> None:
        daemon = await self.start()
        code, answer, requests = await self.delivery(
            daemon, KARGO, "pullrequest:fulfilled",
            sample("cloud-pr-merged.json"), KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 promotion(s)"}))
        self.assertPatches(requests, {("kargo-demo", "promotions",
                                       "prod.01jf2x5k8z9m3n4p5q6r7s8t9v")})
        code, answer, requests = await self.delivery(
            daemon, dc_path(), "pr:declined",
            fixture("server-pr-declined.json"), DC_SECRET, flavor="server")
        self.assertEqual((code, answer, requests),
                         (200, {"msg": "refreshed 0 promotion(s)"}, []))
        code, answer, requests = await self.delivery(
            daemon, dc_path(), "pr:merged",
            fixture("server-pr-merged-personal-repo.json"), DC_SECRET,
            flavor="server")
        self.assertEqual((code, answer, requests),
                         (200, {"msg": "refreshed 0 promotion(s)"}, []))

    async def test_no_refresh_answers(self) -> None:
        daemon = await self.start()
        ping = fixture("server-diagnostics-ping.json")
        cases = [
            (dc_path(), "diagnostics:ping", ping, None, 200,
             {"msg": "pong"}),
            (KARGO, "repo:push", sample("cloud-push-main.json"), None, 401,
             {"error": "missing signature"}),
            (KARGO, "repo:push", sample("cloud-push-main.json"), DC_SECRET,
             401, {"error": "unauthorized"}),
            (KARGO, "pullrequest:created", b"{}", KARGO_SECRET, 200,
             {"msg": "ignored event pullrequest:created"}),
            (KARGO, None, b"{}", KARGO_SECRET, 400,
             {"error": "missing event type"}),
            (KARGO, "repo:push", b"[", KARGO_SECRET, 400,
             {"error": "invalid request body"}),
            (KARGO + "x", "repo:push", b"{}", KARGO_SECRET, 404,
             {"error": "not found"}),
        ]
        for path, event, body, secret, code, answer in cases:
            result = await self.delivery(daemon, path, event, body, secret)
            self.assertEqual(result, (code, answer, []), (path, event))

    async def test_api_faults_on_patch(self) -> None:
        daemon = await self.start()
        body = sample("cloud-push-main.json")
        # 429 with Retry-After, then success: still answered 200
        daemon.fake.fail_next(1, 429, method="PATCH", retry_after=1)
        code, answer, requests = await self.delivery(daemon, KARGO,
                                                     "repo:push", body,
                                                     KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        self.assertEqual([r.code for r in requests], [429, 200])
        # the object is gone meanwhile: done
        daemon.fake.fail_next(1, 404, method="PATCH")
        code, answer, _ = await self.delivery(daemon, KARGO, "repo:push",
                                              body, KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        # forbidden: a final failure, answered 500 so that Bitbucket retries
        daemon.fake.fail_next(1, 403, method="PATCH")
        code, answer, _ = await self.delivery(daemon, KARGO, "repo:push",
                                              body, KARGO_SECRET)
        self.assertEqual((code, answer), (500, {
            "error": "failed to refresh 1 of 1 warehouse(s)"}))
        # the API too slow for the deadline: 202, completed in the background
        daemon.fake.latency = 4
        code, answer, _ = await self.delivery(daemon, KARGO, "repo:push",
                                              body, KARGO_SECRET)
        self.assertEqual((code, answer),
                         (202, {"msg": "refreshing 1 warehouse(s)"}))
        daemon.fake.latency = 0

    async def test_watch_recovery(self) -> None:
        """
        Streams dropped and history compacted while objects change: the
        index catches up, and deliveries use it.
        """
        daemon = await self.start()
        fake = daemon.fake
        fake.fail_next(4, 500, path="watch=true")
        fake.drop_watches()
        fake.compact()
        fake.delete("warehouses", "kargo-demo", "guestbook")
        fake.create({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
            "metadata": {"namespace": "kargo-demo", "name": "late"},
            "spec": {"subscriptions": [{"git": {
                "repoURL": "https://bitbucket.org/example/guestbook"}}]}})
        fake.compact()
        body = sample("cloud-push-main.json")

        async def caught_up() -> bool:
            code, answer, requests = await self.delivery(
                daemon, KARGO, "repo:push", body, KARGO_SECRET)
            return {r.path for r in requests} == {PATCH_PATH.format(
                "kargo-demo", "warehouses", "late")}

        await daemon.eventually(caught_up)

    async def test_not_ready_until_listed(self) -> None:
        """
        Deliveries get 503 until every resource has been listed once.
        """
        folder = FilePath(self.mktemp())
        folder.makedirs()
        daemon = Daemon(folder, CONFIG)
        daemon.fake.load_yaml_file(OBJECTS)
        daemon.fake.fail_next(10000, 500, path="/warehouses")
        self.addCleanup(self.stopped, daemon)
        await daemon.start(wait=False)
        body = sample("cloud-push-main.json")

        async def up() -> bool:
            try:
                response = await daemon.get("/readyz")
            except Exception:
                return False
            detail = json.loads(await __import__("treq").content(response))
            return response.code == 503 and detail["ready"] is False and (
                detail["resources"]["promotions"]["synced"])

        await daemon.eventually(up)
        daemon.fake.clear_requests()
        code, answer = await daemon.deliver(KARGO, "repo:push", body,
                                            KARGO_SECRET)
        self.assertEqual((code, answer), (503, {"error": "not ready"}))
        self.assertEqual(daemon.fake.requests_matching(method="PATCH"), [])
        daemon.fake.clear_faults()
        await daemon.wait_ready()
        code, answer = await daemon.deliver(KARGO, "repo:push", body,
                                            KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))

    async def test_secret_rotation(self) -> None:
        daemon = await self.start()
        new_path = "/bitbucket/" + __import__("hashlib").sha256(
            b"kargo-demobb-wh-receiver" + b"rotated").hexdigest()
        daemon.fake.patch("secrets", "kargo-demo", "bb-wh-secret", {
            "data": {"secret": "cm90YXRlZA=="}})
        body = sample("cloud-push-main.json")

        async def routed() -> bool:
            code, _ = await daemon.deliver(new_path, "repo:push", body,
                                           b"rotated")
            return code == 200

        await daemon.eventually(routed)
        code, _ = await daemon.deliver(KARGO, "repo:push", body, KARGO_SECRET)
        self.assertEqual(code, 200)  # in its grace period
        await sleep(1.2)
        code, _ = await daemon.deliver(KARGO, "repo:push", body, KARGO_SECRET)
        self.assertEqual(code, 404)


class StartupTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.folder = FilePath(self.mktemp())
        self.folder.makedirs()

    async def test_bad_config(self) -> None:
        config = self.folder.child("bad.yaml")
        config.setContent(b"receivers:\n  - {project: p, name: n, secret: "
                          b"{value: v, file: f}}\n")
        code, out, err = await run_twist(["bbreceiver", "--config",
                                          config.path], self.folder.path)
        self.assertNotEqual(code, 0)
        self.assertIn(config.path.encode() + b": receivers[0].secret: set "
                      b"exactly one of secretRef, value, env, file", err)
        self.assertNotIn(b"Traceback", out + err)

    async def test_bad_embedded_objects(self) -> None:
        config = self.folder.child("c.yaml")
        config.setContent(b"""
kubernetes: {embedded: {listen: "tcp:0:interface=127.0.0.1", objects: o.yaml}}
receivers:
  - {project: p, name: n, secret: {value: v}}
""")
        for content in [None, b"kind: [\n"]:
            if content is not None:
                self.folder.child("o.yaml").setContent(content)
            code, out, err = await run_twist(["bbreceiver", "--config",
                                              config.path], self.folder.path)
            self.assertNotEqual(code, 0)
            lines = err.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, err)
            self.assertIn("kubernetes.embedded.objects: cannot load", lines[0])
            self.assertNotIn(b"Traceback", out + err)

    async def test_port_in_use(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            config = self.folder.child("c.yaml")
            config.setContent("""
listen: "tcp:{}:interface=127.0.0.1"
kubernetes: {{embedded: {{listen: "tcp:0:interface=127.0.0.1"}}}}
receivers:
  - {{project: p, name: n, secret: {{value: v}}}}
""".format(port).encode())
            code, out, err = await run_twist(["bbreceiver", "--config",
                                              config.path], self.folder.path)
        self.assertNotEqual(code, 0)
        lines = err.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("listen: cannot listen on tcp:{}".format(port),
                      lines[0])
        self.assertNotIn(b"Traceback", out + err)


KARGO_CONFIG = """
listen: "{listen}"
kubernetes:
  server: "{api}"
  backoffMaxSeconds: 0.5
kargo:
  projectConfigs: true
  rotationGraceSeconds: 1.5
"""


class KargoNativeTests(TestCase):
    """
    Only Kargo's own objects declare the receivers (SPEC §8).
    """

    timeout = 120

    async def test_project_config_receiver(self) -> None:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        daemon = Daemon(folder, KARGO_CONFIG)
        daemon.fake.load_yaml_file(OBJECTS)
        self.addCleanup(daemon.stop)
        await daemon.start()
        body = sample("cloud-push-main.json")
        # the path Kargo publishes in status.webhookReceivers
        published = daemon.fake.get("projectconfigs", "kargo-demo",
                                    "kargo-demo")["status"][
                                        "webhookReceivers"][0]["path"]
        self.assertEqual(published, KARGO)
        code, answer = await daemon.deliver(KARGO, "repo:push", body,
                                            KARGO_SECRET)
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))

        # rotate: both URLs work during the grace period, then only the new
        new = "/bitbucket/" + __import__("hashlib").sha256(
            b"kargo-demobb-wh-receiverrotated").hexdigest()
        daemon.fake.patch("secrets", "kargo-demo", "bb-wh-secret",
                          {"data": {"secret": "cm90YXRlZA=="}})

        async def routed() -> bool:
            code, _ = await daemon.deliver(new, "repo:push", body, b"rotated")
            return code == 200

        await daemon.eventually(routed)
        code, _ = await daemon.deliver(KARGO, "repo:push", body,
                                       KARGO_SECRET)
        self.assertEqual(code, 200)

        async def retired() -> bool:
            code, _ = await daemon.deliver(KARGO, "repo:push", body,
                                           KARGO_SECRET)
            return code == 404

        await daemon.eventually(retired)
        code, _ = await daemon.deliver(new, "repo:push", body, b"rotated")
        self.assertEqual(code, 200)

        # a receiver appears, with a Secret that comes later
        pc = daemon.fake.get("projectconfigs", "kargo-demo", "kargo-demo")
        pc["spec"]["webhookReceivers"].append(
            {"name": "late", "bitbucket": {"secretRef": {"name": "late"}}})
        daemon.fake.update(pc)
        daemon.fake.create({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"namespace": "kargo-demo",
                                         "name": "late"},
                            "data": {"secret": "bGF0ZQ=="}})
        late = "/bitbucket/" + __import__("hashlib").sha256(
            b"kargo-demolatelate").hexdigest()

        async def late_routed() -> bool:
            code, _ = await daemon.deliver(late, "repo:push", body, b"late")
            return code == 200

        await daemon.eventually(late_routed)

        # bbreceiver url lists what the cluster declares
        from tests.test_cli import run
        out, err, code = await run("url", "--config",
                                   folder.child("bbreceiver.yaml").path)
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(out.decode().splitlines()), sorted([
            "kargo-demo bb-wh-receiver " + new,
            "kargo-demo late " + late]))
