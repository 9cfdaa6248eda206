"""
The baseline of the throughput target: a bare Klein app answering 200 to a
POST on any path, served by twisted.web with the same reactor as the
daemon.  It does nothing with the body twisted.web has read for it.

``python -m bench.bare_klein --port P`` prints ``listening on 127.0.0.1:P``.
"""

from __future__ import annotations

import argparse
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import react
from twisted.web.server import Site

app = Klein()


@app.route("/", branch=True, methods=["POST"])
def answer(request: Any) -> bytes:
    request.setHeader(b"content-type", b"application/json")
    return b'{"msg":"ok"}'


async def run(reactor: Any, port: int) -> None:
    site = Site(app.resource())
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    listening = await TCP4ServerEndpoint(reactor, port, interface="127.0.0.1"
                                         ).listen(site)
    print("listening on 127.0.0.1:{}".format(listening.getHost().port),
          flush=True)
    await Deferred()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_klein")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    react(lambda reactor: run(reactor, args.port))


if __name__ == "__main__":
    main()
