"""
The subscription index: fed whole objects, keeps what matching needs.
"""

from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.giturls import pr_key, repo_key
from bbreceiver.index import SubscriptionIndex
from tests.kargo import promotion, warehouse

REPO = "https://bitbucket.org/example/repo"
PR = "https://bitbucket.org/example/repo/pull-requests/42"


class WarehouseIndexTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.problems: list[tuple[str, str, str]] = []
        self.index = SubscriptionIndex(
            lambda ns, name, problem: self.problems.append((ns, name, problem)))
        self.table = self.index.warehouses

    def subscribed(self, url: str) -> set[tuple[str, str]]:
        key = repo_key(url)
        assert key is not None
        return set(self.table.subscribed(key))

    def test_upsert_update_delete(self) -> None:
        self.table.upsert(warehouse("a", "w", {"repoURL": REPO + ".git"}))
        self.assertEqual(self.subscribed(REPO), {("a", "w")})
        self.table.upsert(warehouse("a", "w", {"repoURL": REPO + "-2"}))
        self.assertEqual(self.subscribed(REPO), set())
        self.assertEqual(self.subscribed(REPO + "-2"), {("a", "w")})
        self.table.delete(warehouse("a", "w"))
        self.assertEqual(self.subscribed(REPO + "-2"), set())
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.table._by_key, {})
        self.assertEqual(self.table._entries, {})

    def test_subscriptions_grouped_by_repository(self) -> None:
        obj = warehouse(
            "a", "w",
            {"repoURL": REPO, "branch": "main"},
            {"repoURL": "git@bitbucket.org:example/repo.git",
             "branch": "dev"},
            {"repoURL": "https://bitbucket.org/other/repo"},
        )
        self.table.upsert(obj)
        indexed = self.table._entries[("a", "w")]
        # the same subscriptions again (a status update): nothing re-indexed
        self.table.upsert(warehouse("a", "w", *(
            dict(s["git"]) for s in obj["spec"]["subscriptions"])))
        self.assertIs(self.table._entries[("a", "w")], indexed)
        key = repo_key(REPO)
        assert key is not None
        selector = self.table.subscribed(key)[("a", "w")]
        self.assertTrue(selector.accepts("refs/heads/main"))
        self.assertTrue(selector.accepts("refs/heads/dev"))
        self.assertFalse(selector.accepts("refs/heads/other"))
        self.assertEqual(self.subscribed("https://bitbucket.org/other/repo"),
                         {("a", "w")})

    def test_ignores_what_it_cannot_use(self) -> None:
        for obj in [
            {"metadata": {"name": "x", "namespace": "a"}},
            {"metadata": {"name": "x", "namespace": "a"}, "spec": []},
            {"metadata": {"name": "x"}, "spec": {"subscriptions": {}}},
            {"spec": {"subscriptions": [{"git": {"repoURL": REPO}}]}},
            warehouse("a", "img"),
            {"metadata": {"name": "y", "namespace": "a"}, "spec": {
                "subscriptions": [{"image": {"repoURL": "nginx"}},
                                  {"git": {"repoURL": 5}}, "x", None,
                                  {"git": None},
                                  {"chart": {"repoURL": REPO}}]}},
        ]:
            self.table.upsert(obj)
        self.assertEqual(len(self.table), 0)

    def test_problem_reported(self) -> None:
        self.table.upsert(warehouse("a", "w", {
            "repoURL": REPO, "commitSelectionStrategy": "NewestTag",
            "allowTagsRegexes": ["("]}))
        [(ns, name, problem)] = self.problems
        self.assertEqual((ns, name), ("a", "w"))
        self.assertIn("does not compile", problem)
        self.assertEqual(self.subscribed(REPO), {("a", "w")})

    def test_shared_repository(self) -> None:
        """
        Each Warehouse sharing a repository keeps its own selector, as
        Warehouses come, change and go.
        """
        key = repo_key(REPO)
        assert key is not None

        def branches() -> dict[tuple[str, str], list[str]]:
            return {
                where: [b for b in ("main", "dev", "x")
                        if selector.accepts("refs/heads/" + b)]
                for where, selector in self.table.subscribed(key).items()
            }

        self.table.upsert(warehouse("a", "1", {"repoURL": REPO,
                                               "branch": "dev"}))
        self.assertEqual(branches(), {("a", "1"): ["dev"]})
        self.table.upsert(warehouse("a", "2", {"repoURL": REPO}))
        self.table.upsert(warehouse("a", "3", {"repoURL": REPO + ".git",
                                               "branch": "x"}))
        self.assertEqual(branches(), {("a", "1"): ["dev"],
                                      ("a", "2"): ["main"],
                                      ("a", "3"): ["x"]})
        self.table.delete(warehouse("a", "2"))
        self.table.upsert(warehouse("a", "1", {"repoURL": REPO,
                                               "branch": "main"}))
        self.assertEqual(branches(), {("a", "1"): ["main"],
                                      ("a", "3"): ["x"]})
        self.table.delete(warehouse("a", "1"))
        self.assertEqual(branches(), {("a", "3"): ["x"]})
        self.table.upsert(warehouse("a", "3", {"repoURL": REPO + "-2"}))
        self.assertEqual(branches(), {})
        self.assertEqual(list(self.table._by_key), [repo_key(REPO + "-2")])

    def test_replace(self) -> None:
        self.table.upsert(warehouse("a", "gone", {"repoURL": REPO}))
        self.table.upsert(warehouse("a", "kept", {"repoURL": REPO}))
        self.table.upsert(warehouse("b", "other", {"repoURL": REPO}))
        self.table.replace("a", [warehouse("a", "kept", {"repoURL": REPO}),
                                 warehouse("a", "new", {"repoURL": REPO})])
        self.assertEqual(self.subscribed(REPO),
                         {("a", "kept"), ("a", "new"), ("b", "other")})
        self.table.replace(None, [warehouse("c", "only", {"repoURL": REPO})])
        self.assertEqual(self.subscribed(REPO), {("c", "only")})
        self.assertEqual(len(self.table), 1)


class PromotionIndexTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.table = SubscriptionIndex().promotions

    def waiting(self, url: str) -> set[tuple[str, str]]:
        key = pr_key(url)
        assert key is not None
        return set(self.table.waiting_on(key))

    def test_running_waiting(self) -> None:
        self.table.upsert(promotion("a", "p", PR))
        self.assertEqual(self.waiting(PR), {("a", "p")})
        self.assertEqual(self.waiting(PR + "/"), {("a", "p")})
        self.assertEqual(
            self.waiting("HTTPS://BITBUCKET.ORG/example/repo/pull-requests/42"),
            {("a", "p")})

    def test_not_waiting(self) -> None:
        """
        Kargo's TestRunningPromotionsByPullRequestURL cases.
        """
        cases = [
            promotion("a", "succeeded", PR, phase="Succeeded"),
            promotion("a", "pending", PR, phase="Pending"),
            promotion("a", "before", PR, current=0),
            promotion("a", "no-alias", PR, alias=""),
            promotion("a", "no-output", None),
            promotion("a", "bad-step", PR, current="1"),  # type: ignore
        ]
        no_pr = promotion("a", "no-pr", PR)
        no_pr["status"]["state"]["wait-pr"] = {"other": 1}
        empty = promotion("a", "empty", "")
        other_steps = promotion("a", "other-steps", PR)
        other_steps["spec"]["steps"][1]["uses"] = "git-merge-pr"
        for obj in cases + [no_pr, empty, other_steps]:
            self.table.upsert(obj)
        self.assertEqual(len(self.table), 0)

    def test_current_step_absent_means_zero(self) -> None:
        obj = promotion("a", "p", PR, current=None)
        obj["spec"]["steps"].reverse()
        self.table.upsert(obj)
        self.assertEqual(self.waiting(PR), {("a", "p")})

    def test_several_urls_and_later_phase(self) -> None:
        obj = promotion("a", "p", PR, current=2)
        obj["spec"]["steps"].append({"uses": "git-wait-for-pr", "as": "two"})
        obj["status"]["state"]["two"] = {"pr": {"url": PR + "3"}}
        self.table.upsert(obj)
        self.assertEqual(self.waiting(PR), {("a", "p")})
        self.assertEqual(self.waiting(PR + "3"), {("a", "p")})
        obj["status"]["phase"] = "Succeeded"
        self.table.upsert(obj)
        self.assertEqual(self.waiting(PR), set())
        self.assertEqual(len(self.table), 0)
