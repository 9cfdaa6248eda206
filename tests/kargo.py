"""
Kargo objects for tests.
"""

from typing import Any


def warehouse(
    namespace: str, name: str, *subscriptions: dict[str, Any]
) -> dict[str, Any]:
    """
    A Warehouse with the given git subscriptions (C{git} objects).
    """
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"subscriptions": [{"git": git} for git in subscriptions]},
    }


def promotion(
    namespace: str,
    name: str,
    pr_url: str | None,
    *,
    phase: str = "Running",
    current: int | None = 1,
    alias: str = "wait-pr",
) -> dict[str, Any]:
    """
    A Promotion whose second step waits on C{pr_url} in a
    C{git-wait-for-pr} step.
    """
    status: dict[str, Any] = {"phase": phase}
    if current is not None:
        status["currentStep"] = current
    if pr_url is not None:
        status["state"] = {alias: {"pr": {"id": 1, "url": pr_url,
                                          "open": True, "merged": False}}}
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Promotion",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"steps": [
            {"uses": "git-open-pr", "as": "open-pr"},
            {"uses": "git-wait-for-pr", "as": alias},
        ]},
        "status": status,
    }
