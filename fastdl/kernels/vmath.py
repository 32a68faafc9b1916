"""Vectorizable ``exp``, ``log1p`` and what derives from them (expm1, tanh, sigmoid, softplus), float32 and float64.

Numba lowers ``math.exp``/``np.exp`` in a loop to a scalar libm call per element (no SVML in the
PyPI llvmlite), which stops LLVM from vectorizing the loop. The element functions here are plain
arithmetic and selects that LLVM vectorizes (AVX-512 / AVX2 / SSE, whatever the host has):

``exp(x)``
    Range reduction ``x = n ln2 + r``, ``|r| <= ln2/2``: ``n`` rounded to nearest by adding the
    shifter ``1.5 * 2**52`` (float32: ``1.5 * 2**23``), whose low bits then hold ``n`` as an
    integer; ``ln2`` split in a high part whose product with ``n`` is exact and a low part
    (Cody-Waite). ``exp(r) = 1 + r + r**2 q(r)``, ``q`` a polynomial (float64: degree 9,
    least-squares fit on Chebyshev nodes; float32: degree 5 Taylor), Horner with FMA where the
    host has it. The scale ``2**n`` is built from integer bits (``(n + bias) << mantissa_bits``
    reinterpreted as a float) and applied as two factors ``2**(n >> 1) * 2**(n - (n >> 1))``,
    so gradual underflow (subnormal results) and overflow to ``inf`` come out of the
    multiplication itself. ``x`` is first clamped to ``[-746, 710]`` (float32 ``[-104, 89]``),
    which maps ``-inf`` to ``0`` and ``inf`` to ``inf``; NaN passes through clamp and arithmetic.
``expm1(x)``
    ``|x| < 1/2``: the Taylor series of ``expm1`` (degree 15 / 9: no cancellation); else
    ``(1 + p) 2**n - 1 = p 2**n + (2**n - 1)`` from the parts of ``exp``, both terms exact for
    moderate ``n`` (one rounding), and ``exp(x) - 1`` once ``-1`` is below half an ulp.
``tanh(x)``
    ``copysign(-t / (2 + t), x)`` with ``t = expm1(-2|x|)`` in ``(-1, 0]``: accurate near 0, no
    overflow for large ``|x|``.
``sigmoid(x)``
    ``1 / (1 + exp(-x))``: the book's formula with this ``exp`` (0 where ``exp(-x)`` overflows,
    as in the reference).

``log1p(y)``
    ``u = 1 + y`` rounded, its rounding error ``c`` kept (``y - (u - 1)``, or ``1 - (u - y)`` for
    ``y > 1``); ``u = 2**k m`` with ``m`` in ``[sqrt(1/2), sqrt 2)`` read from the integer bits;
    ``log(m) = s - s**2/2 + f (s**2/2 + R(f**2))``, ``s = m - 1``, ``f = s / (2 + s)``, ``R`` the
    series of ``2 atanh(f)/f - 2`` (degree 10 / 6 in ``f**2``); result ``k ln2 + log(m) + c / u``.
    Selects give ``-0.0``, ``-inf`` at ``-1``, NaN below ``-1``, ``inf`` at ``inf``.
``softplus(x)``
    ``max(x, 0) + log1p(exp(-|x|))``: no overflow, no threshold (PyTorch's ``x`` above 20 is the
    caller's select). Mish can also do without ``log``: ``tanh(softplus(x)) = u / (u + 2)`` with
    ``u = e (e + 2)``, ``e = exp(x)``.

Accuracy (stated bounds, verified by ``tests/test_vmath.py`` over >= 10**6 random and edge
inputs per dtype against the function evaluated in ``np.longdouble`` for float64 and in float64
for float32; ulps of the exact result, subnormal results in ulps of the subnormal spacing):

========  ==========  ==========
function  float64     float32
========  ==========  ==========
exp       <= 1.5 ulp  <= 1.5 ulp
expm1     <= 2 ulp    <= 2 ulp
tanh      <= 3 ulp    <= 3 ulp
sigmoid   <= 3 ulp    <= 3 ulp
log1p     <= 1.5 ulp  <= 1.5 ulp
softplus  <= 2 ulp    <= 2 ulp
========  ==========  ==========

These are not NumPy's values to the bit. Where :mod:`fastdl.reference` uses ``np.exp`` and a test
asserts bit-identity (today's sigmoid forward and softmax numerators), the kernels keep NumPy's
``exp``; see ``docs/design-notes.md`` ("Vectorized transcendentals") for which activation may take
which path.

Use: call ``vexp(x)`` / ``vexpm1(x)`` / ``vtanh(x)`` / ``vsigmoid(x)`` / ``vlog1p(x)`` /
``vsoftplus(x)`` inside a ``@jit`` kernel loop on a float32 or float64 scalar (the dtype is chosen
at compile time); the array drivers :func:`exp_into`, :func:`expm1_into`, :func:`tanh_into`,
:func:`sigmoid_into`, :func:`log1p_into`, :func:`softplus_into` run one pass over flat
C-contiguous arrays.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic, overload

from .._jit import jit
from . import dispatch

__all__ = ["vexp", "vexpm1", "vtanh", "vsigmoid", "vlog1p", "vsoftplus", "exp_into", "expm1_into", "tanh_into",
           "sigmoid_into", "log1p_into", "softplus_into"]


# --- bit casts (LLVM ``bitcast``: free, vectorizes) ------------------------------------------------

@intrinsic
def _as_int(typingctx, x):
    """float64 -> int64 / float32 -> int32 with the same bits."""
    if x == types.float64:
        ity, lty = types.int64, ir.IntType(64)
    elif x == types.float32:
        ity, lty = types.int32, ir.IntType(32)
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], lty)

    return ity(x), codegen


@intrinsic
def _as_float(typingctx, i):
    """int64 -> float64 / int32 -> float32 with the same bits."""
    if i == types.int64:
        fty, lty = types.float64, ir.DoubleType()
    elif i == types.int32:
        fty, lty = types.float32, ir.FloatType()
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], lty)

    return fty(i), codegen


#: fused multiply-add allowed (``contract`` only: NaN/inf semantics kept), where the host has FMA
_CONTRACT = frozenset({"contract"})


def _element(f):
    """``jit(fastmath=contract)`` plus LLVM ``alwaysinline`` (Numba's ``forceinline``) for an element function.

    Inlined by LLVM, not by Numba's IR inliner, so the function keeps its own fastmath flags in any
    caller; without it LLVM left the larger ones (expm1, tanh) as calls and the caller's loop did
    not vectorize. (``fastdl._jit.jit`` has no ``forceinline`` option: it is set on the dispatcher
    before its first compilation.)
    """
    d = jit(fastmath=_CONTRACT)(f)
    d.targetoptions["forceinline"] = True
    return d


# --- float64 ---------------------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_SHIFT64 = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer kept in the low bits
_LN2_HI64 = 6.93147180369123816490e-01  # 0x3fe62e42fee00000: n * _LN2_HI64 exact for |n| < 2**21
_LN2_LO64 = 1.90821492927058770002e-10


@_element
def _exp64_parts(x):
    """``(p, n)`` with ``exp(x) = (1 + p) * 2**n``, ``p = expm1(r)``, ``|r| <= ln2/2`` (x clamped)."""
    if x > 710.0:
        x = 710.0
    if x < -746.0:
        x = -746.0
    t = x * _LOG2E + _SHIFT64
    nf = t - _SHIFT64
    n = _as_int(t) - _as_int(_SHIFT64)
    r = (x - nf * _LN2_HI64) - nf * _LN2_LO64
    # q(r) ~ (exp(r) - 1 - r) / r**2 on |r| <= 0.3466: degree 9, least squares on 4000 Chebyshev
    # nodes (fitted to the series in np.longdouble); adds <= 0.15 ulp to exp (Taylor would need degree 11)
    p = 2.5108338585387594e-08
    p = p * r + 2.7620782600450093e-07
    p = p * r + 2.75572357849396e-06
    p = p * r + 2.4801519614482933e-05
    p = p * r + 0.00019841269906013587
    p = p * r + 0.001388888891845514
    p = p * r + 0.008333333333309725
    p = p * r + 0.041666666666621416
    p = p * r + 0.16666666666666693
    p = p * r + 0.5000000000000001
    return p * r * r + r, n


@_element
def _exp64(x):
    p, n = _exp64_parts(x)
    n1 = n >> 1
    s1 = _as_float((n1 + 1023) << 52)
    s2 = _as_float((n - n1 + 1023) << 52)
    return (p + 1.0) * s1 * s2


@_element
def _expm1_64(x):
    # |x| < 1/2: Taylor series of expm1 (degree 14), no cancellation
    q = 1.0 / 1307674368000.0
    q = q * x + 1.0 / 87178291200.0
    q = q * x + 1.0 / 6227020800.0
    q = q * x + 1.0 / 479001600.0
    q = q * x + 1.0 / 39916800.0
    q = q * x + 1.0 / 3628800.0
    q = q * x + 1.0 / 362880.0
    q = q * x + 1.0 / 40320.0
    q = q * x + 1.0 / 5040.0
    q = q * x + 1.0 / 720.0
    q = q * x + 1.0 / 120.0
    q = q * x + 1.0 / 24.0
    q = q * x + 1.0 / 6.0
    q = q * x + 0.5
    small = q * x * x + x
    if x == 0.0:
        small = x  # -0.0 stays -0.0
    # else: (1 + p) 2**n - 1 = p 2**n + (2**n - 1), both terms exact for -1022 <= n <= 53 (one rounding);
    # 2**n overflows to inf only for x >= 710 after the clamp, where p > 0 (no inf - inf)
    p, n = _exp64_parts(x)
    n1 = n >> 1
    s1 = _as_float((n1 + 1023) << 52)
    s2 = _as_float((n - n1 + 1023) << 52)
    s = s1 * s2
    large = p * s + (s - 1.0)
    if n > 60:  # -1 is below half an ulp; 2**n may overflow where (1 + p) 2**n does not
        large = (p + 1.0) * s1 * s2 - 1.0
    if abs(x) < 0.5:
        return small
    return large


# --- float32 ---------------------------------------------------------------------------------------

_F = np.float32
_LOG2E32 = _F(1.44269504)
_SHIFT32 = _F(12582912.0)  # 1.5 * 2**23
_LN2_HI32 = _F(0.693359375)  # 0x3f318000: n * _LN2_HI32 exact for |n| < 2**15
_LN2_LO32 = _F(-2.12194440e-4)
_HI32, _LO32 = _F(89.0), _F(-104.0)
_ZERO32, _ONE32, _HALF32 = _F(0.0), _F(1.0), _F(0.5)
_C32 = tuple(_F(1.0 / c) for c in (5040.0, 720.0, 120.0, 24.0, 6.0))
_C32_7, _C32_6, _C32_5, _C32_4, _C32_3 = _C32


_C32M = tuple(_F(1.0 / c) for c in (362880.0, 40320.0, 5040.0, 720.0, 120.0, 24.0, 6.0))
_C32M_9, _C32M_8, _C32M_7, _C32M_6, _C32M_5, _C32M_4, _C32M_3 = _C32M


@_element
def _exp32_parts(x):
    """``(p, n)`` with ``exp(x) = (1 + p) * 2**n``, ``p = expm1(r)``, ``|r| <= ln2/2`` (x clamped)."""
    if x > _HI32:
        x = _HI32
    if x < _LO32:
        x = _LO32
    t = x * _LOG2E32 + _SHIFT32
    nf = t - _SHIFT32
    n = _as_int(t) - _as_int(_SHIFT32)
    r = (x - nf * _LN2_HI32) - nf * _LN2_LO32
    p = _C32_7
    p = p * r + _C32_6
    p = p * r + _C32_5
    p = p * r + _C32_4
    p = p * r + _C32_3
    p = p * r + _HALF32
    return p * r * r + r, n


@_element
def _exp32(x):
    p, n = _exp32_parts(x)
    n1 = n >> 1
    s1 = _as_float(np.int32((n1 + 127) << 23))  # (Numba widens int32 arithmetic to int64)
    s2 = _as_float(np.int32((n - n1 + 127) << 23))
    return (p + _ONE32) * s1 * s2


@_element
def _expm1_32(x):
    q = _C32M_9
    q = q * x + _C32M_8
    q = q * x + _C32M_7
    q = q * x + _C32M_6
    q = q * x + _C32M_5
    q = q * x + _C32M_4
    q = q * x + _C32M_3
    q = q * x + _HALF32
    small = q * x * x + x
    if x == _ZERO32:
        small = x  # -0.0 stays -0.0
    p, n = _exp32_parts(x)
    n1 = n >> 1
    s1 = _as_float(np.int32((n1 + 127) << 23))
    s2 = _as_float(np.int32((n - n1 + 127) << 23))
    s = s1 * s2
    large = p * s + (s - _ONE32)
    if n > 30:
        large = (p + _ONE32) * s1 * s2 - _ONE32
    if abs(x) < _HALF32:
        return small
    return large


# --- log1p: exponent from the integer bits, log(1 + s) = s - s**2/2 + f (s**2/2 + R(f**2)) ---------------

# bits of sqrt(1/2): (bits(u) - these) >> 52 is the k with u / 2**k in [sqrt(1/2), sqrt 2)
_SQRTH64 = 0x3FE6A09E667F3BCD
_INF64 = np.inf


@_element
def _log1p64(y):
    u = 1.0 + y
    c = y - (u - 1.0)  # the rounding error of u (exact for |y| <= 1), corrected by c / u below
    if y > 1.0:
        c = 1.0 - (u - y)
    ui = _as_int(u)
    k = (ui - _SQRTH64) >> 52
    m = _as_float(ui - (k << 52))
    sm = m - 1.0
    f = sm / (2.0 + sm)  # log(m) = 2 atanh(f)
    z = f * f
    r = 2.0 / 23.0
    r = r * z + 2.0 / 21.0
    r = r * z + 2.0 / 19.0
    r = r * z + 2.0 / 17.0
    r = r * z + 2.0 / 15.0
    r = r * z + 2.0 / 13.0
    r = r * z + 2.0 / 11.0
    r = r * z + 2.0 / 9.0
    r = r * z + 2.0 / 7.0
    r = r * z + 2.0 / 5.0
    r = r * z + 2.0 / 3.0
    r = r * z
    hfsq = 0.5 * sm * sm
    kf = np.float64(k)
    res = kf * _LN2_HI64 + (sm - (hfsq - (f * (hfsq + r) + (kf * _LN2_LO64 + c / u))))
    if u == _INF64:
        res = u
    if u == 0.0:
        res = -_INF64
    if y < -1.0:
        res = np.nan
    if y == 0.0:
        res = y  # -0.0 stays -0.0
    return res


_SQRTH32 = 0x3F3504F3
_TWO32 = _F(2.0)
_R32 = tuple(_F(2.0 / c) for c in (13.0, 11.0, 9.0, 7.0, 5.0, 3.0))
_R32_13, _R32_11, _R32_9, _R32_7, _R32_5, _R32_3 = _R32
_INF32, _NAN32, _MINUS1_32 = _F(np.inf), _F(np.nan), _F(-1.0)


@_element
def _log1p32(y):
    u = _ONE32 + y
    c = y - (u - _ONE32)
    if y > _ONE32:
        c = _ONE32 - (u - y)
    ui = _as_int(u)
    k = np.int32((ui - _SQRTH32) >> 23)
    m = _as_float(np.int32(ui - (k << 23)))
    sm = m - _ONE32
    f = sm / (_TWO32 + sm)
    z = f * f
    r = _R32_13
    r = r * z + _R32_11
    r = r * z + _R32_9
    r = r * z + _R32_7
    r = r * z + _R32_5
    r = r * z + _R32_3
    r = r * z
    hfsq = _HALF32 * sm * sm
    kf = np.float32(k)
    res = kf * _LN2_HI32 + (sm - (hfsq - (f * (hfsq + r) + (kf * _LN2_LO32 + c / u))))
    if u == _INF32:
        res = u
    if u == _ZERO32:
        res = -_INF32
    if y < _MINUS1_32:
        res = _NAN32
    if y == _ZERO32:
        res = y
    return res


# --- dtype-generic element functions for kernels -----------------------------------------------------

_OV_FLAGS = {"nogil": True, "error_model": "numpy", "forceinline": True}


def vexp(x):
    """``exp(x)`` for a float32/float64 scalar inside a jitted kernel (vectorizable; <= 1.5 ulp)."""
    raise NotImplementedError("vexp is for use inside jitted code")


def vexpm1(x):
    """``exp(x) - 1`` for a float32/float64 scalar inside a jitted kernel (vectorizable; <= 2 ulp)."""
    raise NotImplementedError("vexpm1 is for use inside jitted code")


def vtanh(x):
    """``tanh(x) = sign(x) * (-t / (2 + t))``, ``t = expm1(-2|x|)``, inside a jitted kernel (<= 3 ulp)."""
    raise NotImplementedError("vtanh is for use inside jitted code")


def vsigmoid(x):
    """``1 / (1 + exp(-x))`` for a float32/float64 scalar inside a jitted kernel (<= 3 ulp)."""
    raise NotImplementedError("vsigmoid is for use inside jitted code")


def vlog1p(x):
    """``log(1 + x)`` for a float32/float64 scalar inside a jitted kernel (<= 1.5 ulp)."""
    raise NotImplementedError("vlog1p is for use inside jitted code")


def vsoftplus(x):
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))`` inside a jitted kernel, no threshold (<= 2 ulp)."""
    raise NotImplementedError("vsoftplus is for use inside jitted code")


def _overload(stub, make):
    """Register ``make(ftype)`` (``ftype`` np.float64 or np.float32) as ``stub``'s implementation per dtype."""

    @overload(stub, jit_options=_OV_FLAGS)
    def _ov(x):
        if x == types.float64:
            return make(np.float64)
        if x == types.float32:
            return make(np.float32)
        return None

    return _ov


def _per_dtype(f64, f32):
    """``make`` for :func:`_overload` choosing the float64 or float32 element function."""
    return lambda ftype: (lambda x: f64(x)) if ftype is np.float64 else (lambda x: f32(x))


def _tanh_impl(ftype):
    two = ftype(2)

    def impl(x):
        t = vexpm1(-two * abs(x))  # in (-1, 0]; -inf -> -1, NaN stays NaN
        return math.copysign(-t / (two + t), x)

    return impl


def _sigmoid_impl(ftype):
    one = ftype(1)
    return lambda x: one / (one + vexp(-x))


def _softplus_impl(ftype):
    zero = ftype(0)

    def impl(x):
        pos = x if x > zero else zero  # NaN -> 0 here, NaN from the log1p term
        return pos + vlog1p(vexp(-abs(x)))

    return impl


_overload(vexp, _per_dtype(_exp64, _exp32))
_overload(vexpm1, _per_dtype(_expm1_64, _expm1_32))
_overload(vlog1p, _per_dtype(_log1p64, _log1p32))
_overload(vtanh, _tanh_impl)
_overload(vsigmoid, _sigmoid_impl)
_overload(vsoftplus, _softplus_impl)


# --- array drivers: one pass over flat C-contiguous arrays -------------------------------------------

#: operation codes of :func:`_map_w` (one compiled worker for all, one loop per code)
EXP, EXPM1, TANH, SIGMOID, LOG1P, SOFTPLUS = range(6)


@jit
def _map_w(x, out, op, lo, hi):
    """``out[lo:hi] = f(x[lo:hi])`` for the element function ``op`` names (the test is outside the loops)."""
    xs, os = x[lo:hi], out[lo:hi]
    if op == EXP:
        for i in range(xs.size):
            os[i] = vexp(xs[i])
    elif op == EXPM1:
        for i in range(xs.size):
            os[i] = vexpm1(xs[i])
    elif op == TANH:
        for i in range(xs.size):
            os[i] = vtanh(xs[i])
    elif op == SIGMOID:
        for i in range(xs.size):
            os[i] = vsigmoid(xs[i])
    elif op == LOG1P:
        for i in range(xs.size):
            os[i] = vlog1p(xs[i])
    else:
        for i in range(xs.size):
            os[i] = vsoftplus(xs[i])


@jit(parallel=True)
def _map_p(x, out, op, nchunks):
    n = x.size
    for c in prange(nchunks):
        _map_w(x, out, op, c * n // nchunks, (c + 1) * n // nchunks)


def _apply(op: int, x: np.ndarray, out: np.ndarray) -> None:
    dispatch(_map_w, _map_p, x.size, x.size, x, out, op, family="transcendental")


def exp_into(x: np.ndarray, out: np.ndarray) -> None:
    """Flat C-contiguous float32/float64 arrays of one dtype and size: ``out = exp(x)`` (``out`` may be ``x``)."""
    _apply(EXP, x, out)


def expm1_into(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays as :func:`exp_into`: ``out = exp(x) - 1``."""
    _apply(EXPM1, x, out)


def tanh_into(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays as :func:`exp_into`: ``out = tanh(x)``."""
    _apply(TANH, x, out)


def sigmoid_into(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays as :func:`exp_into`: ``out = 1 / (1 + exp(-x))``."""
    _apply(SIGMOID, x, out)


def log1p_into(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays as :func:`exp_into`: ``out = log(1 + x)``."""
    _apply(LOG1P, x, out)


def softplus_into(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays as :func:`exp_into`: ``out = log(1 + exp(x))`` (no linear threshold)."""
    _apply(SOFTPLUS, x, out)
