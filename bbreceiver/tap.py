"""
The twistd plugin's options and service: C{twist bbreceiver --config PATH}.

Everything that can be wrong with the configuration is found in
L{Options.postOptions}, before the reactor runs, and reported as one line.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from bbreceiver.config import ConfigError, Config, load_config, validate_endpoint


class Options(usage.Options):
    """
    Command-line options of the C{bbreceiver} plugin.
    """

    synopsis = "--config PATH [--listen ENDPOINT]"
    longdesc = (
        "Receive Bitbucket webhook deliveries and refresh the Kargo "
        "Warehouses and Promotions they concern. The configuration file "
        "(YAML) is described in the README."
    )
    optParameters = [
        ["config", "c", None, "The configuration file (required)."],
        ["listen", "l", None,
         "A Twisted server endpoint string to listen on, overriding the "
         "file's 'listen' (e.g. tcp:8080, ssl:8443:privateKey=key.pem)."],
    ]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config is required")
        try:
            config = load_config(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self["listen"] is not None:
            try:
                validate_endpoint(self["listen"])
            except Exception as e:
                raise usage.UsageError(
                    "--listen: bad endpoint string {!r}: {}".format(
                        self["listen"], " ".join(str(e).split())
                        or type(e).__name__)) from None
            config = _with_listen(config, self["listen"])
        self["connection"] = _connection(config)
        self["parsed"] = config


def _with_listen(config: Config, listen: str) -> Config:
    from dataclasses import replace

    return replace(config, listen=listen)


def _connection(config: Config) -> Any:
    """
    The Kubernetes connection the file describes, checked now so that a bad
    kubeconfig stops start-up with a clear line.
    """
    settings = config.kubernetes
    if settings.embedded is not None:
        return None
    from bbreceiver.kube.auth import (
        KubeConfigError,
        in_cluster_settings,
        kubeconfig_settings,
        server_settings,
    )

    try:
        if settings.kubeconfig:
            return kubeconfig_settings(settings.kubeconfig, settings.context)
        if settings.server:
            if settings.token_file is not None and not os.access(
                    settings.token_file, os.R_OK):
                raise KubeConfigError("tokenFile {} cannot be read".format(
                    settings.token_file))
            return server_settings(settings)
        return in_cluster_settings()
    except KubeConfigError as e:
        raise usage.UsageError("{}: kubernetes: {}".format(config.path, e)) from None


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    The daemon's service tree.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from bbreceiver.service import ReceiverService

    return ReceiverService(options["parsed"], reactor,
                           connection=options["connection"])
