"""
The configuration file (SPEC §3): YAML loaded and validated into frozen
objects.

Every mistake is reported as one L{ConfigError} whose text names the file,
the dotted key (with list indexes) and the problem, so that an operator can
fix a file without reading a traceback.  The only I/O is reading the file
itself and the secrets it names by C{env} or C{file}.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

T = TypeVar("T")


class ConfigError(Exception):
    """
    The configuration cannot be used; C{str()} is the one line to show.
    """


@dataclass(frozen=True)
class SecretRef:
    """
    Key C{secret} of a Kubernetes Secret, watched rather than read once.
    """

    namespace: str
    name: str


@dataclass(frozen=True)
class ReceiverConfig:
    """
    One Bitbucket receiver.  Exactly one of C{secret} (bytes, used as they
    are) and C{secret_ref} is set.
    """

    project: str
    name: str
    secret: bytes | None = field(default=None, repr=False)
    secret_ref: SecretRef | None = None

    @property
    def label(self) -> str:
        """
        The receiver's name in logs and metrics: C{PROJECT/NAME}.
        """
        return self.project + "/" + self.name


@dataclass(frozen=True)
class EmbeddedAPI:
    """
    The in-process Kubernetes API stand-in of the embedded default.
    """

    listen: str
    objects: str | None


@dataclass(frozen=True)
class KubernetesConfig:
    """
    How to reach the Kubernetes API and what to watch.  Exactly one of
    C{in_cluster}, C{kubeconfig}, C{server}, C{embedded} is in effect; paths
    are absolute.
    """

    in_cluster: bool = True
    kubeconfig: str | None = None
    context: str | None = None
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    embedded: EmbeddedAPI | None = None
    namespaces: tuple[str, ...] = ()
    watch_timeout_seconds: int = 300
    inactivity_seconds: float = 90.0
    backoff_max_seconds: float = 5.0


@dataclass(frozen=True)
class KargoConfig:
    """
    Serving the receivers that Kargo's own objects declare (SPEC §8).
    """

    project_configs: bool = False
    system_namespace: str = "kargo-system-resources"
    rotation_grace_seconds: float = 900.0


@dataclass(frozen=True)
class Limits:
    """
    Bounds that keep one client, or one slow API, from hurting the rest.
    """

    max_body_bytes: int = 2097152
    refresh_concurrency: int = 32
    response_deadline_seconds: float = 8.0
    request_timeout_seconds: float = 30.0
    max_connections: int = 1000


@dataclass(frozen=True)
class Config:
    """
    The whole validated configuration file.
    """

    path: str
    listen: str = "tcp:8080"
    base_url: str = "/"
    kubernetes: KubernetesConfig = KubernetesConfig()
    receivers: tuple[ReceiverConfig, ...] = ()
    kargo: KargoConfig = KargoConfig()
    metrics_listen: str | None = None
    limits: Limits = Limits()

    @property
    def route_prefix(self) -> str:
        """
        The path of C{baseURL}, as escaped in the file.
        """
        return base_path(self.base_url)


def base_path(base_url: str) -> str:
    """
    The path part of a base URL (C{"/"} when it has none).
    """
    return urlsplit(base_url).path or "/"


def validate_endpoint(description: str) -> None:
    """
    Raise L{ValueError} unless C{description} parses as a Twisted server
    endpoint string.  Parsing builds an endpoint object but listens on
    nothing, so no reactor is needed.
    """
    from twisted.internet.endpoints import serverFromString

    serverFromString(_NO_REACTOR, description)  # type: ignore[no-untyped-call]


_NO_REACTOR: Any = object()


class _Reader:
    """
    Walks a parsed YAML document, naming each key it checks.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(
            "{}: {}: {}".format(self.path, key, problem)
            if key
            else "{}: {}".format(self.path, problem)
        )

    def mapping(
        self, value: object, key: str, allowed: frozenset[str]
    ) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping, not " + _kind(value))
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, "keys must be strings, not " + repr(name))
            if name not in allowed:
                raise self.fail(_join(key, name), "unknown key")
        return value

    def get(
        self,
        section: Mapping[str, Any],
        key: str,
        name: str,
        check: Callable[[object, str], T],
        default: T,
    ) -> T:
        value = section.get(name)
        if value is None:
            return default
        return check(value, _join(key, name))

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "must be a string, not " + _kind(value))
        return value

    def nonempty(self, value: object, key: str) -> str:
        text = self.string(value, key)
        if not text:
            raise self.fail(key, "must not be empty")
        return text

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false, not " + _kind(value))
        return value

    def positive_int(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "must be an integer, not " + _kind(value))
        if value <= 0:
            raise self.fail(key, "must be greater than 0")
        return value

    def positive_number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, "must be a number, not " + _kind(value))
        if not value > 0 or value == float("inf"):
            raise self.fail(key, "must be a finite number greater than 0")
        return float(value)

    def endpoint(self, value: object, key: str) -> str:
        text = self.nonempty(value, key)
        try:
            validate_endpoint(self._endpoint_paths(text))
        except Exception as e:
            raise self.fail(
                key, "bad endpoint string {!r}: {}".format(text, _reason(e))
            ) from None
        return self._endpoint_paths(text)

    def _endpoint_paths(self, text: str) -> str:
        """
        Make the key files of an C{ssl:} endpoint relative to the file's
        folder, as every other path in the file is.
        """
        if not text.startswith("ssl:"):
            return text
        parts = text.split(":")
        for i, part in enumerate(parts):
            for option in ("privateKey=", "certKey=", "extraCertChain=",
                           "dhParameters="):
                if part.startswith(option):
                    parts[i] = option + self.file_path(part[len(option):])
        return ":".join(parts)

    def file_path(self, value: str) -> str:
        return os.path.join(self.folder, os.path.expanduser(value))

    def path_value(self, value: object, key: str) -> str:
        return self.file_path(self.nonempty(value, key))

    def path_list(self, value: object, key: str) -> str:
        """
        A KUBECONFIG-style list of paths, each made relative to the file's
        folder.
        """
        text = self.nonempty(value, key)
        return os.pathsep.join(self.file_path(part)
                               for part in text.split(os.pathsep) if part)

    def string_list(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, "must be a list, not " + _kind(value))
        return tuple(
            self.nonempty(item, "{}[{}]".format(key, i))
            for i, item in enumerate(value)
        )


def _join(key: str, name: str) -> str:
    return key + "." + name if key else name


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


_TOP = frozenset(
    {"listen", "baseURL", "kubernetes", "receivers", "kargo", "metrics",
     "limits"}
)
_KUBERNETES = frozenset(
    {"inCluster", "kubeconfig", "context", "server", "token", "tokenFile",
     "caFile", "insecureSkipTLSVerify", "embedded", "namespaces",
     "watchTimeoutSeconds", "inactivitySeconds", "backoffMaxSeconds"}
)
_MODES = ("inCluster", "kubeconfig", "server", "embedded")
_EMBEDDED = frozenset({"listen", "objects"})
_RECEIVER = frozenset({"project", "name", "secret"})
_SECRET = frozenset({"secretRef", "value", "env", "file"})
_SECRET_REF = frozenset({"name", "namespace"})
_KARGO = frozenset({"projectConfigs", "systemNamespace",
                    "rotationGraceSeconds"})
_METRICS = frozenset({"listen"})
_LIMITS = frozenset(
    {"maxBodyBytes", "refreshConcurrency", "responseDeadlineSeconds",
     "requestTimeoutSeconds", "maxConnections"}
)


def load_config(path: str) -> Config:
    """
    Read and validate the configuration file at C{path}.

    @raise ConfigError: for any problem, with a one-line explanation.
    """
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(
            "{}: cannot read the file: {}".format(path, e.strerror or e)
        ) from None
    return parse_config(text, path)


def parse_config(text: bytes | str, path: str) -> Config:
    """
    Validate the YAML document C{text}; C{path} names it in errors and
    anchors its relative paths.
    """
    reader = _Reader(path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = (
            "line {} column {}: ".format(mark.line + 1, mark.column + 1)
            if mark is not None
            else ""
        )
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError("{}: {}{}".format(path, where, problem)) from None
    except ValueError as e:
        raise ConfigError("{}: {}".format(path, _reason(e))) from None
    if document is None:
        document = {}
    top = reader.mapping(document, "", _TOP)

    listen = reader.get(top, "", "listen", reader.endpoint, "tcp:8080")
    base_url = reader.get(top, "", "baseURL", _base_url(reader), "/")
    kubernetes = _kubernetes(reader, top.get("kubernetes"))
    kargo = _kargo(reader, top.get("kargo"))
    metrics = reader.mapping(top.get("metrics") or {}, "metrics", _METRICS)
    metrics_listen = reader.get(
        metrics, "metrics", "listen", reader.endpoint, None
    )
    limits = _limits(reader, top.get("limits"))
    receivers = _receivers(reader, top.get("receivers"), kubernetes, kargo)
    return Config(
        path=path,
        listen=listen,
        base_url=base_url,
        kubernetes=kubernetes,
        receivers=receivers,
        kargo=kargo,
        metrics_listen=metrics_listen,
        limits=limits,
    )


def _base_url(reader: _Reader) -> Callable[[object, str], str]:
    def check(value: object, key: str) -> str:
        text = reader.nonempty(value, key)
        parts = urlsplit(text)
        if parts.scheme:
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise reader.fail(
                    key, "must be an http(s) URL or a path starting with /"
                )
        elif parts.netloc or not text.startswith("/"):
            raise reader.fail(
                key, "must be an http(s) URL or a path starting with /"
            )
        if parts.query or parts.fragment:
            raise reader.fail(key, "must not have a query or fragment")
        return text

    return check


def _kubernetes(reader: _Reader, value: object) -> KubernetesConfig:
    key = "kubernetes"
    section = reader.mapping(value if value is not None else {}, key,
                             _KUBERNETES)
    modes = [m for m in _MODES if section.get(m) not in (None, False)]
    if len(modes) > 1:
        raise reader.fail(
            key, "set exactly one of inCluster, kubeconfig, server, embedded "
            "(found " + ", ".join(modes) + ")"
        )
    mode = modes[0] if modes else "inCluster"
    for option in ("context",):
        if section.get(option) is not None and mode != "kubeconfig":
            raise reader.fail(_join(key, option), "only goes with kubeconfig")
    for option in ("token", "tokenFile", "caFile", "insecureSkipTLSVerify"):
        if section.get(option) is not None and mode != "server":
            raise reader.fail(_join(key, option), "only goes with server")

    in_cluster = reader.get(section, key, "inCluster", reader.boolean, True)
    if mode != "inCluster":
        in_cluster = False
    elif not in_cluster:
        raise reader.fail(
            key, "inCluster is false but none of kubeconfig, server, "
            "embedded is set"
        )
    server = reader.get(section, key, "server", reader.nonempty, None)
    if server is not None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise reader.fail(_join(key, "server"), "must be an http(s) URL")
    token = reader.get(section, key, "token", reader.nonempty, None)
    token_file = reader.get(section, key, "tokenFile", reader.path_value,
                            None)
    if token is not None and token_file is not None:
        raise reader.fail(key, "set at most one of token, tokenFile")
    embedded = None
    if mode == "embedded":
        sub = _join(key, "embedded")
        raw = reader.mapping(section["embedded"], sub, _EMBEDDED)
        embedded = EmbeddedAPI(
            listen=reader.get(raw, sub, "listen", reader.endpoint,
                              "tcp:0:interface=127.0.0.1"),
            objects=reader.get(raw, sub, "objects", reader.path_value, None),
        )
    namespaces: tuple[str, ...] = reader.get(
        section, key, "namespaces", reader.string_list, ())
    if len(set(namespaces)) != len(namespaces):
        raise reader.fail(_join(key, "namespaces"), "lists a namespace twice")
    return KubernetesConfig(
        in_cluster=in_cluster,
        kubeconfig=reader.get(section, key, "kubeconfig", reader.path_list,
                              None),
        context=reader.get(section, key, "context", reader.nonempty, None),
        server=server,
        token=token,
        token_file=token_file,
        ca_file=reader.get(section, key, "caFile", reader.path_value, None),
        insecure_skip_tls_verify=reader.get(
            section, key, "insecureSkipTLSVerify", reader.boolean, False
        ),
        embedded=embedded,
        namespaces=namespaces,
        watch_timeout_seconds=reader.get(
            section, key, "watchTimeoutSeconds", reader.positive_int, 300
        ),
        inactivity_seconds=reader.get(
            section, key, "inactivitySeconds", reader.positive_number, 90.0
        ),
        backoff_max_seconds=reader.get(
            section, key, "backoffMaxSeconds", reader.positive_number, 5.0
        ),
    )


def _kargo(reader: _Reader, value: object) -> KargoConfig:
    key = "kargo"
    section = reader.mapping(value if value is not None else {}, key, _KARGO)
    return KargoConfig(
        project_configs=reader.get(section, key, "projectConfigs",
                                   reader.boolean, False),
        system_namespace=reader.get(section, key, "systemNamespace",
                                    reader.nonempty,
                                    "kargo-system-resources"),
        rotation_grace_seconds=reader.get(
            section, key, "rotationGraceSeconds", reader.positive_number,
            900.0
        ),
    )


def _limits(reader: _Reader, value: object) -> Limits:
    key = "limits"
    section = reader.mapping(value if value is not None else {}, key,
                             _LIMITS)
    return Limits(
        max_body_bytes=reader.get(section, key, "maxBodyBytes",
                                  reader.positive_int, 2097152),
        refresh_concurrency=reader.get(section, key, "refreshConcurrency",
                                       reader.positive_int, 32),
        response_deadline_seconds=reader.get(
            section, key, "responseDeadlineSeconds", reader.positive_number,
            8.0
        ),
        request_timeout_seconds=reader.get(
            section, key, "requestTimeoutSeconds", reader.positive_number,
            30.0
        ),
        max_connections=reader.get(section, key, "maxConnections",
                                   reader.positive_int, 1000),
    )


def _receivers(
    reader: _Reader,
    value: object,
    kubernetes: KubernetesConfig,
    kargo: KargoConfig,
) -> tuple[ReceiverConfig, ...]:
    if value is None:
        value = []
    if not isinstance(value, list):
        raise reader.fail("receivers", "must be a list, not " + _kind(value))
    if not value and not kargo.project_configs:
        raise reader.fail(
            "receivers", "at least one receiver is required (or set "
            "kargo.projectConfigs: true)"
        )
    receivers = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(value):
        key = "receivers[{}]".format(i)
        section = reader.mapping(item, key, _RECEIVER)
        for required in ("project", "name", "secret"):
            if section.get(required) is None:
                raise reader.fail(_join(key, required), "is required")
        project = reader.string(section["project"], _join(key, "project"))
        name = reader.nonempty(section["name"], _join(key, "name"))
        if kubernetes.namespaces and project and (
            project not in kubernetes.namespaces
        ):
            raise reader.fail(
                _join(key, "project"),
                "{!r} is not in kubernetes.namespaces".format(project),
            )
        if (project, name) in seen:
            raise reader.fail(
                key, "receiver {}/{} is defined twice".format(project, name)
            )
        seen.add((project, name))
        secret, ref = _secret(reader, section["secret"],
                              _join(key, "secret"), project, kubernetes)
        receivers.append(
            ReceiverConfig(project=project, name=name, secret=secret,
                           secret_ref=ref)
        )
    return tuple(receivers)


def _secret(
    reader: _Reader,
    value: object,
    key: str,
    project: str,
    kubernetes: KubernetesConfig,
) -> tuple[bytes | None, SecretRef | None]:
    section = reader.mapping(value, key, _SECRET)
    sources = [s for s in ("secretRef", "value", "env", "file")
               if section.get(s) is not None]
    if len(sources) != 1:
        raise reader.fail(
            key, "set exactly one of secretRef, value, env, file"
            + (" (found " + ", ".join(sources) + ")" if sources else "")
        )
    source = sources[0]
    where = _join(key, source)
    raw = section[source]
    if source == "value":
        text = reader.nonempty(raw, where)
        return text.encode("utf-8"), None
    if source == "env":
        variable = reader.nonempty(raw, where)
        found = os.environb.get(os.fsencode(variable))
        if not found:
            raise reader.fail(
                where, "environment variable {} is not set or empty".format(
                    variable
                )
            )
        return found, None
    if source == "file":
        secret_path = reader.path_value(raw, where)
        try:
            with open(secret_path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise reader.fail(
                where, "cannot read {}: {}".format(secret_path,
                                                   e.strerror or e)
            ) from None
        if not data:
            raise reader.fail(where, "{} is empty".format(secret_path))
        return data, None
    ref = reader.mapping(raw, where, _SECRET_REF)
    if ref.get("name") is None:
        raise reader.fail(_join(where, "name"), "is required")
    name = reader.nonempty(ref["name"], _join(where, "name"))
    namespace = reader.get(ref, where, "namespace", reader.nonempty, None)
    if namespace is None:
        if not project:
            raise reader.fail(
                _join(where, "namespace"), "is required when project is \"\""
            )
        namespace = project
    if kubernetes.namespaces and namespace not in kubernetes.namespaces:
        raise reader.fail(
            _join(where, "namespace"),
            "{!r} is not in kubernetes.namespaces".format(namespace),
        )
    return None, SecretRef(namespace=namespace, name=name)


def join_url_path(base: str, *elements: str) -> str:
    """
    Join as Go's C{url.JoinPath} does, which is how Kargo builds a
    receiver's URL: the joined path is cleaned (repeated slashes, C{.} and
    C{..} removed), and a trailing slash on the base is harmless.
    """
    parts = urlsplit(base)
    joined = _go_clean("/".join([parts.path or "/", *elements]))
    return parts._replace(path=joined).geturl()


def _go_clean(path: str) -> str:
    """
    Go's C{path.Clean} for a rooted path (C{posixpath.normpath} keeps a
    leading C{//}, Go does not).
    """
    cleaned = posixpath.normpath("/" + path.lstrip("/"))
    return "/" + cleaned.lstrip("/")
