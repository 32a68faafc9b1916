"""Weight constraints, in place: one compiled call per matrix (a norm pass and a scaling pass).

Keras' MaxNorm: ``w *= min(norm, max_value) / (eps + norm)`` per column (axis 0) or per row
(axis 1), ``norm`` the Euclidean norm of that column or row. Parallel twins give each thread whole
columns (axis 0; ranges aligned to 16 elements) or whole rows (axis 1), so every norm is summed in
the serial order: the same numbers as serial.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch

_ALIGN = 16  # column ranges start at multiples of 16 elements (64 bytes of float32): no shared cache line


@jit
def _cols(w, max_value, eps, lo, hi):
    """Columns ``[lo, hi)`` of a C-contiguous ``(n, m)`` ``w``: rows outer, a contiguous inner loop."""
    n = w.shape[0]
    acc = np.zeros(hi - lo, dtype=w.dtype)
    for i in range(n):
        ws = w[i, lo:hi]
        for j in range(ws.size):
            v = ws[j]
            acc[j] += v * v
    for j in range(acc.size):
        norm = np.sqrt(acc[j])
        acc[j] = min(norm, max_value) / (eps + norm)
    for i in range(n):
        ws = w[i, lo:hi]
        for j in range(ws.size):
            ws[j] *= acc[j]


@jit(parallel=True)
def _cols_par(w, max_value, eps, nchunks):
    m = w.shape[1]
    for c in prange(nchunks):
        lo = (c * m // nchunks) // _ALIGN * _ALIGN
        hi = m if c == nchunks - 1 else ((c + 1) * m // nchunks) // _ALIGN * _ALIGN
        _cols(w, max_value, eps, lo, hi)


@jit
def _rows(w, max_value, eps, lo, hi):
    """Rows ``[lo, hi)`` of a C-contiguous ``(n, m)`` ``w``, each scaled by its own norm."""
    for i in range(lo, hi):
        ws = w[i]
        if ws.size == 0:
            continue
        s = ws[0] * 0
        for j in range(ws.size):
            v = ws[j]
            s += v * v
        norm = np.sqrt(s)
        scale = min(norm, max_value) / (eps + norm)
        for j in range(ws.size):
            ws[j] *= scale


@jit(parallel=True)
def _rows_par(w, max_value, eps, nchunks):
    n = w.shape[0]
    for c in prange(nchunks):
        _rows(w, max_value, eps, c * n // nchunks, (c + 1) * n // nchunks)


def max_norm_columns(w: np.ndarray, max_value, eps) -> None:
    """Keras' MaxNorm over axis 0 of a C-contiguous ``(n, m)`` ``w`` (scalars of w's dtype), in place."""
    m = w.shape[1]
    dispatch(_cols, _cols_par, m, w.size, w, max_value, eps, family="maxnorm")


def max_norm_rows(w: np.ndarray, max_value, eps) -> None:
    """Keras' MaxNorm over axis 1 of a C-contiguous ``(n, m)`` ``w`` (scalars of w's dtype), in place."""
    dispatch(_rows, _rows_par, w.shape[0], w.size, w, max_value, eps, family="maxnorm")
