"""
Candidate changes to bbreceiver, applied by monkeypatching inside a
benchmark's daemon (``python -m bench.twistwrap --experiment NAME``), so
that each can be measured before anyone edits bbreceiver/.  ``python -m
bench --experiments [NAME...]`` runs each against the unpatched daemon on
the benchmark it concerns (NAME may join several with ``+``).

These are measurements, not the code to ship: each docstring says what the
real change would be.  Those that went into bbreceiver/ were removed from
here; bench/README.rst keeps what they measured.
"""

from __future__ import annotations

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
