"""pytest-benchmark suites: reference vs fastdl vs torch, side by side per op, size and dtype.

Run ``pytest bench/`` (add ``--benchmark-json=out.json`` and format it with
``fastdl bench report out.json``; ``python bench/targets.py out.json`` judges the
project's targets). A plain ``pytest`` does not collect this directory
(``testpaths = ["tests"]``); CI runs ``pytest bench/ --benchmark-disable`` so each case runs once.

Every case is built by :func:`fastdl.benchmark.make_case`, the same code ``fastdl bench`` times.
Each is called before it is timed (warm-up rounds), so compilation never lands in the numbers.
torch runs with the same thread count as fastdl and is skipped where it is not installed. It is
imported here before fastdl, so that its OpenMP keeps its own spin count (fastdl sets
``GOMP_SPINCOUNT=1000`` for the libgomp loaded after it, which made torch's 2-thread ops up to ~10x
slower). It still runs in this process, beside NumPy's OpenBLAS threads; ``fastdl bench`` times it in
a process of its own, the fairer comparison.
"""

from __future__ import annotations

import os
import time

try:  # before fastdl (see above)
    import torch  # noqa: F401
except ImportError:
    pass

import pytest

from fastdl import benchmark as fb


def _benchmark_disabled(config) -> bool:
    try:
        return bool(config.getoption("benchmark_disable"))
    except ValueError:
        return True


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record fastdl's run-time info and (when timing) the machine's peaks in the JSON."""
    machine_info["fastdl_info"] = fb.run_info()
    mode = os.environ.get("FASTDL_BENCH_PEAKS", "full")  # full | quick (small arrays, for tests) | off
    if not _benchmark_disabled(config) and mode != "off":
        quick = mode == "quick"
        # full: also the bandwidth curve and the affine GEMM shapes, the roofline limits of every op in bench/
        curve, shapes = (0, ()) if quick else fb.peak_needs(fb.Matrix(
            [(op, size) for op in (*fb.LAYER_OPS, *fb.OPTIMIZER_OPS) for size in fb.sizes_for(op)]))
        machine_info["fastdl_peaks"] = fb.measure_peaks(triad_bytes=fb.LLC_BYTES // 8 if quick else 4 * fb.LLC_BYTES,
                                                        gemm_n=256 if quick else 2048, repeats=2 if quick else 5,
                                                        curve_bytes=curve, gemm_shapes=shapes)


@pytest.fixture(params=["reference", "fastdl", "torch"])
def impl(request):
    if request.param == "torch":
        pytest.importorskip("torch")  # imported only when a torch case runs
        fb.configure_torch_threads()  # same thread count as fastdl
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def run_case(benchmark, request):
    """``run_case(case)``: time ``case.fn`` in its group, after warm-up rounds."""

    def run(case: fb.Case):
        benchmark.group = case.group
        benchmark.extra_info.update(case.meta())
        if _benchmark_disabled(request.config):
            return benchmark(case.fn)
        case.fn()  # compile / first-touch outside any timing
        t0 = time.perf_counter()
        case.fn()
        once = max(time.perf_counter() - t0, 1e-9)
        iterations = max(1, int(2e-3 / once))
        rounds = int(min(100, max(5, 0.5 / (once * iterations))))
        return benchmark.pedantic(case.fn, rounds=rounds, iterations=iterations, warmup_rounds=2)

    return run
