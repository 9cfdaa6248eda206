"""
List + watch of one Kubernetes collection, kept in step with a sink.

A :class:`Reflector` is client-go's reflector cut down to what the daemon
needs (SPEC §6): it lists the collection page by page, hands the complete
result to its sink, then watches from the list's ``resourceVersion`` and
passes each change on, for as long as it runs.  What it does when the stream
ends decides whether the index stays right:

- a clean close (the server's ``timeoutSeconds``) re-watches at once from
  the last resource version, without relisting;
- a 410 (``Expired``/``Gone``, as an ``ERROR`` event or an HTTP status) means
  the history needed to resume is gone: relist, and let the sink drop what
  the new list no longer holds (deletes missed while away);
- any sign that the server's history went backwards (an event older than
  what was already seen, a cache that has not reached our resource version,
  a list older than the last one) relists from a consistent read;
- a stream silent past ``inactivity_seconds`` (no event, no bookmark, no
  byte) is aborted and resumed, since a dead peer never says so;
- every other failure waits a jittered exponential backoff (0.5 s doubling
  to ``backoff_max_seconds``, back to the start after a healthy stream), so
  nothing ever loops tightly against a sick server.

Restarts are reported to ``on_restart`` with one of :data:`RESTART_REASONS`
(the ``bbreceiver_watch_restarts_total`` label) and logged.
"""

from __future__ import annotations

import gc
import random as _random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from twisted.application import service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..objects import object_key
from .client import (
    BadResponse,
    Forbidden,
    Gone,
    Invalid,
    KubeClient,
    KubeError,
    ResourceType,
    TooManyRequests,
    TransportError,
    Unauthorized,
    WatchStalled,
    WatchStream,
    error_from_status,
)

__all__ = [
    "INITIAL_EVENTS_END",
    "RESTART_REASONS",
    "Reflector",
    "ResourceSink",
]

log = Logger()

#: The annotation a watch-list (or a 1.34+ server defaulting to one) puts on
#: the bookmark ending the initial events; only a bookmark here.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"

#: Why a watch restarts: the server ended it cleanly; its resource version
#: expired (or history went backwards) and a relist follows; it failed; it
#: went silent.
RESTART_REASONS = ("closed", "expired", "error", "stalled")


class ResourceSink(Protocol):
    """
    Where a reflector's view of its collection goes.  Calls arrive on the
    reactor thread, one at a time, so an index may update in place.
    """

    def replace(self, namespace: str | None, objects: list[dict[str, Any]]) -> None:
        """
        The complete current state of the reflector's scope (``namespace``,
        or every namespace for :obj:`None`): entries not in ``objects`` must
        leave the index.
        """

    def upsert(self, obj: dict[str, Any]) -> object:
        """
        An object was added or changed.  What this returns is ignored
        (a :class:`StreamingSink` returns the object's key).
        """

    def delete(self, obj: dict[str, Any]) -> None:
        """
        An object was deleted; ``obj`` is its last state.
        """


class StreamingSink(ResourceSink, Protocol):
    """
    A sink that takes a list page by page: each listed object is upserted
    as its page arrives, then ``sweep`` ends the list.  The reflector then
    never holds a whole collection of decoded objects (for 100,000
    Warehouses, most of the daemon's memory and half its sync time).
    """

    def upsert(self, obj: dict[str, Any]) -> tuple[str, str] | None:
        """
        An object was added or changed (or listed); its (namespace, name),
        or :obj:`None` when it has none.
        """

    def sweep(self, namespace: str | None,
              listed: set[tuple[str, str]]) -> None:
        """
        A list of the scope ended: entries not among ``listed`` (the keys
        ``upsert`` returned) must leave the index.
        """


_gc_pauses = 0


@contextmanager
def _gc_paused() -> Iterator[None]:
    """
    No cyclic garbage collection while a list is decoded and indexed: the
    objects it creates hold no cycles, and every collection would walk the
    whole growing heap (more than half of a large initial sync).
    """
    global _gc_pauses
    paused = _gc_pauses == 0 and gc.isenabled()
    if paused or _gc_pauses:
        _gc_pauses += 1
        gc.disable()
    try:
        yield
    finally:
        if _gc_pauses:
            _gc_pauses -= 1
            if _gc_pauses == 0:
                gc.enable()


@dataclass(frozen=True)
class _Restart:
    """
    What to do after a watch (or list) ended.

    :ivar reason: one of :data:`RESTART_REASONS`.
    :ivar detail: for the log.
    :ivar relist: list again before watching.
    :ivar from_last: relist "not older than" the last resource version (kind
        to the server's cache) rather than with a consistent read.
    :ivar failure: counts towards the backoff.
    :ivar at_once: no pause, for the first of a run of expiries.
    :ivar retry_after: the server asked for at least this pause.
    """

    reason: str
    detail: str
    relist: bool = False
    from_last: bool = False
    failure: bool = True
    at_once: bool = False
    retry_after: float | None = None


class _ContinueExpired(Exception):
    """A continue token expired mid-list: the pages cannot be spliced."""

    def __init__(self, error: Gone) -> None:
        super().__init__(str(error))
        self.error = error


def _rv_number(rv: str | None) -> int | None:
    """
    A resource version as a number, when it is one.  Resource versions are
    opaque; comparing them is only a heuristic for spotting a server whose
    history restarted lower (every real server uses etcd revisions).
    """
    if rv is not None and rv.isdigit():
        return int(rv)
    return None


def _object_rv(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        rv = metadata.get("resourceVersion")
        if isinstance(rv, str) and rv:
            return rv
    return None


def _describe_object(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return "", ""
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class Reflector(service.Service):
    """
    Keeps ``sink`` in step with one collection: ``resource`` in ``namespace``
    (every namespace when :obj:`None`), optionally filtered by
    ``field_selector``.

    :param client: the API client.
    :param clock: for backoff, timers and the inactivity limit.
    :param watch_timeout_seconds: the ``timeoutSeconds`` asked of the server
        per watch.
    :param inactivity_seconds: a watch silent this long is aborted and
        resumed.
    :param backoff_max_seconds: the cap of the reconnect backoff.
    :param page_size: the ``limit`` of each list page.
    :param random: returns a float in [0, 1): the jitter source.
    :param on_restart: told the reason of every watch restart.
    :param on_relist: told whenever a list has been handed to the sink.
    :param backoff_initial_seconds: the first backoff pause.
    :param healthy_seconds: a stream that lived this long resets the backoff.
    :param min_watch_seconds: a stream ending cleanly sooner, without a
        single event, is treated as a failure.

    :ivar synced: the first list has reached the sink (stays true across
        later relists: the index keeps serving meanwhile).
    :ivar resource_version: the last resource version seen, from the list
        or the watch.
    :ivar last_error: the last failure, for status pages; cleared by a
        successful list or a healthy stream.
    """

    def __init__(
        self,
        client: KubeClient,
        resource: ResourceType,
        namespace: str | None,
        sink: ResourceSink,
        clock: IReactorTime,
        *,
        watch_timeout_seconds: int,
        inactivity_seconds: float,
        backoff_max_seconds: float,
        field_selector: str | None = None,
        page_size: int = 500,
        random: Callable[[], float] = _random.random,
        on_restart: Callable[[str], None] | None = None,
        on_relist: Callable[[], None] | None = None,
        backoff_initial_seconds: float = 0.5,
        healthy_seconds: float = 30.0,
        min_watch_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.sink = sink
        self.clock = clock
        self.watch_timeout_seconds = watch_timeout_seconds
        self.inactivity_seconds = inactivity_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.field_selector = field_selector
        self.page_size = page_size
        self._random = random
        self._on_restart = on_restart
        self._on_relist = on_relist
        self.backoff_initial_seconds = backoff_initial_seconds
        self.healthy_seconds = healthy_seconds
        self.min_watch_seconds = min_watch_seconds

        self.synced = False
        self.resource_version: str | None = None
        self.last_error: str | None = None
        self._failures = 0
        self._highest_rv: int | None = None
        self._sync_waiters: list[Deferred[None]] = []
        self._stopping = False
        self._task: Deferred[None] | None = None
        self._finished: Deferred[None] | None = None
        # Per-stream state, written by the event callback.
        self._watch_error: KubeError | None = None
        self._went_backwards: str | None = None

    # -- naming ------------------------------------------------------------

    @property
    def scope(self) -> str:
        """
        ``namespace`` or ``*``, plus the field selector: for logs.
        """
        scope = self.namespace or "*"
        if self.field_selector:
            scope += f" ({self.field_selector})"
        return scope

    def __repr__(self) -> str:
        return f"<Reflector {self.resource.name} {self.scope}>"

    # -- lifecycle ---------------------------------------------------------

    def when_synced(self) -> Deferred[None]:
        """
        A Deferred that fires once the first list has reached the sink (at
        once if it has).  It stays pending if the service stops first.
        """
        if self.synced:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._sync_waiters.append(d)
        return d

    def startService(self) -> None:
        service.Service.startService(self)  # type: ignore[no-untyped-call]
        self._stopping = False
        finished: Deferred[None] = Deferred()
        task = Deferred.fromCoroutine(self._run())
        task.addErrback(self._crashed)
        task.addBoth(lambda _: finished.callback(None))
        self._task, self._finished = task, finished

    def stopService(self) -> Deferred[None]:
        """
        Cancel whatever is in progress (a list, the stream, a backoff pause)
        and return a Deferred that fires once the loop has ended.
        """
        service.Service.stopService(self)  # type: ignore[no-untyped-call]
        self._stopping = True
        task, finished = self._task, self._finished
        self._task = self._finished = None
        if task is None or finished is None:
            return succeed(None)
        stopped: Deferred[None] = Deferred()

        def done(result: None) -> None:
            stopped.callback(None)
            return result

        finished.addBoth(done)
        task.cancel()
        return stopped

    def _crashed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):  # type: ignore[no-untyped-call]
            log.failure(
                "reflector for {resource} in {scope} stopped unexpectedly",
                failure,
                resource=self.resource.name,
                scope=self.scope,
            )

    # -- the loop ----------------------------------------------------------

    async def _run(self) -> None:
        relist = True
        from_last = False
        while not self._stopping:
            try:
                if relist:
                    await self._list(from_last)
                    relist = from_last = False
                restart = await self._watch()
            except CancelledError:
                raise
            except (KubeError, TransportError) as e:
                restart = self._list_failed(e)
            except Exception as e:  # noqa: BLE001 - the loop must survive bugs
                log.failure(
                    "unexpected error reflecting {resource} in {scope}",
                    resource=self.resource.name,
                    scope=self.scope,
                )
                restart = _Restart("error", f"unexpected {type(e).__name__}: {e}")
            if self._stopping:
                break
            relist = relist or restart.relist
            from_last = restart.from_last
            await self._pause(restart)

    async def _pause(self, restart: _Restart) -> None:
        if restart.failure:
            self._failures += 1
            self.last_error = restart.detail
        delay = 0.0
        if restart.failure and not (restart.at_once and self._failures == 1):
            delay = self.backoff_delay(self._failures)
        if restart.retry_after is not None:
            delay = max(delay, restart.retry_after)
        if self._on_restart is not None:
            try:
                self._on_restart(restart.reason)
            except Exception:  # noqa: BLE001 - a metrics hook must not stop us
                log.failure("on_restart hook failed")
        log.info(
            "watch of {resource} in {scope} restarting ({reason}): {detail}; "
            "{action} in {delay} s",
            resource=self.resource.name,
            scope=self.scope,
            reason=restart.reason,
            detail=restart.detail,
            action="relisting" if restart.relist else "re-watching",
            delay=round(delay, 3),
            failures=self._failures,
        )
        if delay > 0:
            await deferLater(self.clock, delay)

    def backoff_delay(self, failures: int) -> float:
        """
        The pause after ``failures`` failures in a row: 0.5 s doubling up to
        ``backoff_max_seconds``, minus up to a quarter at random so that
        many clients do not come back in step.
        """
        nominal = min(
            self.backoff_initial_seconds * 2.0 ** max(0, failures - 1),
            self.backoff_max_seconds,
        )
        return nominal * (1.0 - 0.25 * self._random())

    # -- listing -----------------------------------------------------------

    async def _list(self, from_last: bool) -> None:
        """
        List the whole collection and hand it to the sink.

        After an expiry the first try asks for a state "not older than" the
        last resource version, which the server's watch cache can answer; if
        that fails too (410, a cache behind us, or a server that does not know
        ``resourceVersionMatch``), or the first time a continue token expires,
        the list starts over as a consistent read.
        """
        rv = self.resource_version if from_last else None
        continue_expired = False
        while True:
            try:
                with _gc_paused():
                    items, listed, list_rv = await self._list_pages(rv)
                break
            except _ContinueExpired as e:
                if continue_expired:
                    raise e.error from e
                continue_expired = True
                log.info(
                    "continue token of {resource} in {scope} expired ({error}); "
                    "listing again from the start",
                    resource=self.resource.name,
                    scope=self.scope,
                    error=str(e.error),
                )
                rv = None
            except KubeError as e:
                if rv is None or not (
                    isinstance(e, (Gone, Invalid)) or e.resource_version_too_large
                ):
                    raise
                log.info(
                    "listing {resource} in {scope} not older than {rv} failed "
                    "({error}); listing the latest state instead",
                    resource=self.resource.name,
                    scope=self.scope,
                    rv=rv,
                    error=str(e),
                )
                rv = None
        self._listed(items, listed, list_rv)

    async def _list_pages(
        self, rv: str | None
    ) -> tuple[list[dict[str, Any]], set[tuple[str, str]], str]:
        """
        Every page of a list: the objects (or, for a streaming sink, the
        keys of those it was given), and the list's resource version.
        """
        items: list[dict[str, Any]] = []
        listed: set[tuple[str, str]] = set()
        streaming = hasattr(self.sink, "sweep")
        list_rv: str | None = None
        token: str | None = None
        pages = 0
        while True:
            try:
                page = await self.client.list_page(
                    self.resource,
                    self.namespace,
                    limit=self.page_size,
                    continue_=token,
                    resource_version=rv if token is None else None,
                    resource_version_match=(
                        "NotOlderThan" if rv is not None and token is None else None
                    ),
                    field_selector=self.field_selector,
                )
            except Gone as e:
                if token is not None:
                    raise _ContinueExpired(e) from e
                raise
            pages += 1
            metadata = page.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            page_rv = metadata.get("resourceVersion")
            if list_rv is None and isinstance(page_rv, str) and page_rv:
                list_rv = page_rv
            page_items = page.get("items")
            if page_items is None:
                page_items = []
            if not isinstance(page_items, list):
                raise BadResponse(f"list of {self.resource.name}: items is not a list")
            for item in page_items:
                if not isinstance(item, dict):
                    continue
                item = self._complete(item)
                if not streaming:
                    items.append(item)
                    continue
                try:
                    key = cast(StreamingSink, self.sink).upsert(item)
                except Exception:  # noqa: BLE001 - one bad object must not stop us
                    key = object_key(item)
                    log.failure(
                        "the index refused {namespace}/{name} of {resource}",
                        namespace=key[0] if key else "?",
                        name=key[1] if key else "?",
                        resource=self.resource.name,
                    )
                if key is not None:
                    listed.add(key)
            following = metadata.get("continue")
            if not isinstance(following, str) or not following:
                break
            if following == token:
                raise BadResponse(
                    f"list of {self.resource.name}: the server repeated its "
                    "continue token"
                )
            token = following
            log.debug(
                "listed page {page} of {resource} in {scope}",
                page=pages,
                resource=self.resource.name,
                scope=self.scope,
            )
        if list_rv is None:
            raise BadResponse(f"list of {self.resource.name} has no resourceVersion")
        return items, listed, list_rv

    def _complete(self, obj: dict[str, Any]) -> dict[str, Any]:
        """
        List items of core types come without ``kind``/``apiVersion``; put
        them back so the sink sees the same shape as from a watch.  Managed
        fields are bulky and of no use here.
        """
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("managedFields", None)
        return obj

    def _listed(
        self,
        items: list[dict[str, Any]],
        listed: set[tuple[str, str]],
        list_rv: str,
    ) -> None:
        number = _rv_number(list_rv)
        if (
            number is not None
            and self._highest_rv is not None
            and number < self._highest_rv
        ):
            log.warn(  # noqa: G010 - twisted.logger's spelling
                "the API's history of {resource} went backwards (list at "
                "{rv}, {seen} seen before; was it restored or restarted?); "
                "the index is rebuilt from this list",
                resource=self.resource.name,
                rv=list_rv,
                seen=self._highest_rv,
            )
        self._highest_rv = number
        self.resource_version = list_rv
        try:
            sweep = getattr(self.sink, "sweep", None)
            if sweep is not None:
                sweep(self.namespace, listed)
            else:
                self.sink.replace(self.namespace, items)
        except Exception:  # noqa: BLE001 - one bad sink call must not stop us
            log.failure(
                "the index refused the list of {resource} in {scope}",
                resource=self.resource.name,
                scope=self.scope,
            )
        self.last_error = None
        first = not self.synced
        self.synced = True
        log.info(
            "{verb} {count} {resource} in {scope} at resourceVersion {rv}",
            verb="listed" if first else "relisted",
            count=len(items) or len(listed),
            resource=self.resource.name,
            scope=self.scope,
            rv=list_rv,
        )
        if self._on_relist is not None:
            try:
                self._on_relist()
            except Exception:  # noqa: BLE001 - a hook must not stop us
                log.failure("on_relist hook failed")
        if first:
            waiters, self._sync_waiters = self._sync_waiters, []
            for d in waiters:
                d.callback(None)

    def _list_failed(self, error: KubeError | TransportError) -> _Restart:
        self._explain(error, "list")
        return _Restart(
            "error",
            f"list failed: {error}",
            relist=True,
            retry_after=error.retry_after if isinstance(error, KubeError) else None,
        )

    def _explain(self, error: KubeError | TransportError, what: str) -> None:
        """
        Say clearly what an operator must fix: the daemon keeps retrying, but
        it will not get anywhere without new RBAC rules or credentials.
        """
        if isinstance(error, Forbidden):
            log.error(
                "the API forbids {verb} on {resource} in {scope}: {detail}; "
                "bbreceiver needs get/list/watch on it (retrying)",
                verb=what,
                resource=self.resource.name,
                scope=self.scope,
                detail=error.message,
            )
        elif isinstance(error, Unauthorized):
            log.error(
                "the API refused our credentials for {verb} on {resource}: "
                "{detail} (retrying)",
                verb=what,
                resource=self.resource.name,
                detail=error.message,
            )

    # -- watching ----------------------------------------------------------

    async def _watch(self) -> _Restart:
        """
        Watch from the last resource version until the stream ends, and say
        how to go on.
        """
        start_rv = self.resource_version
        self._watch_error = None
        self._went_backwards = None
        log.info(
            "watch of {resource} in {scope} starting at resourceVersion {rv}",
            resource=self.resource.name,
            scope=self.scope,
            rv=start_rv,
        )
        try:
            stream = await self.client.watch(
                self.resource,
                self.namespace,
                resource_version=start_rv,
                timeout_seconds=self.watch_timeout_seconds,
                on_event=self._on_event,
                inactivity_seconds=self.inactivity_seconds,
                field_selector=self.field_selector,
                clock=self.clock,
            )
        except (KubeError, TransportError) as e:
            return self._open_failed(e)
        try:
            await stream.done
        except TransportError as e:
            return self._stream_failed(stream, e)
        return self._stream_ended(stream)

    def _lived(self, stream: WatchStream) -> float:
        lived = self.clock.seconds() - stream.opened_at
        if lived >= self.healthy_seconds:
            self._failures = 0
            self.last_error = None
        return lived

    def _open_failed(self, error: KubeError | TransportError) -> _Restart:
        if isinstance(error, Gone):
            return _Restart(
                "expired",
                f"watch refused: {error}",
                relist=True,
                from_last=True,
                at_once=True,
            )
        if isinstance(error, KubeError) and error.resource_version_too_large:
            return _Restart("error", f"watch refused: {error}", relist=True)
        if isinstance(error, TransportError):
            # Unreachable: the API may come back with another history (a
            # restored or new etcd), which accepts our resource version and
            # then stays silent; only a list shows what it holds.
            self._explain(error, "watch")
            return _Restart("error", f"watch refused: {error}", relist=True)
        self._explain(error, "watch")
        return _Restart(
            "error",
            f"watch refused: {error}",
            retry_after=error.retry_after
            if isinstance(error, TooManyRequests)
            else None,
        )

    def _stream_failed(self, stream: WatchStream, error: TransportError) -> _Restart:
        self._lived(stream)
        if isinstance(error, WatchStalled):
            return _Restart("stalled", str(error))
        return _Restart("error", str(error))

    def _stream_ended(self, stream: WatchStream) -> _Restart:
        lived = self._lived(stream)
        error = self._watch_error
        if error is not None:
            if isinstance(error, Gone):
                return _Restart(
                    "expired",
                    f"watch ended: {error}",
                    relist=True,
                    from_last=True,
                    at_once=True,
                )
            return _Restart("error", f"watch ended: {error}", relist=True)
        if self._went_backwards is not None:
            return _Restart(
                "expired",
                self._went_backwards,
                relist=True,
                at_once=True,
            )
        if lived < self.min_watch_seconds:
            # client-go's "very short watch": a server that closes at once,
            # over and over, must not be hammered.
            return _Restart(
                "error" if stream.events == 0 else "closed",
                f"watch closed after {round(lived, 3)} s with {stream.events} event(s)",
            )
        self._failures = 0
        return _Restart(
            "closed",
            f"watch closed by the server after {round(lived, 3)} s with "
            f"{stream.events} event(s)",
            failure=False,
        )

    def _on_event(self, event: dict[str, Any]) -> bool:
        """
        Apply one watch event; return :obj:`False` to end the stream.
        """
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            log.warn(  # noqa: G010 - twisted.logger's spelling
                "watch event {type} of {resource} without an object; ignored",
                type=kind,
                resource=self.resource.name,
            )
            return True
        if kind == "ERROR":
            self._watch_error = error_from_status(obj)
            log.debug(
                "watch of {resource} in {scope}: ERROR {error}",
                resource=self.resource.name,
                scope=self.scope,
                error=str(self._watch_error),
            )
            return False
        if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            log.debug(
                "watch of {resource}: ignoring event type {type}",
                resource=self.resource.name,
                type=kind,
            )
            return True
        rv = _object_rv(obj)
        number = _rv_number(rv)
        current = _rv_number(self.resource_version)
        if number is not None and current is not None and number < current:
            self._went_backwards = (
                f"the API's history went backwards ({kind} at resourceVersion "
                f"{rv}, after {self.resource_version})"
            )
            return False
        if kind == "BOOKMARK":
            metadata = obj.get("metadata") or {}
            annotations = (
                metadata.get("annotations") if isinstance(metadata, dict) else None
            )
            log.debug(
                "watch of {resource} in {scope}: bookmark at {rv}{end}",
                resource=self.resource.name,
                scope=self.scope,
                rv=rv,
                end=" (initial events end)"
                if isinstance(annotations, dict) and INITIAL_EVENTS_END in annotations
                else "",
            )
        else:
            namespace, name = _describe_object(obj)
            log.debug(
                "watch of {resource}: {type} {namespace}/{name} at {rv}",
                resource=self.resource.name,
                type=kind,
                namespace=namespace,
                name=name,
                rv=rv,
            )
            obj = self._complete(obj)
            try:
                if kind == "DELETED":
                    self.sink.delete(obj)
                else:
                    self.sink.upsert(obj)
            except Exception:  # noqa: BLE001 - one bad object must not stop us
                log.failure(
                    "the index refused {type} {namespace}/{name} of {resource}",
                    type=kind,
                    namespace=namespace,
                    name=name,
                    resource=self.resource.name,
                )
        if rv is not None:
            self.resource_version = rv
            if number is not None:
                self._highest_rv = max(number, self._highest_rv or 0)
        return True
