"""The activations of Hands-On ML ch. 11 (tanh, LeakyReLU, PReLU, ELU, SELU, GELU, SiLU, Mish), forward and backward.

Drivers follow :mod:`fastdl.activations`' contract: flat C-contiguous arrays of one float dtype
(PReLU: ``(N, D)`` arrays and its per-feature slope), outputs written in place (``out`` may be
``x``, ``dx`` may be ``dout``), constants in the array's dtype, nothing validated here.

Formulas (PyTorch's, as :mod:`fastdl.reference` writes them):

* tanh: ``y = tanh(x)``; ``dx = dout * (1 - y*y)``
* leaky_relu: ``y = x if x > 0 else alpha*x``; ``dx = dout if x > 0 else dout*alpha`` (mask ``x > 0``)
* prelu: as leaky_relu with ``alpha[j]`` per feature; ``dalpha[j] = sum_i (x <= 0 or NaN ? x*dout : 0)``
* elu / selu: ``y = pos*x if x > 0 else neg*expm1(x)``; ``dx = dout*(neg*exp(x)) if x <= 0 else dout*pos``
  with ``(pos, neg) = (1, alpha)`` (ELU) or ``(scale, alpha*scale)`` (SELU); NaN takes the ``x > 0``
  branch of the gradient (PyTorch's scalar definition)
* gelu: ``y = x*0.5*(1 + erf(x/sqrt 2))``; ``dx = dout*(0.5*(1 + erf(x/sqrt 2)) + x*exp(-0.5*x*x)/sqrt(2 pi))``
* gelu_tanh: ``y = 0.5*x*(1 + tanh(u))``, ``u = sqrt(2/pi)*(x + 0.044715*x**3)``;
  ``dx = dout*(0.5*(1 + th) + 0.5*x*(1 - th*th)*sqrt(2/pi)*(1 + 3*0.044715*x*x))``, ``th = tanh(u)``
* silu: ``y = x*s``, ``s = sigmoid(x)``; ``dx = dout*(s*(1 + x*(1 - s)))``
* mish: ``y = x*t``, ``t = tanh(softplus(x)) = n/(n + 2)``, ``n = e*(e + 2)``, ``e = exp(min(x, 20))``
  (PyTorch's softplus is linear above 20, where ``tanh`` is 1 in both floats); ``dx = dout*(t + x*s*(1 - t*t))``
  with ``s = e/(1 + e)``

Transcendentals
    ELU, SELU, GELU (both forms), SiLU and Mish run as one fused compiled pass each way over
    vectorizable element functions: ``exp``, ``expm1``, ``tanh`` and ``sigmoid`` of
    :mod:`fastdl.kernels.vmath` (<= 3 ulp) and ``erf`` of :mod:`fastdl.kernels.erf` (float64
    ``|error| <= 3.4e-16``, float32 ``<= 1.9e-7``), each behind one name here (:data:`_exp1`,
    :data:`_expm1_1`, :data:`_tanh1`, :data:`_sigmoid1`, :data:`_erf1`, :data:`_erf1f`). tanh's
    forward alone is NumPy's ``np.tanh`` in place (one AVX-512 pass, cheaper than the polynomial;
    ``docs/design-notes.md``, "Vectorized transcendentals"). Numba's scalar libm calls (``math.exp``,
    ``math.erf``) do not vectorize and measured 4-30x slower. No input raises a warning (``+-inf``,
    NaN, ``|x|`` up to the float's range): compiled code does not warn, and ``np.tanh`` does not overflow.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .. import runtime
from .._jit import CONTRACT, jit
from . import dispatch, moves_parallel, numpy_map
from .erf import erf1, erf1f
from .vmath import vexp, vexpm1, vsigmoid, vtanh

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
GELU_TANH_KAPPA = 0.044715
SOFTPLUS_THRESHOLD = 20.0
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# -- the transcendental helpers (one name per function: the place to swap an implementation) ---------

_exp1, _expm1_1, _tanh1, _sigmoid1 = vexp, vexpm1, vtanh, vsigmoid  # element functions inside kernels
_erf1, _erf1f = erf1, erf1f  # float64 / float32 arithmetic


def _tanh(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst = tanh(src)`` on whole arrays (NumPy's AVX-512 ufunc, split over threads by size; ``dst`` may be
    ``src``)."""
    numpy_map(_np_tanh, src, dst)


def _np_tanh(src: np.ndarray, dst: np.ndarray) -> None:
    np.tanh(src, out=dst)


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
    dispatch(_tanh_bwd, _tanh_bwd_par, n, n, dout, y, dx, y.dtype.type(1), family="stream")


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
    dispatch(_leaky_fwd, _leaky_fwd_par, n, n, x, out, mask, alpha, family="stream")


def leaky_relu_backward(dout: np.ndarray, mask: np.ndarray, dx: np.ndarray, alpha) -> None:
    """``dx = dout if mask else dout*alpha``."""
    n = dout.size
    dispatch(_leaky_bwd, _leaky_bwd_par, n, n, dout, mask, dx, alpha, family="stream")


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
    dispatch(_prelu_fwd, _prelu_fwd_par, x.shape[0], x.size, x, out, alpha, family="stream")


def prelu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray, alpha: np.ndarray, dalpha: np.ndarray) -> None:
    """``dx = dout if x > 0 else dout*alpha[j]``; ``dalpha[j] = sum_i (x > 0 ? 0 : x*dout)`` (written)."""
    if moves_parallel("stream", x.size, (dout, x, dx)):
        k = runtime.chunks(x.shape[0])
        partials = np.zeros((k, x.shape[1]), dtype=x.dtype)
        _prelu_bwd_par(dout, x, dx, alpha, partials, k)
        np.sum(partials, axis=0, out=dalpha)
    else:
        dalpha[...] = 0
        _prelu_bwd(dout, x, dx, alpha, dalpha, 0, x.shape[0])


# -- ELU, SELU, GELU, GELU (tanh), SiLU, Mish: one fused pass each way, one worker for all --------------

#: operation codes of :func:`_fwd_w` / :func:`_bwd_w`
ELU, GELU, GELU_F32, GELU_TANH, SILU, MISH = range(6)


@jit(fastmath=CONTRACT)
def _fwd_w(x, out, op, k0, k1, k2, k3, lo, hi):
    """``out[lo:hi] = f(x[lo:hi])`` for the activation ``op`` names; ``k0..k3`` its constants (x's dtype)."""
    xs, os = x[lo:hi], out[lo:hi]
    if op == ELU:  # k0 = pos, k1 = neg
        for i in range(xs.size):
            v = xs[i]
            os[i] = k0 * v if v > 0 else k1 * _expm1_1(v)
    elif op == GELU:  # k0 = 0.5, k1 = 1, k2 = 1/sqrt 2
        for i in range(xs.size):
            v = xs[i]
            os[i] = v * k0 * (k1 + _erf1(v * k2))
    elif op == GELU_F32:
        for i in range(xs.size):
            v = xs[i]
            os[i] = v * k0 * (k1 + _erf1f(v * k2))
    elif op == GELU_TANH:  # k0 = 0.5, k1 = 1, k2 = beta, k3 = kappa
        for i in range(xs.size):
            v = xs[i]
            os[i] = k0 * v * (k1 + _tanh1(k2 * (v + k3 * v * v * v)))
    elif op == SILU:
        for i in range(xs.size):
            v = xs[i]
            os[i] = v * _sigmoid1(v)
    elif op == MISH:  # k0 = 20 (the softplus threshold), k1 = 2
        for i in range(xs.size):
            v = xs[i]
            w = _exp1(v if v < k0 else k0)  # NaN: exp(20), and NaN from the factor v
            n = w * (w + k1)
            os[i] = v * (n / (n + k1))


@jit(parallel=True, fastmath=CONTRACT)
def _fwd_p(x, out, op, k0, k1, k2, k3, nchunks):
    n = x.size
    for c in prange(nchunks):
        _fwd_w(x, out, op, k0, k1, k2, k3, c * n // nchunks, (c + 1) * n // nchunks)


@jit(fastmath=CONTRACT)
def _bwd_w(dout, x, dx, op, k0, k1, k2, k3, lo, hi):
    """``dx[lo:hi]`` of the activation ``op`` names from ``dout`` and the forward input (constants as the forward's)."""
    ds, xs, gs = dout[lo:hi], x[lo:hi], dx[lo:hi]
    if op == ELU:
        for i in range(xs.size):
            v, d = xs[i], ds[i]
            gs[i] = d * (k1 * _exp1(v)) if v <= 0 else d * k0
    elif op == GELU:  # k3 = 1/sqrt(2 pi)
        for i in range(xs.size):
            v = xs[i]
            gs[i] = ds[i] * (k0 * (k1 + _erf1(v * k2)) + v * (_exp1(-k0 * v * v) * k3))
    elif op == GELU_F32:  # (a select between the two erfs in one loop would not vectorize)
        for i in range(xs.size):
            v = xs[i]
            gs[i] = ds[i] * (k0 * (k1 + _erf1f(v * k2)) + v * (_exp1(-k0 * v * v) * k3))
    elif op == GELU_TANH:
        for i in range(xs.size):
            v = xs[i]
            x2 = v * v
            th = _tanh1(k2 * (v + k3 * x2 * v))
            d_inner = k2 * (k1 + (k3 + k3 + k3) * x2)
            gs[i] = ds[i] * (k0 * (k1 + th) + k0 * v * (k1 - th * th) * d_inner)
    elif op == SILU:  # k1 = 1
        for i in range(xs.size):
            v = xs[i]
            s = _sigmoid1(v)
            gs[i] = ds[i] * (s * (k1 + v * (k1 - s)))
    elif op == MISH:  # k0 = 20, k1 = 2, k2 = 1
        for i in range(xs.size):
            v = xs[i]
            w = _exp1(v if v < k0 else k0)
            n = w * (w + k1)
            t = n / (n + k1)
            s = w / (k2 + w)
            gs[i] = ds[i] * (t + v * s * (k2 - t * t))


@jit(parallel=True, fastmath=CONTRACT)
def _bwd_p(dout, x, dx, op, k0, k1, k2, k3, nchunks):
    n = x.size
    for c in prange(nchunks):
        _bwd_w(dout, x, dx, op, k0, k1, k2, k3, c * n // nchunks, (c + 1) * n // nchunks)


def _fwd(op: int, x: np.ndarray, out: np.ndarray, *consts) -> None:
    t = x.dtype.type
    k = tuple(map(t, consts)) + (t(0),) * (4 - len(consts))
    dispatch(_fwd_w, _fwd_p, x.size, x.size, x, out, op, *k, family="transcendental")


def _bwd(op: int, dout: np.ndarray, x: np.ndarray, dx: np.ndarray, *consts) -> None:
    t = x.dtype.type
    k = tuple(map(t, consts)) + (t(0),) * (4 - len(consts))
    dispatch(_bwd_w, _bwd_p, x.size, x.size, dout, x, dx, op, *k, family="transcendental")


def elu_forward(x: np.ndarray, out: np.ndarray, alpha) -> None:
    """``out = x if x > 0 else alpha*expm1(x)``."""
    _fwd(ELU, x, out, 1, alpha)


def elu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray, alpha) -> None:
    """``dx = dout*(alpha*exp(x)) if x <= 0 else dout`` (NaN takes the second branch)."""
    _bwd(ELU, dout, x, dx, 1, alpha)


def selu_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = scale*x if x > 0 else (alpha*scale)*expm1(x)`` (Klambauer et al.'s constants)."""
    _fwd(ELU, x, out, SELU_SCALE, SELU_ALPHA * SELU_SCALE)


def selu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*((alpha*scale)*exp(x)) if x <= 0 else dout*scale``."""
    _bwd(ELU, dout, x, dx, SELU_SCALE, SELU_ALPHA * SELU_SCALE)


def _gelu_op(x: np.ndarray) -> int:
    return GELU_F32 if x.dtype == np.float32 else GELU


def gelu_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x*0.5*(1 + erf(x/sqrt 2))`` (``-inf`` gives NaN, as PyTorch)."""
    _fwd(_gelu_op(x), x, out, 0.5, 1, _INV_SQRT2)


def gelu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(Phi(x) + x*phi(x))``, ``phi(x) = exp(-0.5*x*x)/sqrt(2 pi)``."""
    _bwd(_gelu_op(x), dout, x, dx, 0.5, 1, _INV_SQRT2, _INV_SQRT_2PI)


def gelu_tanh_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))``."""
    _fwd(GELU_TANH, x, out, 0.5, 1, GELU_TANH_BETA, GELU_TANH_KAPPA)


def gelu_tanh_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """The tanh form's gradient (module notes)."""
    _bwd(GELU_TANH, dout, x, dx, 0.5, 1, GELU_TANH_BETA, GELU_TANH_KAPPA)


def silu_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x*sigmoid(x)`` (``-inf`` gives NaN, as PyTorch)."""
    _fwd(SILU, x, out)


def silu_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(s*(1 + x*(1 - s)))``, ``s = sigmoid(x)``."""
    _bwd(SILU, dout, x, dx, 0, 1)


def mish_forward(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x*tanh(softplus(x))``, computed as ``x*n/(n + 2)`` with ``n = e*(e + 2)``, ``e = exp(min(x, 20))``."""
    _fwd(MISH, x, out, SOFTPLUS_THRESHOLD, 2)


def mish_backward(dout: np.ndarray, x: np.ndarray, dx: np.ndarray) -> None:
    """``dx = dout*(t + x*s*(1 - t*t))``, ``t = tanh(softplus(x))``, ``s = sigmoid(x)``."""
    _bwd(MISH, dout, x, dx, SOFTPLUS_THRESHOLD, 2, 1)
