"""In-place optimizer steps: one pass over 1-D arrays, no temporaries.

Every rule is one *worker* with the same signature::

    worker(p, g, s1, s2, s3, c) -> int

over C-contiguous 1-D arrays of one dtype: the parameters ``p`` (updated in place), the gradient
``g``, up to three state arrays ``s1..s3`` (updated in place; pass ``p`` for the ones the rule does
not use: they are not touched) and ``c``, a length-8 array of ``p``'s dtype holding the rule's
per-step constants ``c[0]..c[5]`` (what each rule reads is in :mod:`fastdl.optim.rules`) and the
gradient clipping of the optimizer, ``c[6]`` (a scale: ``clipnorm``/``global_clipnorm``, 1 without)
and ``c[7]`` (a bound: ``clipvalue``, ``inf`` without), applied to each ``g[i]`` as it is read
(:func:`clip`; the caller's gradient is never written). A worker
does the arithmetic in the exact operation order of :mod:`fastdl.reference` (float64 agrees to the
last bit, float32 stays float32) and returns how many updated parameter entries are NaN or
infinite: ``d = x - x`` is 0 for a finite ``x`` and NaN otherwise, and ``bad |= d != d`` is a
branch-free OR that vectorizes; only when it fires does :func:`count_nonfinite` count. Workers loop
over ``range(p.size)`` (a ``range(lo, hi)`` loop does not vectorize; see docs/design-notes.md).

A worker of this module is declared with :func:`worker`, which compiles it and gives it the next
``kind`` number. The drivers take that number:

``step(kind, p, g, s1, s2, s3, c)``
    serial;
``step_parallel(kind, p, g, s1, s2, s3, c, n_chunks)``
    the arrays split into ``n_chunks`` contiguous slices run on Numba's threads.

Their switch over the kinds is generated from :data:`WORKERS` when they are compiled (so both are
cached on disk like every kernel, and a new worker needs no edit here beyond its own loop). A rule
defined outside this module (its worker compiled with ``fastdl._jit.jit``) has no kind: its
serial step is a direct call of its worker and its parallel step is :func:`step_parallel_with`,
which takes the worker as an argument and is compiled per worker, uncached (Numba cannot cache a
function specialised on another dispatcher; see the design notes).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numba.extending import overload

from .._jit import jit

__all__ = ["KINDS", "WORKERS", "clip", "count_nonfinite", "step", "step_parallel", "step_parallel_with", "sumsq",
           "sumsq_parallel", "worker"]

#: The compiled workers in kind order (``WORKERS[kind]``); :func:`worker` appends.
WORKERS: list = []
#: worker dispatcher -> its kind number.
KINDS: dict = {}


def worker(func):
    """Compile ``func`` as a rule worker (see the module notes) and give it the next kind number."""
    compiled = jit(func)
    KINDS[compiled] = len(WORKERS)
    WORKERS.append(compiled)
    return compiled


@jit
def count_nonfinite(p):
    """Number of NaN/Inf entries of a 1-D array (run only after a step flagged one)."""
    n = 0
    for i in range(p.size):
        d = p[i] - p[i]
        if d != d:
            n += 1
    return n


@jit
def clip(gi, bound, scale):
    """The gradient a worker steps with: ``gi`` clipped to ``[-bound, bound]``, times ``scale``.

    ``c[7]`` is the bound (``inf``: no clipvalue) and ``c[6]`` the scale (``1``: no norm clipping),
    so an unclipped step sees ``gi`` itself (``gi * 1`` is exact); NaN passes through both tests.
    """
    gi = -bound if gi < -bound else gi
    gi = bound if gi > bound else gi
    return gi * scale


@jit(fastmath={"reassoc"})
def sumsq(a):
    """``sum(a * a)`` of a 1-D array, accumulated in float64, one read of ``a``.

    Reassociation lets the loop vectorize (float32 1M: 0.14 ms instead of 0.49 ms with eight scalar
    partial sums); the order of the additions then follows the vector width of the build, fixed for
    a given machine: the same array gives the same sum on every call.
    """
    s = 0.0
    for i in range(a.size):
        x = np.float64(a[i])
        s += x * x
    return s


@jit(parallel=True)
def sumsq_parallel(a, n_chunks):
    """:func:`sumsq` over ``n_chunks`` contiguous slices, one per thread, the partial sums added in order."""
    n = a.size
    parts = np.zeros(n_chunks)
    for i in prange(n_chunks):
        parts[i] = sumsq(a[i * n // n_chunks:(i + 1) * n // n_chunks])
    total = 0.0
    for i in range(n_chunks):
        total += parts[i]
    return total


@worker
def sgd(p, g, s1, s2, s3, c):
    """``p -= lr * g`` with ``c = (lr,)``."""
    lr = c[0]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        x = p[i] - lr * clip(g[i], bound, scale)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def momentum(p, g, v, s2, s3, c):
    """``v = mom * v - lr * g``; ``p += v`` with ``c = (lr, mom)``."""
    lr = c[0]
    mom = c[1]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        vi = mom * v[i] - lr * clip(g[i], bound, scale)
        v[i] = vi
        x = p[i] + vi
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def nesterov(p, g, v, s2, s3, c):
    """``p += mom2 * v``; ``p -= lr_next * g`` (with the old ``v``); then ``v = v * mom``; ``v -= lr * g``.

    ``c = (lr, mom, mom2, lr_next)`` with ``mom2 = momentum * momentum`` and
    ``lr_next = (1 + momentum) * lr`` (computed by the caller).
    """
    lr = c[0]
    mom = c[1]
    mom2 = c[2]
    lr_next = c[3]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        vi = v[i]
        x = p[i] + mom2 * vi
        x = x - lr_next * gi
        p[i] = x
        vi = vi * mom
        v[i] = vi - lr * gi
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def adagrad(p, g, h, s2, s3, c):
    """``h += g * g``; ``p -= (lr * g) / (sqrt(h) + eps)`` with ``c = (lr, eps)``."""
    lr = c[0]
    eps = c[1]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        hv = h[i] + gi * gi
        h[i] = hv
        x = p[i] - (lr * gi) / (np.sqrt(hv) + eps)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def rmsprop(p, g, h, s2, s3, c):
    """``h = h * decay``; ``h += ((1 - decay) * g) * g``; ``p -= (lr * g) / (sqrt(h) + eps)``.

    ``c = (lr, eps, decay, 1 - decay)``.
    """
    lr = c[0]
    eps = c[1]
    decay = c[2]
    one_minus_decay = c[3]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        hv = h[i] * decay
        hv = hv + one_minus_decay * gi * gi
        h[i] = hv
        x = p[i] - (lr * gi) / (np.sqrt(hv) + eps)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def adam(p, g, m, v, s3, c):
    """``m += (1-b1) * (g - m)``; ``v += (1-b2) * (g*g - v)``; ``p -= (lr_t * m) / (sqrt(v) + eps)``.

    ``c = (lr_t, eps, 1 - beta1, 1 - beta2)``.
    """
    lr_t = c[0]
    eps = c[1]
    one_minus_b1 = c[2]
    one_minus_b2 = c[3]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        mi = m[i]
        mi = mi + one_minus_b1 * (gi - mi)
        m[i] = mi
        vi = v[i]
        vi = vi + one_minus_b2 * (gi * gi - vi)
        v[i] = vi
        x = p[i] - (lr_t * mi) / (np.sqrt(vi) + eps)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def adamax(p, g, m, u, s3, c):
    """``m += (1-b1) * (g - m)``; ``u = max(b2 * u, |g|)``; ``p -= (lr_t * m) / (u + eps)``.

    ``c = (lr_t, eps, 1 - beta1, beta2)`` with ``lr_t = lr / (1 - beta1**t)``. The maximum
    propagates NaN from either side (as ``np.maximum``).
    """
    lr_t = c[0]
    eps = c[1]
    one_minus_b1 = c[2]
    b2 = c[3]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        mi = m[i]
        mi = mi + one_minus_b1 * (gi - mi)
        m[i] = mi
        a = b2 * u[i]
        b = np.abs(gi)
        ui = a if (a > b or a != a) else b
        u[i] = ui
        x = p[i] - (lr_t * mi) / (ui + eps)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def nadam(p, g, m, v, s3, c):
    """``m += (1-b1) * (g - m)``; ``v += (1-b2) * (g*g - v)``;
    ``p -= (cm * m + cg * g) / (sqrt(v / bc2) + eps)``.

    ``c = (cm, cg, bc2, eps, 1 - beta1, 1 - beta2)`` with ``cm = lr * u_next / (1 - u_prod_next)``,
    ``cg = lr * (1 - u_t) / (1 - u_prod)``, ``bc2 = 1 - beta2**t`` (see the Nadam record).
    """
    cm = c[0]
    cg = c[1]
    bc2 = c[2]
    eps = c[3]
    one_minus_b1 = c[4]
    one_minus_b2 = c[5]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        mi = m[i]
        mi = mi + one_minus_b1 * (gi - mi)
        m[i] = mi
        vi = v[i]
        vi = vi + one_minus_b2 * (gi * gi - vi)
        v[i] = vi
        x = p[i] - (cm * mi + cg * gi) / (np.sqrt(vi / bc2) + eps)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


@worker
def adamw(p, g, m, v, s3, c):
    """``p -= wd_lr * p``; then Adam: ``m += (1-b1) * (g - m)``; ``v += (1-b2) * (g*g - v)``;
    ``p -= (lr_t * m) / (sqrt(v) + eps)``.

    ``c = (lr_t, eps, 1 - beta1, 1 - beta2, lr * weight_decay)``.
    """
    lr_t = c[0]
    eps = c[1]
    one_minus_b1 = c[2]
    one_minus_b2 = c[3]
    wd_lr = c[4]
    scale = c[6]
    bound = c[7]
    bad = False
    for i in range(p.size):
        gi = clip(g[i], bound, scale)
        mi = m[i]
        mi = mi + one_minus_b1 * (gi - mi)
        m[i] = mi
        vi = v[i]
        vi = vi + one_minus_b2 * (gi * gi - vi)
        v[i] = vi
        x = p[i]
        x = x - wd_lr * x
        x = x - (lr_t * mi) / (np.sqrt(vi) + eps)
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


# --------------------------------------------------------------------------------------------
# The drivers. ``_by_kind`` is a stub that exists only inside compiled code: when a driver is
# compiled, its overload below builds an if-chain over WORKERS (kind i calls WORKERS[i]; an
# unknown kind returns -1), inlined into the driver and cached with it; a ``kind`` that is itself
# a jitted worker (a rule from outside this module) is simply called.


def _by_kind(kind, p, g, s1, s2, s3, c):  # pragma: no cover - replaced by the overload when compiled
    raise NotImplementedError("_by_kind runs only inside compiled drivers")


def _chain(workers: tuple, i: int):
    """The if-chain from kind ``i`` on, as an inlined jitted function."""
    if i == len(workers):
        def none(kind, p, g, s1, s2, s3, c):
            return -1
        return numba.njit(inline="always")(none)
    call = workers[i]
    rest = _chain(workers, i + 1)

    def link(kind, p, g, s1, s2, s3, c):
        if kind == i:
            return call(p, g, s1, s2, s3, c)
        return rest(kind, p, g, s1, s2, s3, c)
    return numba.njit(inline="always")(link)


def _call(kind, p, g, s1, s2, s3, c):
    return kind(p, g, s1, s2, s3, c)


@overload(_by_kind, inline="always")
def _by_kind_compiled(kind, p, g, s1, s2, s3, c):
    if isinstance(kind, numba.types.Dispatcher):
        return _call
    return _chain(tuple(WORKERS), 0).py_func


@jit
def step(kind, p, g, s1, s2, s3, c):
    """Serial step of worker ``WORKERS[kind]``; the non-finite count (-1 for an unknown kind)."""
    return _by_kind(kind, p, g, s1, s2, s3, c)


def _split(kind, p, g, s1, s2, s3, c, n_chunks):
    """:func:`step` over ``n_chunks`` contiguous slices, one per thread; the summed count."""
    n = p.size
    counts = np.zeros(n_chunks, dtype=np.int64)
    for i in prange(n_chunks):
        lo = i * n // n_chunks
        hi = (i + 1) * n // n_chunks
        counts[i] = _by_kind(kind, p[lo:hi], g[lo:hi], s1[lo:hi], s2[lo:hi], s3[lo:hi], c)
    return counts.sum()


step_parallel = jit(_split, parallel=True, name="step_parallel")
# the same split for a worker from outside: compiled per worker and never cached (see _jit.jit)
step_parallel_with = jit(_split, parallel=True, cache=False, name="step_parallel_with")
