"""
The refresher: sends the refresh PATCHes a delivery calls for, at most
C{concurrency} at a time, retrying what can be retried, and tells the
delivery by its response deadline how things stand (SPEC §4 rows 11-13).

Refreshes of one object asked for while an earlier PATCH for it is still
waiting to be sent are merged into that PATCH: its token is taken when it is
sent, which is after every delivery it serves arrived, so each of them still
gets a refresh written after it arrived, and a burst of pushes does not cost
one PATCH per push per Warehouse.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from bbreceiver.plan import Target

ANNOTATION = "kargo.akuity.io/refresh"

log = Logger()


class TokenSource:
    """
    Refresh tokens: UTC RFC 3339 timestamps with exactly six fractional
    digits, strictly increasing within the process, so that no two refreshes
    ever write the same value (Kargo reconciles only when it changes).
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> str:
        """
        A token never given out before.
        """
        micros = max(int(self._clock.seconds() * 1_000_000), self._last + 1)
        self._last = micros
        seconds, fraction = divmod(micros, 1_000_000)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".{:06d}Z".format(
            fraction
        )


def refresh_patch(token: str) -> bytes:
    """
    The JSON merge patch that refreshes an object.
    """
    return json.dumps(
        {"metadata": {"annotations": {ANNOTATION: token}}},
        separators=(",", ":"),
    ).encode("ascii")


GONE = "gone"
RETRY = "retry"
FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    """
    What a failed PATCH means: C{GONE} (the object was deleted: done),
    C{RETRY} (after at least C{retry_after} seconds, if given) or C{FAIL}.
    """

    kind: str
    retry_after: float | None = None
    reason: str = ""


Patcher = Callable[[Target, bytes], Awaitable[Any]]
"""
Sends one merge patch for one target; raises on failure.
"""

Classifier = Callable[[BaseException], Verdict]
"""
Says what a patcher's exception means.
"""

ResultObserver = Callable[[Target, str], None]
"""
Told the final result of every PATCH job: C{"success"}, C{"gone"} or
C{"failure"}.
"""

# Job states.
_QUEUED = "queued"
_SENDING = "sending"
_WAITING = "waiting"
_DONE = "done"
_FAILED = "failed"


class _Job:
    """
    The refresh of one object, possibly on behalf of several deliveries.
    """

    def __init__(self, target: Target, hard_end: float) -> None:
        self.target = target
        self.hard_end = hard_end
        self.state = _QUEUED
        self.attempts = 0
        self.waiters: list[_Waiter] = []


class _Waiter:
    """
    One delivery's interest in one object's refresh; follows the job it is
    attached to when jobs merge.
    """

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.finished: Deferred[None] = Deferred()


@dataclass(frozen=True)
class Outcome:
    """
    How a delivery's refreshes stand when it must be answered.

    @ivar total: objects to refresh.
    @ivar failed: refreshes that failed, or are waiting to be retried.
    @ivar pending: refreshes still queued or in flight.
    """

    total: int
    failed: int
    pending: int


class Refresher:
    """
    Runs refresh jobs for deliveries.
    """

    def __init__(
        self,
        patch: Patcher,
        classify: Classifier,
        clock: IReactorTime,
        *,
        concurrency: int,
        deadline: float,
        observe: ResultObserver | None = None,
        random: Callable[[], float] = random.random,
    ) -> None:
        self._patch = patch
        self._classify = classify
        self._clock = clock
        self._deadline = deadline
        self._observe = observe
        self._random = random
        self._semaphore = DeferredSemaphore(concurrency)
        self._tokens = TokenSource(clock)
        self._unsent: dict[Target, _Job] = {}
        self._jobs: set[_Job] = set()

    @property
    def busy(self) -> int:
        """
        Refresh jobs not yet finished.
        """
        return len(self._jobs)

    async def refresh(self, targets: Iterable[Target]) -> Outcome:
        """
        Refresh C{targets}; return when all are done or the response
        deadline comes, whichever is first.  What is left goes on in the
        background for at most one more deadline.
        """
        start = self._clock.seconds()
        waiters = [self._submit(target, start) for target in targets]
        if waiters:
            answer: Deferred[None] = Deferred()

            def ready(_: object = None) -> None:
                if not answer.called:
                    answer.callback(None)

            DeferredList(
                [w.finished for w in waiters], consumeErrors=True
            ).addCallback(ready)
            timer = self._clock.callLater(self._deadline, ready)
            await answer
            if timer.active():
                timer.cancel()
        failed = pending = 0
        for waiter in waiters:
            state = waiter.job.state
            if state in (_FAILED, _WAITING):
                failed += 1
            elif state in (_QUEUED, _SENDING):
                pending += 1
        return Outcome(total=len(waiters), failed=failed, pending=pending)

    def _submit(self, target: Target, start: float) -> _Waiter:
        hard_end = start + 2 * self._deadline
        job = self._unsent.get(target)
        fresh = job is None
        if job is None:
            job = _Job(target, hard_end)
            self._unsent[target] = job
            self._jobs.add(job)
        else:
            job.hard_end = max(job.hard_end, hard_end)
        waiter = _Waiter(job)
        job.waiters.append(waiter)
        if fresh:
            self._run(job)
        return waiter

    def _run(self, job: _Job) -> None:
        job.state = _QUEUED
        d = self._semaphore.run(self._send, job)
        d.addErrback(lambda f: log.failure(
            "refresh of {namespace}/{name} crashed", f,
            namespace=job.target.namespace, name=job.target.name))

    async def _send(self, job: _Job) -> None:
        if job.state != _QUEUED:
            return
        if self._clock.seconds() >= job.hard_end:
            self._finish(job, _FAILED, "failure")
            return
        if self._unsent.get(job.target) is job:
            del self._unsent[job.target]
        job.state = _SENDING
        job.attempts += 1
        body = refresh_patch(self._tokens.next())
        sending = Deferred.fromCoroutine(self._call(job.target, body))
        limit = self._clock.callLater(
            max(job.hard_end - self._clock.seconds(), 0), sending.cancel
        )
        try:
            await sending
        except BaseException as e:
            verdict = (
                Verdict(RETRY, reason="no answer by the deadline")
                if isinstance(e, CancelledError)
                else self._classify(e)
            )
            self._failed(job, verdict)
        else:
            self._finish(job, _DONE, "success")
        finally:
            if limit.active():
                limit.cancel()

    async def _call(self, target: Target, body: bytes) -> Any:
        return await self._patch(target, body)

    def _failed(self, job: _Job, verdict: Verdict) -> None:
        target = job.target
        if verdict.kind == GONE:
            self._finish(job, _DONE, "gone")
            return
        delay = min(0.25 * 2 ** (job.attempts - 1), 4.0) * (
            0.5 + self._random()
        )
        if verdict.retry_after is not None:
            delay = max(delay, verdict.retry_after)
        now = self._clock.seconds()
        if verdict.kind != RETRY or now + delay >= job.hard_end:
            log.warn(
                "refresh of {kind} {namespace}/{name} failed after "
                "{attempts} attempt(s): {reason}",
                kind=target.kind, namespace=target.namespace,
                name=target.name, attempts=job.attempts,
                reason=verdict.reason,
            )
            self._finish(job, _FAILED, "failure")
            return
        log.info(
            "refresh of {kind} {namespace}/{name} will be retried in "
            "{delay:.2f}s: {reason}",
            kind=target.kind, namespace=target.namespace, name=target.name,
            delay=delay, reason=verdict.reason,
        )
        other = self._unsent.get(target)
        if other is not None:
            # A later delivery already queued this object: that PATCH
            # serves us too.
            other.hard_end = max(other.hard_end, job.hard_end)
            for waiter in job.waiters:
                waiter.job = other
            other.waiters.extend(job.waiters)
            job.waiters = []
            self._jobs.discard(job)
            job.state = _DONE
            return
        self._unsent[target] = job
        job.state = _WAITING
        self._clock.callLater(delay, self._retry, job)

    def _retry(self, job: _Job) -> None:
        if job.state == _WAITING:
            self._run(job)

    def _finish(self, job: _Job, state: str, result: str) -> None:
        job.state = state
        if self._unsent.get(job.target) is job:
            del self._unsent[job.target]
        self._jobs.discard(job)
        if self._observe is not None:
            self._observe(job.target, result)
        waiters, job.waiters = job.waiters, []
        for waiter in waiters:
            waiter.finished.callback(None)

    def when_idle(self) -> Deferred[None]:
        """
        Fires once every job has finished (each is bounded by two response
        deadlines): what a graceful shutdown waits for.
        """
        pending = [w.finished for job in self._jobs for w in job.waiters]
        return DeferredList(pending, consumeErrors=True).addCallback(
            lambda _: None
        )


