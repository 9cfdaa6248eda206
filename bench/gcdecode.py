"""
``python -m bench.gcdecode [--warehouses N]``: why the sync's
``json.loads`` is slow.  Decodes the pages of N generated Warehouses three
ways and prints the seconds of each: dropping each page's items (what the
download baseline does), keeping them all (what the reflector does until
the last page is in), and keeping them with the cyclic collector disabled.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from bench import payloads


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gcdecode")
    parser.add_argument("--warehouses", type=int, default=100_000)
    args = parser.parse_args()
    objects = payloads.objects(args.warehouses)
    pages = [json.dumps({"items": objects[i:i + 500]}).encode()
             for i in range(0, len(objects), 500)]
    del objects

    def decode(keep: bool, collector: bool) -> float:
        kept: list[object] = []
        gc.collect()
        if not collector:
            gc.disable()
        started = time.perf_counter()
        for page in pages:
            items = json.loads(page)["items"]
            if keep:
                kept.extend(items)
        seconds = time.perf_counter() - started
        gc.enable()
        return seconds

    print(json.dumps({
        "drop_items": decode(False, True),
        "keep_items": decode(True, True),
        "keep_items_gc_disabled": decode(True, False),
        "megabytes": sum(map(len, pages)) / 1e6,
    }))


if __name__ == "__main__":
    main()
