"""Batch norm forward + backward pass by pass, against streaming kernels that move the same bytes.

Run ``python bench/batchnorm_passes.py [NxD ...]`` (default 1024x4096 256x1024). For each size and dtype it
runs, in one process and alternated, three sequences over the layer's working set (x, dout, out, dx):

* ``kernels``: the four passes of a training step as :mod:`fastdl.kernels.batchnorm` runs them --
  ``stats`` (``_col_stats``: reads x), ``apply`` (``_apply_cols``: reads x, writes out), ``sums``
  (``_grad_sums``: reads dout and x), ``dx`` (``_dx_cols``: reads dout and x, writes dx), with the
  driver's choice of streaming stores (:data:`fastdl.kernels.ntstore.STREAM_MIN_BYTES`);
* ``plain``: the roofline of each pass -- a sum of x, a copy x -> out, a dot of dout and x, dx = dout + x --
  over flat contiguous halves, plain stores;
* ``stream``: the same with streaming stores for the two writing passes.

Parallel (column halves for the kernels, contiguous halves for the rooflines; 2 threads) and serial.
Prints the best time of each pass (best-of: the least disturbed figure on a shared machine) and the
load average. Not collected by pytest.
"""

import os
import sys
import time

import numba
import numpy as np
from numba import prange

from fastdl.kernels import batchnorm as K
from fastdl.kernels.ntstore import STREAM_MIN_BYTES, stream_fence, stream_store

_FLAGS = {"nogil": True, "error_model": "numpy"}


@numba.njit(**_FLAGS)
def _sums(dout, x, mu, inv, dgamma, dbeta, c0, c1):
    b0 = c0
    while b0 < c1:
        b1 = min(b0 + K.STATS_BLOCK, c1)
        K._grad_sums(dout, x, mu, inv, dgamma, dbeta, b0, b1)
        b0 = b1


@numba.njit(**_FLAGS, parallel=True)
def _kernels_par(which, x, dout, out, dx, mu, var, inv, g, b, p1, p2, p3, nf, stream, k):
    d = x.shape[1]
    for c in prange(k):
        c0, c1 = K._col_span(d, k, c)
        if which == 0:
            K._col_stats(x, mu, var, nf, c0, c1)
        elif which == 1:
            K._apply_cols(x, mu, inv, g, b, out, c0, c1, stream)
        elif which == 2:
            _sums(dout, x, mu, inv, p1, p2, c0, c1)
        else:
            K._dx_cols(dout, x, mu, inv, p1, p2, p3, dx, c0, c1, stream)


@numba.njit(**_FLAGS, fastmath=True)
def _roof(which, x, y, out, stream, lo, hi):
    """0: sum x; 1: out = x; 2: sum x * y; 3: out = x + y -- over the flat range [lo, hi) (lo 64-byte aligned)."""
    f, g, o = x.ravel()[lo:hi], y.ravel()[lo:hi], out.ravel()[lo:hi]
    s = 0.0
    if which == 0:
        for i in range(f.size):
            s += f[i]
    elif which == 2:
        for i in range(f.size):
            s += f[i] * g[i]
    elif which == 1 and stream:
        for i in range(f.size):
            stream_store(o, i, f[i])
        stream_fence()
    elif which == 1:
        for i in range(f.size):
            o[i] = f[i]
    elif stream:
        for i in range(f.size):
            stream_store(o, i, f[i] + g[i])
        stream_fence()
    else:
        for i in range(f.size):
            o[i] = f[i] + g[i]
    return s


@numba.njit(**_FLAGS, parallel=True)
def _roof_par(which, x, y, out, stream, k):
    n = x.size
    acc = np.zeros(k)
    for c in prange(k):
        lo = n * c // k // 64 * 64
        hi = n if c == k - 1 else n * (c + 1) // k // 64 * 64
        acc[c] = _roof(which, x, y, out, stream, lo, hi)
    return acc.sum()


def _aligned_like(a):
    """An empty array like ``a`` whose data starts on a 64-byte boundary (the rooflines' streaming stores)."""
    buf = np.empty(a.nbytes + 64, np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)


def _sequences(n, d, dt, k):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((n, d)).astype(dt), rng.standard_normal((n, d)).astype(dt)
    mu, var = x.mean(0).astype(dt), np.empty(d, dt)
    inv = (1 / np.sqrt(x.var(0) + 1e-6)).astype(dt)
    g, b = np.ones(d, dt), np.zeros(d, dt)
    p1, p2, p3 = (rng.standard_normal(d).astype(dt) for _ in range(3))
    nf, stream = dt(n), x.nbytes >= STREAM_MIN_BYTES
    names = ("stats", "apply", "sums", "dx")

    def kernels():
        out, dx = _aligned_like(x), _aligned_like(x)  # (each sequence its own outputs: a streamed-out line
        if k > 1:                                     # is not in the caches of the next sequence's stores)
            return [lambda w=w: _kernels_par(w, x, dout, out, dx, mu, var, inv, g, b, p1, p2, p3, nf, stream, k)
                    for w in range(4)]
        return [lambda: K._col_stats(x, mu, var, nf, 0, d), lambda: K._apply_cols(x, mu, inv, g, b, out, 0, d, stream),
                lambda: _sums(dout, x, mu, inv, p1, p2, 0, d),
                lambda: K._dx_cols(dout, x, mu, inv, p1, p2, p3, dx, 0, d, stream)]

    def roofs(s):
        out, dx = _aligned_like(x), _aligned_like(x)
        if k > 1:
            return [lambda w=w: _roof_par(w, x, dout, out if w == 1 else dx, s, k) for w in range(4)]
        return [lambda w=w: _roof(w, x, dout, out if w == 1 else dx, s, 0, x.size) for w in range(4)]

    return {"kernels" + (" (stream)" if stream else ""): list(zip(names, kernels())),
            "plain": list(zip(names, roofs(False))), "stream": list(zip(names, roofs(True)))}


def _best(seqs, seconds):
    best = {s: dict.fromkeys((p for p, _ in passes), float("inf")) for s, passes in seqs.items()}
    for passes in seqs.values():
        for _, f in passes + passes:
            f()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for s, passes in seqs.items():
            for p, f in passes:
                t0 = time.perf_counter()
                f()
                best[s][p] = min(best[s][p], time.perf_counter() - t0)
    return best


def main() -> None:
    sizes = [tuple(int(v) for v in a.split("x")) for a in sys.argv[1:]] or [(1024, 4096), (256, 1024)]
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); Numba threading layer {numba.config.THREADING_LAYER}")
    for n, d in sizes:
        for dt in (np.float32, np.float64):
            for k in (2, 1):
                best = _best(_sequences(n, d, dt, k), 8 if n * d > 10**6 else 2)
                print(f"{n}x{d} {np.dtype(dt).name} {'parallel' if k > 1 else 'serial'}:")
                for s, per in best.items():
                    cells = ", ".join(f"{p} {t * 1e6:.0f}" for p, t in per.items())
                    print(f"  {s:18s} {cells}; sum {sum(per.values()) * 1e6:.0f} us", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at end")


if __name__ == "__main__":
    main()
