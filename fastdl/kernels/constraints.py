"""Weight constraints, in place: one compiled call per matrix (a norm pass and a scaling pass)."""

from __future__ import annotations

import numpy as np

from .._jit import jit


@jit
def max_norm_columns(w, max_value, eps):
    """Keras' MaxNorm over axis 0 of a C-contiguous ``(n, m)`` ``w``: each column scaled by
    ``min(norm, max_value) / (eps + norm)``; returns nothing (``w`` changes in place)."""
    n, m = w.shape
    acc = np.zeros(m, dtype=w.dtype)
    for i in range(n):  # rows outer, a contiguous inner loop into a length-m accumulator
        for j in range(m):
            v = w[i, j]
            acc[j] += v * v
    for j in range(m):
        norm = np.sqrt(acc[j])
        acc[j] = min(norm, max_value) / (eps + norm)
    for i in range(n):
        for j in range(m):
            w[i, j] *= acc[j]


@jit
def max_norm_rows(w, max_value, eps):
    """Keras' MaxNorm over axis 1 of a C-contiguous ``(n, m)`` ``w``: each row scaled likewise."""
    n, m = w.shape
    acc = np.zeros(n, dtype=w.dtype)
    for i in range(n):
        for j in range(m):
            v = w[i, j]
            acc[i] += v * v
    for i in range(n):
        norm = np.sqrt(acc[i])
        scale = min(norm, max_value) / (eps + norm)
        for j in range(m):
            w[i, j] *= scale
