"""
Candidate changes to bbreceiver, applied by monkeypatching inside a
benchmark's daemon (``python -m bench.twistwrap --experiment NAME``), so
that each can be measured before anyone edits bbreceiver/.  ``python -m
bench --experiments [NAME...]`` runs each against the unpatched daemon on
the benchmark it concerns (NAME may join several with ``+``).

These are measurements, not the code to ship: each docstring says what the
real change would be.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

#: name -> (benchmark it is measured on, the patch)
EXPERIMENTS: dict[str, tuple[str, Callable[[], None]]] = {}


def experiment(bench: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(func: Callable[[], None]) -> Callable[[], None]:
        EXPERIMENTS[func.__name__.replace("_", "-")] = (bench, func)
        return func

    return register


def bench_of(name: str) -> str:
    return EXPERIMENTS[name.split("+")[0]][0]


def apply(name: str) -> None:
    for part in name.split("+"):
        try:
            EXPERIMENTS[part][1]()
        except KeyError:
            raise SystemExit("no experiment named {!r}; there are: {}".format(
                part, ", ".join(sorted(EXPERIMENTS)))) from None


# -- throughput (target 1) -------------------------------------------------


@experiment("throughput")
def no_delivery_log() -> None:
    """
    Logging off: the per-delivery line is not emitted at all.  The upper
    bound of what any logging change can gain.
    """
    from bbreceiver import web

    class Silent:
        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *a, **k: None

    web.log = Silent()  # type: ignore[assignment]


@experiment("throughput")
def lean_delivery_log() -> None:
    """
    The delivery line formatted by bbreceiver into one field (``{msg}``)
    instead of eight: twisted.logger's JSON observer flattens and encodes
    every field twice (``"code!:"`` and ``"code!s:"``).  Real change: in
    bbreceiver/web.py WebhookApp.deliver, log
    ``log.info("{msg}", msg="delivery ... ".format(...))``.
    """
    from bbreceiver import web

    real = web.log

    class Lean:
        def info(self, format: str, **fields: Any) -> None:
            real.info("{msg}", msg=format.format(**fields))

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    web.log = Lean()  # type: ignore[assignment]


@experiment("throughput")
def batched_log_flush() -> None:
    """
    twist's file log observer flushes its file after every event: one
    write(2) per delivery.  Here it flushes at most every 50 ms.  Real
    change: bbreceiver's plugin would install its own buffered observer, or
    leave the delivery line at debug level for deliveries that matched
    nothing.
    """
    from twisted.internet import reactor
    from twisted.logger import _file

    def call(self: Any, event: Any) -> None:
        text = self.formatEvent(event)
        if text:
            if self._encoding is None:
                self._outFile.write(text)
            else:
                self._outFile.write(text.encode(self._encoding))
            if getattr(self, "_bench_flush", None) is None:
                self._bench_flush = reactor.callLater(0.05, flush, self)

    def flush(self: Any) -> None:
        self._bench_flush = None
        self._outFile.flush()

    _file.FileLogObserver.__call__ = call  # type: ignore[method-assign]


@experiment("throughput")
def direct_dispatch() -> None:
    """
    Receiver paths go straight to WebhookApp.deliver; Klein (werkzeug's
    URL map) routes only /healthz and /readyz.  _Root.render already looked
    the path up, so Klein's second routing of every delivery is pure cost.
    Real change: in bbreceiver/web.py _Root.render, call the coroutine and
    write its answer (as below) instead of self._klein.render(request).
    """
    from twisted.internet.defer import CancelledError, Deferred
    from twisted.logger import Logger
    from twisted.web.server import NOT_DONE_YET

    from bbreceiver import web

    log = Logger(namespace="bbreceiver.web")

    def render(self: Any, request: Any) -> Any:
        path = request.path
        if path in (b"/healthz", b"/readyz"):
            return self._klein.render(request)
        if self._app.routes.lookup(path) is None:
            return self._app.answer(request, 404, {"error": "not found"})
        d = Deferred.fromCoroutine(web.WebhookApp.deliver(self._app, request))
        finished = request.notifyFinish()
        finished.addErrback(lambda _: d.cancel())

        def write(body: bytes) -> None:
            if not finished.called:
                request.write(body)
                request.finish()

        def failed(failure: Any) -> None:
            if failure.check(CancelledError):
                return
            log.failure("delivery failed", failure)
            if not finished.called:
                request.setResponseCode(500)
                request.finish()

        d.addCallbacks(write, failed)
        return NOT_DONE_YET

    web._Root.render = render  # type: ignore[method-assign]


@experiment("throughput")
def cached_metric_children() -> None:
    """
    Metrics.delivered calls prometheus_client's ``labels()`` twice per
    delivery (a lock, a tuple, a dict lookup each); here the children are
    cached by label values.  Real change: the same dict in
    bbreceiver/metrics.py.
    """
    from bbreceiver import metrics

    def delivered(self: Any, route: Any, event: str, code: int,
                  seconds: float) -> None:
        cache = self.__dict__.setdefault("_bench_children", {})
        key = (route.label, event, code)
        children = cache.get(key)
        if children is None:
            children = cache[key] = (
                self.deliveries.labels(route.label, event, str(code)),
                self.duration.labels(event))
        children[0].inc()
        children[1].observe(seconds)
        if route.retiring and 200 <= code < 300:
            self.retiring.labels(route.label).inc()

    metrics.Metrics.delivered = delivered  # type: ignore[method-assign]


@experiment("throughput")
def no_receive_timer() -> None:
    """
    Measurement only (not a proposal): DeliveryChannel arms a request
    timer (a DelayedCall) for every request and cancels it; how much does
    that cost?
    """
    from bbreceiver import web

    def dataReceived(self: Any, data: bytes) -> None:
        if self.rejecting:
            return
        web.HTTPChannel.dataReceived(self, data)

    web.DeliveryChannel.dataReceived = dataReceived  # type: ignore[method-assign]


# -- fan-out (target 3) ----------------------------------------------------


@experiment("fanout")
def skip_debug_logs() -> None:
    """
    Logger.debug returns at once: the reflector logs every watch event at
    debug level, and twisted.logger builds and publishes each event before
    the level filter drops it (1,000 PATCHes bring 1,000 watch events).
    Real change: in bbreceiver/kube/reflector.py, guard the per-event
    log.debug calls with a module flag set when --log-level=debug.
    """
    from twisted.logger import Logger

    Logger.debug = lambda self, *a, **k: None  # type: ignore[method-assign]


# -- sync and memory (target 4) --------------------------------------------

_collecting = {"depth": 0, "frozen": False}


@experiment("index")
def gc_off_during_list() -> None:
    """
    No cyclic garbage collection while a list is read and indexed, then one
    collection and gc.freeze() after the first sync.  A growing heap of
    100,000 decoded objects makes the collector run over it again and again
    (json.loads of the same pages is ~2.9 times slower while the items are
    kept than when they are not).  Real change: the same in
    bbreceiver/kube/reflector.py Reflector._list.
    """
    from bbreceiver.kube import reflector

    original = reflector.Reflector._list

    async def _list(self: Any, from_last: bool) -> None:
        if _collecting["depth"] == 0:
            gc.disable()
        _collecting["depth"] += 1
        try:
            await original(self, from_last)
        finally:
            _collecting["depth"] -= 1
            if _collecting["depth"] == 0:
                gc.enable()
                gc.collect()
                gc.freeze()

    reflector.Reflector._list = _list  # type: ignore[method-assign]


@experiment("index")
def gc_off_during_list_nocollect() -> None:
    """
    gc-off-during-list without the full collection at the end: gc.freeze()
    alone (the collection of a 100,000-Warehouse heap costs ~0.15 s; what
    is frozen is never collected, so a cycle left from start-up stays).
    """
    from bbreceiver.kube import reflector

    original = reflector.Reflector._list

    async def _list(self: Any, from_last: bool) -> None:
        if _collecting["depth"] == 0:
            gc.disable()
        _collecting["depth"] += 1
        try:
            await original(self, from_last)
        finally:
            _collecting["depth"] -= 1
            if _collecting["depth"] == 0:
                gc.freeze()
                gc.enable()

    reflector.Reflector._list = _list  # type: ignore[method-assign]


@experiment("index")
def cached_repo_key() -> None:
    """
    repo_key behind functools.lru_cache(65536): many Warehouses subscribe
    to the same repositories (here half the subscriptions go to 250 shared
    library repositories).  Real change: decorate bbreceiver/giturls.py
    repo_key (it is pure).
    """
    import functools

    from bbreceiver import giturls, index, plan

    cached = functools.lru_cache(maxsize=65536)(giturls.repo_key)
    giturls.repo_key = cached
    index.repo_key = cached  # type: ignore[attr-defined]
    plan.repo_key = cached  # type: ignore[attr-defined]


@experiment("index")
def fast_selector_key() -> None:
    """
    compile_selector with a fast path for the commonest subscription
    (NewestFromBranch: no strategy or that one, a string branch or none)
    and, for the others, a cache keyed by the raw values of the fields that
    decide a selector, so that 100,000 Warehouses do not each re-validate
    the same few shapes field by field.  Real change: the same in
    bbreceiver/selectors.py compile_selector (semantics unchanged: the slow
    path runs for every shape not seen before).
    """
    from bbreceiver import index, selectors

    fields = ("commitSelectionStrategy", "branch", "allowTags", "ignoreTags",
              "allowTagsRegexes", "ignoreTagsRegexes", "semverConstraint",
              "strictSemvers")
    slow = selectors.compile_selector
    seen: dict[tuple[Any, ...], Any] = {}

    def compile_selector(git: Any) -> Any:
        strategy = git.get("commitSelectionStrategy")
        if strategy is None or strategy == "NewestFromBranch":
            branch = git.get("branch")
            if branch is None or type(branch) is str:
                return selectors._compile(("NewestFromBranch", branch or ""))
        raw = []
        for name in fields:
            value = git.get(name)
            if type(value) is list:
                value = tuple(value)
            raw.append(value)
        key = tuple(raw)
        try:
            found = seen.get(key)
        except TypeError:  # an unhashable value: no caching
            return slow(git)
        if found is None:
            if len(seen) > 4096:
                seen.clear()
            found = seen[key] = slow(git)
        return found

    selectors.compile_selector = compile_selector
    index.compile_selector = compile_selector  # type: ignore[attr-defined]


class _Listed(tuple):  # type: ignore[type-arg]
    """
    The key of an object already put into the index during a list.
    """


@experiment("index")
def stream_list_pages() -> None:
    """
    Each list page goes into the index as it arrives, and what the finished
    list does not hold is dropped at the end: the decoded objects of a page
    die with it, instead of all 100,000 living until the last page is in
    (the peak that stays in the daemon's RSS).  Real change:
    Reflector._list_pages hands each page to a new sink method (say
    ``sink.upsert_listed(namespace, objects)``) and ``_listed`` calls
    ``sink.sweep(namespace, keys)``; _Table has both.
    """
    from bbreceiver import index
    from bbreceiver.kube import reflector

    original_list = reflector.Reflector._list
    original_complete = reflector.Reflector._complete
    original_replace = index._Table.replace

    async def _list(self: Any, from_last: bool) -> None:
        self._bench_streaming = isinstance(self.sink, index._Table)
        try:
            await original_list(self, from_last)
        finally:
            self._bench_streaming = False

    def _complete(self: Any, obj: dict[str, Any]) -> Any:
        obj = original_complete(self, obj)
        if not getattr(self, "_bench_streaming", False):
            return obj
        self.sink.upsert(obj)
        return _Listed(index.object_key(obj) or ("", ""))

    def replace(self: Any, namespace: str | None, objects: Any) -> None:
        objects = list(objects)
        if not objects or not isinstance(objects[0], _Listed):
            return original_replace(self, namespace, objects)
        listed = set(objects)
        gone = [where for where in self._entries if where not in listed
                and (namespace is None or where[0] == namespace)]
        for where in gone:
            self._remove(where)

    reflector.Reflector._list = _list  # type: ignore[method-assign]
    reflector.Reflector._complete = _complete  # type: ignore[method-assign]
    index._Table.replace = replace  # type: ignore[method-assign]
