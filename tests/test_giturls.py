"""
Repository identity (SPEC §5), with Kargo's golden pairs
(reference/kargo-receiver.md §3.2-§3.3) re-read under our rule, and the
Bitbucket variants.
"""

from itertools import product

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.giturls import _parsed_key, pr_key, repo_key

# Groups of URLs that must all have one key, each group distinct.
SAME = [
    # Kargo golden §3.2, re-read: scheme, user and suffixes do not count.
    [
        "https://github.com/example/repo",
        "https://github.com/example/repo/",
        "https://github.com/example/repo.git",
        "https://github.com/example/repo.git/",
        "https://foo:bar@github.com/example/repo.git",
        "ssh://github.com/example/repo",
        "ssh://git@github.com/example/repo.git/",
        "github.com:example/repo",
        "git@github.com:example/repo.git",
        "http://github.com/example/repo",
    ],
    [
        "https://localhost:8443/example/repo",
        "https://foo:bar@localhost:8443/example/repo.git/",
    ],
    # ssh ports never count
    [
        "ssh://localhost:2222/example/repo",
        "ssh://git@localhost:2222/example/repo.git",
        "ssh://git@localhost/example/repo",
        "git@localhost:example/repo.git",
    ],
    ["https://github.com", "https://foo:bar@github.com/", "ssh://github.com",
     "git@github.com", "github.com"],
    ["ssh://git.example.com", "ssh://git@git.example.com/",
     "git.example.com", "git@git.example.com"],
    # §3.3: case, user info, default ports
    [
        "https://Bitbucket.org/Example/Repo",
        "HTTPS://bitbucket.org/example/repo",
        "https://user@bitbucket.org/example/repo.git",
        "https://x-token-auth:tok@bitbucket.org/example/repo.git",
        "https://bitbucket.org:443/example/repo",
        "http://bitbucket.org:80/example/repo",
        "https://bitbucket.org/example/repo.GIT",
        "https://bitbucket.org/example/repo#frag",
        "https://bitbucket.org/example/repo?",
        "https://bitbucket.org/example/repo?x=1",
        "\ufeffhttps://bitbucket.org/example/repo ",
        "https://bitbucket.org/example/repo\t",
        # Cloud ssh forms (Kargo never matched these: study §11.2)
        "git@bitbucket.org:example/repo.git",
        "ssh://git@bitbucket.org/example/repo.git",
        "ssh://git@altssh.bitbucket.org:443/example/repo.git",
        "git@altssh.bitbucket.org:example/repo",
    ],
    # Data Center: /scm/ http clone and ssh clone on 7999
    [
        "https://bitbucket.example.com/scm/EXAMPLE/repo.git",
        "https://bitbucket.example.com/scm/example/repo",
    ],
    [
        "ssh://git@bitbucket.example.com:7999/EXAMPLE/Repo.git",
        "ssh://bitbucket.example.com:7999/example/repo",
        "ssh://git@bitbucket.example.com/example/repo.git",
    ],
    # context path
    [
        "https://bitbucket.example.com/bitbucket/scm/example/repo.git",
        "https://BITBUCKET.example.com/bitbucket/scm/Example/Repo",
    ],
    # personal repositories
    [
        "https://server.bitbucket.local/scm/~gopher/webhook-test.git",
        "https://server.bitbucket.local/scm/~GOPHER/webhook-test",
    ],
    [
        "ssh://git@server.bitbucket.local:7999/~gopher/webhook-test.git",
        "ssh://git@server.bitbucket.local:7999/~Gopher/webhook-test",
    ],
    ["https://[::1]:8080/x.git", "http://[::1]:8080/x"],
]

DIFFERENT = [
    # https keeps a non-default port; ssh does not
    ("https://localhost:8443/example/repo", "https://localhost/example/repo"),
    ("http://bitbucket:7990/scm/p/r.git", "http://bitbucket/scm/p/r.git"),
    # the browse URL is not the clone URL
    ("https://bitbucket.example.com/projects/EXAMPLE/repos/repo/browse",
     "https://bitbucket.example.com/scm/example/repo.git"),
    # a context path is part of the path
    ("http://localhost:7990/bitbucket/scm/amuniz/test-repos.git",
     "http://localhost:7990/scm/amuniz/test-repos.git"),
    # /scm/ is not rewritten: the ssh path has none
    ("https://bitbucket.example.com/scm/example/repo.git",
     "ssh://git@bitbucket.example.com:7999/example/repo.git"),
    # scp form: the 7999 is part of the path, as in Kargo
    ("git@bitbucket.example.com:7999/example/repo.git",
     "ssh://git@bitbucket.example.com:7999/example/repo.git"),
    # an absolute scp path keeps its slash
    ("git@bitbucket.org:/example/repo.git",
     "git@bitbucket.org:example/repo.git"),
    # only one trailing slash, then one .git, are removed
    ("https://bitbucket.org/example/repo//", "https://bitbucket.org/example/repo"),
    ("https://bitbucket.org/example/repo.git.git",
     "https://bitbucket.org/example/repo"),
    ("https://bitbucket.org/example/repo/.git",
     "https://bitbucket.org/example/repo"),
    # no prefix or suffix matching
    ("https://bitbucket.org/example/repo-other",
     "https://bitbucket.org/example/repo"),
    ("https://bitbucket.org/example/re", "https://bitbucket.org/example/repo"),
    # another host
    ("https://bitbucket.org/example/repo", "https://github.com/example/repo"),
    ("https://www.bitbucket.org/example/repo",
     "https://bitbucket.org/example/repo"),
    # /scm/ http clone with a port vs without
    ("https://server/scm/~gopher/webhook-test.git",
     "https://server/scm/gopher/webhook-test.git"),
]


class RepoKeyTests(SynchronousTestCase):
    def test_same(self) -> None:
        keys = []
        for group in SAME:
            first = repo_key(group[0])
            self.assertIsNotNone(first, group[0])
            for url in group[1:]:
                self.assertEqual(repo_key(url), first, url)
            keys.append(first)
        self.assertEqual(len(set(keys)), len(keys), keys)

    def test_different(self) -> None:
        for a, b in DIFFERENT:
            self.assertIsNotNone(repo_key(a), a)
            self.assertIsNotNone(repo_key(b), b)
            self.assertNotEqual(repo_key(a), repo_key(b), (a, b))

    def test_examples(self) -> None:
        self.assertEqual(repo_key("https://bitbucket.org/ws/Repo.git"),
                         "bitbucket.org/ws/repo")
        self.assertEqual(repo_key("git@host:7999/p"), "host/7999/p")
        self.assertEqual(repo_key("https://h:8443/a/"), "h:8443/a")
        self.assertEqual(repo_key("git@bitbucket.org:/x/y.git"),
                         "bitbucket.org//x/y")

    def test_not_repositories(self) -> None:
        for url in ["", "   ", "not even remotely a url", "https://",
                    "https:///path", "https://[::1/x"]:
            self.assertIsNone(repo_key(url), url)

    @given(st.text())
    def test_total(self, url: str) -> None:
        """
        Any text gives a key or None, never an exception.
        """
        key = repo_key(url)
        self.assertTrue(key is None or isinstance(key, str))

    def test_usual_spelling_shortcut(self) -> None:
        """
        The shortcut for the usual spelling agrees with the full parse, on
        every combination of usual and unusual parts.
        """
        for parts in product(
            ["https", "http", "ssh", "git+ssh", "HTTPS", "1x"],
            ["", "git@", "a:b@", "x@y@", "A_b.c-@"],
            ["bitbucket.org", "altssh.bitbucket.org", "h-1.io", "Host",
             "[::1]", "", "."],
            ["", ":", ":443", ":x"],
            ["", "/ws/repo", "/a_b.c~d-e", "/", "/Ws", "/a b", "/%41",
             "/.git"],
            ["", "/", ".git", ".git/", "?x", "#y", " ", "\x00", "\\"],
        ):
            url = "{}://{}{}{}{}{}".format(*parts)
            self.assertEqual(repo_key.__wrapped__(url), _parsed_key(url), url)

    @given(st.text(alphabet="aA0.-_~/:@?#[]% gitsh", max_size=40))
    def test_usual_spelling_shortcut_any_text(self, url: str) -> None:
        self.assertEqual(repo_key.__wrapped__(url), _parsed_key(url))


class PullRequestKeyTests(SynchronousTestCase):
    def test_same(self) -> None:
        base = "https://bitbucket.org/ws/repo/pull-requests/2"
        for url in [base, base + "/", "HTTPS://BitBucket.org/ws/repo/pull-requests/2"]:
            self.assertEqual(pr_key(url), pr_key(base), url)

    def test_path_case_and_form_count(self) -> None:
        base = pr_key("https://bitbucket.org/ws/repo/pull-requests/2")
        for url in ["https://bitbucket.org/WS/repo/pull-requests/2",
                    "https://bitbucket.org/ws/repo/pullrequests/2",
                    "https://bitbucket.org/ws/repo/pull-requests/2//",
                    "https://bitbucket.org/ws/repo/pull-requests/20"]:
            self.assertNotEqual(pr_key(url), base, url)

    def test_not_urls(self) -> None:
        for url in ["", "pull-requests/2", "https://"]:
            self.assertIsNone(pr_key(url), url)
