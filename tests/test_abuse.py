"""
Nothing let in by bad input.

In memory, hypothesis writes raw HTTP requests (methods, paths, header
names and values, signatures, bodies that are almost a delivery) into a
real L{DeliverySite}'s channel: never a 5xx, never a traceback or a logged
failure, never a refresh without a valid signature.  Hand-made cases add
what fuzzing finds slowly: deep nesting, huge documents, invalid UTF-8,
duplicate keys, lying lengths, too many headers.

On loopback, a real C{twist bbreceiver} with small limits shows the
channel's defences with real sockets: slow-drip bodies and idle
connections closed after C{limits.requestTimeoutSeconds}, a lying
Content-Length, and C{limits.maxConnections}.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bbreceiver import bitbucket
from bbreceiver.bitbucket import EVENTS, sign, verify_signature
from bbreceiver.config import Limits
from tests.daemon import Daemon, sleep
from tests.kargo import promotion, warehouse
from tests.test_faults import record
from tests.web_support import PATH, SECRET, Harness

REPO = "https://bitbucket.org/acme/shop"
PR = REPO + "/pull-requests/9"
LIMIT = 64 * 1024
EXAMPLES = int(os.environ.get("BBRECEIVER_FUZZ_EXAMPLES", "500"))
# The same examples on every run, unless $BBRECEIVER_FUZZ_RANDOM is set.
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize="BBRECEIVER_FUZZ_RANDOM" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

TRIED = {"in memory": 0, "loopback": 0}


# -- talking HTTP/1.1 to a channel in memory -----------------------------


def parse_responses(data: bytes, head: bool = False
                    ) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
    """
    The HTTP/1.1 responses in C{data}, in order.
    """
    found = []
    while data:
        end = data.find(b"\r\n\r\n")
        assert end >= 0, "truncated response: {!r}".format(data[:300])
        lines = data[:end].split(b"\r\n")
        version, code = lines[0].split(b" ", 2)[:2]
        assert version in (b"HTTP/1.1", b"HTTP/1.0"), lines[0]
        headers: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(
                value.strip())
        rest = data[end + 4:]
        if head and not found:
            body, data = b"", rest
        elif b"content-length" in headers:
            size = int(headers[b"content-length"][0])
            body, data = rest[:size], rest[size:]
        elif headers.get(b"transfer-encoding") == [b"chunked"]:
            body = b""
            while True:
                size_end = rest.index(b"\r\n")
                size = int(rest[:size_end].split(b";")[0], 16)
                body += rest[size_end + 2:size_end + 2 + size]
                rest = rest[size_end + 2 + size + 2:]
                if size == 0:
                    break
            data = rest
        else:
            body, data = rest, b""
        found.append((int(code), headers, body))
    return found


class _Transport(StringTransport):
    """
    Like a socket's transport, it does not mind a producer unregistered
    twice (a channel closed by a bad request and then by its timeout).
    """

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = None


class Client:
    """
    One connection to a channel of C{harness}'s site, fed raw bytes.  Like
    a socket's, its transport only notes a close; the connection is lost
    when the test says so.
    """

    def __init__(self, harness: Harness) -> None:
        self.channel = harness.site.buildProtocol(
            IPv4Address("TCP", "192.0.2.7", 40000))
        self.transport = _Transport()
        self.channel.makeConnection(self.transport)
        self.lost = False

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def close(self) -> None:
        if not self.lost:
            self.lost = True
            self.channel.connectionLost(Failure(ConnectionDone()))


def request(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
            body: bytes, *, length: str = "exact") -> bytes:
    """
    A raw HTTP/1.1 request.  C{length}: C{exact}, C{none}, C{chunked},
    C{short} (a Content-Length below the body's), C{long} (above it).
    """
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: hooks.example"]
    lines += [name + b": " + value for name, value in headers]
    if length == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        middle = len(body) // 2
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part)
            for part in (body[:middle], body[middle:]) if part) + b"0\r\n\r\n"
    else:
        declared = {"exact": len(body), "short": max(len(body) // 2, 0),
                    "long": len(body) + 100}.get(length)
        if declared is not None:
            lines.append(b"Content-Length: %d" % declared)
        payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def signature(choice: str, body: bytes) -> bytes | None:
    """
    The X-Hub-Signature for C{body} of a kind: only C{valid},
    C{valid512} and C{upper} may be accepted.
    """
    mac = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return {
        "valid": b"sha256=" + mac.encode(),
        "valid512": sign(body, SECRET, "sha512"),
        "upper": b"sha256=" + mac.upper().encode(),
        "prefix-upper": b"SHA256=" + mac.encode(),
        "sha1": b"sha1=" + hmac.new(SECRET, body, "sha1").hexdigest().encode(),
        "other-secret": sign(body, b"not-the-secret"),
        "other-body": sign(body + b" ", SECRET),
        "truncated": b"sha256=" + mac[:-2].encode(),
        "extended": b"sha256=" + mac.encode() + b"00",
        "odd": b"sha256=" + mac[:-1].encode(),
        "spaces": b"sha256= " + mac.encode(),
        "bare": mac.encode(),
        "no-hex": b"sha256=" + b"z" * 64,
        "empty": b"",
        "absent": None,
    }[choice]


ACCEPTED = {"valid", "valid512", "upper"}
SIGNATURES = sorted(["valid", "valid512", "upper", "prefix-upper", "sha1",
                     "other-secret", "other-body", "truncated", "extended",
                     "odd", "spaces", "bare", "no-hex", "empty", "absent"])

# -- strategies ------------------------------------------------------------

NASTY = [
    "", " ", "\x00", "\ud800", "\udfff\ud800", "é", "\u202e", "%", "%00",
    "http://[", "http://[::1", "https://[::1]:99999/x", "https://bitbucket"
    ".org:99999/acme/shop", "https://bitbucket.org:-1/x", "https://bitbucket"
    ".org:abc/x", "https://bitbucket.org:/acme/shop", "git@:", "git@", ":",
    "ssh://", "://", "ssh://git@bitbucket.org:7999", "file:///etc/passwd",
    "https://user:pass@bitbucket.org/acme/shop", "HTTPS://BITBUCKET.ORG/ACME"
    "/SHOP", "https://bitbucket.org/acme/shop/", "https://bitbucket.org/acme/"
    "shop.git/", "https://xn--bitbcket-95a.org/acme/shop", "https://bitb\u00fc"
    "cket.org/a", "git@bitbucket.org:acme/shop.git", "https://" + "a" * 5000,
    "refs/heads/", "refs/tags/", "refs/heads/main", "refs/tags/v1.0.0",
    "refs/heads/\ud800", "main", "v" + "9" * 400 + ".0.0", "1.0.0-" + "a." * 500,
    REPO, PR, "https://bitbucket.org/acme/shop/pull-requests/9/",
]
KEYS = ["repository", "links", "html", "href", "push", "changes", "new",
        "old", "type", "name", "clone", "pullrequest", "pullRequest", "self",
        "ref", "id", "displayId", "refLimitExceeded", "eventKey", "target"]

scalars = (st.none() | st.booleans() | st.integers() |
           st.floats(allow_nan=False, allow_infinity=False) |
           st.text(max_size=12) | st.sampled_from(NASTY))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def maybe(good: Any) -> Any:
    """
    Mostly the well-typed value, sometimes anything.
    """
    return st.one_of(good, good, good, values)


def cloud_push() -> Any:
    new = st.fixed_dictionaries({
        "type": maybe(st.sampled_from(["branch", "tag", "named_branch"])),
        "name": maybe(st.sampled_from(["main", "v1.0.0"] + NASTY))})
    change = st.fixed_dictionaries({"new": maybe(new), "old": values})
    return st.fixed_dictionaries({
        "repository": maybe(st.fixed_dictionaries({"links": maybe(
            st.fixed_dictionaries({"html": maybe(st.fixed_dictionaries({
                "href": maybe(st.sampled_from([REPO] + NASTY))}))}))})),
        "push": maybe(st.fixed_dictionaries({"changes": maybe(
            st.lists(maybe(change), max_size=3))}))})


def server_push() -> Any:
    clone = st.fixed_dictionaries({
        "href": maybe(st.sampled_from([REPO] + NASTY)),
        "name": maybe(st.sampled_from(["http", "ssh"]))})
    change = st.fixed_dictionaries({
        "ref": maybe(st.fixed_dictionaries({
            "id": maybe(st.sampled_from(NASTY)),
            "type": maybe(st.sampled_from(["BRANCH", "TAG"]))})),
        "type": maybe(st.sampled_from(["ADD", "UPDATE", "DELETE"]))})
    return st.fixed_dictionaries({
        "eventKey": st.just("repo:refs_changed"),
        "refLimitExceeded": maybe(st.booleans()),
        "repository": maybe(st.fixed_dictionaries({"links": maybe(
            st.fixed_dictionaries({"clone": maybe(st.lists(
                maybe(clone), max_size=3))}))})),
        "changes": maybe(st.lists(maybe(change), max_size=3))})


def cloud_pr() -> Any:
    return st.fixed_dictionaries({"pullrequest": maybe(st.fixed_dictionaries({
        "links": maybe(st.fixed_dictionaries({"html": maybe(
            st.fixed_dictionaries({"href": maybe(st.sampled_from(
                [PR] + NASTY))}))}))}))})


def server_pr() -> Any:
    return st.fixed_dictionaries({"pullRequest": maybe(st.fixed_dictionaries({
        "links": maybe(st.fixed_dictionaries({"self": maybe(st.lists(
            maybe(st.fixed_dictionaries({"href": maybe(st.sampled_from(
                [PR] + NASTY))})), max_size=2))}))}))})


def documents() -> Any:
    """
    Near-deliveries of every handled shape, with any field replaced.
    """
    return st.one_of(cloud_push(), server_push(), cloud_pr(), server_pr(),
                     values)


@st.composite
def bodies(draw: Callable[..., Any]) -> bytes:
    """
    Encoded near-deliveries, sometimes damaged on the way.
    """
    if draw(st.integers(0, 9)) == 0:
        return bytes(draw(st.binary(max_size=300)))
    text = json.dumps(draw(documents()),
                      ensure_ascii=draw(st.booleans()))
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        body = json.dumps(json.loads(text)).encode("ascii")
    damage = draw(st.sampled_from(["none"] * 6 + [
        "truncate", "invalid-utf8", "bom", "duplicate", "trailing",
        "nan", "overlong"]))
    if damage == "truncate" and body:
        body = body[:draw(st.integers(0, len(body) - 1))]
    elif damage == "invalid-utf8":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from(
            [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + body[at:]
    elif damage == "bom":
        body = b"\xef\xbb\xbf" + body
    elif damage == "duplicate" and body.startswith(b"{") and len(body) > 2:
        body = b'{"repository": null, "push": 1, "pullrequest": [],' + \
            body[1:]
    elif damage == "trailing":
        body += b" {}"
    elif damage == "nan":
        body = body.replace(b"null", b"NaN", 1)
    elif damage == "overlong":
        body = body.replace(b"/", b"\xc0\xaf", 1)
    return body


token_chars = st.sampled_from(
    list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
header_names = st.one_of(
    st.sampled_from([b"Host", b"X-Event-Key", b"X-Hub-Signature"]),
    st.sampled_from([b"X-Event-Key", b"x-hub-signature", b"X-Request-UUID",
                     b"Content-Type", b"Content-Length", b"Transfer-Encoding",
                     b"Connection", b"Expect", b"Host", b"X-Forwarded-For"]),
    st.lists(token_chars, min_size=1, max_size=20).map(bytes),
    st.binary(min_size=1, max_size=20))
header_values = st.one_of(
    st.sampled_from([b"application/json", b"close", b"keep-alive",
                     b"100-continue", b"chunked", b"identity", b"-1", b"0",
                     b"99999999999999999999", b"repo:push", b"diagnostics:ping",
                     b"\xff\xfe", b" " * 100]),
    st.binary(max_size=60).filter(lambda v: b"\r" not in v and b"\n" not in v),
    st.binary(max_size=30))
paths = st.one_of(
    st.just(PATH.encode()),
    st.just(PATH.encode() + b"?x=1&y=%ff"),
    st.sampled_from([PATH.encode() + b"/", PATH.upper().encode(),
                     PATH.encode().replace(b"b", b"%62", 1),
                     b"/" + PATH.encode(), PATH.encode()[:-1],
                     PATH.encode() + b"/..", b"/bitbucket/../" + PATH.encode(),
                     b"*", b"http://hooks.example" + PATH.encode(), b"/",
                     b"/healthz", b"/readyz", b"/metrics", b"/bitbucket/",
                     b"/bitbucket/" + b"0" * 64, b"/%00", b"/\xff"]),
    st.binary(max_size=80))
methods = st.one_of(
    st.sampled_from([b"POST", b"POST", b"POST", b"GET", b"HEAD", b"PUT",
                     b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT",
                     b"post", b"P\x00ST"]),
    st.binary(min_size=1, max_size=8))
events = st.one_of(st.sampled_from(sorted(EVENTS)), st.sampled_from(sorted(
    EVENTS)), st.sampled_from(["", "repo:fork", "REPO:PUSH", " repo:push",
                               "pr:opened", "\u00e9"]), st.text(max_size=20))


# -- in memory -------------------------------------------------------------


class FuzzTests(SynchronousTestCase):
    """
    Hypothesis against the resource, in memory.
    """

    def setUp(self) -> None:
        self.failures: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if "log_failure" in event or event.get("isError"):
                self.failures.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        # how many bad inputs so far, for the closing note of a change
        self.addCleanup(lambda: record(self.id(), bad_inputs_in_memory=TRIED[
            "in memory"]))

    def harness(self, limits: Limits | None = None) -> Harness:
        h = Harness(limits or Limits(max_body_bytes=LIMIT,
                                     request_timeout_seconds=5))
        h.index.warehouses.upsert(warehouse(
            "kargo-demo", "shop", {"repoURL": REPO, "branch": "main"}))
        h.index.warehouses.upsert(warehouse(
            "kargo-demo", "shop-tags", {"repoURL": REPO + ".git",
                                        "commitSelectionStrategy": "SemVer"}))
        h.index.promotions.upsert(promotion("kargo-demo", "p", PR))
        return h

    def exchange(self, h: Harness, raw: bytes, *, head: bool = False,
                 complete: bool = True
                 ) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
        """
        Send C{raw} on a new connection; check and return the answers.
        """
        TRIED["in memory"] += 1
        client = Client(h)
        client.send(raw)
        if not complete and not client.closed:
            # what never ends is cut off by the request timeout
            h.reactor.advance(h.site.limits.request_timeout_seconds + 0.1)
            self.assertTrue(client.closed, raw[:200])
        output = client.transport.value()
        client.close()
        # what a closed channel left running would now go off
        h.reactor.advance(h.site.limits.request_timeout_seconds + 0.1)
        answers = parse_responses(output, head=head)
        for code, headers, body in answers:
            self.assertLess(code, 500, (raw[:300], output[:300]))
            for marker in [b"Traceback", b"Processing Failed",
                           b"Exception", b"File \""]:
                self.assertNotIn(marker, body)
            if headers.get(b"content-type") == [b"application/json"] and (
                    body):
                self.assertIsInstance(json.loads(body), dict)
        self.assertEqual(self.failures, [])
        self.assertEqual(h.site.connections, 0)
        return answers

    @FUZZ
    @given(method=methods, path=paths, event=events,
           signed=st.sampled_from(SIGNATURES), body=bodies(),
           extra=st.lists(st.tuples(header_names, header_values),
                          max_size=8),
           length=st.sampled_from(["exact"] * 6 + ["none", "chunked",
                                                   "short", "long"]))
    def test_requests(self, method: bytes, path: bytes, event: str,
                      signed: str, body: bytes,
                      extra: list[tuple[bytes, bytes]], length: str) -> None:
        """
        Any request: never a 5xx, a traceback or a logged failure; a
        refresh only for a POST to the receiver path with a valid signature
        over exactly the body received.
        """
        h = self.harness()
        headers = [(b"X-Event-Key", event.encode("utf-8", "surrogatepass"))]
        value = signature(signed, body)
        if value is not None:
            headers.append((b"X-Hub-Signature", value))
        headers += extra
        raw = request(method, path, headers, body, length=length)
        self.exchange(h, raw, head=method == b"HEAD",
                      complete=length != "long")
        if h.refresher.calls:
            self.assertEqual(method, b"POST")
            self.assertEqual(path.split(b"?")[0], PATH.encode())
            self.assertIn(signed, ACCEPTED)
            self.assertIn(length, ("exact", "none", "chunked"))
            self.assertLessEqual(len(h.refresher.calls), 1)

    @FUZZ
    @given(event=st.sampled_from(sorted(EVENTS)), body=bodies())
    def test_signed_bodies(self, event: str, body: bytes) -> None:
        """
        Authentic deliveries of any body: 200 (refreshed or ignored) or 400
        (invalid body), never anything else, and a 400 refreshes nothing.
        """
        h = self.harness()
        raw = request(b"POST", PATH.encode(), [
            (b"X-Event-Key", event.encode()),
            (b"X-Hub-Signature", sign(body, SECRET)),
            (b"Content-Type", b"application/json")], body)
        [(code, _, answer)] = self.exchange(h, raw)
        self.assertIn(code, (200, 400), answer)
        if code == 400:
            self.assertEqual(json.loads(answer),
                             {"error": "invalid request body"})
            self.assertEqual(h.refresher.calls, [])

    @FUZZ
    @given(value=st.binary(max_size=200) | st.sampled_from([
        b"sha256=" + b"0" * 64, b"sha512=" + b"0" * 128, b"sha256=0",
        b"sha256==", b"=", b"sha256", b"sha384=" + b"0" * 96]))
    def test_signature_values(self, value: bytes) -> None:
        """
        No X-Hub-Signature but the right one lets a delivery through.
        """
        h = self.harness()
        body = json.dumps({"push": {"changes": [{"new": {
            "type": "branch", "name": "main"}}]}, "repository": {
                "links": {"html": {"href": REPO}}}}).encode()
        good = verify_signature(value, body, SECRET)
        raw = request(b"POST", PATH.encode(), [
            (b"X-Event-Key", b"repo:push"),
            (b"X-Hub-Signature", value.replace(b"\r", b"").replace(
                b"\n", b""))], body)
        answers = self.exchange(h, raw)
        self.assertEqual(bool(h.refresher.calls), good)
        if answers and answers[0][0] == 401:
            self.assertEqual(h.refresher.calls, [])

    # -- hand-made cases -------------------------------------------------

    def signed(self, h: Harness, body: bytes, event: str = "repo:push",
               length: str = "exact"
               ) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
        return self.exchange(h, request(b"POST", PATH.encode(), [
            (b"X-Event-Key", event.encode()),
            (b"X-Hub-Signature", sign(body, SECRET))], body, length=length))

    def test_deeply_nested(self) -> None:
        h = self.harness()
        depth = 30000
        for body in [b"[" * depth + b"]" * depth,
                     b'{"a":' * depth + b"1" + b"}" * depth,
                     b'{"push": {"changes": ' + b"[" * depth + b"]" * depth
                     + b"}}",
                     b'{"repository": ' + b'{"links":' * depth + b"{}"
                     + b"}" * depth + b"}",
                     b"[" * LIMIT]:
            for event in ["repo:push", "repo:refs_changed", "pr:merged",
                          "pullrequest:fulfilled"]:
                [(code, _, answer)] = self.signed(h, body[:LIMIT], event)
                self.assertEqual((code, json.loads(answer)),
                                 (400, {"error": "invalid request body"}))
        self.assertEqual(h.refresher.calls, [])

    def test_huge_documents(self) -> None:
        """
        At the limit: parsed (a long list of changes matches once); one
        byte over: 413 by Content-Length and by a chunked body.
        """
        h = self.harness()
        change = {"new": {"type": "branch", "name": "main"}}
        document = {"repository": {"links": {"html": {"href": REPO}}},
                    "push": {"changes": [change] * 1400}}
        body = json.dumps(document).encode()
        self.assertLess(len(body), LIMIT)
        body += b" " * (LIMIT - len(body))
        [(code, _, answer)] = self.signed(h, body)
        self.assertEqual((code, json.loads(answer)),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        for length in ["exact", "chunked"]:
            [(code, _, answer)] = self.signed(h, body + b" ", length=length)
            self.assertEqual(code, 413)
        # many small strings, keys and numbers: still one parse, no error
        wide = json.dumps({"k{}".format(i): [i, "x" * 5]
                           for i in range(2000)}).encode()
        [(code, _, _)] = self.signed(h, wide)
        self.assertEqual(code, 200)
        self.assertEqual(len(h.refresher.calls), 2)

    def test_invalid_utf8(self) -> None:
        h = self.harness()
        good = json.dumps({"repository": {"links": {"html": {
            "href": REPO}}}}).encode()
        for bad in [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                    b"\xe2\x82", b"\x80"]:
            body = good.replace(b"acme", b"acme" + bad)
            [(code, _, _)] = self.signed(h, body)
            self.assertEqual(code, 400, bad)
        # escaped lone surrogates are valid JSON, and harmless
        for text in ["\\ud800", "\\udfff", "\\ud83d"]:
            body = good.replace(b"acme", b"acme" + text.encode())
            [(code, _, _)] = self.signed(h, body)
            self.assertEqual(code, 200, text)
            body = json.dumps({"push": {"changes": [{"new": {
                "type": "branch", "name": "x"}}]}}).encode().replace(
                    b'"x"', b'"\\ud800"')
            [(code, _, _)] = self.signed(h, body)
            self.assertEqual(code, 200)
        self.assertEqual(h.refresher.calls, [(), (), (), (), (), ()])

    def test_duplicate_keys(self) -> None:
        """
        The last of duplicate keys counts, as for every Python and Go JSON
        parser: what was signed is what is read, so no parser confusion
        can smuggle anything past the signature.
        """
        h = self.harness()
        push = (b'{"repository": {"links": {"html": {"href": "%s"}}}, '
                b'"push": {"changes": [{"new": {"type": "branch", '
                b'"name": "main"}}]}}' % REPO.encode())
        first = push[:-1] + b', "push": null}'
        last = b'{"push": null, ' + push[1:]
        [(code, _, answer)] = self.signed(h, first)
        self.assertEqual(json.loads(answer), {"msg": "refreshed 0 "
                                                     "warehouse(s)"})
        [(code, _, answer)] = self.signed(h, last)
        self.assertEqual(json.loads(answer), {"msg": "refreshed 1 "
                                                     "warehouse(s)"})

    def test_lying_content_length(self) -> None:
        """
        Longer than the body: nothing is answered and the connection is
        closed at the request timeout.  Shorter: the signature covers only
        what the length says (401), and the rest is not a request (400).
        """
        h = self.harness()
        body = json.dumps({"repository": {"links": {"html": {
            "href": REPO}}}, "push": {"changes": [{"new": {
                "type": "branch", "name": "main"}}]}}).encode()
        raw = request(b"POST", PATH.encode(), [
            (b"X-Event-Key", b"repo:push"),
            (b"X-Hub-Signature", sign(body, SECRET))], body, length="long")
        self.assertEqual(self.exchange(h, raw, complete=False), [])
        raw = request(b"POST", PATH.encode(), [
            (b"X-Event-Key", b"repo:push"),
            (b"X-Hub-Signature", sign(body, SECRET))], body, length="short")
        answers = self.exchange(h, raw)
        self.assertEqual([code for code, _, _ in answers][:1], [401])
        # a length no integer parser should accept
        for declared in [b"-1", b"1e3", b"0x10", b"+5", b"5, 5", b"999999"
                         b"999999999999999"]:
            raw = (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                   b"X-Event-Key: repo:push\r\nContent-Length: " + declared
                   + b"\r\n\r\n" + body)
            answers = self.exchange(h, raw, complete=False)
            self.assertIn([code for code, _, _ in answers][:1],
                          ([], [400], [401], [413]), declared)
        self.assertEqual(h.refresher.calls, [])

    def test_many_headers(self) -> None:
        """
        Past Twisted's limits (500 headers, 16 KiB of them) a request is
        refused with its 400, or its connection closed, before any of it
        reaches the app.  Below them, a pile of invalid signatures is just
        as unauthorized as one.
        """
        h = self.harness()
        body = b"{}"
        base = [(b"X-Event-Key", b"repo:push"),
                (b"X-Hub-Signature", sign(body, SECRET))]
        for extra in [[(b"X-A%d" % i, b"1") for i in range(600)],
                      [(b"X-A%d" % i, b"a" * 100) for i in range(200)],
                      [(b"X-Big", b"a" * 20000)]]:
            answers = self.exchange(h, request(b"POST", PATH.encode(),
                                               base + extra, body))
            self.assertIn([code for code, _, _ in answers], ([], [400]))
        answers = self.exchange(h, request(
            b"POST", PATH.encode(), [(b"X-Event-Key", b"repo:push")] + [
                (b"X-Hub-Signature", b"sha256=%064x" % i)
                for i in range(150)], body))
        self.assertEqual([code for code, _, _ in answers], [401])
        self.assertEqual(h.refresher.calls, [])

    def test_host_header(self) -> None:
        """
        The Host header plays no part, but Klein decodes it (UTF-8, then
        IDNA): one that is not a host name is malformed HTTP, answered 400
        in JSON, with no traceback logged and no refresh.
        """
        h = self.harness()
        body = json.dumps({"repository": {"links": {"html": {
            "href": REPO}}}, "push": {"changes": [{"new": {
                "type": "branch", "name": "main"}}]}}).encode()
        headers = [(b"X-Event-Key", b"repo:push"),
                   (b"X-Hub-Signature", sign(body, SECRET))]

        def answer(host: bytes, path: bytes = PATH.encode()) -> Any:
            raw = request(b"POST" if path == PATH.encode() else b"GET",
                          path, headers, body).replace(
                b"Host: hooks.example", b"Host: " + host)
            [(code, _, answer)] = self.exchange(h, raw)
            return code, json.loads(answer)

        for host in [b"\xff", b"h\xc3", b"\xed\xa0\x80:80", b"a" * 64,
                     b"a..b", b"x." + b"y" * 300 + b":8080"]:
            for path in [PATH.encode(), b"/healthz", b"/readyz"]:
                self.assertEqual(answer(host, path),
                                 (400, {"error": "bad request"}), host)
        self.assertEqual(h.refresher.calls, [])
        self.assertEqual(h.observer.seen, [
            ("kargo-demo/bb-wh-receiver", "repo:push", 400)] * 6)
        # odd but harmless host names change nothing
        for host in [b"", b"\xc3\xa9t\xc3\xa9", b"x:notaport", b"[::1]:1",
                     b"HOOKS.EXAMPLE:443", b"a" * 63]:
            self.assertEqual(answer(host),
                             (200, {"msg": "refreshed 1 warehouse(s)"}), host)

    def test_constant_time_comparison(self) -> None:
        """
        Every well-formed signature is compared with
        C{hmac.compare_digest} against the full MAC, whatever the number of
        right leading bytes; what is refused before that depends only on
        the header's syntax, never on the secret.
        """
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        self.patch(bitbucket.hmac, "compare_digest", spy)
        body = b'{"x": 1}'
        mac = hmac.new(SECRET, body, hashlib.sha256).digest()
        for right in [0, 1, 16, 31, 32]:
            claimed = mac[:right] + bytes(32 - right)
            if right == 32:
                claimed = mac
            header = b"sha256=" + claimed.hex().encode()
            self.assertEqual(verify_signature(header, body, SECRET),
                             right == 32)
            self.assertEqual(calls[-1], (mac, claimed))
        self.assertEqual(len(calls), 5)
        for header in [b"sha1=00", b"md5=00", b"sha256=zz", b"sha256", b""]:
            self.assertFalse(verify_signature(header, body, SECRET))
        self.assertEqual(len(calls), 5)

# -- on loopback -------------------------------------------------------------

CONFIG = """
listen: "{listen}"
kubernetes:
  server: "{api}"
receivers:
  - project: kargo-demo
    name: abuse
    secret:
      value: mysupersecrettoken
limits:
  maxBodyBytes: 4096
  requestTimeoutSeconds: 1.5
  maxConnections: 16
"""
TIMEOUT = 1.5
CAP = 16
LOOPBACK_PATH = "/bitbucket/" + hashlib.sha256(
    b"kargo-demoabusemysupersecrettoken").hexdigest()


class RawClient(Protocol):
    """
    A connection that sends what it is told and records when it ends.
    """

    def __init__(self) -> None:
        self.received = b""
        self.opened = 0.0
        self.ended: Deferred[float] = Deferred()

    def connectionMade(self) -> None:
        self.opened = time.time()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure) -> None:
        self.ended.callback(time.time())


class LoopbackAbuseTests(TestCase):
    """
    The channel's defences against real sockets.
    """

    timeout = 60

    async def daemon(self) -> Daemon:
        folder = FilePath(self.mktemp())
        folder.makedirs()
        daemon = Daemon(folder, CONFIG)
        daemon.fake.upsert(warehouse("kargo-demo", "shop", {
            "repoURL": REPO, "branch": "main"}))
        self.addCleanup(self.stopped, daemon)
        await daemon.start()
        daemon.fake.clear_requests()
        return daemon

    async def stopped(self, daemon: Daemon) -> None:
        await daemon.stop()
        output = bytes(daemon.output.out) + bytes(daemon.output.err)
        self.assertNotIn(b"Traceback", output)
        # nothing that came in unsigned or incomplete refreshed anything
        self.assertEqual(daemon.fake.requests_matching(method="PATCH"),
                         self.allowed_patches)

    allowed_patches: list[Any] = []

    async def connect(self, daemon: Daemon) -> RawClient:
        TRIED["loopback"] += 1
        client = RawClient()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port), client)
        self.addCleanup(self.closed, client)
        return client

    @staticmethod
    def closed(client: RawClient) -> None:
        if client.transport is not None and not client.ended.called:
            client.transport.abortConnection()

    async def ended_within(self, client: RawClient, seconds: float) -> float:
        """
        Wait (at most C{seconds}) for the daemon to close C{client}; return
        how long the connection lived.
        """
        waited = 0.0
        while not client.ended.called and waited < seconds:
            await sleep(0.05)
            waited += 0.05
        self.assertTrue(client.ended.called, "the connection is still open")
        return client.ended.result - client.opened

    def delivery(self, body: bytes | None = None, *,
                 length: int | None = None) -> bytes:
        body = body if body is not None else json.dumps({
            "repository": {"links": {"html": {"href": REPO}}},
            "push": {"changes": [{"new": {"type": "branch",
                                          "name": "main"}}]}}).encode()
        return (b"POST " + LOOPBACK_PATH.encode() + b" HTTP/1.1\r\n"
                b"Host: x\r\nX-Event-Key: repo:push\r\nX-Hub-Signature: "
                + sign(body, b"mysupersecrettoken") + b"\r\nContent-Length: "
                + str(len(body) if length is None else length).encode()
                + b"\r\n\r\n" + body)

    async def test_slow_drip_and_idle(self) -> None:
        """
        A valid delivery dripped a few bytes at a time, an idle connection,
        a Content-Length promising more than comes, and a keep-alive
        connection left idle after its answer: each is closed by the
        request timeout, and none refreshed anything.
        """
        daemon = await self.daemon()
        raw = self.delivery()
        drip = await self.connect(daemon)
        idle = await self.connect(daemon)
        liar = await self.connect(daemon)
        liar.transport.write(self.delivery(length=1000))
        kept = await self.connect(daemon)
        kept.transport.write(self.delivery())
        odd = await self.connect(daemon)
        odd.transport.write(self.delivery().replace(b"Host: x",
                                                    b"Host: \xff\xfe"))
        sent = 0
        while not drip.ended.called and sent < len(raw):
            drip.transport.write(raw[sent:sent + 4])
            sent += 4
            await sleep(0.1)
        self.assertLess(sent, len(raw))  # cut off before the end
        lived = await self.ended_within(drip, 1)
        self.assertTrue(TIMEOUT - 0.2 < lived < TIMEOUT + 1.5, lived)
        for client in [idle, liar, kept]:
            lived = await self.ended_within(client, TIMEOUT + 1.5)
            self.assertTrue(TIMEOUT - 0.2 < lived < 2 * TIMEOUT + 1, lived)
        self.assertEqual(drip.received + idle.received + liar.received, b"")
        # the complete one was answered before the idle timeout closed it
        self.assertTrue(kept.received.startswith(b"HTTP/1.1 200 "),
                        kept.received)
        # and the one with a Host that is no host name, refused (with no
        # traceback in the log: see stopped())
        self.assertTrue(odd.received.startswith(b"HTTP/1.1 400 "),
                        odd.received)
        self.assertIn(b'{"error":"bad request"}', odd.received)
        self.allowed_patches = daemon.fake.requests_matching(method="PATCH")
        self.assertEqual(len(self.allowed_patches), 1)

    async def test_connection_cap(self) -> None:
        """
        Beyond maxConnections, new connections are closed at once; the
        daemon keeps serving those it holds and serves new ones as soon as
        some close.  A flood of connections changes nothing.
        """
        daemon = await self.daemon()
        held = [await self.connect(daemon) for _ in range(CAP)]
        await sleep(0.1)
        self.assertFalse(any(c.ended.called for c in held))
        extra = await self.connect(daemon)
        self.assertLess(await self.ended_within(extra, 1), 0.5)
        self.assertEqual(extra.received, b"")
        # one of the held connections still gets its delivery answered
        held[0].transport.write(self.delivery())
        for _ in range(40):
            if held[0].received:
                break
            await sleep(0.05)
        self.assertTrue(held[0].received.startswith(b"HTTP/1.1 200 "),
                        held[0].received)
        for client in held:
            client.transport.abortConnection()
        await sleep(0.2)
        # a flood: some are refused, the daemon survives and recovers
        flood = [await self.connect(daemon) for _ in range(8 * CAP)]
        await sleep(0.3)
        alive = [c for c in flood if not c.ended.called]
        self.assertLessEqual(len(alive), CAP)
        for client in flood:
            if not client.ended.called:
                client.transport.abortConnection()
        await sleep(0.2)
        code, answer = await daemon.deliver(
            LOOPBACK_PATH, "repo:push", self.delivery().split(
                b"\r\n\r\n", 1)[1], b"mysupersecrettoken")
        self.assertEqual((code, answer),
                         (200, {"msg": "refreshed 1 warehouse(s)"}))
        self.allowed_patches = daemon.fake.requests_matching(method="PATCH")
        self.assertEqual(len(self.allowed_patches), 2)
        record(self.id(), bad_inputs_loopback=TRIED["loopback"])
