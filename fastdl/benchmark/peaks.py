"""Machine peaks: streaming bandwidth (a parallel triad) and large-GEMM throughput per dtype.

Rates of the bench cases are shown as a fraction of these. The triad counts 32 bytes per element
(STREAM's 24 plus the write-allocate read of ``a``), the comparable peak for traffic models that
count writes to arrays that are also read; see ``docs/design-notes.md``, *Benchmark methodology*.
"""

from __future__ import annotations

import math
import os
import time

import numba
import numpy as np

from .. import runtime
from .._jit import jit
from .cases import DTYPES

#: last-level cache size assumed when sizing the triad arrays (4x this by default)
LLC_BYTES = 32 * 2**20


@jit
def _triad_chunk(a, b, c, s, start, stop):
    # slice first: a loop over range(size) of the views vectorizes; range(start, stop) keeps
    # wraparound checks and measured well below the machine's bandwidth
    av, bv, cv = a[start:stop], b[start:stop], c[start:stop]
    for i in range(av.size):
        av[i] = bv[i] + s * cv[i]


@jit(parallel=True)
def _triad_parallel(a, b, c, s, nchunks):
    n = a.shape[0]
    step = (n + nchunks - 1) // nchunks
    for k in numba.prange(nchunks):
        _triad_chunk(a, b, c, s, k * step, min(n, (k + 1) * step))


def measure_peaks(*, triad_bytes: int = 4 * LLC_BYTES, gemm_n: int = 2048, repeats: int = 5) -> dict:
    """Measure this machine's streaming bandwidth and large-GEMM throughput.

    Parameters
    ----------
    triad_bytes : int
        Bytes per triad array (default 4x a 32 MiB last-level cache).
    gemm_n : int
        Side of the square GEMM (``np.dot``, BLAS) timed per dtype.
    repeats : int
        Runs of each; the best is kept (a peak).

    Returns
    -------
    dict
        ``{'triad_GBps', 'triad_bytes', 'gemm_n', 'gemm_GFLOPs': {'float32': .., 'float64': ..}, 'threads',
        'blas_env'}``.
    """
    n = max(1024, triad_bytes // 8)
    a, b, c = np.empty(n), np.full(n, 1.0), np.full(n, 2.0)
    chunks = runtime.chunks(n) if runtime.parallel_available() else 1
    _triad_parallel(a, b, c, 3.0, chunks)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad_parallel(a, b, c, 3.0, chunks)
        best = min(best, time.perf_counter() - t0)
    gemm = {}
    for dtype in DTYPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
        out = np.empty_like(x)
        np.dot(x, x, out=out)
        g = math.inf
        for _ in range(max(2, repeats // 2)):
            t0 = time.perf_counter()
            np.dot(x, x, out=out)
            g = min(g, time.perf_counter() - t0)
        gemm[dtype] = 2.0 * gemm_n**3 / g / 1e9
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                if k in os.environ}
    # 32 bytes per element: b and c read, a read for ownership (write-allocate) and written
    return {"triad_GBps": 4 * 8 * n / best / 1e9, "triad_bytes": int(8 * n), "gemm_n": gemm_n,
            "gemm_GFLOPs": gemm, "threads": runtime.get_num_threads(), "blas_env": blas_env}


def peak_for(unit: str, dtype: str, peaks: dict | None) -> float | None:
    """The peak a rate in ``unit`` is compared against (None when unknown)."""
    if not peaks:
        return None
    if unit == "GB/s":
        return peaks.get("triad_GBps")
    return (peaks.get("gemm_GFLOPs") or {}).get(dtype)
