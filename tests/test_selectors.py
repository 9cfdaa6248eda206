"""
Which refs a git subscription accepts (kargo-receiver.md §4.2, SPEC §5).
"""

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.selectors import compile_selector


def accepts(git: dict[str, Any], ref: str) -> bool:
    return compile_selector(git).accepts(ref)


class BranchTests(SynchronousTestCase):
    def test_default_branch_guess(self) -> None:
        git = {"repoURL": "https://bitbucket.org/example/repo"}
        self.assertTrue(accepts(git, "refs/heads/main"))
        self.assertTrue(accepts(git, "refs/heads/master"))
        self.assertFalse(accepts(git, "refs/heads/develop"))
        self.assertFalse(accepts(git, "refs/tags/main"))
        self.assertTrue(accepts({"branch": ""}, "refs/heads/main"))

    def test_named_branch(self) -> None:
        git = {"commitSelectionStrategy": "NewestFromBranch",
               "branch": "feature/webhook"}
        self.assertTrue(accepts(git, "refs/heads/feature/webhook"))
        self.assertFalse(accepts(git, "refs/heads/main"))
        self.assertFalse(accepts(git, "refs/heads/Feature/webhook"))
        self.assertFalse(accepts({"branch": "x"}, "refs/heads/refs/heads/x"))
        self.assertFalse(accepts({"branch": "not-main"}, "refs/heads/main"))

    def test_tag_settings_ignored(self) -> None:
        git = {"branch": "main", "allowTags": "x", "ignoreTags": ["y"]}
        selector = compile_selector(git)
        self.assertIsNone(selector.problem)
        self.assertTrue(selector.accepts("refs/heads/main"))


class TagTests(SynchronousTestCase):
    def test_newest_tag(self) -> None:
        for strategy in ("NewestTag", "Lexical"):
            git = {"commitSelectionStrategy": strategy}
            self.assertTrue(accepts(git, "refs/tags/v1.0.0"))
            self.assertTrue(accepts(git, "refs/tags/anything"))
            self.assertFalse(accepts(git, "refs/heads/main"))

    def test_regexes(self) -> None:
        git = {"commitSelectionStrategy": "NewestTag",
               "allowTagsRegexes": ["^v", "^release-"],
               "ignoreTagsRegexes": ["rc", "beta$"]}
        self.assertTrue(accepts(git, "refs/tags/v1.2"))
        self.assertTrue(accepts(git, "refs/tags/release-7"))
        self.assertFalse(accepts(git, "refs/tags/x1"))
        self.assertFalse(accepts(git, "refs/tags/v1-rc1"))
        self.assertFalse(accepts(git, "refs/tags/v2-beta"))
        # unanchored search, as Go's MatchString
        self.assertTrue(accepts({"commitSelectionStrategy": "Lexical",
                                 "allowTagsRegexes": ["prod"]},
                                "refs/tags/app-prod-3"))

    def test_semver(self) -> None:
        git = {"commitSelectionStrategy": "SemVer",
               "semverConstraint": "^1.2.0"}
        self.assertTrue(accepts(git, "refs/tags/v1.3.0"))
        self.assertTrue(accepts(git, "refs/tags/1.2.0"))
        self.assertFalse(accepts(git, "refs/tags/v2.0.0"))
        self.assertFalse(accepts(git, "refs/tags/v1.1.9"))
        self.assertFalse(accepts(git, "refs/tags/latest"))
        self.assertFalse(accepts(git, "refs/heads/v1.3.0"))
        # lenient versions unless strictSemvers
        self.assertTrue(accepts(git, "refs/tags/v1.4"))
        self.assertFalse(accepts(dict(git, strictSemvers=True),
                                 "refs/tags/v1.4"))
        self.assertTrue(accepts(dict(git, strictSemvers=True),
                                "refs/tags/v1.4.0"))
        # no constraint: any semantic version
        self.assertTrue(accepts({"commitSelectionStrategy": "SemVer"},
                                "refs/tags/0.0.1"))
        self.assertFalse(accepts({"commitSelectionStrategy": "SemVer"},
                                 "refs/tags/nightly"))
        # regexes apply first
        self.assertFalse(accepts(dict(git, ignoreTagsRegexes=["^v1\\.3"]),
                                 "refs/tags/v1.3.0"))


class UnusableTests(SynchronousTestCase):
    """
    A selector that cannot be evaluated accepts every ref and says why.
    """

    def test_unusable(self) -> None:
        cases = [
            {"commitSelectionStrategy": "Newest"},
            {"commitSelectionStrategy": "NewestTag", "allowTags": "^v"},
            {"commitSelectionStrategy": "SemVer", "ignoreTags": ["x"]},
            {"commitSelectionStrategy": "NewestTag",
             "allowTagsRegexes": ["("]},
            {"commitSelectionStrategy": "Lexical",
             "ignoreTagsRegexes": ["(?<=a+)b"]},
            {"commitSelectionStrategy": "SemVer",
             "semverConstraint": ">>1"},
            {"commitSelectionStrategy": 3},
            {"branch": ["main"]},
            {"commitSelectionStrategy": "NewestTag",
             "allowTagsRegexes": "^v"},
            {"commitSelectionStrategy": "NewestTag",
             "allowTagsRegexes": [1]},
            {"commitSelectionStrategy": "SemVer", "strictSemvers": "yes"},
            {"commitSelectionStrategy": "SemVer", "semverConstraint": 1},
        ]
        for git in cases:
            selector = compile_selector(git)
            self.assertIsNotNone(selector.problem, git)
            self.assertTrue(selector.accepts("refs/heads/anything"), git)
            self.assertTrue(selector.accepts("refs/tags/anything"), git)

    def test_shared(self) -> None:
        """
        Equal subscriptions share one selector object.
        """
        a = compile_selector({"branch": "main", "repoURL": "a"})
        b = compile_selector({"branch": "main", "repoURL": "b"})
        self.assertIs(a, b)
        semver = {"commitSelectionStrategy": "SemVer",
                  "semverConstraint": "^1.0.0"}
        c = compile_selector(dict(semver, repoURL="a"))
        d = compile_selector(dict(semver, repoURL="b", strictSemvers=False))
        self.assertIs(c, d)
        self.assertIsNot(c, compile_selector(dict(semver, strictSemvers=True)))
        # an empty pattern list is no pattern: the general path agrees
        self.assertIs(c, compile_selector(dict(semver, allowTagsRegexes=[])))
