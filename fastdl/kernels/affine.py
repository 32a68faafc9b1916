"""Affine helpers around the BLAS GEMMs: bias add in place and column sums.

The GEMMs themselves (``x @ W``, ``dout @ W.T``, ``x.T @ dout``) go to BLAS through ``np.dot``.

* bias add: ``out[i, j] += b[j]`` in place on the fresh GEMM output (one pass)
* column sums: ``db[j] = sum_i dout[i, j]`` (rows outer, contiguous inner loop: NumPy's
  ``sum(axis=0)`` order; the parallel twin sums per-chunk partials afterwards)
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch


@jit
def _bias_add(out, b, lo, hi):
    d = b.size
    for i in range(lo, hi):
        for j in range(d):
            out[i, j] += b[j]


@jit(parallel=True)
def _bias_add_par(out, b, nchunks):
    n = out.shape[0]
    for c in prange(nchunks):
        _bias_add(out, b, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _col_sum(a, acc, lo, hi):
    d = acc.size
    for i in range(lo, hi):
        for j in range(d):
            acc[j] += a[i, j]


@jit(parallel=True)
def _col_sum_par(a, acc, nchunks):
    n, d = a.shape
    partial = np.zeros((nchunks, d), dtype=acc.dtype)
    for c in prange(nchunks):
        _col_sum(a, partial[c], c * n // nchunks, (c + 1) * n // nchunks)
    for c in range(nchunks):
        for j in range(d):
            acc[j] += partial[c, j]


def bias_add(out: np.ndarray, b: np.ndarray) -> None:
    """``out += b`` row by row, in place (``out`` C-contiguous ``(N, D)``, ``b`` contiguous ``(D,)``)."""
    dispatch(_bias_add, _bias_add_par, out.shape[0], out.size, out, b, family="stream")


def col_sum(a: np.ndarray) -> np.ndarray:
    """New array ``a.sum(axis=0)`` of a C-contiguous 2-D ``a``, in a's dtype."""
    acc = np.zeros(a.shape[1], dtype=a.dtype)
    dispatch(_col_sum, _col_sum_par, a.shape[0], a.size, a, acc, family="stream")
    return acc
