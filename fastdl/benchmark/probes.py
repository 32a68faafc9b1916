"""Start-up and compile probes (fresh interpreters) and the phase profile of the fused training step.

What each figure includes and how it is measured: ``docs/design-notes.md``, *Benchmark methodology*.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from .. import nets, optim
from ..profiler import profile_step
from .cases import DTYPES, step_data

_COST_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import fastdl
t_import = time.perf_counter() - t0
steps = fastdl.warmup({dtypes!r})
first = sum(s.seconds for s in steps)
again = fastdl.warmup({dtypes!r})
print(json.dumps({{"import_s": t_import, "first_s": first, "steady_s": sum(s.seconds for s in again),
                  "compiled": sum(s.compiled for s in steps), "loaded": sum(s.loaded for s in steps),
                  "steps": len(steps)}}))
"""

_STARTUP_SNIPPET = """
import json, time
t0 = time.perf_counter()
import fastdl
t_import = time.perf_counter() - t0
import numpy as np
from fastdl.nets import MultiLayerNetExtend
from fastdl.optim import Adam
rng = np.random.default_rng(0)
x, t = rng.standard_normal((100, 784)), rng.integers(0, 10, 100)
np.random.seed(0)
net = MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True)
opt = Adam()
opt.update(net.params, net.gradient(x, t))
net.loss(x, t)
net.accuracy(x, t)
print(json.dumps({"import_s": t_import, "first_step_s": time.perf_counter() - t0}))
"""


def _dtype_tuple(dtypes: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(dtypes, str):
        return DTYPES if dtypes == "all" else (dtypes,)
    return tuple(dtypes)


def _run_snippet(code: str, env: dict, where: str, what: str) -> dict:
    """Run ``code`` in a fresh interpreter; the JSON object on its last line of output."""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{where}: {what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_compile_cost(dtypes: Sequence[str] | str = DTYPES) -> dict:
    """Cold compile, warm-cache load and steady-state call time of the warm-up work, in subprocesses.

    A fresh interpreter runs :func:`fastdl.warmup` with ``NUMBA_CACHE_DIR`` pointing at an empty
    temporary directory (cold: everything compiles), then a second fresh interpreter runs it against
    the now filled directory (warm: everything loads). In each, the warm-up runs a second time for
    the steady-state cost of the same calls with nothing to compile or load.

    Returns
    -------
    dict
        ``{'cold': {...}, 'warm': {...}}``, each with ``first_s`` (warm-up time), ``steady_s``,
        ``compiled``, ``loaded``, ``import_s``.
    """
    snippet = _COST_SNIPPET.format(dtypes=_dtype_tuple(dtypes))
    with tempfile.TemporaryDirectory(prefix="fastdl-cold-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        return {label: _run_snippet(snippet, env, "measure_compile_cost", f"{label} run")
                for label in ("cold", "warm")}


def measure_startup(repeats: int = 3) -> dict:
    """Start-up cost of a float64 training run, each figure from fresh interpreters.

    The run: ``import fastdl``, the book's 784-100x5-10 batch-norm network in float64, one
    ``gradient()`` + Adam ``update()``, then ``loss()`` and ``accuracy()``; timed from just before
    ``import fastdl``.

    Returns
    -------
    dict
        ``cold_first_step_s`` (empty kernel cache: compiles everything the run needs), ``warmup_s``
        (``fastdl warmup --dtype float64`` on another empty cache), ``after_warmup_first_step_s``
        (the run after it), ``import_s`` and ``warm_first_step_s`` (medians of ``repeats`` runs
        with a filled cache).
    """
    out: dict = {}
    where = "measure_startup"
    with tempfile.TemporaryDirectory(prefix="fastdl-startup-") as tmp:
        cold = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "cold"))
        out["cold_first_step_s"] = _run_snippet(_STARTUP_SNIPPET, cold, where, "cold run")["first_step_s"]
        warm = [_run_snippet(_STARTUP_SNIPPET, cold, where, "warm run") for _ in range(repeats)]
        out["import_s"] = statistics.median(r["import_s"] for r in warm)
        out["warm_first_step_s"] = statistics.median(r["first_step_s"] for r in warm)
        ahead = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "warmup"))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "fastdl", "warmup", "--dtype", "float64"], env=ahead,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{where}: fastdl warmup failed:\n{proc.stderr[-2000:]}")
        out["warmup_s"] = time.perf_counter() - t0
        out["after_warmup_first_step_s"] = _run_snippet(_STARTUP_SNIPPET, ahead, where,
                                                        "run after warmup")["first_step_s"]
    return out


def measure_step_profile(dtypes: Sequence[str] = DTYPES, *, repeat: int = 200, seed: int = 0) -> dict:
    """Phase breakdown of fastdl's ``train-step-bn`` (784-100x5-10 + batch norm, batch 100, Adam).

    :func:`fastdl.profiler.profile_step` on the same network, data and optimizer as the
    ``train-step-bn`` case; returns ``{dtype: StepProfile.to_dict()}`` (``non_gemm_share`` is the
    fraction of the step outside the GEMMs).
    """
    out = {}
    for dtype in dtypes:
        x, t, (_, d, hidden, classes) = step_data(dtype, seed)
        np.random.seed(seed)
        net = nets.MultiLayerNetExtend(d, list(hidden), classes, use_batchnorm=True, dtype=np.dtype(dtype))
        out[dtype] = profile_step(net, x, t, optimizer=optim.Adam(lr=1e-3), repeat=repeat, warmup=20,
                                  label="fastdl").to_dict()
    return out
