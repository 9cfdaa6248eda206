"""
The index alone, in a process of its own: ``python -m bench.indexmem
--warehouses N [--experiment NAME]...`` builds a SubscriptionIndex from N
generated Warehouses (decoded from JSON pages of 500, as a list would
bring them) and prints one JSON line:

- ``index_bytes_per_warehouse`` (with ``--trace``): memory the index still
  holds once the decoded objects are gone (tracemalloc, so allocator
  overhead and fragmentation are not counted);
- ``rss_after_kib`` / ``rss_peak_kib``: the process's resident memory
  after the build and at its peak (what the daemon's RSS shows);
- ``build_seconds``: the time to build it (without decoding).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc

from bench import payloads
from bench.common import rss_kib


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.indexmem")
    parser.add_argument("--warehouses", type=int, default=100_000)
    parser.add_argument("--experiment", action="append", default=[])
    parser.add_argument("--trace", action="store_true",
                        help="count the index's bytes with tracemalloc (slow;"
                        " inflates RSS and time)")
    parser.add_argument("--pages", action="store_true",
                        help="replace page by page instead of all at once")
    args = parser.parse_args()
    from bench import experiments

    for name in args.experiment:
        experiments.apply(name)
    from bbreceiver.index import SubscriptionIndex

    objects = payloads.objects(args.warehouses)
    pages = [json.dumps({"items": objects[i:i + 500]}).encode()
             for i in range(0, len(objects), 500)]
    del objects
    gc.collect()
    import os

    pid = os.getpid()
    base_rss = rss_kib(pid)["VmRSS"]
    if args.trace:
        tracemalloc.start()
    index = SubscriptionIndex()
    before = tracemalloc.get_traced_memory()[0]
    build = 0.0
    items: list[dict] = []
    for page in pages:
        decoded = json.loads(page)["items"]
        if args.pages:
            started = time.perf_counter()
            for item in decoded:
                index.warehouses.upsert(item)
            build += time.perf_counter() - started
        else:
            items.extend(decoded)
    if not args.pages:
        started = time.perf_counter()
        index.warehouses.replace(None, items)
        build = time.perf_counter() - started
    del items, decoded
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss = rss_kib(pid)
    print(json.dumps({
        "warehouses": len(index.warehouses),
        "index_bytes_per_warehouse": (after - before) / args.warehouses
        if args.trace else None,
        "rss_before_kib": base_rss,
        "rss_after_kib": rss["VmRSS"],
        "rss_peak_kib": rss["VmHWM"],
        "build_seconds": build,
    }))


if __name__ == "__main__":
    main()
