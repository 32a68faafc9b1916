"""Batch normalisation over the rows of a C-contiguous ``(N, D)`` array.

Training forward (three passes over x: mean, variance, normalise)::

    mu  = sum_i x[i] / N                    (rows outer: NumPy's mean(axis=0) order)
    var = sum_i (x[i] - mu)**2 / N          (biased)
    std = sqrt(var + eps)
    xn  = (x - mu) / std
    out = gamma * xn + beta
    running_mean' = momentum * running_mean + (1 - momentum) * mu
    running_var'  = momentum * running_var  + (1 - momentum) * var

Evaluation forward (one pass): ``out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``.

Backward (two passes over dout)::

    dbeta  = sum_i dout[i]
    dgamma = sum_i dout[i] * xn[i]
    dx     = (gamma / std) * (dout - dbeta / N - xn * dgamma / N)

which equals the book's chain of ``dxn, dxc, dstd, dvar, dmu`` because ``sum_i xn[i] = 0``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch


@jit
def _sum_rows(x, acc, lo, hi):
    d = acc.size
    for i in range(lo, hi):
        for j in range(d):
            acc[j] += x[i, j]


@jit
def _sqdev_rows(x, mu, acc, lo, hi):
    d = acc.size
    for i in range(lo, hi):
        for j in range(d):
            v = x[i, j] - mu[j]
            acc[j] += v * v


@jit
def _normalize_rows(x, mu, std, gamma, beta, xn, out, lo, hi):
    d = mu.size
    for i in range(lo, hi):
        for j in range(d):
            v = (x[i, j] - mu[j]) / std[j]
            xn[i, j] = v
            out[i, j] = gamma[j] * v + beta[j]


@jit
def _scale_stats(mu, var, nf, eps, std, rm, rv, rm_new, rv_new, m, om):
    """mu is the mean, var the sum of squared deviations: finish var, std and running averages."""
    bad = 0
    for j in range(mu.size):
        a = mu[j]
        b = var[j] / nf
        var[j] = b
        std[j] = np.sqrt(b + eps)
        rm_new[j] = m * rm[j] + om * a
        rv_new[j] = m * rv[j] + om * b
        if not (np.isfinite(a) and np.isfinite(b)):
            bad += 1
    return bad


@jit
def _train_forward(x, gamma, beta, eps, nf, m, om, rm, rv, rm_new, rv_new, mu, var, std, xn, out, lo, hi):
    # [lo, hi) is always the whole batch [0, N), passed from Python by dispatch (statistics need
    # every row; a literal 0 here would compile the row workers a second time)
    d = x.shape[1]
    _sum_rows(x, mu, lo, hi)
    for j in range(d):
        mu[j] = mu[j] / nf
    _sqdev_rows(x, mu, var, lo, hi)
    bad = _scale_stats(mu, var, nf, eps, std, rm, rv, rm_new, rv_new, m, om)
    _normalize_rows(x, mu, std, gamma, beta, xn, out, lo, hi)
    return bad


@jit(parallel=True)
def _train_forward_par(x, gamma, beta, eps, nf, m, om, rm, rv, rm_new, rv_new, mu, var, std, xn, out,
                       nchunks):
    n, d = x.shape
    partial = np.zeros((nchunks, d), dtype=mu.dtype)
    for c in prange(nchunks):
        _sum_rows(x, partial[c], c * n // nchunks, (c + 1) * n // nchunks)
    for c in range(nchunks):
        for j in range(d):
            mu[j] += partial[c, j]
    for j in range(d):
        mu[j] = mu[j] / nf
    partial[:] = 0
    for c in prange(nchunks):
        _sqdev_rows(x, mu, partial[c], c * n // nchunks, (c + 1) * n // nchunks)
    for c in range(nchunks):
        for j in range(d):
            var[j] += partial[c, j]
    bad = _scale_stats(mu, var, nf, eps, std, rm, rv, rm_new, rv_new, m, om)
    for c in prange(nchunks):
        _normalize_rows(x, mu, std, gamma, beta, xn, out, c * n // nchunks, (c + 1) * n // nchunks)
    return bad


@jit
def _eval_rows(x, mu, std, gamma, beta, out, lo, hi):
    d = mu.size
    for i in range(lo, hi):
        for j in range(d):
            out[i, j] = gamma[j] * ((x[i, j] - mu[j]) / std[j]) + beta[j]


@jit
def _eval_std(rv, eps, std):
    for j in range(rv.size):
        std[j] = np.sqrt(rv[j] + eps)


@jit(parallel=True)
def _eval_rows_par(x, mu, std, gamma, beta, out, nchunks):
    n = x.shape[0]
    for c in prange(nchunks):
        _eval_rows(x, mu, std, gamma, beta, out, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _bwd_sums(dout, xn, dbeta, dgamma, lo, hi):
    d = dbeta.size
    for i in range(lo, hi):
        for j in range(d):
            g = dout[i, j]
            dbeta[j] += g
            dgamma[j] += g * xn[i, j]


@jit
def _bwd_coef(gamma, std, dbeta, dgamma, nf, a, b, c):
    for j in range(gamma.size):
        a[j] = gamma[j] / std[j]
        b[j] = dbeta[j] / nf
        c[j] = dgamma[j] / nf


@jit
def _bwd_dx(dout, xn, a, b, c, dx, lo, hi):
    d = a.size
    for i in range(lo, hi):
        for j in range(d):
            dx[i, j] = a[j] * (dout[i, j] - b[j] - xn[i, j] * c[j])


@jit
def _backward(dout, xn, gamma, std, nf, dbeta, dgamma, dx, lo, hi):
    # [lo, hi) is the whole batch, as in _train_forward
    d = dout.shape[1]
    _bwd_sums(dout, xn, dbeta, dgamma, lo, hi)
    a = np.empty(d, dtype=dx.dtype)
    b = np.empty(d, dtype=dx.dtype)
    c = np.empty(d, dtype=dx.dtype)
    _bwd_coef(gamma, std, dbeta, dgamma, nf, a, b, c)
    _bwd_dx(dout, xn, a, b, c, dx, lo, hi)


@jit(parallel=True)
def _backward_par(dout, xn, gamma, std, nf, dbeta, dgamma, dx, nchunks):
    n, d = dout.shape
    pb = np.zeros((nchunks, d), dtype=dx.dtype)
    pg = np.zeros((nchunks, d), dtype=dx.dtype)
    for k in prange(nchunks):
        _bwd_sums(dout, xn, pb[k], pg[k], k * n // nchunks, (k + 1) * n // nchunks)
    for k in range(nchunks):
        for j in range(d):
            dbeta[j] += pb[k, j]
            dgamma[j] += pg[k, j]
    a = np.empty(d, dtype=dx.dtype)
    b = np.empty(d, dtype=dx.dtype)
    c = np.empty(d, dtype=dx.dtype)
    _bwd_coef(gamma, std, dbeta, dgamma, nf, a, b, c)
    for k in prange(nchunks):
        _bwd_dx(dout, xn, a, b, c, dx, k * n // nchunks, (k + 1) * n // nchunks)


def train_forward(x, gamma, beta, eps, momentum, running_mean, running_var):
    """Training forward of C-contiguous ``x (N, D)`` in its dtype.

    ``eps`` and ``momentum`` are Python floats (cast here). Returns
    ``(out, xn, mu, var, std, new_running_mean, new_running_var, n_nonfinite_stats)``; the given
    running arrays are read, never written.
    """
    n, d = x.shape
    dt = x.dtype
    t = dt.type
    out = np.empty_like(x)
    xn = np.empty_like(x)
    mu = np.zeros(d, dtype=dt)
    var = np.zeros(d, dtype=dt)
    std = np.empty(d, dtype=dt)
    rm_new = np.empty(d, dtype=dt)
    rv_new = np.empty(d, dtype=dt)
    args = (x, gamma, beta, t(eps), t(n), t(momentum), t(1.0 - momentum), running_mean, running_var,
            rm_new, rv_new, mu, var, std, xn, out)
    bad = dispatch(_train_forward, _train_forward_par, n, x.size, *args)
    return out, xn, mu, var, std, rm_new, rv_new, bad


def eval_forward(x, gamma, beta, eps, running_mean, running_var):
    """Evaluation forward of C-contiguous ``x (N, D)`` with the running statistics; new array."""
    out = np.empty_like(x)
    std = np.empty(x.shape[1], dtype=x.dtype)
    _eval_std(running_var, x.dtype.type(eps), std)
    dispatch(_eval_rows, _eval_rows_par, x.shape[0], x.size, x, running_mean, std, gamma, beta, out)
    return out


def backward(dout, xn, gamma, std):
    """Backward of C-contiguous ``dout (N, D)``: new arrays ``(dx, dgamma, dbeta)``."""
    n, d = dout.shape
    dt = dout.dtype
    dx = np.empty_like(dout)
    dbeta = np.zeros(d, dtype=dt)
    dgamma = np.zeros(d, dtype=dt)
    dispatch(_backward, _backward_par, n, dout.size, dout, xn, gamma, std, dt.type(n), dbeta, dgamma, dx)
    return dx, dgamma, dbeta
