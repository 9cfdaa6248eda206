"""
bbreceiver's benchmark suite: ``python -m bench`` (see bench/README.rst).

Never imported by the daemon or by the test suite (but for
``tests/test_bench_smoke.py``, which runs it as a subprocess).
"""
