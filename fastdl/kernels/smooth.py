"""The activations of Hands-On ML ch. 11 (tanh, LeakyReLU, PReLU, ELU, SELU, GELU, SiLU, Mish), forward and backward.

Drivers follow :mod:`fastdl.activations`' contract: flat C-contiguous arrays of one float dtype
(PReLU: ``(N, D)`` arrays and its per-feature slope), outputs written in place (``out`` may be
``x``, ``dx`` may be ``dout``), constants in the array's dtype, nothing validated here.

Formulas (PyTorch's, as :mod:`fastdl.reference` writes them, in the same order of operations):

* tanh: ``y = tanh(x)``; ``dx = dout * (1 - y*y)``
* leaky_relu: ``y = x if x > 0 else alpha*x``; ``dx = dout if x > 0 else dout*alpha`` (mask ``x > 0``)
* prelu: as leaky_relu with ``alpha[j]`` per feature; ``dalpha[j] = sum_i (x <= 0 or NaN ? x*dout : 0)``
* elu / selu: ``y = pos*x if x > 0 else neg*expm1(min(x, 0))``; ``dx = dout*(neg*exp(min(x, 0))) if x <= 0
  else dout*pos`` with ``(pos, neg) = (1, alpha)`` (ELU) or ``(scale, alpha*scale)`` (SELU)
* gelu: ``y = x*0.5*(1 + erf(x/sqrt 2))``; ``dx = dout*(cdf + x*exp(-0.5*x*x)/sqrt(2 pi))``
* gelu_tanh: ``y = 0.5*x*(1 + tanh(u))``, ``u = sqrt(2/pi)*(x + 0.044715*x**3)``
* silu: ``y = x*s``, ``s = sigmoid(x)`` from ``e = exp(-|x|)``; ``dx = dout*(s*(1 + x*(1 - s)))``
* mish: ``y = x*t``, ``t = tanh(softplus(x)) = n/(n + 2)``, ``n = e*(e + 2)``, ``e = exp(min(x, 20))``
  (PyTorch's softplus is linear above 20, where ``tanh`` is 1 in both floats); ``dx = dout*(t + x*s*(1 - t*t))``
  with ``s = e/(1 + e)``

Transcendentals
    Each ``exp``/``expm1``/``tanh`` runs through one small helper (:func:`_exp`, :func:`_expm1`,
    :func:`_tanh`) that applies NumPy's vectorized ufunc in place on a whole flat array between
    compiled passes (Numba's scalar ``exp``/``tanh`` do not vectorize here and measured 3-6x
    slower). ``erf``, which NumPy lacks, is the vectorizable polynomial :func:`fastdl.kernels.erf.erf1`
    (``|error| <= 3.4e-16``), inlined into the compiled passes. Arguments are bounded first
    (``min(x, 0)``, ``-|x|``, ``min(x, 20)``, ``-x*x/2``), so nothing overflows and no warning is
    raised for any input (``+-inf``, NaN, ``|x|`` up to the float's range). Swapping a helper for a
    vectorizable polynomial changes nothing else.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import prange

from .._jit import CONTRACT, jit
from . import dispatch
from .erf import erf1, erf1f

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
GELU_TANH_KAPPA = 0.044715
SOFTPLUS_THRESHOLD = 20.0
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# -- the transcendental helpers (one per function: the place to swap in a vectorized kernel) -----------


def _exp(a: np.ndarray) -> None:
    """``a = exp(a)`` in place (callers bound the argument: no overflow)."""
    np.exp(a, out=a)


def _expm1(a: np.ndarray) -> None:
    """``a = expm1(a)`` in place."""
    np.expm1(a, out=a)


def _tanh(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst = tanh(src)`` (``dst`` may be ``src``)."""
    np.tanh(src, out=dst)


# ``erf`` of one value: the vectorizable polynomials of fastdl.kernels.erf (NumPy has no erf; libm's,
# Numba's math.erf, is scalar and ~5x slower), inlined into the GELU passes compiled with FMA contraction;
# ``_erf1f`` in float32 arithmetic for float32 arrays
_erf1, _erf1f = erf1, erf1f


_LOCAL = threading.local()


def _scratch(n: int, dtype: np.dtype) -> np.ndarray:
    """A flat work array of ``n`` values, reused per thread and dtype (drivers need one at a time)."""
    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None:
        bufs = _LOCAL.bufs = {}
    buf = bufs.get(dtype.char)
    if buf is None or buf.size < n:
        buf = bufs[dtype.char] = np.empty(n, dtype=dtype)
    return buf[:n]


def _clip_above(x: np.ndarray, s: np.ndarray, hi) -> None:
    """``s = min(x, hi)`` with NaN kept (NumPy's ``minimum``, vectorized)."""
    np.minimum(x, hi, out=s)


# -- tanh -----------------------------------------------------------------------------------------------


@jit
def _tanh_bwd(dout, y, dx, one, lo, hi):
    ds, ys, xs = dout[lo:hi], y[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        v = ys[i]
        xs[i] = ds[i] * (one - v * v)


@jit(parallel=True)
def _tanh_bwd_par(dout, y, dx, one, nchunks):
    n = dout.size
    for c in prange(nchunks):
        _tanh_bwd(dout, y, dx, one, c * n // nchunks, (c + 1) * n // nchunks)


def tanh_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = tanh(x)``."""
    _tanh(x, out)


def tanh_backward(dout: np.ndarray, y: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout * (1 - y*y)`` from the forward output ``y``."""
    n = dout.size
    dispatch(_tanh_bwd, _tanh_bwd_par, n, n, dout, y, dx, y.dtype.type(1))


# -- leaky ReLU (mask: x > 0) ---------------------------------------------------------------------------


@jit
def _leaky_fwd(x, out, mask, alpha, lo, hi):
    xs, os, ms = x[lo:hi], out[lo:hi], mask[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        m = v > 0
        ms[i] = m
        os[i] = v if m else v * alpha


@jit(parallel=True)
def _leaky_fwd_par(x, out, mask, alpha, nchunks):
    n = x.size
    for c in prange(nchunks):
        _leaky_fwd(x, out, mask, alpha, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _leaky_bwd(dout, mask, dx, alpha, lo, hi):
    ds, ms, xs = dout[lo:hi], mask[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        d = ds[i]
        xs[i] = d if ms[i] else d * alpha


@jit(parallel=True)
def _leaky_bwd_par(dout, mask, dx, alpha, nchunks):
    n = dout.size
    for c in prange(nchunks):
        _leaky_bwd(dout, mask, dx, alpha, c * n // nchunks, (c + 1) * n // nchunks)


def leaky_relu_forward(x: np.ndarray, out: np.ndarray, mask: np.ndarray, alpha) -> None:
    """``mask = x > 0``; ``out = x if mask else alpha*x`` (NaN: ``alpha*NaN``, NaN)."""
    n = x.size
    dispatch(_leaky_fwd, _leaky_fwd_par, n, n, x, out, mask, alpha)


def leaky_relu_backward(dout: np.ndarray, mask: np.ndarray, dx: np.ndarray, alpha) -> None:
    """``dx = dout if mask else dout*alpha``."""
    n = dout.size
    dispatch(_leaky_bwd, _leaky_bwd_par, n, n, dout, mask, dx, alpha)


# -- PReLU: (N, D) arrays, slope alpha (D,) -------------------------------------------------------------


@jit
def _prelu_fwd(x, out, alpha, lo, hi):
    for r in range(lo, hi):
        xs, os = x[r], out[r]
        for j in range(xs.size):
            v = xs[j]
            os[j] = v if v > 0 else v * alpha[j]


@jit(parallel=True)
def _prelu_fwd_par(x, out, alpha, nchunks):
    n = x.shape[0]
    for c in prange(nchunks):
        _prelu_fwd(x, out, alpha, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _prelu_bwd(dout, x, dx, alpha, acc, lo, hi):
    """``dx`` rows ``[lo, hi)``; their ``sum(x*dout where not x > 0)`` added into ``acc`` (D,)."""
    for r in range(lo, hi):
        ds, xs, gs = dout[r], x[r], dx[r]
        for j in range(xs.size):
            v, d = xs[j], ds[j]
            if v > 0:
                gs[j] = d
            else:
                acc[j] += v * d
                gs[j] = d * alpha[j]


@jit(parallel=True)
def _prelu_bwd_par(dout, x, dx, alpha, partials, nchunks):
    n = x.shape[0]
    for c in prange(nchunks):
        _prelu_bwd(dout, x, dx, alpha, partials[c], c * n // nchunks, (c + 1) * n // nchunks)


def prelu_forward(x: np.ndarray, out: np.ndarray, alpha: np.ndarray) -> None:
    """``out[:, j] = x if x > 0 else alpha[j]*x`` on ``(N, D)`` arrays."""
    dispatch(_prelu_fwd, _prelu_fwd_par, x.shape[0], x.size, x, out, alpha)


def prelu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray, alpha: np.ndarray, dalpha: np.ndarray) -> None:
    """``dx = dout if x > 0 else dout*alpha[j]``; ``dalpha[j] = sum_i (x > 0 ? 0 : x*dout)`` (written)."""
    from .. import runtime

    if runtime.use_parallel(x.size):
        k = runtime.chunks(x.shape[0])
        partials = np.zeros((k, x.shape[1]), dtype=x.dtype)
        _prelu_bwd_par(dout, x, dx, alpha, partials, k)
        np.sum(partials, axis=0, out=dalpha)
    else:
        dalpha[...] = 0
        _prelu_bwd(dout, x, dx, alpha, dalpha, 0, x.shape[0])


# -- ELU and SELU: y = pos*x if x > 0 else neg*expm1(min(x, 0)) -----------------------------------------


@jit
def _elu_fwd(x, e, out, pos, neg, lo, hi):
    xs, es, os = x[lo:hi], e[lo:hi], out[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        os[i] = pos * v if v > 0 else neg * es[i]


@jit(parallel=True)
def _elu_fwd_par(x, e, out, pos, neg, nchunks):
    n = x.size
    for c in prange(nchunks):
        _elu_fwd(x, e, out, pos, neg, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _elu_bwd(dout, x, e, dx, pos, neg, lo, hi):
    ds, xs, es, gs = dout[lo:hi], x[lo:hi], e[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        d = ds[i]
        gs[i] = d * (neg * es[i]) if xs[i] <= 0 else d * pos


@jit(parallel=True)
def _elu_bwd_par(dout, x, e, dx, pos, neg, nchunks):
    n = dout.size
    for c in prange(nchunks):
        _elu_bwd(dout, x, e, dx, pos, neg, c * n // nchunks, (c + 1) * n // nchunks)


def _elu_forward(x, out, pos, neg) -> None:
    n = x.size
    e = _scratch(n, x.dtype)
    _clip_above(x, e, 0)
    _expm1(e)
    dispatch(_elu_fwd, _elu_fwd_par, n, n, x, e, out, pos, neg)


def _elu_backward(dout, x, dx, pos, neg) -> None:
    n = x.size
    e = _scratch(n, x.dtype)
    _clip_above(x, e, 0)
    _exp(e)
    dispatch(_elu_bwd, _elu_bwd_par, n, n, dout, x, e, dx, pos, neg)


def elu_forward(x: np.ndarray, out: np.ndarray, alpha) -> None:
    """``out = x if x > 0 else alpha*expm1(min(x, 0))``."""
    _elu_forward(x, out, x.dtype.type(1), alpha)


def elu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray, alpha) -> None:
    """``dx = dout*(alpha*exp(x)) if x <= 0 else dout`` (NaN takes the second branch)."""
    _elu_backward(dout, x, dx, x.dtype.type(1), alpha)


def selu_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = scale*x if x > 0 else (alpha*scale)*expm1(min(x, 0))`` (Klambauer et al.'s constants)."""
    t = x.dtype.type
    _elu_forward(x, out, t(SELU_SCALE), t(SELU_ALPHA * SELU_SCALE))


def selu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*((alpha*scale)*exp(x)) if x <= 0 else dout*scale``."""
    t = x.dtype.type
    _elu_backward(dout, x, dx, t(SELU_SCALE), t(SELU_ALPHA * SELU_SCALE))


# -- GELU, exact (erf) and the tanh form ----------------------------------------------------------------


@jit(fastmath=CONTRACT)
def _gelu_fwd(x, out, half, one, c, single, lo, hi):
    xs, os = x[lo:hi], out[lo:hi]
    if single:  # float32: erf in float32 arithmetic
        for i in range(xs.size):
            v = xs[i]
            os[i] = v * half * (one + _erf1f(v * c))
    else:
        for i in range(xs.size):
            v = xs[i]
            os[i] = v * half * (one + _erf1(v * c))


@jit(parallel=True, fastmath=CONTRACT)
def _gelu_fwd_par(x, out, half, one, c, single, nchunks):
    n = x.size
    for c_ in prange(nchunks):
        _gelu_fwd(x, out, half, one, c, single, c_ * n // nchunks, (c_ + 1) * n // nchunks)


@jit
def _neg_half_square(x, s, mhalf, lo, hi):
    xs, ss = x[lo:hi], s[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        ss[i] = mhalf * v * v


@jit(parallel=True)
def _neg_half_square_par(x, s, mhalf, nchunks):
    n = x.size
    for c in prange(nchunks):
        _neg_half_square(x, s, mhalf, c * n // nchunks, (c + 1) * n // nchunks)


@jit(fastmath=CONTRACT)
def _gelu_bwd(dout, x, e, dx, half, one, c, k, single, lo, hi):
    ds, xs, es, gs = dout[lo:hi], x[lo:hi], e[lo:hi], dx[lo:hi]
    if single:
        for i in range(xs.size):
            v = xs[i]
            cdf = half * (one + _erf1f(v * c))
            gs[i] = ds[i] * (cdf + v * (es[i] * k))
    else:
        for i in range(xs.size):
            v = xs[i]
            cdf = half * (one + _erf1(v * c))
            gs[i] = ds[i] * (cdf + v * (es[i] * k))


@jit(parallel=True, fastmath=CONTRACT)
def _gelu_bwd_par(dout, x, e, dx, half, one, c, k, single, nchunks):
    n = x.size
    for c_ in prange(nchunks):
        _gelu_bwd(dout, x, e, dx, half, one, c, k, single, c_ * n // nchunks, (c_ + 1) * n // nchunks)


def gelu_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x*0.5*(1 + erf(x/sqrt 2))`` (``-inf`` gives NaN, as PyTorch)."""
    n = x.size
    t = x.dtype.type
    dispatch(_gelu_fwd, _gelu_fwd_par, n, n, x, out, t(0.5), t(1), t(_INV_SQRT2), x.dtype == np.float32)


def gelu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(Phi(x) + x*phi(x))``, ``phi(x) = exp(-0.5*x*x)/sqrt(2 pi)``."""
    n = x.size
    t = x.dtype.type
    e = _scratch(n, x.dtype)
    dispatch(_neg_half_square, _neg_half_square_par, n, n, x, e, t(-0.5))
    _exp(e)
    dispatch(_gelu_bwd, _gelu_bwd_par, n, n, dout, x, e, dx, t(0.5), t(1), t(_INV_SQRT2), t(_INV_SQRT_2PI),
             x.dtype == np.float32)


@jit
def _gelu_tanh_arg(x, u, beta, kappa, lo, hi):
    xs, us = x[lo:hi], u[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        us[i] = beta * (v + kappa * v * v * v)


@jit(parallel=True)
def _gelu_tanh_arg_par(x, u, beta, kappa, nchunks):
    n = x.size
    for c in prange(nchunks):
        _gelu_tanh_arg(x, u, beta, kappa, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _gelu_tanh_fwd(x, th, out, half, one, lo, hi):
    xs, ts, os = x[lo:hi], th[lo:hi], out[lo:hi]
    for i in range(xs.size):
        os[i] = half * xs[i] * (one + ts[i])


@jit(parallel=True)
def _gelu_tanh_fwd_par(x, th, out, half, one, nchunks):
    n = x.size
    for c in prange(nchunks):
        _gelu_tanh_fwd(x, th, out, half, one, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _gelu_tanh_arg2(x, u, beta, kappa, lo, hi):
    """The backward's ``u``: ``beta*(x + kappa*(x*x)*x)`` (the reference's order)."""
    xs, us = x[lo:hi], u[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        us[i] = beta * (v + kappa * (v * v) * v)


@jit(parallel=True)
def _gelu_tanh_arg2_par(x, u, beta, kappa, nchunks):
    n = x.size
    for c in prange(nchunks):
        _gelu_tanh_arg2(x, u, beta, kappa, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _gelu_tanh_bwd(dout, x, th, dx, half, one, beta, kappa3, lo, hi):
    ds, xs, ts, gs = dout[lo:hi], x[lo:hi], th[lo:hi], dx[lo:hi]
    for i in range(xs.size):
        v, t = xs[i], ts[i]
        d_inner = beta * (one + kappa3 * (v * v))
        gs[i] = ds[i] * (half * (one + t) + half * v * (one - t * t) * d_inner)


@jit(parallel=True)
def _gelu_tanh_bwd_par(dout, x, th, dx, half, one, beta, kappa3, nchunks):
    n = x.size
    for c in prange(nchunks):
        _gelu_tanh_bwd(dout, x, th, dx, half, one, beta, kappa3, c * n // nchunks, (c + 1) * n // nchunks)


def gelu_tanh_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))``."""
    n = x.size
    t = x.dtype.type
    u = _scratch(n, x.dtype)
    dispatch(_gelu_tanh_arg, _gelu_tanh_arg_par, n, n, x, u, t(GELU_TANH_BETA), t(GELU_TANH_KAPPA))
    _tanh(u, u)
    dispatch(_gelu_tanh_fwd, _gelu_tanh_fwd_par, n, n, x, u, out, t(0.5), t(1))


def gelu_tanh_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(0.5*(1 + th) + 0.5*x*(1 - th*th)*sqrt(2/pi)*(1 + 3*0.044715*x*x))``, ``th = tanh(u)``."""
    n = x.size
    t = x.dtype.type
    u = _scratch(n, x.dtype)
    beta = t(GELU_TANH_BETA)
    dispatch(_gelu_tanh_arg2, _gelu_tanh_arg2_par, n, n, x, u, beta, t(GELU_TANH_KAPPA))
    _tanh(u, u)
    dispatch(_gelu_tanh_bwd, _gelu_tanh_bwd_par, n, n, dout, x, u, dx, t(0.5), t(1), beta, t(3 * GELU_TANH_KAPPA))


# -- SiLU (swish) ---------------------------------------------------------------------------------------


@jit
def _neg_abs(x, s, lo, hi):
    xs, ss = x[lo:hi], s[lo:hi]
    for i in range(xs.size):
        ss[i] = -abs(xs[i])


@jit(parallel=True)
def _neg_abs_par(x, s, nchunks):
    n = x.size
    for c in prange(nchunks):
        _neg_abs(x, s, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _silu_fwd(x, e, out, one, lo, hi):
    xs, es, os = x[lo:hi], e[lo:hi], out[lo:hi]
    for i in range(xs.size):
        v, w = xs[i], es[i]
        s = one / (one + w) if v >= 0 else w / (one + w)
        os[i] = v * s


@jit(parallel=True)
def _silu_fwd_par(x, e, out, one, nchunks):
    n = x.size
    for c in prange(nchunks):
        _silu_fwd(x, e, out, one, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _silu_bwd(dout, x, e, dx, one, lo, hi):
    ds, xs, es, gs = dout[lo:hi], x[lo:hi], e[lo:hi], dx[lo:hi]
    for i in range(xs.size):
        v, w = xs[i], es[i]
        s = one / (one + w) if v >= 0 else w / (one + w)
        gs[i] = ds[i] * (s * (one + v * (one - s)))


@jit(parallel=True)
def _silu_bwd_par(dout, x, e, dx, one, nchunks):
    n = x.size
    for c in prange(nchunks):
        _silu_bwd(dout, x, e, dx, one, c * n // nchunks, (c + 1) * n // nchunks)


def _silu_e(x: np.ndarray) -> np.ndarray:
    """``exp(-|x|)`` in a scratch array."""
    n = x.size
    e = _scratch(n, x.dtype)
    dispatch(_neg_abs, _neg_abs_par, n, n, x, e)
    _exp(e)
    return e


def silu_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x*sigmoid(x)`` (``-inf`` gives NaN, as PyTorch)."""
    n = x.size
    dispatch(_silu_fwd, _silu_fwd_par, n, n, x, _silu_e(x), out, x.dtype.type(1))


def silu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(s*(1 + x*(1 - s)))``, ``s = sigmoid(x)``."""
    n = x.size
    dispatch(_silu_bwd, _silu_bwd_par, n, n, dout, x, _silu_e(x), dx, x.dtype.type(1))


# -- Mish -----------------------------------------------------------------------------------------------


@jit
def _mish_fwd(x, e, out, two, lo, hi):
    xs, es, os = x[lo:hi], e[lo:hi], out[lo:hi]
    for i in range(xs.size):
        w = es[i]
        nn = w * (w + two)
        os[i] = xs[i] * (nn / (nn + two))


@jit(parallel=True)
def _mish_fwd_par(x, e, out, two, nchunks):
    n = x.size
    for c in prange(nchunks):
        _mish_fwd(x, e, out, two, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _mish_bwd(dout, x, e, dx, one, two, lo, hi):
    ds, xs, es, gs = dout[lo:hi], x[lo:hi], e[lo:hi], dx[lo:hi]
    for i in range(xs.size):
        w = es[i]
        nn = w * (w + two)
        t = nn / (nn + two)
        s = w / (one + w)
        gs[i] = ds[i] * (t + xs[i] * s * (one - t * t))


@jit(parallel=True)
def _mish_bwd_par(dout, x, e, dx, one, two, nchunks):
    n = x.size
    for c in prange(nchunks):
        _mish_bwd(dout, x, e, dx, one, two, c * n // nchunks, (c + 1) * n // nchunks)


def _mish_e(x: np.ndarray) -> np.ndarray:
    """``exp(min(x, 20))`` in a scratch array."""
    e = _scratch(x.size, x.dtype)
    _clip_above(x, e, x.dtype.type(SOFTPLUS_THRESHOLD))
    _exp(e)
    return e


def mish_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x*tanh(softplus(x))``, computed as ``x*n/(n + 2)`` with ``n = e*(e + 2)``, ``e = exp(min(x, 20))``."""
    n = x.size
    t = x.dtype.type
    dispatch(_mish_fwd, _mish_fwd_par, n, n, x, _mish_e(x), out, t(2))


def mish_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(t + x*s*(1 - t*t))``, ``t = tanh(softplus(x))``, ``s = sigmoid(x)``."""
    n = x.size
    t = x.dtype.type
    dispatch(_mish_bwd, _mish_bwd_par, n, n, dout, x, _mish_e(x), dx, t(1), t(2))
