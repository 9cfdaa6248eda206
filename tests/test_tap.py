"""
The plugin, its options and its service.
"""

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin, getPlugins
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver import tap


class PluginTests(SynchronousTestCase):
    def test_discovered(self) -> None:
        plugins = [p for p in getPlugins(IServiceMaker)
                   if p.tapname == "bbreceiver"]
        self.assertTrue(plugins)
        for plugin in plugins:
            self.assertTrue(IPlugin.providedBy(plugin))
            self.assertIs(plugin.options, tap.Options)
            self.assertIs(plugin.makeService, tap.makeService)


class OptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        self.config = folder.child("c.yaml")
        self.config.setContent(b"""
kubernetes: {embedded: {listen: "tcp:0:interface=127.0.0.1"}}
receivers:
  - {project: p, name: n, secret: {value: s}}
""")

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_config_required(self) -> None:
        with self.assertRaises(UsageError) as caught:
            self.parse()
        self.assertEqual(str(caught.exception), "--config is required")

    def test_config(self) -> None:
        options = self.parse("--config", self.config.path)
        self.assertEqual(options["parsed"].listen, "tcp:8080")
        options = self.parse("--config", self.config.path,
                             "--listen", "tcp:9999:interface=127.0.0.1")
        self.assertEqual(options["parsed"].listen,
                         "tcp:9999:interface=127.0.0.1")

    def test_bad_listen(self) -> None:
        with self.assertRaises(UsageError) as caught:
            self.parse("--config", self.config.path, "--listen", "tcp:x")
        self.assertIn("--listen: bad endpoint string 'tcp:x'",
                      str(caught.exception))

    def test_bad_config(self) -> None:
        self.config.setContent(b"receivers: 3\n")
        with self.assertRaises(UsageError) as caught:
            self.parse("--config", self.config.path)
        self.assertEqual(str(caught.exception), self.config.path +
                         ": receivers: must be a list, not an integer")

    def test_kube_connection_checked(self) -> None:
        self.config.setContent(b"""
kubernetes: {kubeconfig: missing-kubeconfig}
receivers:
  - {project: p, name: n, secret: {value: s}}
""")
        with self.assertRaises(UsageError) as caught:
            self.parse("--config", self.config.path)
        self.assertIn(self.config.path + ": kubernetes: ",
                      str(caught.exception))
        self.assertIn("missing-kubeconfig", str(caught.exception))
