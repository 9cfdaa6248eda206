"""
What an operator relies on: metrics, logs without secrets, graceful
shutdown, and a TLS listener (SPEC §2, §7).
"""

import datetime
import hashlib
import json
import os
from typing import Any

import treq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from treq.client import HTTPClient
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from bbreceiver.bitbucket import sign
from tests.daemon import Daemon, run_twist, sleep
from tests.test_end_to_end import KARGO, OBJECTS, sample

SECRET = "S3cr3t-Never-Log-Me"
PATH = "/bitbucket/" + hashlib.sha256(
    b"kargo-demo" + b"leaky" + SECRET.encode()).hexdigest()
HASH = PATH.rsplit("/", 1)[1]

CONFIG = """
listen: "{listen}"
kubernetes:
  server: "{api}"
metrics:
  listen: "{metrics}"
receivers:
  - project: kargo-demo
    name: bb-wh-receiver
    secret:
      secretRef:
        name: bb-wh-secret
  - project: kargo-demo
    name: leaky
    secret:
      value: S3cr3t-Never-Log-Me
limits:
  responseDeadlineSeconds: 3
"""


def samples(metrics: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                    float]:
    found = {}
    for family in text_string_to_metric_families(metrics.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


class OperabilityTests(TestCase):
    timeout = 120

    async def start(self, **kw: Any) -> Daemon:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        daemon = Daemon(folder, CONFIG, **kw)
        daemon.fake.load_yaml_file(OBJECTS)
        daemon.fake.patch("secrets", "kargo-demo", "bb-wh-secret", {
            "data": {"secret": __import__("base64").b64encode(
                SECRET.encode()).decode()}})
        self.daemon = daemon
        self.addCleanup(daemon.stop)
        await daemon.start()
        return daemon

    async def test_metrics(self) -> None:
        daemon = await self.start()
        for secret in [SECRET.encode(), SECRET.encode(), b"wrong"]:
            await daemon.deliver(PATH, "repo:push",
                                 sample("cloud-push-main.json"), secret)
        await daemon.deliver(PATH, "pullrequest:fulfilled",
                             sample("cloud-pr-merged.json"), SECRET.encode())
        await daemon.deliver(PATH, "diagnostics:ping", b"{}", None)
        await daemon.deliver(PATH, "pr:opened", b"{}", SECRET.encode())
        response = await treq.get("http://127.0.0.1:{}/metrics".format(
            daemon.metrics_port), persistent=False)
        self.assertEqual(response.code, 200)
        found = samples(await treq.content(response))
        receiver = ("receiver", "kargo-demo/leaky")

        def delivered(event: str, code: str) -> float:
            return found.get(("bbreceiver_deliveries_total", (
                ("code", code), ("event", event), receiver)), 0)

        self.assertEqual(delivered("repo:push", "200"), 2)
        self.assertEqual(delivered("repo:push", "401"), 1)
        self.assertEqual(delivered("pullrequest:fulfilled", "200"), 1)
        self.assertEqual(delivered("diagnostics:ping", "200"), 1)
        self.assertEqual(delivered("other", "200"), 1)
        self.assertEqual(found[("bbreceiver_refreshes_total", (
            ("kind", "warehouse"), ("result", "success")))], 2)
        self.assertEqual(found[("bbreceiver_refreshes_total", (
            ("kind", "promotion"), ("result", "success")))], 1)
        self.assertEqual(found[("bbreceiver_delivery_duration_seconds_count",
                                (("event", "repo:push"),))], 3)
        self.assertEqual(found[("bbreceiver_index_objects", (
            ("kind", "warehouse"),))], 5)
        self.assertEqual(found[("bbreceiver_index_objects", (
            ("kind", "promotion"),))], 1)
        for resource in ["warehouses", "promotions", "secrets"]:
            self.assertEqual(found[("bbreceiver_index_synced", (
                ("resource", resource),))], 1)
        self.assertIn(("process_cpu_seconds_total", ()), found)

    async def test_logs_hold_no_secret(self) -> None:
        daemon = await self.start()
        body = sample("cloud-push-main.json")
        answers = []
        good = sign(body, SECRET.encode()).decode()
        for path, event, payload, secret in [
            (PATH, "repo:push", body, SECRET.encode()),
            ("/bitbucket/" + hashlib.sha256(
                b"kargo-demobb-wh-receiver" + SECRET.encode()).hexdigest(),
             "repo:push", body, SECRET.encode()),
            (PATH, "repo:push", body, SECRET.encode() + b"x"),
            (PATH, "repo:push", b"{bad", SECRET.encode()),
            (PATH, None, body, SECRET.encode()),
            (PATH, "repo:fork", body, SECRET.encode()),
            (PATH, "diagnostics:ping", body, None),
            (PATH + SECRET, "repo:push", body, SECRET.encode()),
        ]:
            answers.append(await daemon.deliver(path, event, payload, secret))
        self.assertEqual(answers[1][0], 200)
        response = await treq.get("http://127.0.0.1:{}/metrics".format(
            daemon.metrics_port), persistent=False)
        metrics = await treq.content(response)
        await daemon.stop()
        output = bytes(daemon.output.out) + bytes(daemon.output.err)
        deliveries = [e for e in daemon.logs()
                      if e.get("log_namespace") == "bbreceiver.web"]
        self.assertEqual(len(deliveries), 7)
        first = deliveries[0]
        for key in ["delivery", "event", "receiver", "code", "matched",
                    "failed", "duration"]:
            self.assertIn(key, first)
        self.assertEqual(first["delivery"], "test-delivery")
        self.assertEqual(first["receiver"], "kargo-demo/leaky")
        # one JSON object per line
        for line in bytes(daemon.output.out).splitlines():
            # RFC 7464 JSON text sequences: a record separator, one object
            self.assertTrue(line.startswith(b"\x1e"), line)
            json.loads(line[1:])
        everything = output + metrics + json.dumps(answers).encode()
        for secret in [SECRET.encode(), good.encode(), good[7:].encode(),
                       HASH.encode()]:
            self.assertNotIn(secret, everything)
        # and a configuration error does not echo it either
        bad = daemon.folder.child("bad.yaml")
        bad.setContent(b"receivers:\n  - {project: p, name: n, secret: "
                       b"{value: S3cr3t-Never-Log-Me, env: X}}\n")
        code, out, err = await run_twist(["bbreceiver", "--config", bad.path],
                                         daemon.folder.path)
        self.assertNotEqual(code, 0)
        self.assertNotIn(SECRET.encode(), out + err)

    async def test_graceful_shutdown(self) -> None:
        """
        SIGTERM while a delivery waits on a slow API: the delivery is still
        answered, its PATCH made, and the daemon exits cleanly.
        """
        daemon = await self.start()
        daemon.fake.latency = 1.0
        answer = Deferred.fromCoroutine(daemon.deliver(
            PATH, "repo:push", sample("cloud-push-main.json"),
            SECRET.encode()))
        await sleep(0.3)
        daemon.process.signalProcess("TERM")
        code, body = await answer
        self.assertEqual((code, body),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        self.assertIn(await daemon.stop(), (0, -15))
        patches = daemon.fake.requests_matching(method="PATCH")
        self.assertEqual(len(patches), 1)
        self.assertEqual(patches[0].code, 200)
        formats = [e.get("log_format") for e in daemon.logs()]
        self.assertIn("bbreceiver stopped", formats)
        self.assertNotIn("stopping with deliveries or refreshes still in "
                         "flight", formats)

    async def test_tls_listener(self) -> None:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(__import__("ipaddress").ip_address(
                        "127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                               critical=True)
                .sign(key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        folder.child("cert.pem").setContent(cert_pem)
        folder.child("key.pem").setContent(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(
            cert_pem)])

        @implementer(IPolicyForHTTPS)
        class Policy:
            def creatorForNetloc(self, host: bytes, port: int) -> Any:
                return ssl.optionsForClientTLS("127.0.0.1", trustRoot=trust)

        daemon = Daemon(
            folder, CONFIG,
            listen="ssl:{port}:interface=127.0.0.1:privateKey=" +
            folder.child("key.pem").path + ":certKey=" +
            folder.child("cert.pem").path, scheme="https")
        daemon.client = HTTPClient(Agent(
            reactor, contextFactory=Policy(),
            pool=HTTPConnectionPool(reactor, persistent=False)))
        daemon.fake.load_yaml_file(OBJECTS)
        self.addCleanup(daemon.stop)
        await daemon.start()
        code, body = await daemon.deliver(
            KARGO, "repo:push", sample("cloud-push-main.json"),
            b"mysupersecrettoken")
        self.assertEqual((code, body),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        # and bbreceiver send trusts it with --cacert
        from tests.test_cli import run
        out, err, code = await run(
            "send", "--url", daemon.base + KARGO, "--secret",
            "mysupersecrettoken", "--event", "repo:push", "--payload",
            os.path.join("etc", "samples", "cloud-push-main.json"),
            "--cacert", folder.child("cert.pem").path)
        self.assertEqual(code, 0, err)
