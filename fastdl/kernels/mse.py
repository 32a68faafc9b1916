"""The identity output with the sum-of-squares loss (regression) on C-contiguous ``(N, D)`` arrays.

Formulas (the book's ``sum_squared_error`` per sample, averaged over the batch)::

    y    = x
    loss = 0.5 * sum_ij (y[i, j] - t[i, j])**2 / N
    dx   = (y - t) / N * dout

The squares are taken in the array dtype and summed in float64 (returned as a Python float; the
caller forms ``0.5 * s / N`` and rounds to the dtype). One pass computes the sum and the gradient
(:func:`mse_grad`); :func:`identity_mse_grad` adds the output bias first and the bias gradient last,
for the fused training step.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch


@jit
def _sq_err(y, t, lo, hi):
    """``sum (y - t)**2`` over rows ``[lo, hi)`` (squares in the dtype, float64 sum)."""
    c = y.shape[1]
    s = 0.0
    for i in range(lo, hi):
        for j in range(c):
            d = y[i, j] - t[i, j]
            s += d * d
    return s


@jit(parallel=True)
def _sq_err_par(y, t, nchunks):
    n = y.shape[0]
    partial = np.zeros(nchunks)
    for k in prange(nchunks):
        partial[k] = _sq_err(y, t, k * n // nchunks, (k + 1) * n // nchunks)
    s = 0.0
    for k in range(nchunks):
        s += partial[k]
    return s


@jit
def _grad(y, t, nf, dout, dx, lo, hi):
    """``dx = (y - t) / nf * dout`` and the squared-error sum over rows ``[lo, hi)``, in one pass."""
    c = y.shape[1]
    s = 0.0
    for i in range(lo, hi):
        for j in range(c):
            d = y[i, j] - t[i, j]
            s += d * d
            dx[i, j] = d / nf * dout
    return s


@jit(parallel=True)
def _grad_par(y, t, nf, dout, dx, nchunks):
    n = y.shape[0]
    partial = np.zeros(nchunks)
    for k in prange(nchunks):
        partial[k] = _grad(y, t, nf, dout, dx, k * n // nchunks, (k + 1) * n // nchunks)
    s = 0.0
    for k in range(nchunks):
        s += partial[k]
    return s


def sq_err(y: np.ndarray, t: np.ndarray) -> float:
    """``sum (y - t)**2`` (float64 accumulation) for C-contiguous arrays of one shape and dtype."""
    return dispatch(_sq_err, _sq_err_par, y.shape[0], y.size, y, t, family="stream")


def mse_grad(y: np.ndarray, t: np.ndarray, dout) -> tuple[np.ndarray, float]:
    """``(dx, s)``: new ``dx = (y - t) / N * dout`` and ``s = sum (y - t)**2``, in one pass.

    ``y``, ``t`` C-contiguous ``(N, D)`` of one dtype; ``dout`` a scalar of that dtype.
    """
    dx = np.empty_like(y)
    s = dispatch(_grad, _grad_par, y.shape[0], y.size, y, t, y.dtype.type(y.shape[0]), dout, dx, family="stream")
    return dx, s


@jit
def identity_mse_grad(z, b, t, nf, dz, db):
    """Fused output block: ``z += b``; ``dz = (z - t) / nf``; ``db = sum_i dz[i]``; returns ``sum (z - t)**2``.

    The arithmetic of the layer path (bias add, :func:`mse_grad` with ``dout = 1``, the Affine
    layer's column sum, rows outer), so the results agree to the bit with it run serially.
    """
    n, c = z.shape
    for j in range(c):
        db[j] = 0
    s = 0.0
    for i in range(n):
        for j in range(c):
            v = z[i, j] + b[j]
            z[i, j] = v
            d = v - t[i, j]
            s += d * d
            g = d / nf
            dz[i, j] = g
            db[j] += g
    return s
