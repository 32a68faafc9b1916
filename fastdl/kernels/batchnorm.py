"""Batch normalisation over the rows of a C-contiguous ``(N, D)`` array.

Training forward (per column: one statistics pass, one output pass)::

    mu  = sum_i x[i] / N                    (rows in order: NumPy's mean(axis=0) rounding)
    K   = x[0]                              (shift; one column: two pairwise passes as NumPy)
    var = max(0, sum_i (x[i] - K)**2 / N - (sum_i (x[i] - K) / N)**2)   (biased; sums in float64)
    std = sqrt(var + eps)
    xn  = (x - mu) * (1 / std)              (reference: (x - mu) / std; <= 2 ulp apart)
    out = gamma * xn + beta                 (xn stored only when asked for)
    running_mean' = momentum * running_mean + (1 - momentum) * mu
    running_var'  = momentum * running_var  + (1 - momentum) * var

The shifted sums are float64 (float32 input too); their subtraction loses about
``eps64 * (1 + 2 * (mu - K)**2 / var)`` relative (``K`` is a sample, so the ratio is of order one); a column
where the ratio exceeds ``SHIFT_RATIO`` (64) takes the two-pass variance instead (one more pass, only
then). float32 input of at most ``TWO_PASS_F32_VALUES`` values (2 MiB, cache-resident; the whole array decides) takes
two float32 passes: there the float64 pass is compute-bound and slower. ``x - mu``
uses NumPy's mean to the bit, which is what keeps ill-conditioned features (large mean, small spread)
at the reference's numbers.

Evaluation forward (one pass): ``out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``.

Backward (a sum pass and a gradient pass over dout and x; ``xn = (x - mu) * (1 / std)`` recomputed,
bit-equal to the forward's)::

    dbeta  = sum_i dout[i]
    dgamma = sum_i dout[i] * xn[i]
    dx     = (gamma / std) * (dout - dbeta / N - xn * dgamma / N)

which equals the book's chain of ``dxn, dxc, dstd, dvar, dmu`` because ``sum_i xn[i] = 0``.

Memory traffic: the one-pass statistics and the backward's two sums add eight rows per step into a
register (the same order, hence the same rounding, as one row at a time; the two-pass float32 sums four),
over blocks of ``STATS_BLOCK`` columns so that a block's accumulators stay in L1; ``out`` (without ``xn``)
and ``dx`` of at least :data:`~fastdl.kernels.ntstore.STREAM_MIN_BYTES` are written with streaming
stores (:mod:`.ntstore`: no read of the output's cache lines; the same values); ``* (1 / std)`` keeps the
normalising pass off the vector divider; index loops run on unsigned integers so that LLVM vectorizes
them. Measurements and the rejected alternatives (column blocking of whole passes):
``docs/design-notes.md``, "Batch normalization"; per pass: ``python bench/batchnorm_passes.py``.

Parallel twins split the *columns* into one range per thread (aligned to 64-byte cache lines), so
each thread owns whole columns: no partial sums, no reduction, the same numbers as serial.

Workers (also callable from other kernels, serial, whole batch)::

    _train_cols(x, gamma, beta, rm, rv, consts, stats, xn, out, c0, c1, stream) -> n_nonfinite
    _backward_cols(dout, x, mu, inv, gamma, std, grads, consts, dx, c0, c1, stream)

``consts = [eps, N, momentum, 1 - momentum]`` in the array dtype; ``stats`` is ``(6, D)`` with rows
mean, variance, std, new running mean, new running variance, 1/std; ``grads`` is ``(5, D)`` with rows
dgamma, dbeta and three rows of scratch.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .. import runtime
from .._jit import jit
from .ntstore import STREAM_MIN_BYTES, aligned_head, stream_fence, stream_store

#: largest ``(mean - shift)**2 / var`` for which the one-pass shifted variance is kept (above it: two passes);
#: the float64 sums' relative error is then amplified at most ``1 + 2 * SHIFT_RATIO`` times by the subtraction
SHIFT_RATIO = 64.0
#: float32 columns of at most this many values (2 MiB: a core's L2 here) take two float32 passes instead: the
#: one pass in float64 sums is compute-bound, slower while x is in cache (256x1024: 44.5 against 30.1 us), faster
#: beyond (1024x1024: 192 against 280 us)
TWO_PASS_F32_VALUES = 512 * 1024

#: parallel column ranges start on multiples of this many elements (64 bytes of float32)
COL_ALIGN = 16
#: columns per block of the one-pass statistics: the block's accumulators (28 KiB for float32 input) stay in L1
STATS_BLOCK = 1024

_EPS, _NF, _M, _OM = 0, 1, 2, 3
MU, VAR, STD, RM_NEW, RV_NEW, INV = 0, 1, 2, 3, 4, 5
DGAMMA, DBETA = 0, 1


#: what :func:`_pairwise_col0` sums: column 0 of ``a``, ``(a - mu[0])**2``, ``a * b``,
#: ``a * ((b - mu[0]) * mu[1])``
PW_SUM, PW_SQDEV, PW_DOT, PW_DOTN = 0, 1, 2, 3


@jit
def _pairwise_col0(a, b, mu, lo, n, what):
    """NumPy's pairwise sum of rows ``[lo, lo + n)`` of column 0 (see ``PW_*`` for the terms).

    For a ``(N, 1)`` array, ``np.sum(axis=0)`` runs over contiguous memory and NumPy sums pairwise
    (blocks of at most 128 terms in eight interleaved partial sums, halves split on multiples of 8),
    not row after row as for ``D > 1``. Batch norm of one feature uses this, so that its statistics
    are NumPy's to the bit: a mean 1 ulp off is amplified by ``1 / sqrt(var + eps)`` (up to 1000x)
    in a near-constant feature.
    """
    if n < 8:
        res = a.dtype.type(0)
        for i in range(lo, lo + n):
            res += _pw_term(a, b, mu, i, what)
        return res
    if n <= 128:
        r0 = _pw_term(a, b, mu, lo, what)
        r1 = _pw_term(a, b, mu, lo + 1, what)
        r2 = _pw_term(a, b, mu, lo + 2, what)
        r3 = _pw_term(a, b, mu, lo + 3, what)
        r4 = _pw_term(a, b, mu, lo + 4, what)
        r5 = _pw_term(a, b, mu, lo + 5, what)
        r6 = _pw_term(a, b, mu, lo + 6, what)
        r7 = _pw_term(a, b, mu, lo + 7, what)
        i = 8
        while i < n - n % 8:
            r0 += _pw_term(a, b, mu, lo + i, what)
            r1 += _pw_term(a, b, mu, lo + i + 1, what)
            r2 += _pw_term(a, b, mu, lo + i + 2, what)
            r3 += _pw_term(a, b, mu, lo + i + 3, what)
            r4 += _pw_term(a, b, mu, lo + i + 4, what)
            r5 += _pw_term(a, b, mu, lo + i + 5, what)
            r6 += _pw_term(a, b, mu, lo + i + 6, what)
            r7 += _pw_term(a, b, mu, lo + i + 7, what)
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += _pw_term(a, b, mu, lo + i, what)
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_col0(a, b, mu, lo, n2, what) + _pairwise_col0(a, b, mu, lo + n2, n - n2, what)


@jit
def _pw_term(a, b, mu, i, what):
    v = a[i, 0]
    if what == PW_SQDEV:
        v = v - mu[0]
        return v * v
    if what == PW_DOT:
        return v * b[i, 0]
    if what == PW_DOTN:  # mu = [mean, 1 / std]
        return v * ((b[i, 0] - mu[0]) * mu[1])
    return v


@jit
def _col_sums(x, acc, b0, b1):
    """``acc[b0:b1] = sum_i x[i, b0:b1]``, rows in order (four rows per step into one register)."""
    n = x.shape[0]
    u0, u1 = np.uint64(b0), np.uint64(b1)
    for j in range(u0, u1):
        acc[j] = 0
    i = 0
    while i + 4 <= n:
        for j in range(u0, u1):
            acc[j] = acc[j] + x[i, j] + x[i + 1, j] + x[i + 2, j] + x[i + 3, j]
        i += 4
    while i < n:
        for j in range(u0, u1):
            acc[j] += x[i, j]
        i += 1


@jit
def _col_sqdev(x, mu, acc, b0, b1):
    """``acc[b0:b1] = sum_i (x[i, b0:b1] - mu)**2``, rows in order (pairwise for one column)."""
    n = x.shape[0]
    if x.shape[1] == 1:
        if b1 > b0:
            acc[0] = 0
            acc[0] += _pairwise_col0(x, x, mu, np.intp(0), n, np.intp(PW_SQDEV))
        return
    u0, u1 = np.uint64(b0), np.uint64(b1)
    for j in range(u0, u1):
        acc[j] = 0
    i = 0
    while i + 4 <= n:
        for j in range(u0, u1):
            m = mu[j]
            v0 = x[i, j] - m
            v1 = x[i + 1, j] - m
            v2 = x[i + 2, j] - m
            v3 = x[i + 3, j] - m
            acc[j] = acc[j] + v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3
        i += 4
    while i < n:
        for j in range(u0, u1):
            v = x[i, j] - mu[j]
            acc[j] += v * v
        i += 1


@jit
def _shifted_sums(x, mu, k, s1, s2, b0, b1):
    """Columns ``[b0, b1)``: ``mu = sum_i x[i]`` (x's dtype), ``k = x[0]``, ``s1 = sum_i (x[i] - k)``,
    ``s2 = sum_i (x[i] - k)**2`` (float64), rows in order, eight rows per step into each accumulator
    (the rounding of one row at a time)."""
    n = x.shape[0]
    u0, u1 = np.uint64(b0), np.uint64(b1)
    for j in range(u0, u1):
        mu[j] = 0
        s1[j] = 0.0
        s2[j] = 0.0
        k[j] = x[0, j]
    i = 0
    while i + 8 <= n:
        for j in range(u0, u1):
            x0 = x[i, j]
            x1 = x[i + 1, j]
            x2 = x[i + 2, j]
            x3 = x[i + 3, j]
            x4 = x[i + 4, j]
            x5 = x[i + 5, j]
            x6 = x[i + 6, j]
            x7 = x[i + 7, j]
            mu[j] = mu[j] + x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7
            kj = k[j]
            d0 = np.float64(x0) - kj
            d1 = np.float64(x1) - kj
            d2 = np.float64(x2) - kj
            d3 = np.float64(x3) - kj
            d4 = np.float64(x4) - kj
            d5 = np.float64(x5) - kj
            d6 = np.float64(x6) - kj
            d7 = np.float64(x7) - kj
            s1[j] = s1[j] + d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7
            s2[j] = s2[j] + d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3 + d4 * d4 + d5 * d5 + d6 * d6 + d7 * d7
        i += 8
    if i + 4 <= n:  # (a batch of 100: 12 steps of eight rows, one of four)
        for j in range(u0, u1):
            x0 = x[i, j]
            x1 = x[i + 1, j]
            x2 = x[i + 2, j]
            x3 = x[i + 3, j]
            mu[j] = mu[j] + x0 + x1 + x2 + x3
            kj = k[j]
            d0 = np.float64(x0) - kj
            d1 = np.float64(x1) - kj
            d2 = np.float64(x2) - kj
            d3 = np.float64(x3) - kj
            s1[j] = s1[j] + d0 + d1 + d2 + d3
            s2[j] = s2[j] + d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
        i += 4
    while i < n:
        for j in range(u0, u1):
            v = x[i, j]
            mu[j] += v
            dv = np.float64(v) - k[j]
            s1[j] += dv
            s2[j] += dv * dv
        i += 1


@jit
def _col_stats(x, mu, var, nf, c0, c1):
    """Mean and biased variance of the columns ``[c0, c1)`` of ``x`` in one pass over the rows.

    ``mu = sum_i x[i] / nf`` in x's dtype (rows in order, four rows per step into one register: the
    rounding of NumPy's ``mean(axis=0)``). The variance comes from sums shifted by ``K = x[0]`` and kept
    in float64 (float32 input too): ``var = max(0, s2 / nf - (s1 / nf)**2)`` with
    ``s1 = sum_i (x[i] - K)``, ``s2 = sum_i (x[i] - K)**2``. The subtraction loses about
    ``eps64 * (1 + 2 * ratio)``, ``ratio = (s1 / nf)**2 / var``, relative; a column where the ratio exceeds
    :data:`SHIFT_RATIO` (``K`` far from the mean: an outlier in row 0) gets the two-pass
    ``var = sum_i (x[i] - mu)**2 / nf`` in x's dtype instead, at the price of one more pass.
    One column (``D == 1``) is summed pairwise, as NumPy sums contiguous memory, in two passes
    (:func:`_pairwise_col0`) with that two-pass variance; float32 columns of at most
    :data:`TWO_PASS_F32_VALUES` values (cache-resident) take the two passes in float32 too (the old kernel's
    numbers, the reference's variance to the bit).
    """
    n = x.shape[0]
    if x.shape[1] == 1:  # NumPy sums a contiguous column pairwise
        if c1 > c0:  # (a parallel chunk may own no column)
            mu[0] = 0
            mu[0] += _pairwise_col0(x, x, mu, np.intp(0), n, np.intp(PW_SUM))
            mu[0] = mu[0] / nf
            _col_sqdev(x, mu, var, c0, c1)
            var[0] = var[0] / nf
        return
    u0, u1 = np.uint64(c0), np.uint64(c1)  # unsigned: no negative-index check, so the loops vectorize
    if x.itemsize == 4 and x.size <= TWO_PASS_F32_VALUES:  # cache-resident float32: two passes (decided on the
        # whole array, not the chunk: serial and parallel runs take the same path, hence the same numbers)
        _col_sums(x, mu, c0, c1)
        for j in range(u0, u1):
            mu[j] = mu[j] / nf
        _col_sqdev(x, mu, var, c0, c1)
        for j in range(u0, u1):
            var[j] = var[j] / nf
        return
    acc = np.empty((3, x.shape[1]), dtype=np.float64)  # rows: K, s1, s2 (columns [c0, c1) used)
    k, s1, s2 = acc[0], acc[1], acc[2]
    b0 = c0
    while b0 < c1:  # column blocks: the block's accumulators stay in L1 while the rows stream
        b1 = min(b0 + STATS_BLOCK, c1)
        _shifted_sums(x, mu, k, s1, s2, b0, b1)
        b0 = b1
    nd = np.float64(n)
    far = 0
    for j in range(u0, u1):
        mu[j] = mu[j] / nf
        c = s1[j] / nd
        v = s2[j] / nd - c * c
        v = v if v >= 0.0 else 0.0  # (NaN passes)
        var[j] = v
        if c * c > SHIFT_RATIO * v:  # shift far from the mean: the subtraction cancelled too much
            k[j] = -1.0  # (a flag: k is scratch from here on)
            far += 1
        else:
            k[j] = 0.0
    if far:  # the two-pass variance for those columns (one more pass, rows in order)
        sq = np.empty_like(mu)
        _col_sqdev(x, mu, sq, c0, c1)
        for j in range(u0, u1):
            if k[j] < 0.0:
                var[j] = sq[j] / nf


@jit
def _finish_stats(stats, rm, rv, consts, c0, c1):
    """std, ``1 / std`` and the new running statistics of columns ``[c0, c1)`` from ``stats[MU]``,
    ``stats[VAR]``; returns the number of features whose mean or variance is not finite."""
    eps, m, om = consts[_EPS], consts[_M], consts[_OM]
    mu, var, std, rm_new, rv_new, inv = stats[MU], stats[VAR], stats[STD], stats[RM_NEW], stats[RV_NEW], stats[INV]
    bad = 0
    for j in range(np.uint64(c0), np.uint64(c1)):
        a = mu[j]
        b = var[j]
        s = np.sqrt(b + eps)
        std[j] = s
        inv[j] = 1 / s
        rm_new[j] = m * rm[j] + om * a
        rv_new[j] = m * rv[j] + om * b
        if not (np.isfinite(a) and np.isfinite(b)):
            bad += 1
    return bad


@jit
def _train_cols(x, gamma, beta, rm, rv, consts, stats, xn, out, c0, c1, stream):
    """Training forward of columns ``[c0, c1)`` over all rows: one statistics pass, one output pass.

    Fills ``stats`` rows (see the module docstring) and ``out``, and ``xn`` unless it has no rows
    (``np.empty((0, 0))``: nothing reads it; backward recomputes it from ``x``, ``mu`` and ``1/std``);
    returns the number of features whose mean or variance is not finite. ``rm``/``rv`` are only read.
    ``stream``: write ``out`` (without ``xn``) with streaming stores (:mod:`.ntstore`; the same values).
    """
    n = x.shape[0]
    mu, inv = stats[MU], stats[INV]
    _col_stats(x, mu, stats[VAR], consts[_NF], c0, c1)
    bad = _finish_stats(stats, rm, rv, consts, c0, c1)
    u0, u1 = np.uint64(c0), np.uint64(c1)
    if xn.shape[0] == 0:
        _apply_cols(x, mu, inv, gamma, beta, out, c0, c1, stream)
        return bad
    for i in range(n):  # two loops of one store each (see "Memory traffic")
        for j in range(u0, u1):
            xn[i, j] = (x[i, j] - mu[j]) * inv[j]
        for j in range(u0, u1):
            out[i, j] = gamma[j] * xn[i, j] + beta[j]
    return bad


@jit(inline="always")
def _normalized(xv, m, v, g, b):
    """``gamma * ((x - mu) * inv) + beta`` of one value (the training forward's output)."""
    return g * ((xv - m) * v) + b


@jit
def _apply_cols(x, mu, inv, gamma, beta, out, c0, c1, stream):
    """``out = gamma * ((x - mu) * inv) + beta`` on columns ``[c0, c1)``; streaming stores if ``stream``
    (plain stores up to each row's first 64-byte boundary, streaming ones after it)."""
    u0 = np.uint64(c0)
    for i in range(x.shape[0]):
        a = c0 + aligned_head(out[i], c0, c1) if stream else c1
        for j in range(u0, np.uint64(a)):
            out[i, j] = _normalized(x[i, j], mu[j], inv[j], gamma[j], beta[j])
        if a < c1:
            o, xr, m, v, g, b = out[i, a:c1], x[i, a:c1], mu[a:c1], inv[a:c1], gamma[a:c1], beta[a:c1]
            for j in range(o.size):
                stream_store(o, j, _normalized(xr[j], m[j], v[j], g[j], b[j]))
    if stream:
        stream_fence()


@jit
def _col_span(d, k, c):
    """Column range ``[c0, c1)`` of chunk ``c`` of ``k`` (boundaries on multiples of COL_ALIGN)."""
    c0 = (d * c // k) // COL_ALIGN * COL_ALIGN
    c1 = d if c == k - 1 else (d * (c + 1) // k) // COL_ALIGN * COL_ALIGN
    return c0, c1


@jit(parallel=True)
def _train_cols_par(x, gamma, beta, rm, rv, consts, stats, xn, out, nchunks, stream):
    bads = np.zeros(nchunks, dtype=np.int64)
    d = x.shape[1]
    for c in prange(nchunks):
        c0, c1 = _col_span(d, nchunks, c)
        bads[c] = _train_cols(x, gamma, beta, rm, rv, consts, stats, xn, out, c0, c1, stream)
    return bads.sum()


@jit
def _grad_sums(dout, x, mu, inv, dgamma, dbeta, b0, b1):
    """Columns ``[b0, b1)``: ``dbeta = sum_i dout[i]``, ``dgamma = sum_i dout[i] * ((x[i] - mu) * inv)``,
    rows in order, eight rows per step into each accumulator (the rounding of one row at a time)."""
    n = dout.shape[0]
    u0, u1 = np.uint64(b0), np.uint64(b1)
    for j in range(u0, u1):
        dbeta[j] = 0
        dgamma[j] = 0
    i = 0
    while i + 8 <= n:
        g, xs = dout[i:i + 8], x[i:i + 8]
        for j in range(u0, u1):
            m = mu[j]
            v = inv[j]
            dbeta[j] = (dbeta[j] + g[0, j] + g[1, j] + g[2, j] + g[3, j] + g[4, j] + g[5, j] + g[6, j]
                        + g[7, j])
            dgamma[j] = (dgamma[j] + g[0, j] * ((xs[0, j] - m) * v) + g[1, j] * ((xs[1, j] - m) * v)
                         + g[2, j] * ((xs[2, j] - m) * v) + g[3, j] * ((xs[3, j] - m) * v)
                         + g[4, j] * ((xs[4, j] - m) * v) + g[5, j] * ((xs[5, j] - m) * v)
                         + g[6, j] * ((xs[6, j] - m) * v) + g[7, j] * ((xs[7, j] - m) * v))
        i += 8
    if i + 4 <= n:
        g, xs = dout[i:i + 4], x[i:i + 4]
        for j in range(u0, u1):
            m = mu[j]
            v = inv[j]
            dbeta[j] = dbeta[j] + g[0, j] + g[1, j] + g[2, j] + g[3, j]
            dgamma[j] = (dgamma[j] + g[0, j] * ((xs[0, j] - m) * v) + g[1, j] * ((xs[1, j] - m) * v)
                         + g[2, j] * ((xs[2, j] - m) * v) + g[3, j] * ((xs[3, j] - m) * v))
        i += 4
    while i < n:
        for j in range(u0, u1):
            gi = dout[i, j]
            dbeta[j] += gi
            dgamma[j] += gi * ((x[i, j] - mu[j]) * inv[j])
        i += 1


@jit(inline="always")
def _dx_value(gv, xv, m, v, a, b, c):
    """``a * (dout - b - ((x - mu) * inv) * c)`` of one value (the backward's dx)."""
    return a * (gv - b - ((xv - m) * v) * c)


@jit
def _dx_cols(dout, x, mu, inv, a, b, c, dx, c0, c1, stream):
    """``dx = a * (dout - b - ((x - mu) * inv) * c)`` on columns ``[c0, c1)``; streaming stores if ``stream``
    (as :func:`_apply_cols`)."""
    u0 = np.uint64(c0)
    for i in range(dout.shape[0]):
        s = c0 + aligned_head(dx[i], c0, c1) if stream else c1
        for j in range(u0, np.uint64(s)):
            dx[i, j] = _dx_value(dout[i, j], x[i, j], mu[j], inv[j], a[j], b[j], c[j])
        if s < c1:
            o, g, xr, m, v = dx[i, s:c1], dout[i, s:c1], x[i, s:c1], mu[s:c1], inv[s:c1]
            ar, br, cr = a[s:c1], b[s:c1], c[s:c1]
            for j in range(o.size):
                stream_store(o, j, _dx_value(g[j], xr[j], m[j], v[j], ar[j], br[j], cr[j]))
    if stream:
        stream_fence()


@jit
def _backward_cols(dout, x, mu, inv, gamma, std, grads, consts, dx, c0, c1, stream):
    """Backward of columns ``[c0, c1)`` over all rows, with ``xn = (x - mu) * inv`` recomputed.

    Given the forward's ``x``, ``mu`` and ``inv = 1 / std`` this ``xn`` is the forward's to the bit;
    given a kept ``xn`` as ``x`` with ``mu = 0`` and ``inv = 1`` it is that ``xn`` exactly.
    ``grads`` rows: dgamma, dbeta (written) and three scratch rows; ``consts[1]`` is N as a float.
    ``stream``: write ``dx`` with streaming stores (:mod:`.ntstore`; the same values).
    """
    n = dout.shape[0]
    nf = consts[_NF]
    dgamma, dbeta, a, b, c = grads[DGAMMA], grads[DBETA], grads[2], grads[3], grads[4]
    u0, u1 = np.uint64(c0), np.uint64(c1)
    b0 = c0
    while b0 < c1:  # column blocks, as the statistics
        b1 = min(b0 + STATS_BLOCK, c1)
        _grad_sums(dout, x, mu, inv, dgamma, dbeta, b0, b1)
        b0 = b1
    if dout.shape[1] == 1 and c1 > c0:  # NumPy sums a contiguous column pairwise
        mi = np.empty(2, dtype=dbeta.dtype)
        mi[0] = mu[0]
        mi[1] = inv[0]
        dbeta[0] = 0
        dbeta[0] += _pairwise_col0(dout, x, mi, np.intp(0), n, np.intp(PW_SUM))
        dgamma[0] = 0
        dgamma[0] += _pairwise_col0(dout, x, mi, np.intp(0), n, np.intp(PW_DOTN))
    for j in range(u0, u1):
        a[j] = gamma[j] / std[j]
        b[j] = dbeta[j] / nf
        c[j] = dgamma[j] / nf
    _dx_cols(dout, x, mu, inv, a, b, c, dx, c0, c1, stream)


@jit(parallel=True)
def _backward_cols_par(dout, x, mu, inv, gamma, std, grads, consts, dx, nchunks, stream):
    d = dout.shape[1]
    for c in prange(nchunks):
        c0, c1 = _col_span(d, nchunks, c)
        _backward_cols(dout, x, mu, inv, gamma, std, grads, consts, dx, c0, c1, stream)


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


# --------------------------------------------------------------------------------------------
# drivers
# --------------------------------------------------------------------------------------------

def col_chunks(d: int) -> int:
    """Column ranges for a parallel run (one per thread, each at least 4 * COL_ALIGN wide)."""
    return max(1, min(runtime.get_num_threads(), d // (4 * COL_ALIGN)))


def consts_for(dtype: np.dtype, eps: float, n: int, momentum: float) -> np.ndarray:
    """The ``consts`` array ``[eps, N, momentum, 1 - momentum]`` of the workers, in ``dtype``."""
    return np.array([eps, n, momentum, 1.0 - momentum], dtype=dtype)


def train_forward_into(x, gamma, beta, rm, rv, consts, stats, xn, out) -> int:
    """Training forward into given arrays (all C-contiguous, one dtype); returns the non-finite count.

    ``stats`` is ``(6, D)``; see the module docstring for its rows and ``consts``.
    """
    d = x.shape[1]
    stream = out.nbytes >= STREAM_MIN_BYTES
    if runtime.use_parallel(x.size, "batchnorm", 2 * x.nbytes + xn.nbytes, x.itemsize):  # reads x; writes out (xn)
        return _train_cols_par(x, gamma, beta, rm, rv, consts, stats, xn, out, col_chunks(d), stream)
    return _train_cols(x, gamma, beta, rm, rv, consts, stats, xn, out, 0, d, stream)


def train_forward(x, gamma, beta, eps, momentum, running_mean, running_var, xn=None):
    """Training forward of C-contiguous ``x (N, D)`` in its dtype.

    ``eps`` and ``momentum`` are Python floats (cast here). Returns
    ``(out, xn, mu, var, std, new_running_mean, new_running_var, n_nonfinite_stats)``; the given
    running arrays are read, never written. ``xn``, if given, is the buffer to normalise into.
    """
    n, d = x.shape
    out = np.empty_like(x)
    if xn is None:
        xn = np.empty_like(x)
    stats = np.empty((6, d), dtype=x.dtype)
    bad = train_forward_into(x, gamma, beta, running_mean, running_var, consts_for(x.dtype, eps, n, momentum),
                             stats, xn, out)
    return out, xn, stats[MU], stats[VAR], stats[STD], stats[RM_NEW], stats[RV_NEW], bad


def eval_forward(x, gamma, beta, eps, running_mean, running_var):
    """Evaluation forward of C-contiguous ``x (N, D)`` with the running statistics; new array."""
    out = np.empty_like(x)
    std = np.empty(x.shape[1], dtype=x.dtype)
    _eval_std(running_var, x.dtype.type(eps), std)
    if runtime.use_parallel(x.size, "batchnorm", 2 * x.nbytes, x.itemsize):
        _eval_rows_par(x, running_mean, std, gamma, beta, out, runtime.chunks(x.shape[0]))
    else:
        _eval_rows(x, running_mean, std, gamma, beta, out, 0, x.shape[0])
    return out


def backward_into(dout, x, mu, inv, gamma, std, grads, consts, dx) -> None:
    """Backward into ``grads (5, D)`` (rows 0, 1 get dgamma, dbeta; rows 2-4 are scratch) and ``dx``
    (all C-contiguous, one dtype: the streaming-store path compiles for C-contiguous rows only).

    ``xn = (x - mu) * inv`` is recomputed (see :func:`_backward_cols`; a kept ``xn``: pass it as ``x``
    with :func:`identity_stats`).
    """
    d = dout.shape[1]
    stream = dx.nbytes >= STREAM_MIN_BYTES
    if runtime.use_parallel(dout.size, "batchnorm", 3 * dout.nbytes, dout.itemsize):  # reads dout, x; writes dx
        _backward_cols_par(dout, x, mu, inv, gamma, std, grads, consts, dx, col_chunks(d), stream)
    else:
        _backward_cols(dout, x, mu, inv, gamma, std, grads, consts, dx, 0, d, stream)


def identity_stats(d: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, inv) = (zeros, ones)`` of length ``d``: :func:`backward_into` then reads ``x`` as ``xn`` exactly."""
    return np.zeros(d, dtype=dtype), np.ones(d, dtype=dtype)


def normalise(x, mu, inv) -> np.ndarray:
    """New array ``xn = (x - mu) * inv``: the forward's ``xn`` to the bit (the same two rounded operations)."""
    xn = np.subtract(x, mu)
    np.multiply(xn, inv, out=xn)
    return xn


#: ``xn`` argument of the training forward meaning "do not store xn" (no rows), per dtype
NO_XN = {np.dtype(dt): np.empty((0, 0), dtype=dt) for dt in (np.float32, np.float64)}


def backward(dout, xn, gamma, std):
    """Backward of C-contiguous ``dout (N, D)`` given a kept ``xn``: new arrays ``(dx, dgamma, dbeta)``."""
    n, d = dout.shape
    dx = np.empty_like(dout)
    grads = np.empty((5, d), dtype=dout.dtype)
    backward_into(dout, xn, *identity_stats(d, dout.dtype), gamma, std, grads, consts_for(dout.dtype, 0.0, n, 0.0),
                  dx)
    return dx, grads[DGAMMA], grads[DBETA]
