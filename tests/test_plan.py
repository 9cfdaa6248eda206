"""
Planning: a delivery, the index and a receiver's scope to refresh targets
(reference/bitbucket-deliveries.md §6 B-F at the matching level).
"""

from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.bitbucket import PullRequestEvent, PushEvent, parse_event
from bbreceiver.index import SubscriptionIndex
from bbreceiver.plan import PROMOTION, WAREHOUSE, Plan, Target, plan
from tests.fixtures import fixture
from tests.kargo import promotion, warehouse

CLOUD = "https://bitbucket.org/example/repo"


def names(result: Plan) -> set[str]:
    return {t.name for t in result.targets}


class PushPlanTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.index = SubscriptionIndex()

    def add(self, name: str, *subscriptions: dict[str, object],
            namespace: str = "p") -> None:
        self.index.warehouses.upsert(warehouse(namespace, name,
                                               *subscriptions))

    def push(self, *refs: str, urls: tuple[str, ...] = (CLOUD,),
             every: bool = False) -> PushEvent:
        return PushEvent(urls, refs, every)

    def test_branch(self) -> None:
        """
        Matrix 17, 29, 30: any URL form of the repository, the right branch.
        """
        self.add("main", {"repoURL": CLOUD + ".git"})
        self.add("user", {"repoURL": "https://me@bitbucket.org/Example/Repo"})
        self.add("scp", {"repoURL": "git@bitbucket.org:example/repo.git"})
        self.add("alt", {"repoURL":
                         "ssh://git@altssh.bitbucket.org:443/example/repo.git"})
        self.add("dev", {"repoURL": CLOUD, "branch": "dev"})
        self.add("suffix", {"repoURL": CLOUD + "-other"})
        result = plan(self.push("refs/heads/main"), self.index, "")
        self.assertEqual(result.kind, WAREHOUSE)
        self.assertEqual(names(result), {"main", "user", "scp", "alt"})

    def test_once_per_warehouse(self) -> None:
        """
        Matrix 22, 39: a Warehouse matched by several refs or URLs is
        refreshed once.
        """
        self.add("both", {"repoURL": "https://h/scm/p/r.git"},
                 {"repoURL": "ssh://git@h:7999/p/r.git", "branch": "manchu"})
        result = plan(
            self.push("refs/heads/main", "refs/heads/manchu",
                      urls=("https://h/scm/p/r.git",
                            "ssh://git@h:7999/p/r.git")),
            self.index, "")
        self.assertEqual(result.targets, (Target(WAREHOUSE, "p", "both"),))

    def test_tags(self) -> None:
        """
        Matrix 20: only matching tag subscriptions.
        """
        self.add("branch", {"repoURL": CLOUD})
        self.add("tag", {"repoURL": CLOUD,
                         "commitSelectionStrategy": "NewestTag"})
        self.add("semver", {"repoURL": CLOUD,
                            "commitSelectionStrategy": "SemVer",
                            "semverConstraint": ">=1.0.0"})
        self.assertEqual(names(plan(self.push("refs/tags/v0.1"),
                                    self.index, "")), {"tag"})
        self.assertEqual(names(plan(self.push("refs/tags/v1.0.0"),
                                    self.index, "")), {"tag", "semver"})

    def test_no_refs(self) -> None:
        """
        Matrix 19, 25, 41: deletions and empty pushes refresh nothing.
        """
        self.add("w", {"repoURL": CLOUD})
        self.assertEqual(plan(self.push(), self.index, "").targets, ())

    def test_every_ref(self) -> None:
        """
        Matrix 58: a mirror over its ref limit refreshes every subscriber.
        """
        self.add("w", {"repoURL": CLOUD, "branch": "x"})
        self.add("t", {"repoURL": CLOUD, "commitSelectionStrategy": "SemVer"})
        self.assertEqual(names(plan(self.push(every=True), self.index, "")),
                         {"w", "t"})

    def test_bad_selector_accepts_everything(self) -> None:
        self.add("bad", {"repoURL": CLOUD, "commitSelectionStrategy": "Nope"})
        self.add("good", {"repoURL": CLOUD, "branch": "main"})
        self.assertEqual(names(plan(self.push("refs/heads/dev"), self.index,
                                    "")), {"bad"})

    def test_scope(self) -> None:
        self.add("mine", {"repoURL": CLOUD}, namespace="p")
        self.add("theirs", {"repoURL": CLOUD}, namespace="q")
        self.assertEqual(names(plan(self.push("refs/heads/main"), self.index,
                                    "p")), {"mine"})
        self.assertEqual(names(plan(self.push("refs/heads/main"), self.index,
                                    "")), {"mine", "theirs"})

    def test_fixtures(self) -> None:
        """
        Matrix 18, 39, 40, 42, 45, 57 with the real payloads.
        """
        self.add("feature", {"repoURL": "https://bitbucket.org/nfalco79/"
                             "test-repos", "branch": "feature/webhook"})
        self.add("server", {"repoURL": "https://BitbucketServer/scm/"
                            "myproject/test-repo"})
        self.add("server-ssh", {"repoURL": "ssh://git@bitbucketserver:7999/"
                                "myproject/test-repo.git"})
        self.add("ctx", {"repoURL": "http://localhost:7990/bitbucket/scm/"
                         "amuniz/test-repos.git", "branch": "feature/BB-1"})
        self.add("no-ctx", {"repoURL": "http://localhost:7990/scm/amuniz/"
                            "test-repos.git", "branch": "feature/BB-1"})
        self.add("mirror", {"repoURL": "http://localhost:7990/scm/amuniz/"
                            "test-repos.git"})
        cases = {
            ("repo:push", "cloud-repo-push-branch-created-signed.json"):
                {"feature"},
            ("repo:refs_changed", "server-repo-refs-changed-update.json"):
                {"server", "server-ssh"},
            ("repo:refs_changed", "server-repo-refs-changed-add-dc10.json"):
                {"ctx"},
            ("repo:refs_changed",
             "server-repo-refs-changed-delete-context-path.json"): set(),
            ("repo:refs_changed", "server-repo-refs-changed-no-links.json"):
                set(),
            ("mirror:repo_synchronized",
             "server-mirror-repo-synchronized.json"): {"mirror"},
            ("mirror:repo_synchronized",
             "server-mirror-repo-synchronized-ref-limit.json"):
                {"mirror", "no-ctx"},
        }
        for (key, name), expected in cases.items():
            event = parse_event(key, fixture(name))
            self.assertEqual(names(plan(event, self.index, "")), expected,
                             name)


class PullRequestPlanTests(SynchronousTestCase):
    def test_promotions(self) -> None:
        index = SubscriptionIndex()
        url = "https://bitbucket.org/cloudbeers/temp/pull-requests/2"
        index.promotions.upsert(promotion("p", "waiting", url))
        index.promotions.upsert(promotion("q", "elsewhere", url))
        index.promotions.upsert(promotion("p", "other", url + "0"))
        event = parse_event("pullrequest:fulfilled",
                            fixture("cloud-pullrequest-fulfilled.json"))
        result = plan(event, index, "p")
        self.assertEqual(result, Plan(PROMOTION, (
            Target(PROMOTION, "p", "waiting"),)))
        self.assertEqual(names(plan(event, index, "")),
                         {"waiting", "elsewhere"})
        self.assertEqual(plan(PullRequestEvent(None), index, ""),
                         Plan(PROMOTION, ()))
        # Matrix 36: the path form counts (SPEC §5)
        self.assertEqual(plan(PullRequestEvent(
            "https://bitbucket.org/cloudbeers/temp/pullrequests/2"),
            index, "").targets, ())
