"""Fused epilogues around the GEMMs of a fully connected network's training step (serial kernels).

The fused training step (:mod:`fastdl.fused_step`) runs each GEMM with ``np.dot(..., out=)`` into a
preallocated buffer and everything between two GEMMs as ONE kernel call. The arithmetic is that of
the layer kernels, operation by operation, so results agree with the layer-by-layer path.

Hidden block forward (``h = a_prev @ W`` already in ``h``), :func:`block_forward`::

    h      = h + b                                   (the Affine output; stored in h with batch norm)
    with batch norm (training statistics, biased variance):
        mu, var = the batch-norm layer's one-pass statistics (batchnorm._col_stats);  std = sqrt(var + eps)
        xn  = (h - mu) * (1 / std);  y = gamma * xn + beta    (the batch-norm layer's form)
        running_mean = m * running_mean + (1 - m) * mu     (in place, only when every mu/var is finite)
        running_var  = m * running_var  + (1 - m) * var
    without: y = h
    out    = relu(y) = (0 if y <= 0 else y)   or   y itself (LINEAR), for a sigmoid that the caller then
             applies with NumPy's exp (:func:`fastdl.kernels.activations.sigmoid_forward`), as the layer does

Hidden block backward (``dy`` = gradient of ``out``, overwritten by the gradient of ``h``),
:func:`block_backward`::

    g      = (0 if out == 0 else dy)   (relu: out == 0 exactly where y <= 0)   or   dy * (1 - out) * out
    with batch norm: dbeta = sum_i g[i];  dgamma = sum_i g[i] * xn[i]
                     dh = (gamma / std) * (g - dbeta / N - xn * dgamma / N)
    without:         dh = g
    db     = sum_i dh[i]

Output (``z = a @ W`` already in ``z``): :func:`bias_shift` ``z += b``, ``y = z - rowmax(z)``; the
caller's NumPy ``exp`` in place on ``y`` (as the loss layer does); :func:`softmax_xent_grad` ``y = y / rowsum(y)``,
the cross-entropy sum ``sum_i log(y[i, t_i] + eps)`` (returned, float64), ``dz = (y - onehot(t)) / N``
(or ``(y - t) / N`` for probability targets) and ``db = sum_i dz[i]``.

Column sums run rows outer with a contiguous inner loop (NumPy's ``sum(axis=0)`` order). No parallel
twins: see ``docs/design-notes.md``, "Fused training step".
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from .batchnorm import PW_DOT, PW_SUM, _col_stats, _pairwise_col0
from .softmax import _normalize_rows, _shift_rows, _xent_rows

#: activation codes of the fused kernels (an activation record's ``fused_forward``/``fused_backward``):
#: block_forward takes RELU or LINEAR (no activation: the caller applies it, e.g. a sigmoid with NumPy's
#: vectorized exp), block_backward RELU, SIGMOID or LINEAR (the caller applied the activation's backward)
RELU, SIGMOID, LINEAR = 0, 1, 2


@jit
def _act(v, act, one):
    """relu (``0 if v <= 0 else v``: NaN passes) of one value, or the value itself (LINEAR)."""
    if act == RELU:
        return one - one if v <= 0 else v  # (a typed zero: a literal 0 would make the result float64)
    return v


@jit
def _act_grad(d, o, act, one):
    """Gradient through the activation given its output ``o``: relu's ``o == 0`` is exactly ``v <= 0``;
    LINEAR passes ``d`` (the caller already applied the activation's backward)."""
    if act == RELU:
        return one - one if o == 0 else d
    g = d * (one - o) * o
    return g if act == SIGMOID else d  # (a select: a third branch stops vectorization; see design notes)


@jit
def block_forward(h, b, gamma, beta, eps, nf, m, om, rm, rv, stats, xn, out, act, use_bn):
    """One hidden block after its GEMM; returns the number of features with a non-finite mean/variance.

    ``stats`` is a ``(4, D)`` scratch: rows mean, variance, std (read by :func:`block_backward` and,
    when the return value is not 0, by the caller, which then updates the running statistics itself)
    and ``1 / std``. Without batch norm ``h`` is left as the GEMM wrote it and ``gamma, beta, rm, rv,
    stats, xn`` are not touched (pass any arrays of those types).
    """
    n, d = h.shape
    one = out.dtype.type(1)
    if not use_bn:
        for i in range(n):
            for j in range(d):
                out[i, j] = _act(h[i, j] + b[j], act, one)
        return 0
    zero = np.intp(0)  # not the literal 0: a Literal[int] argument is a second signature of the callee
    mu = stats[0]
    var = stats[1]
    std = stats[2]
    inv = stats[3]
    for i in range(n):
        for j in range(d):
            h[i, j] = h[i, j] + b[j]
    _col_stats(h, mu, var, nf, zero, d)  # (the layer's statistics)
    bad = 0
    for j in range(d):
        s = var[j]
        sd = np.sqrt(s + eps)
        std[j] = sd
        inv[j] = one / sd
        if not (np.isfinite(mu[j]) and np.isfinite(s)):
            bad += 1
    if bad == 0:
        for j in range(d):
            rm[j] = m * rm[j] + om * mu[j]
            rv[j] = m * rv[j] + om * var[j]
    for i in range(n):  # (the layer's form: off the slow vector divider; one store per loop)
        for j in range(d):
            xn[i, j] = (h[i, j] - mu[j]) * inv[j]
        for j in range(d):
            out[i, j] = _act(gamma[j] * xn[i, j] + beta[j], act, one)
    return bad


@jit
def block_backward(dy, out, xn, gamma, stats, nf, dgamma, dbeta, db, act, use_bn):
    """One hidden block's backward, ``dy`` overwritten in place by the gradient of the Affine output.

    ``stats`` is the block's ``(4, D)`` scratch from :func:`block_forward` (row 2, the std, is read;
    rows 0, 1 and 3 are overwritten with coefficients). Without batch norm ``xn, gamma, stats,
    dgamma, dbeta`` are not touched. Column sums add four rows per step, as in the forward.
    """
    n, d = dy.shape
    one = out.dtype.type(1)
    for j in range(d):
        db[j] = 0
    if not use_bn:
        i = 0
        while i + 4 <= n:
            for j in range(d):
                g0 = _act_grad(dy[i, j], out[i, j], act, one)
                g1 = _act_grad(dy[i + 1, j], out[i + 1, j], act, one)
                g2 = _act_grad(dy[i + 2, j], out[i + 2, j], act, one)
                g3 = _act_grad(dy[i + 3, j], out[i + 3, j], act, one)
                dy[i, j] = g0
                dy[i + 1, j] = g1
                dy[i + 2, j] = g2
                dy[i + 3, j] = g3
                db[j] = db[j] + g0 + g1 + g2 + g3
            i += 4
        while i < n:
            for j in range(d):
                g = _act_grad(dy[i, j], out[i, j], act, one)
                dy[i, j] = g
                db[j] += g
            i += 1
        return
    for j in range(d):
        dbeta[j] = 0
        dgamma[j] = 0
    i = 0
    while i + 4 <= n:
        for j in range(d):
            g0 = _act_grad(dy[i, j], out[i, j], act, one)
            g1 = _act_grad(dy[i + 1, j], out[i + 1, j], act, one)
            g2 = _act_grad(dy[i + 2, j], out[i + 2, j], act, one)
            g3 = _act_grad(dy[i + 3, j], out[i + 3, j], act, one)
            dy[i, j] = g0
            dy[i + 1, j] = g1
            dy[i + 2, j] = g2
            dy[i + 3, j] = g3
            dbeta[j] = dbeta[j] + g0 + g1 + g2 + g3
            dgamma[j] = dgamma[j] + g0 * xn[i, j] + g1 * xn[i + 1, j] + g2 * xn[i + 2, j] + g3 * xn[i + 3, j]
        i += 4
    while i < n:
        for j in range(d):
            g = _act_grad(dy[i, j], out[i, j], act, one)
            dy[i, j] = g
            dbeta[j] += g
            dgamma[j] += g * xn[i, j]
        i += 1
    if d == 1:  # NumPy sums one contiguous column pairwise
        dbeta[0] = 0
        dbeta[0] += _pairwise_col0(dy, xn, dbeta, np.intp(0), n, np.intp(PW_SUM))
        dgamma[0] = 0
        dgamma[0] += _pairwise_col0(dy, xn, dbeta, np.intp(0), n, np.intp(PW_DOT))
    a = stats[0]
    e = stats[1]
    std = stats[2]
    c = stats[3]
    for j in range(d):
        a[j] = gamma[j] / std[j]
        e[j] = dbeta[j] / nf
        c[j] = dgamma[j] / nf
    i = 0
    while i + 4 <= n:
        for j in range(d):
            aj = a[j]
            ej = e[j]
            cj = c[j]
            v0 = aj * (dy[i, j] - ej - xn[i, j] * cj)
            v1 = aj * (dy[i + 1, j] - ej - xn[i + 1, j] * cj)
            v2 = aj * (dy[i + 2, j] - ej - xn[i + 2, j] * cj)
            v3 = aj * (dy[i + 3, j] - ej - xn[i + 3, j] * cj)
            dy[i, j] = v0
            dy[i + 1, j] = v1
            dy[i + 2, j] = v2
            dy[i + 3, j] = v3
            db[j] = db[j] + v0 + v1 + v2 + v3
        i += 4
    while i < n:
        for j in range(d):
            v = a[j] * (dy[i, j] - e[j] - xn[i, j] * c[j])
            dy[i, j] = v
            db[j] += v
        i += 1


@jit
def bias_shift(z, b, y):
    """``z += b`` (the Affine output), then ``y = z - rowmax(z)``: the softmax's exp arguments."""
    n, c = z.shape
    for i in range(n):
        for j in range(c):
            z[i, j] += b[j]
    _shift_rows(z, y, np.intp(0), n)  # (np.intp, not a literal: see block_forward)


@jit
def softmax_xent_grad(y, labels, probs, use_probs, eps, nf, one, dz, db):
    """``y`` holding the exps: normalise, cross-entropy sum (returned), its gradient and the bias gradient."""
    n, c = y.shape
    zero = np.intp(0)  # not the literal 0: a Literal[int] argument is a second signature of the callee
    _normalize_rows(y, zero, n)
    s = _xent_rows(y, labels, eps, zero, n)
    for j in range(c):
        db[j] = 0
    for i in range(n):
        ti = labels[i]
        for j in range(c):
            v = y[i, j]
            if use_probs:
                v = v - probs[i, j]
            elif j == ti:
                v = v - one
            v = v / nf
            dz[i, j] = v
            db[j] += v
    return s


@jit
def add_scaled(g, w, lam):
    """``g = g + lam * w`` element by element (2-D C-contiguous arrays of one shape)."""
    n, d = g.shape
    for i in range(n):
        for j in range(d):
            g[i, j] = g[i, j] + lam * w[i, j]


@jit
def add_sign_scaled(g, w, lam):
    """``g = g + lam * sign(w)`` element by element (L1's subgradient: ``np.sign``, 0 at 0, NaN at NaN)."""
    n, d = g.shape
    one = g.dtype.type(1)
    for i in range(n):
        for j in range(d):
            v = w[i, j]
            s = one if v > 0 else -one if v < 0 else v - v
            g[i, j] = g[i, j] + lam * s
