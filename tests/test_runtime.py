"""Run-time policy: threads, parallel threshold, non-finite reporting, cache directory, OpenMP spin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest

import fastdl
from fastdl import _checks, runtime


def test_threads_context_restores_and_applies():
    before = runtime.get_num_threads()
    with fastdl.threads(1):
        assert numba.get_num_threads() == 1
    assert runtime.get_num_threads() == before


def test_threads_context_restores_after_exception():
    before = runtime.get_num_threads()
    with pytest.raises(KeyError), fastdl.threads(1):
        raise KeyError("boom")
    assert runtime.get_num_threads() == before


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (10_000, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_set_num_threads_rejects(bad, exc):
    before = runtime.get_num_threads()
    with pytest.raises(exc, match="set_num_threads"):
        runtime.set_num_threads(bad)
    assert runtime.get_num_threads() == before


def test_parallel_threshold_context_and_decision():
    old = runtime.get_parallel_threshold()
    with runtime.parallel_threshold(0):
        assert runtime.get_parallel_threshold() == 0
        expected = runtime.parallel_available() and numba.get_num_threads() > 1
        assert runtime.use_parallel(1) is expected
        with fastdl.threads(1):
            assert runtime.use_parallel(10**9) is False
    assert runtime.get_parallel_threshold() == old
    with runtime.parallel_threshold(10**12):
        assert runtime.use_parallel(10**9) is False
    with pytest.raises(ValueError, match="set_parallel_threshold"):
        runtime.set_parallel_threshold(-1)


def test_chunks_bounded_by_rows_and_threads():
    assert runtime.chunks(1) == 1
    assert 1 <= runtime.chunks(10**6) <= numba.get_num_threads()


def test_errstate_policies():
    assert runtime.get_nonfinite_policy() == "warn"
    with pytest.warns(fastdl.NonFiniteWarning, match="somewhere: loss is nan"):
        runtime.report_nonfinite("somewhere", "loss is nan")
    with fastdl.errstate(nonfinite="raise"):
        with pytest.raises(FloatingPointError, match="somewhere: loss is inf"):
            runtime.report_nonfinite("somewhere", "loss is inf")
    with fastdl.errstate(nonfinite="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        runtime.report_nonfinite("somewhere", "ignored")
    assert runtime.get_nonfinite_policy() == "warn"
    with pytest.raises(ValueError, match="nonfinite policy"):
        runtime.set_nonfinite_policy("loud")


def _run_python(code: str, env_changes: dict[str, str | None]) -> str:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


_PROBE = ("import json, os, fastdl; print(json.dumps([fastdl.runtime.cache_dir(), os.environ.get('GOMP_SPINCOUNT'), "
          "fastdl.runtime.info()['fastdl_threading_layer']]))")


def test_cache_dir_defaults_to_user_cache(tmp_path):
    out = _run_python(_PROBE, {"NUMBA_CACHE_DIR": None, "FASTDL_CACHE_DIR": None,
                               "XDG_CACHE_HOME": str(tmp_path), "GOMP_SPINCOUNT": None})
    cache, _spin, _layer = json.loads(out)
    assert cache == str(tmp_path / "fastdl" / "numba" / runtime.kernel_source_key())
    assert os.path.isdir(cache)


_LAYER_PROBE = ("import json, os, numba, numpy as np, fastdl\n"
                "from fastdl.kernels import activations as A\n"
                "x = np.ones(64); A._relu_out_par(x, np.empty_like(x), 2)  # a parallel region: Numba loads its layer\n"
                "print(json.dumps([os.environ.get('GOMP_SPINCOUNT'), fastdl.runtime.info()['fastdl_threading_layer'], "
                "numba.threading_layer()]))")


@pytest.mark.parametrize("setting", ["omp", "tbb", "TBB"])
def test_spin_count_is_lowered_only_for_the_omp_layer(setting):
    """libgomp's spinning fights OpenBLAS (omp layer: fastdl sets 1000); with tbb nothing is set, so a
    PyTorch imported later keeps its own OpenMP defaults. The setting is case-insensitive, as in Numba."""
    layer = setting.lower()
    if layer == "tbb":
        pytest.importorskip("numba.np.ufunc.tbbpool")  # (importable here only after fastdl's preload, done above)
    try:
        out = _run_python(_LAYER_PROBE, {"NUMBA_THREADING_LAYER": setting, "GOMP_SPINCOUNT": None})
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"a parallel kernel with NUMBA_THREADING_LAYER={setting} failed: {exc.stderr[-400:]}")
    spin, picked, running = json.loads(out)
    assert picked == running == layer
    assert spin == (runtime.DEFAULT_GOMP_SPINCOUNT if layer == "omp" else None)


def test_a_named_layer_that_does_not_load_means_serial_with_a_warning(monkeypatch):
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "tbb")
    monkeypatch.setattr(runtime, "_try_layer", lambda name: False)
    with pytest.warns(RuntimeWarning, match="NUMBA_THREADING_LAYER=tbb does not load"):
        assert runtime._pick_threading_layer() is None


def test_tbb_is_preferred_when_it_loads():
    """The default pick: tbb (installed with fastdl on x86-64) before omp."""
    out = _run_python(_PROBE, {"NUMBA_THREADING_LAYER": None, "GOMP_SPINCOUNT": None})
    layer = json.loads(out)[2]
    try:
        import numba.np.ufunc.tbbpool  # noqa: F401  (loads only after fastdl's preload, which ran at import)
    except ImportError:
        assert layer in ("omp", "serial-only")
    else:
        assert layer == "tbb"


def test_cache_key_changes_with_any_kernel_source(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "kernels").mkdir(parents=True)
    (package / "optim").mkdir()
    (package / "kernels" / "a.py").write_text("x = 1\n")
    (package / "optim" / "rules.py").write_text("y = 1\n")
    (package / "other.py").write_text("z = 1\n")
    monkeypatch.setattr(runtime, "__file__", str(package / "runtime.py"))
    first = runtime.kernel_source_key()
    (package / "other.py").write_text("z = 2\n")  # not a kernel source
    assert runtime.kernel_source_key() == first
    (package / "kernels" / "a.py").write_text("x = 2\n")
    second = runtime.kernel_source_key()
    (package / "optim" / "rules.py").write_text("y = 2\n")
    assert len({first, second, runtime.kernel_source_key()}) == 3


def test_user_settings_win(tmp_path):
    out = _run_python(_PROBE, {"NUMBA_CACHE_DIR": str(tmp_path / "mine"), "GOMP_SPINCOUNT": "777"})
    cache, spin, _layer = json.loads(out)
    assert cache == str(tmp_path / "mine")
    assert spin == "777"


def test_unwritable_cache_falls_back_to_tempdir(tmp_path):
    # a path below a regular file cannot be created, whoever runs the test (root included)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = _run_python(_PROBE, {"NUMBA_CACHE_DIR": None, "FASTDL_CACHE_DIR": str(blocker / "sub")})
    cache = json.loads(out)[0]
    assert "fastdl-numba" in cache and os.path.isdir(cache)


def test_info_records_versions_and_threads():
    info = runtime.info()
    assert info["numba"] == numba.__version__ and info["numpy"] == np.__version__
    assert info["numba_threads"] == numba.get_num_threads()
    assert info["fastdl_threading_layer"] in ("omp", "tbb", "serial-only")


def test_import_does_not_load_heavy_modules():
    out = _run_python("import sys, fastdl; print(sorted(m for m in ('matplotlib', 'torch', 'sklearn', 'tqdm') "
                      "if m in sys.modules))", {})
    assert out == "[]"


# --- _checks: the one wording --------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.arange(3), np.ones(3, bool), np.ones(3, np.complex128),
                                 np.ones(3, np.float16), None, "abc"])
def test_float_array_rejects_non_float(bad):
    with pytest.raises(TypeError, match=r"f\(\): x must be a float32 or float64"):
        _checks.float_array(bad, "x", "f()")


def test_float_array_accepts_lists_and_checks_ndim():
    a = _checks.float_array([[1.0, 2.0]], "x", "f()", ndim=2)
    assert a.dtype == np.float64 and a.shape == (1, 2)
    with pytest.raises(ValueError, match=r"f\(\): x must be 1-D or 3-D; got shape \(1, 2\)"):
        _checks.float_array(a, "x", "f()", ndim=(1, 3))


def test_positive_number():
    assert _checks.positive_number(0.1, "lr", "SGD") == 0.1
    assert _checks.positive_number(0, "m", "M", allow_zero=True, upper=1) == 0.0
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="SGD: lr must be a finite number > 0"):
            _checks.positive_number(bad, "lr", "SGD")
    with pytest.raises(TypeError, match="lr must be a real number"):
        _checks.positive_number(True, "lr", "SGD")
    with pytest.raises(ValueError, match="and < 1"):
        _checks.positive_number(1.0, "momentum", "Momentum", allow_zero=True, upper=1)


def test_contiguous_copies_only_when_needed():
    a = np.ones((3, 4))
    assert _checks.contiguous(a) is a
    f = np.asfortranarray(a)
    c = _checks.contiguous(f)
    assert c.flags.c_contiguous and c is not f and np.array_equal(c, f)
    c32 = _checks.contiguous(a, np.dtype(np.float32))
    assert c32.dtype == np.float32 and c32.flags.c_contiguous


# --- issue 12: per-thread errstate, threshold arguments, fork, unwritable cache ---------------------------

def test_errstate_is_per_thread():
    """One thread leaving errstate('ignore') must not switch off another thread's 'raise' (as np.errstate)."""
    import threading

    ignore_entered, raise_entered, ignore_left = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def lax():  # enters 'ignore' first and leaves it while the other thread is inside 'raise'
        with fastdl.errstate(nonfinite="ignore"):
            ignore_entered.set()
            raise_entered.wait(10)
            seen["lax"] = runtime.get_nonfinite_policy()
        ignore_left.set()

    def strict():
        ignore_entered.wait(10)
        with fastdl.errstate(nonfinite="raise"):
            raise_entered.set()
            ignore_left.wait(10)
            seen["policy"] = runtime.get_nonfinite_policy()
            try:
                runtime.report_nonfinite("strict thread", "loss is nan")
            except FloatingPointError as exc:
                seen["raised"] = str(exc)
        seen["after"] = runtime.get_nonfinite_policy()

    threads = [threading.Thread(target=lax), threading.Thread(target=strict)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"lax": "ignore", "policy": "raise", "raised": "strict thread: loss is nan", "after": "warn"}
    assert runtime.get_nonfinite_policy() == "warn"  # the main thread never saw either


def test_set_nonfinite_policy_holds_for_the_calling_thread_only():
    import threading

    seen = []
    try:
        runtime.set_nonfinite_policy("ignore")
        worker = threading.Thread(target=lambda: seen.append(runtime.get_nonfinite_policy()))
        worker.start()
        worker.join(20)
        assert runtime.get_nonfinite_policy() == "ignore"
    finally:
        runtime.set_nonfinite_policy("warn")
    assert seen == ["warn"]
    with pytest.raises(ValueError, match=r"errstate: nonfinite policy must be one of .*; got None"):
        with fastdl.errstate(nonfinite=None):
            pass
    assert runtime.get_nonfinite_policy() == "warn"


@pytest.mark.parametrize(("bad", "exc"), [(float("nan"), ValueError), (float("inf"), ValueError),
                                          (None, TypeError), ("100", TypeError), (True, TypeError),
                                          (2.5, ValueError), (-1, ValueError)])
def test_set_parallel_threshold_rejects_in_house_wording(bad, exc):
    before = runtime.get_parallel_threshold()
    with pytest.raises(exc, match=r"^set_parallel_threshold: n must be a non-negative integer .*; got "):
        runtime.set_parallel_threshold(bad)
    assert runtime.get_parallel_threshold() == before
    with runtime.parallel_threshold(1e6):  # a whole float still works
        assert runtime.get_parallel_threshold() == 1_000_000


_FORK_POOL = """
import multiprocessing as mp, sys
import numpy as np
from fastdl import functional as F, runtime

def work(i):
    x = np.full((512, 64), float(i) - 100.0)       # 32K elements: parallel with threshold 1
    return (runtime.use_parallel(x.size), float(F.relu(x).sum()), float(F.softmax(x).sum()))

if __name__ == "__main__":
    runtime.set_parallel_threshold(1)
    assert runtime.use_parallel(10**6) == (runtime.parallel_available() and runtime.get_num_threads() > 1)
    parent = work(101)                              # a parallel region in the parent
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(work, [99, 101, 102, 103])
    print(parent, results, flush=True)
    assert [r[0] for r in results] == [False] * 4   # forked children run serial kernels
    assert [r[1] for r in results] == [0.0, 512 * 64 * 1.0, 512 * 64 * 2.0, 512 * 64 * 3.0]
    assert np.allclose([r[2] for r in results], 512.0)
    print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_fork_pool_after_a_parallel_kernel_finishes(tmp_path):
    script = tmp_path / "fork_pool.py"
    script.write_text(_FORK_POOL)
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the fork pool hung (workers killed by GNU OpenMP?): {exc.stderr!r}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_unwritable_cache_everywhere_runs_uncached_with_one_warning(tmp_path):
    # root ignores permission bits: every directory sits below a regular file, so it cannot be created;
    # NUMBA_CACHE_LOCATOR_CLASSES leaves out Numba's in-tree locator (a read-only install's __pycache__)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = ("import warnings, numpy as np\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastdl\n"
            "    from fastdl import functional as F, layers\n"
            "    y = F.relu(np.array([-1.0, 2.0]))\n"
            "msgs = [str(w.message) for w in caught if 'cache' in str(w.message)]\n"
            "print(len(msgs)); print(msgs[0] if msgs else ''); print(y.tolist())\n")
    out = _run_python(code, {"NUMBA_CACHE_DIR": str(blocker / "numba"), "FASTDL_CACHE_DIR": str(blocker / "f"),
                             "HOME": str(blocker / "home"), "XDG_CACHE_HOME": str(blocker / "xdg"),
                             "TMPDIR": str(blocker / "tmp"),
                             "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator,UserWideCacheLocator"})
    count, message, values = out.splitlines()
    assert count == "1"
    assert "set NUMBA_CACHE_DIR to a writable directory" in message  # the variable the user set decides
    assert values == "[0.0, 2.0]"


def test_errstate_is_per_asyncio_task():
    import asyncio

    async def main():
        entered, left = asyncio.Event(), asyncio.Event()

        async def lax():
            with fastdl.errstate(nonfinite="ignore"):
                entered.set()
                await asyncio.sleep(0)
            left.set()

        async def strict():
            with fastdl.errstate(nonfinite="raise"):
                await entered.wait()
                await left.wait()
                return runtime.get_nonfinite_policy()

        return (await asyncio.gather(lax(), strict()))[1]

    assert asyncio.run(main()) == "raise"
