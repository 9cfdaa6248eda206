"""
Credentials and TLS for the Kubernetes API, the way kubectl finds them.

Three modes of :class:`bbreceiver.config.KubernetesConfig` are handled here:
``in_cluster`` (the pod's service account), ``kubeconfig`` (a file, or a
``KUBECONFIG``-style list of files) and ``server`` (a URL with an optional
token, token file and CA).  The embedded mode is not: its client is built
from the in-process stand-in's port as ``KubeClient(http_client, url)``.

Reading the settings is split from building the client: the ``*_settings``
functions are pure apart from reading the files they name, and return a
:class:`ConnectionSettings` that :func:`build_client` turns into a
:class:`~bbreceiver.kube.client.KubeClient`.  Anything this daemon cannot
honour (exec plugins, auth providers, basic auth, impersonation, proxies)
is refused with a one-line :class:`KubeConfigError` rather than silently
connecting as someone else.

Bearer tokens kept in files are re-read, because projected service-account
tokens rotate about hourly: at most every 60 s on the injected clock (as
client-go's ``NewCachedFileTokenSource`` does), and at once after a 401.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import yaml
from OpenSSL import SSL
from OpenSSL.crypto import FILETYPE_PEM
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ..config import KubernetesConfig
from .client import KubeClient, make_http_client

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "TOKEN_REFRESH_SECONDS",
    "ConnectionSettings",
    "KubeConfigError",
    "KubeTLSPolicy",
    "StaticToken",
    "TokenFile",
    "build_client",
    "client_from_config",
    "in_cluster_settings",
    "kubeconfig_settings",
    "server_settings",
]

log = Logger()

#: Where the kubelet mounts the pod's service-account token and CA.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

#: How old a token read from a file may get before it is read again.
TOKEN_REFRESH_SECONDS = 60.0

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL
)


class KubeConfigError(Exception):
    """
    The API cannot be reached with these settings.  The message is one line
    naming the file and the entry at fault, fit for a start-up error.
    """


# --------------------------------------------------------------------------
# Bearer tokens


class StaticToken:
    """
    A token given once (in the config file or inline in a kubeconfig): a
    401 cannot be cured by re-reading it.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token or None

    def token(self) -> str | None:
        return self._token

    def token_rejected(self, token: str | None) -> bool:
        return False


class TokenFile:
    """
    A token kept in a file that something else rewrites (the kubelet, for a
    projected service-account token).

    The file is read when this is created (so a missing file fails start-up),
    then again when the token in hand is older than ``max_age`` seconds by
    ``clock`` (checked when a request wants the token, so an idle daemon does
    no I/O), and at once when the server refuses the token.  A read that
    fails later keeps the last good token and is logged.

    :raises KubeConfigError: the file cannot be read or is empty at start.
    """

    def __init__(
        self,
        path: str,
        clock: IReactorTime,
        max_age: float = TOKEN_REFRESH_SECONDS,
    ) -> None:
        self.path = path
        self._clock = clock
        self._max_age = max_age
        self._token: str | None = None
        self._read_at = 0.0
        try:
            self._token = self._read()
        except (OSError, ValueError) as e:
            raise KubeConfigError(f"cannot read token file {path}: {_reason(e)}") from e
        self._read_at = clock.seconds()

    def _read(self) -> str:
        with open(self.path, "rb") as f:
            # Tokens are base64url-ish JWTs: ASCII, no inner whitespace.
            token = f.read().decode("ascii").strip()
        if not token:
            raise ValueError("the file is empty")
        return token

    def _reload(self) -> None:
        self._read_at = self._clock.seconds()
        try:
            token = self._read()
        except (OSError, ValueError) as e:
            log.warn(  # noqa: G010 - twisted.logger's spelling
                "cannot re-read token file {path}: {error}; keeping the last token",
                path=self.path,
                error=_reason(e),
            )
            return
        if token != self._token:
            log.info("token file {path} changed; using the new token", path=self.path)
        self._token = token

    def token(self) -> str | None:
        if self._clock.seconds() - self._read_at >= self._max_age:
            self._reload()
        return self._token

    def token_rejected(self, token: str | None) -> bool:
        self._reload()
        return self._token is not None and self._token != token


# --------------------------------------------------------------------------
# TLS


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """
    ``insecure-skip-tls-verify``: TLS without checking the server at all
    (dev clusters only), still presenting a client certificate if there is
    one.
    """

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self._options = options

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._options.getContext(), None)
        connection.set_app_data(tlsProtocol)
        return connection


@implementer(IPolicyForHTTPS)
class KubeTLSPolicy:
    """
    How the agent checks the API server and identifies itself.

    The server certificate must chain to one of ``ca_certificates`` (the
    platform trust store when there are none) and name the URL's host, or
    ``server_name`` when set (kubeconfig's ``tls-server-name``, which also
    goes out as SNI).  ``service_identity`` does the name check, IP
    addresses included: in-cluster, the API is reached by a Service IP.

    :param client_certificate: presented when the server asks (mTLS users).
    :param insecure: skip verification entirely.
    """

    def __init__(
        self,
        *,
        ca_certificates: Sequence[ssl.Certificate] = (),
        server_name: str | None = None,
        client_certificate: ssl.PrivateCertificate | None = None,
        insecure: bool = False,
    ) -> None:
        self.server_name = server_name or None
        self.client_certificate = client_certificate
        self.insecure = insecure
        self._trust = (
            ssl.trustRootFromCertificates(list(ca_certificates))  # type: ignore[no-untyped-call]
            if ca_certificates
            else None
        )

    def creatorForNetloc(
        self, hostname: bytes, port: int
    ) -> IOpenSSLClientConnectionCreator:
        if self.insecure:
            extra: dict[str, Any] = {}
            if self.client_certificate is not None:
                extra = {
                    "privateKey": self.client_certificate.privateKey.original,
                    "certificate": self.client_certificate.original,
                }
            return _Unverified(ssl.CertificateOptions(verify=False, **extra))
        name = self.server_name or hostname.decode("ascii")
        return ssl.optionsForClientTLS(
            name, trustRoot=self._trust, clientCertificate=self.client_certificate
        )


def load_certificates(pem: bytes, where: str) -> list[ssl.Certificate]:
    """
    Every certificate in a PEM bundle (a CA file may hold several).
    """
    blocks = _PEM_CERT.findall(pem)
    if not blocks:
        raise KubeConfigError(f"{where}: no PEM certificate found")
    try:
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except (SSL.Error, ValueError) as e:
        raise KubeConfigError(f"{where}: bad PEM certificate: {_reason(e)}") from e


def _private_certificate(
    cert_pem: bytes, key_pem: bytes, where: str
) -> ssl.PrivateCertificate:
    blocks = _PEM_CERT.findall(cert_pem)
    if not blocks:
        raise KubeConfigError(f"{where}: no PEM client certificate found")
    try:
        key = ssl.KeyPair.load(key_pem, FILETYPE_PEM)
        certificate = ssl.PrivateCertificate.load(  # type: ignore[no-untyped-call]
            blocks[0], key, FILETYPE_PEM
        )
    except (SSL.Error, ValueError) as e:
        raise KubeConfigError(
            f"{where}: bad client certificate or key: {_reason(e)}"
        ) from e
    return cast(ssl.PrivateCertificate, certificate)


# --------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ConnectionSettings:
    """
    Everything needed to reach one API server, files already read (except
    the token file, which is read and re-read by :class:`TokenFile`).

    :ivar source: where these came from, for messages.
    """

    server: str
    source: str
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    token_file: str | None = None

    def tls_policy(self) -> KubeTLSPolicy | None:
        """
        The agent's TLS policy, or :obj:`None` for a plain ``http://`` URL.

        :raises KubeConfigError: a certificate or key does not load.
        """
        if urlsplit(self.server).scheme != "https":
            return None
        ca = load_certificates(self.ca_pem, f"{self.source}: CA") if self.ca_pem else []
        client = None
        if self.client_cert_pem is not None and self.client_key_pem is not None:
            client = _private_certificate(
                self.client_cert_pem, self.client_key_pem, self.source
            )
        return KubeTLSPolicy(
            ca_certificates=ca,
            server_name=self.tls_server_name,
            client_certificate=client,
            insecure=self.insecure,
        )


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise KubeConfigError(f"cannot read {what} {path}: {_reason(e)}") from e


def _check_server(server: str, where: str) -> str:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KubeConfigError(f"{where}: server {server!r} is not an http(s) URL")
    return server.rstrip("/")


def in_cluster_settings(
    environ: Mapping[str, str] | None = None,
    service_account_dir: str = SERVICE_ACCOUNT_DIR,
) -> ConnectionSettings:
    """
    The pod's own service account, as client-go's ``InClusterConfig``: the
    API at ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``
    (an IPv6 host bracketed), its token and CA from the mounted
    service-account directory.  A missing CA falls back to the platform
    trust store, as client-go does.

    :raises KubeConfigError: not in a pod, or no token.
    """
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(
            "kubernetes.inCluster: KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set (not running in a pod?)"
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    token_file = os.path.join(service_account_dir, "token")
    if not os.path.exists(token_file):
        raise KubeConfigError(
            f"kubernetes.inCluster: no service-account token at {token_file}"
        )
    ca_file = os.path.join(service_account_dir, "ca.crt")
    try:
        with open(ca_file, "rb") as f:
            ca_pem: bytes | None = f.read()
    except OSError as e:
        log.warn(  # noqa: G010 - twisted.logger's spelling
            "cannot read {path} ({error}); trusting the platform's CAs",
            path=ca_file,
            error=_reason(e),
        )
        ca_pem = None
    return ConnectionSettings(
        server=f"https://{host}:{port}",
        source="in-cluster service account",
        ca_pem=ca_pem,
        token_file=token_file,
    )


def server_settings(settings: KubernetesConfig) -> ConnectionSettings:
    """
    An explicit ``kubernetes.server`` with its optional ``token`` (which wins
    over ``tokenFile``, as in kubeconfig), ``caFile`` and
    ``insecureSkipTLSVerify``.
    """
    assert settings.server is not None
    server = _check_server(settings.server, "kubernetes.server")
    ca_pem = _read_file(settings.ca_file, "caFile") if settings.ca_file else None
    return ConnectionSettings(
        server=server,
        source="kubernetes.server",
        ca_pem=ca_pem,
        insecure=settings.insecure_skip_tls_verify,
        token=settings.token or None,
        token_file=None if settings.token else settings.token_file,
    )


@dataclass(frozen=True)
class _Entry:
    """A named kubeconfig entry and the file it came from."""

    body: Mapping[str, Any]
    path: str


def _kubeconfig_paths(spec: str) -> list[str]:
    return [os.path.expanduser(p) for p in spec.split(os.pathsep) if p.strip()]


def _load_yaml(path: str) -> Mapping[str, Any]:
    raw = _read_file(path, "kubeconfig")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise KubeConfigError(f"kubeconfig {path}: not valid YAML{line}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeConfigError(f"kubeconfig {path}: not a YAML mapping")
    return data


def _named(
    doc: Mapping[str, Any], key: str, inner: str, path: str, into: dict[str, _Entry]
) -> None:
    """
    Merge the named list ``key`` of one file into ``into``; the first file
    that defines a name wins, as in kubectl.
    """
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise KubeConfigError(f"kubeconfig {path}: {key} is not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise KubeConfigError(f"kubeconfig {path}: {key}[{i}] has no name")
        body = item.get(inner) or {}
        if not isinstance(body, dict):
            raise KubeConfigError(
                f"kubeconfig {path}: {key}[{i}].{inner} is not a mapping"
            )
        into.setdefault(item["name"], _Entry(body, path))


def _resolve(entry: _Entry, value: str) -> str:
    """Relative file names are relative to the kubeconfig file naming them."""
    value = os.path.expanduser(value)
    if os.path.isabs(value):
        return value
    return os.path.join(os.path.dirname(os.path.abspath(entry.path)), value)


def _string(entry: _Entry, key: str, where: str) -> str | None:
    value = entry.body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeConfigError(f"{where}: {key} is not a string")
    return value


def _data(entry: _Entry, key: str, where: str) -> bytes | None:
    value = _string(entry, key, where)
    if value is None:
        return None
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise KubeConfigError(f"{where}: {key} is not valid base64") from e


def _data_or_file(
    entry: _Entry, data_key: str, file_key: str, where: str
) -> bytes | None:
    data = _data(entry, data_key, where)
    if data is not None:
        return data
    name = _string(entry, file_key, where)
    if name is None:
        return None
    return _read_file(_resolve(entry, name), f"{where}: {file_key}")


_UNSUPPORTED_USER_KEYS = {
    "exec": "an exec credential plugin",
    "auth-provider": "an auth-provider",
    "username": "basic authentication (username/password)",
    "password": "basic authentication (username/password)",
    "as": "impersonation (as)",
    "as-uid": "impersonation (as-uid)",
    "as-groups": "impersonation (as-groups)",
    "as-user-extra": "impersonation (as-user-extra)",
}


def kubeconfig_settings(spec: str, context: str | None = None) -> ConnectionSettings:
    """
    The cluster and user of a kubeconfig context.

    :param spec: one file, or several joined with ``os.pathsep`` as in
        ``KUBECONFIG`` (merged as kubectl does: for ``current-context`` and
        for each named cluster, user and context, the first file wins;
        missing files in a list are skipped).
    :param context: the context to use; ``current-context`` when
        :obj:`None`.  Its ``namespace`` is not used: ``kubernetes.namespaces``
        decides what is watched.
    :raises KubeConfigError: for a missing file or context, bad base64 or
        YAML, or a user this daemon cannot act as (exec plugins,
        auth-providers, basic auth, impersonation).
    """
    paths = _kubeconfig_paths(spec)
    if not paths:
        raise KubeConfigError("kubernetes.kubeconfig is empty")
    if len(paths) > 1:
        existing = [p for p in paths if os.path.exists(p)]
        if not existing:
            raise KubeConfigError(f"no kubeconfig file exists among {spec}")
        paths = existing
    clusters: dict[str, _Entry] = {}
    users: dict[str, _Entry] = {}
    contexts: dict[str, _Entry] = {}
    current: str | None = None
    for path in paths:
        doc = _load_yaml(path)
        value = doc.get("current-context")
        if current is None and isinstance(value, str) and value:
            current = value
        _named(doc, "clusters", "cluster", path, clusters)
        _named(doc, "users", "user", path, users)
        _named(doc, "contexts", "context", path, contexts)
    source = f"kubeconfig {spec}"
    name = context or current
    if not name:
        raise KubeConfigError(f"{source}: no current-context; set kubernetes.context")
    if name not in contexts:
        raise KubeConfigError(f"{source}: context {name!r} not found")
    ctx = contexts[name]
    cluster_name = _string(ctx, "cluster", f"{source}: context {name!r}")
    if cluster_name is None or cluster_name not in clusters:
        raise KubeConfigError(
            f"{source}: context {name!r} names cluster {cluster_name!r}, "
            "which is not defined"
        )
    cluster = clusters[cluster_name]
    where = f"kubeconfig {cluster.path}: cluster {cluster_name!r}"
    server = _string(cluster, "server", where)
    if server is None:
        raise KubeConfigError(f"{where}: no server")
    server = _check_server(server, where)
    if _string(cluster, "proxy-url", where) is not None:
        raise KubeConfigError(f"{where}: proxy-url is not supported")
    insecure = cluster.body.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise KubeConfigError(f"{where}: insecure-skip-tls-verify is not a boolean")
    ca_pem = _data_or_file(
        cluster, "certificate-authority-data", "certificate-authority", where
    )
    if insecure and ca_pem is not None:
        raise KubeConfigError(
            f"{where}: insecure-skip-tls-verify cannot be combined with a "
            "certificate-authority"
        )
    tls_server_name = _string(cluster, "tls-server-name", where)

    token = token_file = None
    cert_pem = key_pem = None
    user_name = _string(ctx, "user", f"{source}: context {name!r}")
    if user_name is not None:
        if user_name not in users:
            raise KubeConfigError(
                f"{source}: context {name!r} names user {user_name!r}, "
                "which is not defined"
            )
        user = users[user_name]
        uwhere = f"kubeconfig {user.path}: user {user_name!r}"
        for key, what in _UNSUPPORTED_USER_KEYS.items():
            if user.body.get(key):
                raise KubeConfigError(
                    f"{uwhere} uses {what}, which bbreceiver does not support; "
                    "use token, tokenFile or a client certificate"
                )
        token = _string(user, "token", uwhere)
        file_name = _string(user, "tokenFile", uwhere)
        if token is None and file_name is not None:
            token_file = _resolve(user, file_name)
        cert_pem = _data_or_file(
            user, "client-certificate-data", "client-certificate", uwhere
        )
        key_pem = _data_or_file(user, "client-key-data", "client-key", uwhere)
        if (cert_pem is None) != (key_pem is None):
            raise KubeConfigError(
                f"{uwhere}: a client certificate needs both a certificate and a key"
            )
    return ConnectionSettings(
        server=server,
        source=f"kubeconfig {spec} context {name!r}",
        ca_pem=ca_pem,
        insecure=insecure,
        tls_server_name=tls_server_name,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        token=token,
        token_file=token_file,
    )


def build_client(
    reactor: Any,
    connection: ConnectionSettings,
    *,
    pool: HTTPConnectionPool | None = None,
) -> KubeClient:
    """
    A client for ``connection``, its HTTP client built on ``reactor`` (which
    is also the clock for timeouts and token re-reads).

    :param pool: an existing connection pool (tests close theirs).
    """
    credentials: TokenFile | StaticToken | None = None
    if connection.token:
        credentials = StaticToken(connection.token)
    elif connection.token_file:
        credentials = TokenFile(connection.token_file, reactor)
    http_client = make_http_client(reactor, connection.tls_policy(), pool=pool)
    return KubeClient(http_client, connection.server, credentials, clock=reactor)


async def client_from_config(
    reactor: Any,
    settings: KubernetesConfig,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str = SERVICE_ACCOUNT_DIR,
    pool: HTTPConnectionPool | None = None,
) -> KubeClient:
    """
    The API client the settings describe: ``kubeconfig`` if set, else
    ``server`` if set, else the in-cluster service account.

    A coroutine so that credential sources needing I/O can join later;
    today it only reads a few small files, once, at start-up.

    :param environ: for ``KUBERNETES_SERVICE_HOST``/``PORT`` (tests).
    :param service_account_dir: where the token and CA are (tests).
    :raises KubeConfigError: for the embedded mode, and whenever the
        settings cannot be honoured.
    """
    if settings.embedded is not None:
        raise KubeConfigError(
            "kubernetes.embedded: build the client from the stand-in's port"
        )
    if settings.kubeconfig:
        connection = kubeconfig_settings(settings.kubeconfig, settings.context)
    elif settings.server:
        connection = server_settings(settings)
    elif settings.in_cluster:
        connection = in_cluster_settings(environ, service_account_dir)
    else:
        raise KubeConfigError(
            "kubernetes: set one of inCluster, kubeconfig, server or embedded"
        )
    client = build_client(reactor, connection, pool=pool)
    log.info(
        "Kubernetes API at {server} ({source})",
        server=connection.server,
        source=connection.source,
    )
    return client
