"""
The refresher: bounded, retrying PATCHes and the outcome at the deadline
(SPEC §1, §4 rows 11-13).
"""

import json
import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver.plan import WAREHOUSE, Target
from bbreceiver.refresh import (
    FAIL,
    GONE,
    RETRY,
    Outcome,
    Refresher,
    TokenSource,
    Verdict,
    refresh_patch,
)


class Failed(Exception):
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


def classify(error: BaseException) -> Verdict:
    if isinstance(error, Failed):
        return error.verdict
    return Verdict(FAIL, reason=repr(error))


class FakeAPI:
    """
    Answers PATCHes when the test says so.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Target, bytes, Deferred[None]]] = []

    def patch(self, target: Target, body: bytes) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.calls.append((target, body, d))
        return d

    def answer(self, index: int, error: Exception | None = None) -> None:
        d = self.calls[index][2]
        if error is None:
            d.callback(None)
        else:
            d.errback(error)


def targets(*names: str) -> list[Target]:
    return [Target(WAREHOUSE, "ns", name) for name in names]


class TokenTests(SynchronousTestCase):
    def test_format_and_distinct(self) -> None:
        clock = Clock()
        clock.advance(1795737599.123456)
        tokens = TokenSource(clock)
        first, second = tokens.next(), tokens.next()
        self.assertEqual(first, "2026-11-26T23:59:59.123456Z")
        self.assertEqual(second, "2026-11-26T23:59:59.123457Z")
        clock.advance(0.5)
        self.assertEqual(tokens.next(), "2026-11-26T23:59:59.623456Z")

    def test_pattern(self) -> None:
        tokens = TokenSource(Clock())
        pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        seen = {tokens.next() for _ in range(1000)}
        self.assertEqual(len(seen), 1000)
        self.assertTrue(all(pattern.match(t) for t in seen))

    def test_patch(self) -> None:
        self.assertEqual(
            refresh_patch("2026-11-26T23:59:59.123456Z"),
            b'{"metadata":{"annotations":{"kargo.akuity.io/refresh":'
            b'"2026-11-26T23:59:59.123456Z"}}}')


class RefresherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.api = FakeAPI()
        self.results: list[tuple[str, str]] = []
        self.refresher = Refresher(
            self.api.patch, classify, self.clock, concurrency=2, deadline=8,
            observe=lambda t, r: self.results.append((t.name, r)),
            random=lambda: 0.5)

    def refresh(self, *names: str) -> Deferred[Outcome]:
        return Deferred.fromCoroutine(self.refresher.refresh(targets(*names)))

    def test_nothing(self) -> None:
        self.assertEqual(self.successResultOf(self.refresh()),
                         Outcome(0, 0, 0))

    def test_all_refreshed(self) -> None:
        d = self.refresh("a", "b", "c")
        # at most two in flight
        self.assertEqual(len(self.api.calls), 2)
        self.api.answer(0)
        self.assertEqual(len(self.api.calls), 3)
        self.api.answer(1)
        self.assertNoResult(d)
        self.api.answer(2)
        self.assertEqual(self.successResultOf(d), Outcome(3, 0, 0))
        self.assertEqual(sorted(self.results),
                         [("a", "success"), ("b", "success"),
                          ("c", "success")])
        bodies = [json.loads(body) for _, body, _ in self.api.calls]
        tokens = {b["metadata"]["annotations"]["kargo.akuity.io/refresh"]
                  for b in bodies}
        self.assertEqual(len(tokens), 3)

    def test_gone_counts_as_done(self) -> None:
        d = self.refresh("a")
        self.api.answer(0, Failed(Verdict(GONE)))
        self.assertEqual(self.successResultOf(d), Outcome(1, 0, 0))
        self.assertEqual(self.results, [("a", "gone")])

    def test_final_failure(self) -> None:
        d = self.refresh("a", "b")
        self.api.answer(0, Failed(Verdict(FAIL, reason="forbidden")))
        self.api.answer(1)
        self.assertEqual(self.successResultOf(d), Outcome(2, 1, 0))
        self.assertEqual(sorted(self.results),
                         [("a", "failure"), ("b", "success")])

    def test_retry_then_success(self) -> None:
        d = self.refresh("a")
        self.api.answer(0, Failed(Verdict(RETRY, retry_after=2)))
        self.assertEqual(len(self.api.calls), 1)
        self.clock.advance(1.9)
        self.assertEqual(len(self.api.calls), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.api.calls), 2)
        self.api.answer(1)
        self.assertEqual(self.successResultOf(d), Outcome(1, 0, 0))

    def test_waiting_to_retry_at_deadline_is_a_failure(self) -> None:
        d = self.refresh("a")
        self.api.answer(0, Failed(Verdict(RETRY, retry_after=7.5)))
        self.clock.advance(7.5)
        self.api.answer(1, Failed(Verdict(RETRY, retry_after=1)))
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), Outcome(1, 1, 0))
        # it goes on in the background, within a second deadline
        self.clock.advance(0.5)
        self.assertEqual(len(self.api.calls), 3)
        self.api.answer(2)
        self.assertEqual(self.results, [("a", "success")])

    def test_in_flight_at_deadline(self) -> None:
        d = self.refresh("a", "b")
        self.api.answer(0)
        self.clock.advance(8)
        self.assertEqual(self.successResultOf(d), Outcome(2, 0, 1))
        self.api.answer(1)
        self.assertEqual(self.results, [("a", "success"), ("b", "success")])
        self.assertEqual(self.refresher.busy, 0)

    def test_hung_patch_given_up(self) -> None:
        d = self.refresh("a")
        self.clock.advance(8)
        self.assertEqual(self.successResultOf(d), Outcome(1, 0, 1))
        self.clock.advance(8)
        # cancelled at the second deadline; no time left to retry
        self.assertEqual(self.results, [("a", "failure")])
        self.assertEqual(self.refresher.busy, 0)

    def test_queued_refreshes_merge(self) -> None:
        """
        A refresh asked for while one for the same object is still queued
        rides on it; one being sent does not.
        """
        first = self.refresh("a", "b", "c")
        second = self.refresh("c", "a")
        # a and b are being sent; c is queued once for both deliveries; a is
        # queued again because its first PATCH had already gone out
        self.api.answer(0)
        self.api.answer(1)
        self.api.answer(2)
        self.api.answer(3)
        self.assertEqual(len(self.api.calls), 4)
        self.assertEqual([c[0].name for c in self.api.calls],
                         ["a", "b", "c", "a"])
        self.assertEqual(self.successResultOf(first), Outcome(3, 0, 0))
        self.assertEqual(self.successResultOf(second), Outcome(2, 0, 0))

    def test_retry_merges_with_queued(self) -> None:
        first = self.refresh("a")
        self.api.answer(0, Failed(Verdict(RETRY, retry_after=1)))
        second = self.refresh("a")  # rides on the retry
        self.clock.advance(1)
        self.assertEqual(len(self.api.calls), 2)
        self.api.answer(1)
        self.assertEqual(self.successResultOf(first), Outcome(1, 0, 0))
        self.assertEqual(self.successResultOf(second), Outcome(1, 0, 0))
        self.clock.advance(20)
        self.assertEqual(len(self.api.calls), 2)

    def test_unexpected_error(self) -> None:
        def broken(target: Target, body: bytes) -> Any:
            raise RuntimeError("bug")

        refresher = Refresher(broken, classify, self.clock, concurrency=1,
                              deadline=8)
        d = Deferred.fromCoroutine(refresher.refresh(targets("a")))
        self.assertEqual(self.successResultOf(d), Outcome(1, 1, 0))
