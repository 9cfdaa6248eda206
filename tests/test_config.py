"""
The configuration file (SPEC §3): defaults, and one clear line per mistake.
"""

import os

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.config import (
    ConfigError,
    Limits,
    SecretRef,
    join_url_path,
    load_config,
    parse_config,
)

MINIMAL = """
receivers:
  - project: kargo-demo
    name: bb-wh-receiver
    secret: {value: mysupersecrettoken}
"""


class ConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = FilePath(self.mktemp())
        self.folder.makedirs()
        self.path = self.folder.child("bbreceiver.yaml").path

    def write(self, text: str) -> str:
        with open(self.path, "w") as f:
            f.write(text)
        return self.path

    def error(self, text: str) -> str:
        with self.assertRaises(ConfigError) as caught:
            load_config(self.write(text))
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(self.path + ": "), message)
        return message[len(self.path) + 2:]

    def test_defaults(self) -> None:
        config = load_config(self.write(MINIMAL))
        self.assertEqual(config.listen, "tcp:8080")
        self.assertEqual(config.base_url, "/")
        self.assertEqual(config.route_prefix, "/")
        self.assertTrue(config.kubernetes.in_cluster)
        self.assertEqual(config.kubernetes.namespaces, ())
        self.assertEqual(config.kubernetes.watch_timeout_seconds, 300)
        self.assertEqual(config.kubernetes.inactivity_seconds, 90)
        self.assertEqual(config.kubernetes.backoff_max_seconds, 5)
        self.assertEqual(config.limits, Limits())
        self.assertEqual(config.limits.max_body_bytes, 2097152)
        self.assertEqual(config.limits.refresh_concurrency, 32)
        self.assertEqual(config.limits.response_deadline_seconds, 8)
        self.assertEqual(config.limits.request_timeout_seconds, 30)
        self.assertEqual(config.limits.max_connections, 1000)
        self.assertIsNone(config.metrics_listen)
        self.assertFalse(config.kargo.project_configs)
        self.assertEqual(config.kargo.system_namespace,
                         "kargo-system-resources")
        self.assertEqual(config.kargo.rotation_grace_seconds, 900)
        [receiver] = config.receivers
        self.assertEqual(receiver.project, "kargo-demo")
        self.assertEqual(receiver.secret, b"mysupersecrettoken")
        self.assertEqual(receiver.label, "kargo-demo/bb-wh-receiver")
        self.assertNotIn("mysupersecrettoken", repr(config))

    def test_everything(self) -> None:
        self.folder.child("secret").setContent(b"s3cret\n")
        self.folder.child("objects.yaml").setContent(b"")
        os.environ["BBRECEIVER_TEST_SECRET"] = "from-env"
        self.addCleanup(os.environ.pop, "BBRECEIVER_TEST_SECRET")
        config = load_config(self.write("""
listen: "tcp:9000:interface=127.0.0.1"
baseURL: "https://hooks.example.com/kargo/"
kubernetes:
  embedded: {listen: "tcp:0:interface=127.0.0.1", objects: objects.yaml}
  namespaces: [a, b]
  watchTimeoutSeconds: 60
  inactivitySeconds: 1.5
  backoffMaxSeconds: 2
receivers:
  - {project: a, name: one, secret: {file: secret}}
  - {project: b, name: two, secret: {env: BBRECEIVER_TEST_SECRET}}
  - {project: "", name: three, secret: {secretRef: {name: s, namespace: a}}}
  - {project: b, name: four, secret: {secretRef: {name: t}}}
kargo: {projectConfigs: true, systemNamespace: sys, rotationGraceSeconds: 60}
metrics: {listen: "tcp:9100:interface=127.0.0.1"}
limits:
  maxBodyBytes: 1000
  refreshConcurrency: 4
  responseDeadlineSeconds: 2.5
  requestTimeoutSeconds: 3
  maxConnections: 10
"""))
        self.assertEqual(config.listen, "tcp:9000:interface=127.0.0.1")
        self.assertEqual(config.route_prefix, "/kargo/")
        self.assertFalse(config.kubernetes.in_cluster)
        assert config.kubernetes.embedded is not None
        self.assertEqual(config.kubernetes.embedded.objects,
                         self.folder.child("objects.yaml").path)
        self.assertEqual(config.kubernetes.namespaces, ("a", "b"))
        self.assertEqual(config.kubernetes.inactivity_seconds, 1.5)
        secrets = [r.secret for r in config.receivers]
        self.assertEqual(secrets[:2], [b"s3cret\n", b"from-env"])
        self.assertEqual(config.receivers[2].secret_ref, SecretRef("a", "s"))
        self.assertEqual(config.receivers[3].secret_ref, SecretRef("b", "t"))
        self.assertEqual(config.kargo.system_namespace, "sys")
        self.assertEqual(config.metrics_listen, "tcp:9100:interface=127.0.0.1")
        self.assertEqual(config.limits.max_body_bytes, 1000)
        self.assertEqual(config.limits.response_deadline_seconds, 2.5)

    def test_kubernetes_modes(self) -> None:
        config = parse_config(MINIMAL + """
kubernetes: {server: "https://10.0.0.1:6443", tokenFile: tok, caFile: ca.crt}
""", self.path)
        self.assertEqual(config.kubernetes.server, "https://10.0.0.1:6443")
        self.assertEqual(config.kubernetes.token_file,
                         self.folder.child("tok").path)
        self.assertFalse(config.kubernetes.in_cluster)
        config = parse_config(MINIMAL + """
kubernetes: {kubeconfig: kube/config, context: dev}
""", self.path)
        self.assertEqual(config.kubernetes.kubeconfig,
                         self.folder.child("kube").child("config").path)
        self.assertEqual(config.kubernetes.context, "dev")

    def test_only_project_configs(self) -> None:
        config = parse_config("kargo: {projectConfigs: true}\n", self.path)
        self.assertEqual(config.receivers, ())

    def test_errors(self) -> None:
        cases = {
            "": "receivers: at least one receiver is required",
            "receivers: []": "receivers: at least one receiver is required",
            "[1, 2]": "must be a mapping, not a list",
            "lisen: tcp:80\n" + MINIMAL: "lisen: unknown key",
            "listen: 8080\n" + MINIMAL: "listen: must be a string",
            "listen: 'nope:8080'\n" + MINIMAL: "listen: bad endpoint string",
            "listen: 'tcp:notaport'\n" + MINIMAL: "listen: bad endpoint",
            "baseURL: hooks\n" + MINIMAL: "baseURL: must be an http(s) URL",
            "baseURL: 'ftp://x/'\n" + MINIMAL: "baseURL: must be an http(s)",
            "receivers:\n  - {project: p, name: n}":
                "receivers[0].secret: is required",
            "receivers:\n  - {name: n, secret: {value: v}}":
                "receivers[0].project: is required",
            "receivers:\n  - {project: p, name: 7, secret: {value: v}}":
                "receivers[0].name: must be a string, not an integer",
            "receivers:\n  - {project: p, name: n, secret: {value: v, env: E}}":
                "receivers[0].secret: set exactly one of secretRef, value, "
                "env, file (found value, env)",
            "receivers:\n  - {project: p, name: n, secret: {}}":
                "receivers[0].secret: set exactly one of",
            "receivers:\n  - {project: p, name: n, secret: {valu: v}}":
                "receivers[0].secret.valu: unknown key",
            "receivers:\n  - {project: p, name: n, secret: {file: nope}}":
                "receivers[0].secret.file: cannot read",
            "receivers:\n  - {project: p, name: n, secret: {env: BBR_NOPE}}":
                "receivers[0].secret.env: environment variable BBR_NOPE is "
                "not set",
            "receivers:\n  - {project: '', name: n, secret: {secretRef: "
            "{name: s}}}": "receivers[0].secret.secretRef.namespace: is "
                           "required",
            "receivers:\n  - {project: p, name: n, secret: {value: v}}\n"
            "  - {project: p, name: n, secret: {value: w}}":
                "receivers[1]: receiver p/n is defined twice",
            "kubernetes: {namespaces: [a]}\nreceivers:\n  - {project: p, "
            "name: n, secret: {value: v}}":
                "receivers[0].project: 'p' is not in kubernetes.namespaces",
            "kubernetes: {server: 'http://x', kubeconfig: k}\n" + MINIMAL:
                "kubernetes: set exactly one of inCluster, kubeconfig, "
                "server, embedded (found kubeconfig, server)",
            "kubernetes: {inCluster: false}\n" + MINIMAL:
                "kubernetes: inCluster is false",
            "kubernetes: {token: t}\n" + MINIMAL:
                "kubernetes.token: only goes with server",
            "kubernetes: {server: 'x:y'}\n" + MINIMAL:
                "kubernetes.server: must be an http(s) URL",
            "kubernetes: {watchTimeoutSeconds: true}\n" + MINIMAL:
                "kubernetes.watchTimeoutSeconds: must be an integer, not a "
                "boolean",
            "kubernetes: {namespaces: a}\n" + MINIMAL:
                "kubernetes.namespaces: must be a list, not a string",
            "kubernetes: {namespaces: [a, 3]}\n" + MINIMAL:
                "kubernetes.namespaces[1]: must be a string",
            "kubernetes: {embedded: {listen: 'tcp:x'}}\n" + MINIMAL:
                "kubernetes.embedded.listen: bad endpoint string",
            "limits: {maxBodyBytes: 0}\n" + MINIMAL:
                "limits.maxBodyBytes: must be greater than 0",
            "limits: {responseDeadlineSeconds: '8'}\n" + MINIMAL:
                "limits.responseDeadlineSeconds: must be a number, not a "
                "string",
            "limits: {burst: 1}\n" + MINIMAL: "limits.burst: unknown key",
            "metrics: {listen: 9100}\n" + MINIMAL:
                "metrics.listen: must be a string",
            "kargo: {projectConfigs: yes please}\n" + MINIMAL:
                "kargo.projectConfigs: must be true or false",
            "receivers: [\n": "line",
        }
        for text, expected in cases.items():
            message = self.error(text)
            self.assertIn(expected, message, text)

    def test_unreadable(self) -> None:
        missing = self.folder.child("missing.yaml").path
        with self.assertRaises(ConfigError) as caught:
            load_config(missing)
        self.assertEqual(
            str(caught.exception),
            missing + ": cannot read the file: No such file or directory",
        )

    def test_secret_not_in_errors(self) -> None:
        message = self.error("""
receivers:
  - {project: p, name: n, secret: {value: hunter2, env: X}}
""")
        self.assertNotIn("hunter2", message)


class JoinTests(SynchronousTestCase):
    """
    Go's url.JoinPath, as Kargo builds receiver URLs.
    """

    def test_join(self) -> None:
        cases = [
            ("/", "/bitbucket/h"),
            ("https://hooks.example.com", "https://hooks.example.com/bitbucket/h"),
            ("https://hooks.example.com/", "https://hooks.example.com/bitbucket/h"),
            ("https://host/webhooks", "https://host/webhooks/bitbucket/h"),
            ("https://host/webhooks/", "https://host/webhooks/bitbucket/h"),
            ("https://host//a/./b/../c", "https://host/a/c/bitbucket/h"),
            ("http://host:8080/x", "http://host:8080/x/bitbucket/h"),
        ]
        for base, expected in cases:
            self.assertEqual(join_url_path(base, "bitbucket", "h"), expected,
                             base)


class ShippedConfigTests(SynchronousTestCase):
    """
    Every configuration file under etc/ loads.
    """

    def test_examples_load(self) -> None:
        etc = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "etc")
        names = [n for n in os.listdir(etc) if n.endswith(".yaml")
                 and n != "demo-objects.yaml"]
        self.assertIn("bbreceiver.kargo-native.yaml", names)
        self.assertIn("demo.yaml", names)
        if "BBRECEIVER_DATACENTER_SECRET" not in os.environ:
            os.environ["BBRECEIVER_DATACENTER_SECRET"] = "x"
            self.addCleanup(os.environ.pop, "BBRECEIVER_DATACENTER_SECRET")
        for name in names:
            config = load_config(os.path.join(etc, name))
            self.assertTrue(config.receivers or config.kargo.project_configs,
                            name)
