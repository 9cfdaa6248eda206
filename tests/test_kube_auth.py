"""
Tests for bbreceiver.kube.auth: kubeconfig / in-cluster / server settings,
token files re-read on a timer and after a 401, and TLS against a loopback
HTTPS server using certificates generated here (CA, server certificate with
an IP SAN and a DNS SAN, client certificate).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto
from treq.testing import StubTreq
from twisted.internet import reactor as _reactor
from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from bbreceiver.config import EmbeddedAPI, KubernetesConfig
from bbreceiver.kube.auth import (
    ConnectionSettings,
    KubeConfigError,
    KubeTLSPolicy,
    StaticToken,
    TokenFile,
    build_client,
    client_from_config,
    in_cluster_settings,
    kubeconfig_settings,
    server_settings,
)
from bbreceiver.kube.client import (
    WAREHOUSES,
    KubeClient,
    TransportError,
    Unauthorized,
    make_http_client,
)

from .test_kube_client import pump

reactor: Any = _reactor

# --------------------------------------------------------------------------
# Certificates


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Authority:
    """A throw-away CA that issues server and client certificates."""

    def __init__(self, cn: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, cn: str, sans: list[x509.GeneralName], server: bool
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        ExtendedKeyUsageOID.SERVER_AUTH
                        if server
                        else ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()
                ),
                False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        cert = builder.sign(self.key, hashes.SHA256())
        return (
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


CA = Authority("test cluster CA")
OTHER_CA = Authority("someone else's CA")
SERVER_CERT, SERVER_KEY = CA.issue(
    "kube-apiserver",
    [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("kubernetes.default.svc"),
    ],
    server=True,
)
CLIENT_CERT, CLIENT_KEY = CA.issue(
    "system:serviceaccount:kargo:receiver", [], server=False
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------
# A loopback HTTPS API


class WhoAmI(Resource):
    """Answers every GET with the client certificate's CN and the token."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        transport: Any = request.channel.transport
        peer = transport.getPeerCertificate()
        cn = None
        if peer is not None:
            cn = dict(peer.get_subject().get_components()).get(b"CN", b"").decode()
        auth = request.getHeader(b"authorization")
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {
                "kind": "Warehouse",
                "metadata": {"name": "whoami"},
                "cn": cn,
                "auth": auth.decode() if auth else None,
            }
        ).encode()


class TLSTests(TestCase):
    def serve(self, require_client_cert: bool = False) -> int:
        options = ssl.CertificateOptions(
            privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, SERVER_KEY),
            certificate=crypto.load_certificate(crypto.FILETYPE_PEM, SERVER_CERT),
            verify=True,
            caCerts=[crypto.load_certificate(crypto.FILETYPE_PEM, CA.pem)],
            requireCertificate=require_client_cert,
        )
        port = reactor.listenSSL(0, Site(WhoAmI()), options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def pool(self) -> HTTPConnectionPool:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        return pool

    async def whoami(
        self, policy: KubeTLSPolicy, port: int, token: str | None = None
    ) -> dict[str, Any]:
        http = make_http_client(reactor, policy, pool=self.pool())
        client = KubeClient(
            http,
            f"https://127.0.0.1:{port}",
            StaticToken(token),
            clock=reactor,
            max_attempts=1,
            request_timeout=10,
        )
        return await client.get(WAREHOUSES, "demo", "whoami")

    def ca(self, pem: bytes = CA.pem) -> list[ssl.Certificate]:
        return [ssl.Certificate.loadPEM(pem)]

    async def test_verified_by_ip_san(self) -> None:
        port = self.serve()
        answer = await self.whoami(KubeTLSPolicy(ca_certificates=self.ca()), port)
        self.assertEqual(answer["metadata"]["name"], "whoami")
        self.assertIsNone(answer["cn"])

    async def test_wrong_ca_fails(self) -> None:
        port = self.serve()
        policy = KubeTLSPolicy(ca_certificates=self.ca(OTHER_CA.pem))
        with self.assertRaises(TransportError) as caught:
            await self.whoami(policy, port)
        self.assertIn("certificate verify failed", str(caught.exception))

    async def test_tls_server_name(self) -> None:
        port = self.serve()
        policy = KubeTLSPolicy(
            ca_certificates=self.ca(), server_name="kubernetes.default.svc"
        )
        answer = await self.whoami(policy, port)
        self.assertEqual(answer["metadata"]["name"], "whoami")

    async def test_wrong_server_name_fails(self) -> None:
        port = self.serve()
        policy = KubeTLSPolicy(ca_certificates=self.ca(), server_name="wrong.example")
        with self.assertRaises(TransportError) as caught:
            await self.whoami(policy, port)
        self.assertIn("DNSMismatch", str(caught.exception))

    async def test_client_certificate_presented(self) -> None:
        port = self.serve(require_client_cert=True)
        me = ssl.PrivateCertificate.loadPEM(CLIENT_CERT + CLIENT_KEY)
        policy = KubeTLSPolicy(ca_certificates=self.ca(), client_certificate=me)
        answer = await self.whoami(policy, port)
        self.assertEqual(answer["cn"], "system:serviceaccount:kargo:receiver")

    async def test_client_certificate_required(self) -> None:
        port = self.serve(require_client_cert=True)
        with self.assertRaises(TransportError) as caught:
            await self.whoami(KubeTLSPolicy(ca_certificates=self.ca()), port)
        self.assertIn("certificate required", str(caught.exception))

    async def test_insecure(self) -> None:
        port = self.serve()
        me = ssl.PrivateCertificate.loadPEM(CLIENT_CERT + CLIENT_KEY)
        policy = KubeTLSPolicy(
            ca_certificates=self.ca(OTHER_CA.pem), insecure=True, client_certificate=me
        )
        answer = await self.whoami(policy, port)
        self.assertEqual(answer["cn"], "system:serviceaccount:kargo:receiver")

    async def test_kubeconfig_end_to_end(self) -> None:
        """
        A kubeconfig with inline CA, client certificate and key, and a token,
        through client_from_config.
        """
        port = self.serve(require_client_cert=True)
        path = write_kubeconfig(
            self.mktemp(),
            clusters=[
                {
                    "name": "c",
                    "cluster": {
                        "server": f"https://127.0.0.1:{port}",
                        "certificate-authority-data": b64(CA.pem),
                        "tls-server-name": "kubernetes.default.svc",
                    },
                }
            ],
            users=[
                {
                    "name": "u",
                    "user": {
                        "token": "sekrit",
                        "client-certificate-data": b64(CLIENT_CERT),
                        "client-key-data": b64(CLIENT_KEY),
                    },
                }
            ],
        )
        client = await client_from_config(
            reactor,
            KubernetesConfig(in_cluster=False, kubeconfig=path),
            pool=self.pool(),
        )
        answer = await client.get(WAREHOUSES, "demo", "whoami")
        self.assertEqual(answer["cn"], "system:serviceaccount:kargo:receiver")
        self.assertEqual(answer["auth"], "Bearer sekrit")


# --------------------------------------------------------------------------
# kubeconfig


def write_kubeconfig(
    directory: str,
    *,
    clusters: list[dict[str, Any]] | None = None,
    users: list[dict[str, Any]] | None = None,
    contexts: list[dict[str, Any]] | None = None,
    current: str | None = "ctx",
    name: str = "config",
) -> str:
    os.makedirs(directory, exist_ok=True)
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters
        if clusters is not None
        else [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "users": users if users is not None else [{"name": "u", "user": {}}],
        "contexts": contexts
        if contexts is not None
        else [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }
    if current is not None:
        doc["current-context"] = current
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


class KubeconfigTests(SynchronousTestCase):
    def error(self, path: str, context: str | None = None) -> str:
        e = self.assertRaises(KubeConfigError, kubeconfig_settings, path, context)
        message = str(e)
        self.assertNotIn("\n", message)
        return message

    def test_current_context_and_relative_paths(self) -> None:
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "certs"))
        for name, data in [
            ("certs/ca.crt", CA.pem),
            ("certs/me.crt", CLIENT_CERT),
            ("certs/me.key", CLIENT_KEY),
            ("token", b"tok\n"),
        ]:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        path = write_kubeconfig(
            directory,
            clusters=[
                {
                    "name": "c",
                    "cluster": {
                        "server": "https://10.96.0.1:443/",
                        "certificate-authority": "certs/ca.crt",
                        "tls-server-name": "kubernetes.default.svc",
                    },
                }
            ],
            users=[
                {
                    "name": "u",
                    "user": {
                        "tokenFile": "token",
                        "client-certificate": "certs/me.crt",
                        "client-key": "certs/me.key",
                    },
                }
            ],
        )
        settings = kubeconfig_settings(path)
        self.assertEqual(settings.server, "https://10.96.0.1:443")
        self.assertEqual(settings.ca_pem, CA.pem)
        self.assertEqual(settings.tls_server_name, "kubernetes.default.svc")
        self.assertEqual(settings.client_cert_pem, CLIENT_CERT)
        self.assertEqual(settings.client_key_pem, CLIENT_KEY)
        self.assertEqual(
            settings.token_file, os.path.join(os.path.abspath(directory), "token")
        )
        self.assertIsNone(settings.token)
        policy = settings.tls_policy()
        assert policy is not None
        self.assertEqual(policy.server_name, "kubernetes.default.svc")
        self.assertIsNotNone(policy.client_certificate)

    def test_named_context_and_token_precedence(self) -> None:
        path = write_kubeconfig(
            self.mktemp(),
            clusters=[
                {"name": "a", "cluster": {"server": "https://a:6443"}},
                {
                    "name": "b",
                    "cluster": {
                        "server": "https://b:6443",
                        "insecure-skip-tls-verify": True,
                    },
                },
            ],
            users=[{"name": "u", "user": {"token": "inline", "tokenFile": "/nope"}}],
            contexts=[
                {"name": "ctx", "context": {"cluster": "a", "user": "u"}},
                {"name": "other", "context": {"cluster": "b", "user": "u"}},
            ],
        )
        settings = kubeconfig_settings(path, "other")
        self.assertEqual(settings.server, "https://b:6443")
        self.assertTrue(settings.insecure)
        self.assertEqual(settings.token, "inline")
        self.assertIsNone(settings.token_file)

    def test_path_list_first_wins_and_missing_skipped(self) -> None:
        first = write_kubeconfig(
            self.mktemp(),
            clusters=[{"name": "c", "cluster": {"server": "https://first:1"}}],
            users=[],
            contexts=[],
            current="ctx",
        )
        second = write_kubeconfig(
            self.mktemp(),
            clusters=[{"name": "c", "cluster": {"server": "https://second:2"}}],
            current="ignored",
        )
        spec = os.pathsep.join([self.mktemp(), first, second])
        settings = kubeconfig_settings(spec)
        self.assertEqual(settings.server, "https://first:1")

    def test_inline_data(self) -> None:
        path = write_kubeconfig(
            self.mktemp(),
            clusters=[
                {
                    "name": "c",
                    "cluster": {
                        "server": "https://h:1",
                        "certificate-authority-data": b64(CA.pem + OTHER_CA.pem),
                    },
                }
            ],
        )
        settings = kubeconfig_settings(path)
        self.assertEqual(settings.ca_pem, CA.pem + OTHER_CA.pem)
        self.assertIsNotNone(settings.tls_policy())

    def test_no_user_no_auth(self) -> None:
        path = write_kubeconfig(
            self.mktemp(),
            contexts=[{"name": "ctx", "context": {"cluster": "c"}}],
        )
        settings = kubeconfig_settings(path)
        self.assertIsNone(settings.token)
        self.assertIsNone(settings.token_file)

    def test_errors(self) -> None:
        missing = os.path.join(self.mktemp(), "nope")
        self.assertIn("cannot read kubeconfig", self.error(missing))
        path = write_kubeconfig(self.mktemp())
        self.assertIn("context 'x' not found", self.error(path, "x"))
        self.assertIn(
            "no current-context",
            self.error(write_kubeconfig(self.mktemp(), current=None)),
        )
        cases: list[tuple[dict[str, Any], str]] = [
            ({"clusters": [{"name": "c", "cluster": {}}]}, "no server"),
            (
                {"clusters": [{"name": "c", "cluster": {"server": "ftp://x"}}]},
                "not an http(s) URL",
            ),
            (
                {
                    "clusters": [
                        {
                            "name": "c",
                            "cluster": {
                                "server": "https://h",
                                "certificate-authority-data": "%%%not base64",
                            },
                        }
                    ]
                },
                "certificate-authority-data is not valid base64",
            ),
            (
                {
                    "clusters": [
                        {
                            "name": "c",
                            "cluster": {
                                "server": "https://h",
                                "certificate-authority-data": b64(CA.pem),
                                "insecure-skip-tls-verify": True,
                            },
                        }
                    ]
                },
                "cannot be combined",
            ),
            (
                {
                    "clusters": [
                        {
                            "name": "c",
                            "cluster": {
                                "server": "https://h",
                                "proxy-url": "http://proxy:3128",
                            },
                        }
                    ]
                },
                "proxy-url is not supported",
            ),
            (
                {
                    "users": [
                        {
                            "name": "u",
                            "user": {
                                "exec": {
                                    "apiVersion": "client.authentication.k8s.io/v1",
                                    "command": "gke-gcloud-auth-plugin",
                                }
                            },
                        }
                    ]
                },
                "exec credential plugin",
            ),
            (
                {"users": [{"name": "u", "user": {"auth-provider": {"name": "gcp"}}}]},
                "auth-provider",
            ),
            (
                {"users": [{"name": "u", "user": {"username": "a", "password": "b"}}]},
                "basic authentication",
            ),
            (
                {
                    "users": [
                        {
                            "name": "u",
                            "user": {"client-certificate-data": b64(CLIENT_CERT)},
                        }
                    ]
                },
                "needs both a certificate and a key",
            ),
            (
                {
                    "contexts": [
                        {"name": "ctx", "context": {"cluster": "zz", "user": "u"}}
                    ]
                },
                "cluster 'zz', which is not defined",
            ),
            (
                {
                    "contexts": [
                        {"name": "ctx", "context": {"cluster": "c", "user": "zz"}}
                    ]
                },
                "user 'zz', which is not defined",
            ),
        ]
        for kwargs, expected in cases:
            path = write_kubeconfig(self.mktemp(), **kwargs)
            self.assertIn(expected, self.error(path))

    def test_not_a_mapping(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("- just\n- a list\n")
        self.assertIn("not a YAML mapping", self.error(path))
        with open(path, "w") as f:
            f.write("clusters: [\n")
        self.assertIn("not valid YAML", self.error(path))

    def test_bad_certificate_reported_when_building(self) -> None:
        settings = ConnectionSettings(
            server="https://h:1", source="test", ca_pem=b"not a certificate"
        )
        self.assertRaises(KubeConfigError, settings.tls_policy)


# --------------------------------------------------------------------------
# In-cluster and explicit server


class InClusterTests(SynchronousTestCase):
    def account(self, ca: bool = True) -> str:
        directory: str = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "token"), "w") as f:
            f.write("sa-token\n")
        if ca:
            with open(os.path.join(directory, "ca.crt"), "wb") as f:
                f.write(CA.pem)
        return directory

    def test_settings(self) -> None:
        directory = self.account()
        env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        settings = in_cluster_settings(env, directory)
        self.assertEqual(settings.server, "https://10.96.0.1:443")
        self.assertEqual(settings.ca_pem, CA.pem)
        self.assertEqual(settings.token_file, os.path.join(directory, "token"))

    def test_ipv6_bracketed(self) -> None:
        env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
        settings = in_cluster_settings(env, self.account())
        self.assertEqual(settings.server, "https://[fd00::1]:443")

    def test_missing_ca_uses_platform_trust(self) -> None:
        env = {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"}
        self.assertIsNone(in_cluster_settings(env, self.account(ca=False)).ca_pem)

    def test_not_in_a_pod(self) -> None:
        self.assertRaises(KubeConfigError, in_cluster_settings, {}, self.account())
        env = {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"}
        self.assertRaises(KubeConfigError, in_cluster_settings, env, self.mktemp())

    def test_client_from_config_in_cluster(self) -> None:
        env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        d = Deferred.fromCoroutine(
            client_from_config(
                MemoryReactorClock(),
                KubernetesConfig(),
                environ=env,
                service_account_dir=self.account(),
            )
        )
        client = self.successResultOf(d)
        self.assertEqual(client.base_url, "https://10.96.0.1:443")
        assert client.credentials is not None
        self.assertEqual(client.credentials.token(), "sa-token")

    def test_server_mode(self) -> None:
        directory = self.account()
        settings = server_settings(
            KubernetesConfig(
                in_cluster=False,
                server="https://api.example:6443/",
                token_file=os.path.join(directory, "token"),
                ca_file=os.path.join(directory, "ca.crt"),
            )
        )
        self.assertEqual(settings.server, "https://api.example:6443")
        self.assertEqual(settings.ca_pem, CA.pem)
        self.assertEqual(settings.token_file, os.path.join(directory, "token"))
        inline = server_settings(
            KubernetesConfig(
                in_cluster=False,
                server="http://127.0.0.1:8001",
                token="t",
                token_file="/ignored",
                insecure_skip_tls_verify=True,
            )
        )
        self.assertEqual((inline.token, inline.token_file), ("t", None))
        self.assertIsNone(inline.tls_policy())  # plain http
        client = build_client(MemoryReactorClock(), inline)
        assert client.credentials is not None
        self.assertEqual(client.credentials.token(), "t")

    def test_embedded_refused(self) -> None:
        d = Deferred.fromCoroutine(
            client_from_config(
                MemoryReactorClock(),
                KubernetesConfig(in_cluster=False, embedded=EmbeddedAPI("tcp:0", None)),
            )
        )
        self.failureResultOf(d, KubeConfigError)


# --------------------------------------------------------------------------
# Token rotation


class RotatingAPI(Resource):
    """Accepts only the current token; anything else gets a 401 Status."""

    isLeaf = True

    def __init__(self, token: str) -> None:
        super().__init__()
        self.valid = token
        self.seen: list[str | None] = []

    def render_GET(self, request: Request) -> bytes:
        auth = request.getHeader(b"authorization")
        self.seen.append(auth.decode() if auth else None)
        request.setHeader(b"content-type", b"application/json")
        if auth != f"Bearer {self.valid}".encode():
            request.setResponseCode(401)
            return json.dumps(
                {
                    "kind": "Status",
                    "code": 401,
                    "reason": "Unauthorized",
                    "message": "Unauthorized",
                }
            ).encode()
        return b'{"kind":"Warehouse","metadata":{"name":"w"}}'


class TokenFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.write("one")
        self.clock = Clock()
        self.clock.advance(1000)

    def write(self, token: str) -> None:
        with open(self.path, "w") as f:
            f.write(token + "\n")

    def test_reread_every_60_seconds(self) -> None:
        tokens = TokenFile(self.path, self.clock)
        self.assertEqual(tokens.token(), "one")
        self.write("two")
        self.clock.advance(59)
        self.assertEqual(tokens.token(), "one")
        self.clock.advance(1)
        self.assertEqual(tokens.token(), "two")

    def test_rejected_rereads_at_once(self) -> None:
        tokens = TokenFile(self.path, self.clock)
        self.assertFalse(tokens.token_rejected("one"))
        self.write("two")
        self.assertTrue(tokens.token_rejected("one"))
        self.assertEqual(tokens.token(), "two")

    def test_vanished_file_keeps_last_token(self) -> None:
        tokens = TokenFile(self.path, self.clock)
        os.remove(self.path)
        self.clock.advance(60)
        self.assertEqual(tokens.token(), "one")

    def test_missing_or_empty_at_start(self) -> None:
        self.assertRaises(KubeConfigError, TokenFile, self.mktemp(), self.clock)
        self.write("")
        self.assertRaises(KubeConfigError, TokenFile, self.path, self.clock)

    def test_static_token(self) -> None:
        self.assertEqual(StaticToken("x").token(), "x")
        self.assertIsNone(StaticToken("").token())
        self.assertFalse(StaticToken("x").token_rejected("x"))

    def client(self, api: RotatingAPI) -> tuple[StubTreq, KubeClient]:
        stub = StubTreq(api)
        return stub, KubeClient(
            stub, "http://kube.test", TokenFile(self.path, self.clock), clock=self.clock
        )

    def test_rotation_on_401(self) -> None:
        api = RotatingAPI("one")
        stub, client = self.client(api)
        d = Deferred.fromCoroutine(client.get(WAREHOUSES, "n", "w"))
        pump(stub)
        self.successResultOf(d)
        # The kubelet rotates the file; the API stops accepting the old one.
        self.write("two")
        api.valid = "two"
        d = Deferred.fromCoroutine(client.get(WAREHOUSES, "n", "w"))
        pump(stub)
        self.successResultOf(d)
        self.assertEqual(api.seen, ["Bearer one", "Bearer one", "Bearer two"])

    def test_rotation_on_timer(self) -> None:
        api = RotatingAPI("one")
        stub, client = self.client(api)
        self.write("two")
        api.valid = "two"
        self.clock.advance(60)
        d = Deferred.fromCoroutine(client.get(WAREHOUSES, "n", "w"))
        pump(stub)
        self.successResultOf(d)
        self.assertEqual(api.seen, ["Bearer two"])

    def test_401_without_new_token(self) -> None:
        api = RotatingAPI("other")
        stub, client = self.client(api)
        d = Deferred.fromCoroutine(client.get(WAREHOUSES, "n", "w"))
        pump(stub)
        self.failureResultOf(d, Unauthorized)
        self.assertEqual(api.seen, ["Bearer one"])
