"""The serial/parallel crossover table: read, bytes rule, override, one thread, max-norm twins, bench/crossovers.py.

The mechanism only: no timing is asserted (the measured crossovers are machine facts, see bench/crossovers.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastdl
from fastdl import _crossovers, constraints, kernels, runtime

REPO = Path(__file__).resolve().parents[1]
PARALLEL_POSSIBLE = runtime.parallel_available() and runtime.get_num_threads() > 1


@pytest.fixture
def table():
    """Install a small test table for the duration of a test (restored after)."""
    old = runtime._set_crossovers({"stream": {"float32": 1000, "float64": 5000},
                                   "optimizer": {"float32": 0, "float64": 2**62}})
    try:
        yield
    finally:
        runtime._set_crossovers(old)


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_crossovers", REPO / "bench" / "crossovers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stored_table_covers_every_family_layer_and_dtype():
    layers = set(_crossovers.MEASURED)
    assert "omp" in layers  # the fallback of a layer without a table of its own
    assert set(_crossovers.CROSSOVERS) == set(runtime.FAMILIES)
    for family in runtime.FAMILIES:
        assert set(_crossovers.CROSSOVERS[family]) == layers
        for per_dtype in _crossovers.CROSSOVERS[family].values():
            assert set(per_dtype) == {"float32", "float64"}
            assert all(isinstance(v, int) and v >= 0 for v in per_dtype.values())
    layer = runtime.info()["fastdl_threading_layer"]
    layer = layer if layer in layers else "omp"
    assert runtime.get_crossovers() == {f: _crossovers.CROSSOVERS[f][layer] for f in runtime.FAMILIES}
    assert runtime.get_parallel_threshold() is None  # the table decides by default
    assert runtime.info()["parallel_threshold"] == "crossover table"


def test_bytes_against_the_family_and_dtype_crossover(table):
    assert runtime.use_parallel(10, "stream", 999, 4) is False
    assert runtime.use_parallel(10, "stream", 1000, 4) is PARALLEL_POSSIBLE
    assert runtime.use_parallel(10, "stream", 4999, 8) is False  # float64 has its own crossover
    assert runtime.use_parallel(10, "stream", 5000, 8) is PARALLEL_POSSIBLE
    assert runtime.use_parallel(1, "optimizer", 4, 4) is PARALLEL_POSSIBLE  # 0: always
    assert runtime.use_parallel(10**12, "optimizer", 10**13, 8) is False  # 2**62: never
    # no family (the old call form): n * itemsize bytes against 8 MiB
    assert runtime.use_parallel(2**20 - 1) is False
    assert runtime.use_parallel(2**20) is PARALLEL_POSSIBLE
    assert runtime.use_parallel(2**20, "no-such-family", 2**23, 8) is PARALLEL_POSSIBLE


def test_drivers_count_the_bytes_of_their_arrays(table):
    x = np.zeros(100, np.float32)  # relu forward: x, out (400 B each) and a bool mask (100 B) = 900 B
    out, mask = np.empty_like(x), np.empty(100, bool)
    one = np.float32(1)  # scalars do not count
    runtime._set_crossovers({"stream": {"float32": 900, "float64": 900}})
    assert kernels.moves_parallel("stream", x.size, (x, out, mask, one)) is PARALLEL_POSSIBLE
    runtime._set_crossovers({"stream": {"float32": 901, "float64": 900}})
    assert kernels.moves_parallel("stream", x.size, (x, out, mask, one)) is False
    assert kernels.moves_parallel("stream", x.size, (x.astype(np.float64), out, mask)) is PARALLEL_POSSIBLE


def test_the_user_threshold_overrides_the_table(table):
    with runtime.parallel_threshold(0):
        assert runtime.get_parallel_threshold() == 0
        assert runtime.use_parallel(1, "optimizer", 8, 8) is PARALLEL_POSSIBLE  # the table says never
        with runtime.parallel_threshold(None):  # None: the table for this block
            assert runtime.get_parallel_threshold() is None
            assert runtime.use_parallel(1, "optimizer", 8, 8) is False
        assert runtime.get_parallel_threshold() == 0
    with runtime.parallel_threshold(10**12):
        assert runtime.use_parallel(10**9, "stream", 10**10, 4) is False  # the table says parallel
    assert runtime.get_parallel_threshold() is None
    runtime.set_parallel_threshold(5)
    try:
        assert runtime.get_parallel_threshold() == 5
        assert runtime.use_parallel(4, "stream", 10**10, 4) is False
    finally:
        runtime.reset_parallel_threshold()
    assert runtime.get_parallel_threshold() is None
    assert runtime.use_parallel(4, "stream", 10**10, 4) is PARALLEL_POSSIBLE


def test_one_thread_is_always_serial(table):
    with runtime.parallel_threshold(0), fastdl.threads(1):
        assert runtime.use_parallel(10**9, "stream", 10**10, 4) is False


def test_every_kernel_call_names_a_known_family():
    """Each driver's family (a string literal at the call) is one the table has."""
    sources = list((REPO / "fastdl" / "kernels").glob("*.py")) + list((REPO / "fastdl" / "optim").glob("*.py"))
    named = set()
    for path in sources:
        text = path.read_text()
        named |= set(re.findall(r'family="([a-z_]+)"', text))
        named |= set(re.findall(r'(?:use_parallel|moves_parallel)\([^"\n]*"([a-z_]+)"', text))
    assert named == set(runtime.FAMILIES)


_ENV_SCRIPT = """
import numpy as np
from fastdl import functional as F, runtime
runtime.set_parallel_threshold(0)
assert runtime.use_parallel(10**9) is False, "FASTDL_NUM_THREADS=1 must keep every kernel serial"
x = np.linspace(-1.0, 1.0, 4096).reshape(64, 64)
assert np.array_equal(F.relu(x), np.maximum(x, 0.0))
assert runtime.info()["fastdl_num_threads"] == 1
print("ok")
"""


def test_env_one_thread_makes_every_kernel_serial(tmp_path):
    env = dict(os.environ, FASTDL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _ENV_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [0, 1])
def test_max_norm_parallel_twins_give_the_serial_numbers(dtype, axis):
    rng = np.random.default_rng(3)
    w0 = (3.0 * rng.standard_normal((301, 67))).astype(dtype)
    results = []
    for threshold in (2**62, 0):
        w = w0.copy()
        with runtime.parallel_threshold(threshold):
            constraints.MaxNorm(2.0, axis=axis)(w)
        results.append(w)
    np.testing.assert_array_equal(results[0], results[1])
    norms = np.sqrt((results[0].astype(np.float64) ** 2).sum(axis=axis))
    assert norms.max() <= 2.0 * (1 + 1e-5) and not np.array_equal(results[0], w0)


def test_crossover_is_where_parallel_keeps_winning():
    cross = _bench_module().crossover
    never = _bench_module().NEVER
    pts = [(1, 1.0, 2.0), (2, 1.0, 0.9), (4, 1.0, 1.2), (8, 1.0, 0.5), (16, 1.0, 0.5)]
    assert cross(pts, 0.05) == 8  # a win at 2 followed by a loss at 4 does not count
    assert cross(pts[:3], 0.05) == never  # the top size lost
    assert cross([(1, 1.0, 0.97), (2, 1.0, 0.9)], 0.05) == 2  # 3 % faster is under the margin
    assert cross([(1, 1.0, 0.5)], 0.05) == 1


def test_written_table_is_read_back(tmp_path):
    bench = _bench_module()
    path = tmp_path / "_crossovers.py"
    path.write_text("old")
    table = {"stream": {"float32": 4096, "float64": 8192}, "optimizer": {"float32": 2**20}}
    bench.write_table(table, path, "0.10 0.20 0.30", layer="omp")
    bench.write_table({"stream": {"float32": 1, "float64": 2}}, path, "0.4 0.5 0.6", layer="tbb")
    bench.write_table(table, path, "0.7 0.8 0.9", layer="tbb")  # replaces tbb's, keeps omp's
    spec = importlib.util.spec_from_file_location("written", path)
    written = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(written)
    assert set(written.MEASURED) == {"omp", "tbb"} and set(written.CROSSOVERS) == set(runtime.FAMILIES)
    for layer in ("omp", "tbb"):
        tab = {family: per_layer[layer] for family, per_layer in written.CROSSOVERS.items()}
        assert tab["stream"] == {"float32": 4096, "float64": 8192}
        assert tab["optimizer"] == {"float32": 2**20, "float64": bench.NEVER}  # unmeasured: never
        assert tab["softmax"] == {"float32": bench.NEVER, "float64": bench.NEVER}
    assert written.MEASURED["omp"]["load_before"] == "0.10 0.20 0.30"
    assert written.MEASURED["tbb"]["load_before"] == "0.7 0.8 0.9"
    assert not [p for p in tmp_path.iterdir() if p.name != "_crossovers.py"]  # no temporary file left


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_map_pieces_give_the_serial_values(dtype):
    """NumPy's exp/tanh split over helper threads: every element as the whole-array call gives it."""
    from fastdl.kernels import activations as KA
    from fastdl.kernels import numpy_map, smooth, softmax

    x = np.random.default_rng(5).standard_normal(100_003).astype(dtype) * 30
    results = []
    for threshold in (2**62, 0):
        with runtime.parallel_threshold(threshold), np.errstate(over="ignore"):
            sig, th = np.empty_like(x), np.empty_like(x)
            numpy_map(KA._exp_of_negative, x, sig)
            smooth.tanh_forward(x, th)
            sm = softmax.softmax(x[:98_000].reshape(-1, 7))
        results.append((sig, th, sm))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(results[0][0], np.exp(-x))


def test_numpy_map_helpers_keep_the_callers_errstate():
    from fastdl.kernels import activations as KA
    from fastdl.kernels import numpy_map

    x = np.full(50_000, -1000.0)  # exp(1000) overflows in every piece
    out = np.empty_like(x)
    with runtime.parallel_threshold(0):
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            numpy_map(KA._exp_of_negative, x, out)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(over="ignore"):
                numpy_map(KA._exp_of_negative, x, out)
    assert np.isinf(out).all()
