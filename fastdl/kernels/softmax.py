"""Row-wise softmax and the softmax + cross-entropy loss on C-contiguous ``(N, C)`` arrays.

Formulas (the book's)::

    y[i, j] = exp(x[i, j] - max_j x[i, j]) / sum_j exp(x[i, j] - max_j x[i, j])
    loss    = -sum_i log(y[i, t_i] + eps) / N          (eps = 1e-7, t_i = argmax of a one-hot row)
    dx      = (y - onehot(t)) / N * dout               (labels)
    dx      = (y - t) / N * dout                       (one-hot / probability targets)

Three steps: a compiled pass writes ``y = x - max`` row by row; NumPy's ``exp`` runs in place on
``y``; a compiled pass sums each row (in float64, then rounded to the dtype) and divides, and the
loss picks one entry per row. NumPy's ``exp`` is SIMD and gives the reference's values to the bit
(measurements: ``docs/design-notes.md``, "Activations and softmax"). Loss sums are accumulated in
float64 and returned as a Python float; the caller rounds to the dtype.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch, numpy_map


@jit
def _shift_rows(x, y, lo, hi):
    """``y[i] = x[i] - max(x[i])`` for rows ``[lo, hi)``."""
    c = x.shape[1]
    for i in range(lo, hi):
        mx = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > mx:  # a NaN anywhere in the row makes the whole row NaN below, as in NumPy
                mx = v
        for j in range(c):
            y[i, j] = x[i, j] - mx


@jit(parallel=True)
def _shift_rows_par(x, y, nchunks):
    n = x.shape[0]
    for k in prange(nchunks):
        _shift_rows(x, y, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _normalize_rows(y, lo, hi):
    """``y[i] = y[i] / sum(y[i])`` for rows ``[lo, hi)`` (``y`` holding the exps; float64 sums)."""
    c = y.shape[1]
    s_typed = np.empty(1, dtype=y.dtype)
    for i in range(lo, hi):
        s = 0.0
        for j in range(c):
            s += y[i, j]
        s_typed[0] = s
        st = s_typed[0]
        for j in range(c):
            y[i, j] = y[i, j] / st


@jit(parallel=True)
def _normalize_rows_par(y, nchunks):
    n = y.shape[0]
    for k in prange(nchunks):
        _normalize_rows(y, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _xent_rows(y, t, eps, lo, hi):
    s = 0.0
    for i in range(lo, hi):
        s += np.log(y[i, t[i]] + eps)
    return s


@jit
def _normalize_xent(y, t, eps, lo, hi):
    _normalize_rows(y, lo, hi)
    return _xent_rows(y, t, eps, lo, hi)


@jit(parallel=True)
def _normalize_xent_par(y, t, eps, nchunks):
    n = y.shape[0]
    partial = np.zeros(nchunks)
    for k in prange(nchunks):
        partial[k] = _normalize_xent(y, t, eps, k * n // nchunks, (k + 1) * n // nchunks)
    s = 0.0
    for k in range(nchunks):
        s += partial[k]
    return s


def exps_into(x: np.ndarray, y: np.ndarray) -> None:
    """``y = exp(x - rowmax(x))`` for C-contiguous 2-D arrays (``y`` may be ``x``): the softmax numerators."""
    dispatch(_shift_rows, _shift_rows_par, x.shape[0], x.size, x, y, family="softmax")
    flat = y.reshape(-1)  # (C-contiguous: a view)
    numpy_map(_np_exp, flat, flat)  # (arguments <= 0: no overflow)


def _np_exp(x: np.ndarray, out: np.ndarray) -> None:
    np.exp(x, out=out)


@jit
def _row_argmax(t, labels, lo, hi):
    c = t.shape[1]
    for i in range(lo, hi):
        best = 0
        mx = t[i, 0]
        if not np.isnan(mx):
            for j in range(1, c):
                v = t[i, j]
                if np.isnan(v):
                    best = j
                    break
                if v > mx:
                    mx = v
                    best = j
        labels[i] = best


@jit(parallel=True)
def _row_argmax_par(t, labels, nchunks):
    n = t.shape[0]
    for k in prange(nchunks):
        _row_argmax(t, labels, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _bwd_labels(y, t, nf, one, dout, dx, lo, hi):
    c = y.shape[1]
    for i in range(lo, hi):
        ti = t[i]
        for j in range(c):
            v = y[i, j]
            if j == ti:
                v = v - one
            dx[i, j] = v / nf * dout


@jit(parallel=True)
def _bwd_labels_par(y, t, nf, one, dout, dx, nchunks):
    n = y.shape[0]
    for k in prange(nchunks):
        _bwd_labels(y, t, nf, one, dout, dx, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _bwd_probs(y, t, nf, dout, dx, lo, hi):
    c = y.shape[1]
    for i in range(lo, hi):
        for j in range(c):
            dx[i, j] = (y[i, j] - t[i, j]) / nf * dout


@jit(parallel=True)
def _bwd_probs_par(y, t, nf, dout, dx, nchunks):
    n = y.shape[0]
    for k in prange(nchunks):
        _bwd_probs(y, t, nf, dout, dx, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _labels_in_range(t, c):
    for i in range(t.size):
        v = t[i]
        if v < 0 or v >= c:
            return False
    return True


def labels_in_range(t: np.ndarray, c: int) -> bool:
    """True when every entry of the contiguous ``intp`` array ``t`` lies in ``[0, c)``."""
    return _labels_in_range(t, c)


def softmax(x: np.ndarray) -> np.ndarray:
    """New array: row-wise softmax of C-contiguous 2-D ``x`` in its dtype."""
    y = np.empty_like(x)
    exps_into(x, y)
    dispatch(_normalize_rows, _normalize_rows_par, y.shape[0], y.size, y, family="softmax")
    return y


def row_argmax(t: np.ndarray) -> np.ndarray:
    """New ``intp`` array of the first row-wise maximum of C-contiguous 2-D ``t`` (NumPy's argmax)."""
    labels = np.empty(t.shape[0], dtype=np.intp)
    dispatch(_row_argmax, _row_argmax_par, t.shape[0], t.size, t, labels, family="softmax")
    return labels


def softmax_xent_forward(x: np.ndarray, labels: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """``(y, sum_i log(y[i, labels_i] + eps))`` for C-contiguous ``x`` and ``intp`` labels in range."""
    y = np.empty_like(x)
    exps_into(x, y)
    s = dispatch(_normalize_xent, _normalize_xent_par, y.shape[0], y.size, y, labels, x.dtype.type(eps),
                 family="softmax")
    return y, s


def xent(y: np.ndarray, labels: np.ndarray, eps: float) -> float:
    """``sum_i log(y[i, labels_i] + eps)`` (float64 accumulation)."""
    return _xent_rows(y, labels, y.dtype.type(eps), 0, y.shape[0])


def softmax_xent_backward(y: np.ndarray, t: np.ndarray, dout) -> np.ndarray:
    """New ``dx``: ``(y - onehot(t)) / N * dout`` (``t`` intp labels) or ``(y - t) / N * dout`` (2-D ``t``).

    ``dout`` must already be a scalar of y's dtype; 2-D ``t`` must be C-contiguous in y's dtype.
    """
    dx = np.empty_like(y)
    n = y.shape[0]
    nf = y.dtype.type(n)
    if t.ndim == 1:
        dispatch(_bwd_labels, _bwd_labels_par, n, y.size, y, t, nf, y.dtype.type(1), dout, dx, family="softmax")
    else:
        dispatch(_bwd_probs, _bwd_probs_par, n, y.size, y, t, nf, dout, dx, family="softmax")
    return dx
