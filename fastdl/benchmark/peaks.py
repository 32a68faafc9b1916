"""Machine peaks: streaming bandwidth (a parallel triad) per working-set size, GEMM throughput per dtype.

Rates of the bench cases are shown as a fraction of these (:mod:`fastdl.benchmark.roofline`). The
triad counts 32 bytes per element (STREAM's 24 plus the write-allocate read of ``a``): bytes on
the memory bus, the figure a traffic model's ``bus_bytes`` is compared with. The cache sizes come
from the OS (:func:`cache_sizes`); see ``docs/design-notes.md``, *Benchmark methodology* and *Roofline*.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numba
import numpy as np
from tqdm.auto import tqdm

from .. import runtime
from .._jit import jit
from .cases import DTYPES

#: last-level cache size assumed when sizing the triad arrays (4x this by default)
LLC_BYTES = 32 * 2**20

#: cache sizes assumed when the OS tells none (bytes; L1d and L2 per core, L3 shared by all cores)
FALLBACK_CACHES = {"L1d": 32 * 2**10, "L2": 1 * 2**20, "L3": LLC_BYTES}

#: glibc's ``_SC_LEVEL1_DCACHE_SIZE``, ``_SC_LEVEL2_CACHE_SIZE``, ``_SC_LEVEL3_CACHE_SIZE`` (bits/confname.h),
#: for Pythons whose ``os.sysconf_names`` lacks them
_GLIBC_SYSCONF = {"L1d": ("SC_LEVEL1_DCACHE_SIZE", 188), "L2": ("SC_LEVEL2_CACHE_SIZE", 191),
                  "L3": ("SC_LEVEL3_CACHE_SIZE", 194)}
_SYSFS_CACHE = "/sys/devices/system/cpu/cpu0/cache"


def _parse_size(text: str) -> int:
    """``'48K'`` -> 49152, ``'480M'`` -> 503316480, ``'1024'`` -> 1024 (sysfs' cache ``size`` field)."""
    text = text.strip()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
    return int(text[:-1] if scale > 1 else text) * scale


def _cpu_count(cpu_list: str) -> int:
    """``'0-1'`` -> 2, ``'0,2,4-5'`` -> 4 (sysfs' ``shared_cpu_list``)."""
    count = 0
    for part in cpu_list.strip().split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def cache_sizes(sysfs: str = _SYSFS_CACHE) -> dict:
    """Data-cache sizes of this machine, from the OS.

    Read from ``sysfs`` (Linux: ``/sys/devices/system/cpu/cpu0/cache/index*``: ``level``, ``type``,
    ``size``, ``shared_cpu_list``); else from ``os.sysconf`` (glibc's ``LEVEL*_CACHE_SIZE``); else
    :data:`FALLBACK_CACHES`. Each source fills only the levels it knows; the rest fall back.

    Returns
    -------
    dict
        ``{'L1d': bytes, 'L2': bytes, 'L3': bytes, 'shared': {level: cpus sharing one}, 'source': {level:
        'sysfs' | 'sysconf' | 'fallback'}}``. ``shared`` is 1 for a per-core cache (sysconf and the
        fallback assume L1d and L2 per core, L3 shared by every CPU).
    """
    sizes: dict = {}
    shared: dict = {}
    source: dict = {}
    try:
        entries = sorted(os.listdir(sysfs))
    except OSError:
        entries = []
    for entry in entries:
        folder = os.path.join(sysfs, entry)
        try:
            with open(os.path.join(folder, "level")) as fh:
                level = int(fh.read())
            with open(os.path.join(folder, "type")) as fh:
                kind = fh.read().strip()
            with open(os.path.join(folder, "size")) as fh:
                size = _parse_size(fh.read())
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or level not in (1, 2, 3) or size <= 0:
            continue
        name = "L1d" if level == 1 else f"L{level}"
        sizes[name], source[name] = size, "sysfs"
        try:
            with open(os.path.join(folder, "shared_cpu_list")) as fh:
                shared[name] = _cpu_count(fh.read())
        except (OSError, ValueError):
            pass
    cpus = os.cpu_count() or 1
    for name, (symbol, number) in _GLIBC_SYSCONF.items():
        if name in sizes:
            continue
        key = symbol if symbol in os.sysconf_names else (number if sys.platform.startswith("linux") else None)
        try:
            value = os.sysconf(key) if key is not None else -1
        except (OSError, ValueError):
            value = -1
        if value and value > 0:
            sizes[name], source[name] = int(value), "sysconf"
    for name, size in FALLBACK_CACHES.items():
        if name not in sizes:
            sizes[name], source[name] = size, "fallback"
    for name in FALLBACK_CACHES:
        shared.setdefault(name, cpus if name == "L3" else 1)
    return {**{k: sizes[k] for k in FALLBACK_CACHES}, "shared": shared, "source": source}


def cache_level(footprint: float, caches: dict, threads: int) -> str:
    """The smallest level holding ``footprint`` bytes spread over ``threads`` cores (``'DRAM'`` past L3).

    A per-core level holds ``threads`` times its size (each core its share), a shared one its size.
    """
    for name in FALLBACK_CACHES:
        size = caches.get(name)
        if size:
            copies = max(1, threads // max(1, caches.get("shared", {}).get(name, 1)))
            if footprint <= size * copies:
                return name
    return "DRAM"


@jit
def _triad_chunk(a, b, c, s, start, stop, reps):
    # slice first: a loop over range(size) of the views vectorizes; range(start, stop) keeps
    # wraparound checks and measured well below the machine's bandwidth. ``reps`` sweeps over the
    # same slice (a cache-sized one stays in its core's cache), the factor changing so none is redundant
    av, bv, cv = a[start:stop], b[start:stop], c[start:stop]
    for r in range(reps):
        f = s + r
        for i in range(av.size):
            av[i] = bv[i] + f * cv[i]


@jit(parallel=True)
def _triad_parallel(a, b, c, s, nchunks, reps=1):
    n = a.shape[0]
    step = (n + nchunks - 1) // nchunks
    for k in numba.prange(nchunks):
        _triad_chunk(a, b, c, s, k * step, min(n, (k + 1) * step), reps)


def triad_bandwidth(total_bytes: float, *, repeats: int = 3, min_bytes: float = 64 * 2**20) -> float:
    """Bus GB/s of a parallel float64 triad whose three arrays hold ``total_bytes`` together.

    Each thread sweeps its own contiguous share (so a share that fits a core's cache is served from
    it) as many times as it takes to move at least ``min_bytes`` per call; the best of ``repeats``
    calls, 32 bytes per element and sweep (see the module notes).
    """
    n = max(64, int(total_bytes) // 24)
    a, b, c = np.empty(n), np.full(n, 1.0), np.full(n, 2.0)
    chunks = runtime.get_num_threads() if runtime.parallel_available() else 1
    reps = max(1, math.ceil(min_bytes / (32 * n)))
    _triad_parallel(a, b, c, 3.0, chunks, reps)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad_parallel(a, b, c, 3.0, chunks, reps)
        best = min(best, time.perf_counter() - t0)
    return 32.0 * n * reps / best / 1e9


def measure_bandwidth_curve(max_bytes: float, *, min_bytes: float | None = None, step: float = 2.0,
                            repeats: int = 3, progress: bool = False) -> list[tuple[int, float]]:
    """Triad bandwidth (:func:`triad_bandwidth`) at working sets from ``min_bytes`` (default half of all
    cores' L1d) to at least ``max_bytes``, a factor ``step`` apart: ``[(bytes, GB/s), ...]``."""
    caches = cache_sizes()
    size = float(min_bytes or max(16 * 2**10, caches["L1d"] * runtime.get_num_threads() / 2))
    sizes = []
    while True:
        sizes.append(int(size))
        if size >= max_bytes:
            break
        size *= step
    points = tqdm(sizes, desc="bandwidth curve", unit="size", disable=not progress, file=sys.stderr)
    return [(s, triad_bandwidth(s, repeats=repeats)) for s in points]


def measure_gemm_shapes(shapes, dtypes=DTYPES, *, repeats: int = 3) -> dict:
    """GFLOP/s of ``np.dot(a, b, out=)`` per GEMM shape ``(m, k, n)`` and dtype (best of ``repeats``).

    ``b`` is the transpose of a C-contiguous ``(n, k)`` array when the shape is affine's ``dx``
    product, as the layer calls it; every shape is timed with BLAS's own thread count.

    Returns
    -------
    dict
        ``{dtype: {'MxKxN': GFLOP/s}}``.
    """
    out: dict = {}
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        rates = out.setdefault(dtype, {})
        for m, k, n in dict.fromkeys(tuple(s) for s in shapes):
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            c = np.empty((m, n), dtype=dtype)
            np.dot(a, b, out=c)
            best = math.inf
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                np.dot(a, b, out=c)
                best = min(best, time.perf_counter() - t0)
            rates[f"{m}x{k}x{n}"] = 2.0 * m * k * n / best / 1e9
    return out


def measure_peaks(*, triad_bytes: int = 4 * LLC_BYTES, gemm_n: int = 2048, repeats: int = 5,
                  curve_bytes: float | None = None, gemm_shapes=(), progress: bool = False) -> dict:
    """Measure this machine's streaming bandwidth and large-GEMM throughput.

    Parameters
    ----------
    triad_bytes : int
        Bytes per triad array (default 4x a 32 MiB last-level cache).
    gemm_n : int
        Side of the square GEMM (``np.dot``, BLAS) timed per dtype.
    repeats : int
        Runs of each; the best is kept (a peak).
    curve_bytes : float, optional
        Also measure the bandwidth curve (:func:`measure_bandwidth_curve`) up to working sets of this
        many bytes: the limits of cache-resident ops.
    gemm_shapes : sequence of (m, k, n)
        Also time these GEMMs (:func:`measure_gemm_shapes`): the limits of affine's ops.
    progress : bool
        A progress bar over the curve's sizes.

    Returns
    -------
    dict
        ``{'triad_GBps', 'triad_bytes', 'gemm_n', 'gemm_GFLOPs': {'float32': .., 'float64': ..}, 'threads',
        'blas_env', 'caches'}`` (:func:`cache_sizes`), with ``'bandwidth_curve'`` (``[[bytes, GB/s], ...]``)
        and ``'gemm_shapes'`` (``{dtype: {'MxKxN': GFLOP/s}}``) when asked for.
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
    peaks = {"triad_GBps": 4 * 8 * n / best / 1e9, "triad_bytes": int(8 * n), "gemm_n": gemm_n,
             "gemm_GFLOPs": gemm, "threads": runtime.get_num_threads(), "blas_env": blas_env,
             "caches": cache_sizes()}
    if curve_bytes:
        peaks["bandwidth_curve"] = [list(p) for p in measure_bandwidth_curve(curve_bytes, repeats=max(3, repeats),
                                                                             progress=progress)]
    if gemm_shapes:
        peaks["gemm_shapes"] = measure_gemm_shapes(gemm_shapes, repeats=max(2, repeats // 2))
    return peaks


def peak_for(unit: str, dtype: str, peaks: dict | None) -> float | None:
    """The peak a rate in ``unit`` is compared against (None when unknown)."""
    if not peaks:
        return None
    if unit == "GB/s":
        return peaks.get("triad_GBps")
    return (peaks.get("gemm_GFLOPs") or {}).get(dtype)
