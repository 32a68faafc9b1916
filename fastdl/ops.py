"""The op layer: validated array-in/array-out pieces that layers, functional and the fused step stand on.

Two kinds of helpers, both internal (the public stateless API is :mod:`fastdl.functional`):

* **checks** (``param``, ``bias``, ``scalar``, ``labels``, ``targets``, ``affine_input``, ``bn_input``,
  ``softmax_input``, ``dout``, ``loss_scalar``) raise the house errors of :mod:`fastdl._checks` and return arrays ready
  for a kernel (C-contiguous, in the dtype the op computes in);
* **drivers** (``affine``, ``affine_backward``) take such arrays, allocate the outputs and run the
  kernels; they trust their arguments.

Constants of the book's arithmetic live here too: :data:`XENT_EPS` and :data:`BN_EPS`.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _checks, runtime
from ._checks import contiguous, fail, float_array
from .kernels import affine as _aff
from .kernels import softmax as _sm

#: eps inside the cross-entropy's log (the book's ``1e-7``).
XENT_EPS = 1e-7
#: eps under batch norm's square root (the book's ``10e-7``).
BN_EPS = 1e-6


# -- checks -------------------------------------------------------------------------------------------

def param(a, name: str, where: str, ndim: int, dtype=None, shape0: int | None = None) -> np.ndarray:
    """A parameter array: float ndarray of ``ndim`` dims, ``dtype`` if given, leading size ``shape0``."""
    if not isinstance(a, np.ndarray):
        fail(where, name, "a float32 or float64 numpy array", _checks.describe(a), TypeError)
    float_array(a, name, where, ndim=ndim)
    if dtype is not None and a.dtype != dtype:
        fail(where, name, f"of the same dtype as the weights ({np.dtype(dtype)})", f"dtype {a.dtype}",
             TypeError)
    if shape0 is not None and a.shape[0] != shape0:
        fail(where, name, f"of length {shape0}", f"shape {a.shape}")
    return a


def bias(b, W: np.ndarray, where: str) -> np.ndarray:
    """The bias of ``W``: a 1-D array of W's dtype and length ``W.shape[1]`` (with a hint when W looks transposed)."""
    b = param(b, "b", where, 1, W.dtype)
    if b.shape[0] != W.shape[1]:
        hint = ("; its length is W.shape[0]: is W transposed? W must be (inputs, outputs)"
                if b.shape[0] == W.shape[0] else "")
        fail(where, "b", f"of length {W.shape[1]} (W.shape[1] with W of shape {W.shape}{hint})", f"shape {b.shape}")
    return b


def scalar(value, name: str, where: str, dtype: np.dtype):
    """A real scalar (Python or NumPy, or a 0-d float array) as ``dtype.type``."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype in _checks.FLOAT_DTYPES:
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        fail(where, name, "a real scalar", _checks.describe(value), TypeError)
    return dtype.type(value)


def labels(t, n: int, c: int, dtype: np.dtype, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate targets for ``n`` rows of ``c`` classes.

    Returns ``(labels, probs)``: ``labels`` a C-contiguous ``intp`` array (argmax of the rows for
    2-D targets) and ``probs`` the 2-D targets in ``dtype`` (None for integer labels).
    """
    if not isinstance(t, np.ndarray):
        if t is None or isinstance(t, str | bytes | dict):
            fail(where, "t", "integer labels or one-hot rows as a numpy array", _checks.describe(t), TypeError)
        t = np.asarray(t)
    kind = t.dtype.kind
    if kind not in "iuf" or t.dtype == np.float16:
        fail(where, "t", "integer labels (N,) or float32/float64 one-hot rows (N, C)", f"dtype {t.dtype}",
             TypeError)
    if t.ndim == 1:
        if kind == "f":
            fail(where, "t", "integer class labels when 1-D (cast with .astype(int))", f"dtype {t.dtype}",
                 TypeError)
        if t.shape[0] != n:
            fail(where, "t", f"of length {n} (one label per row of x)", f"shape {t.shape}")
        lab = contiguous(t, np.dtype(np.intp))
        if not _sm.labels_in_range(lab, c):
            fail(where, "t", f"labels in [0, {c})", f"values in [{t.min()}, {t.max()}]")
        return lab, None
    if t.ndim == 2:
        if kind in "iu" and t.shape == (n, 1) and c != 1:
            fail(where, "t", f"integer labels of shape ({n},) or one-hot rows of shape {(n, c)} (labels of "
                 f"shape (N, 1): pass t.ravel())", f"shape {t.shape}")
        if t.shape != (n, c):
            fail(where, "t", f"of shape {(n, c)} (one-hot rows like x)", f"shape {t.shape}")
        probs = contiguous(t, dtype)
        return _sm.row_argmax(probs), probs
    fail(where, "t", "1-D labels or 2-D one-hot rows", f"shape {t.shape}")
    raise AssertionError  # unreachable


def targets(t, shape: tuple[int, int], dtype: np.dtype, where: str) -> np.ndarray:
    """Regression targets for outputs of ``shape`` ``(N, D)``: float32/float64 of that shape, or ``(N,)`` when
    ``D == 1``; returned C-contiguous ``(N, D)`` in ``dtype``."""
    t = float_array(t, "t", where)
    n, d = shape
    if t.shape != shape and not (d == 1 and t.shape == (n,)):
        fail(where, "t", f"of shape {shape} (the shape of x){f' or ({n},)' if d == 1 else ''}", f"shape {t.shape}")
    return contiguous(t.reshape(shape), dtype)


def loss_scalar(s: float, n: int, dtype: np.dtype, where: str):
    """``-s / n`` as a scalar of ``dtype``; a non-finite loss is reported (:func:`fastdl.runtime.report_nonfinite`)."""
    loss = dtype.type(-s / n)
    if not np.isfinite(loss):
        runtime.report_nonfinite(where, f"the loss is {loss}")
    return loss


def affine_input(x, W: np.ndarray, where: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x.reshape(N, -1)`` checked against W, C-contiguous in W's dtype, and x's original shape."""
    x = float_array(x, "x", where, min_ndim=2)
    shape = x.shape
    if shape[0] < 1:
        fail(where, "x", "a batch of at least one row (N >= 1)", f"shape {shape}")
    x2 = x.reshape(shape[0], -1)
    if x2.shape[1] != W.shape[0]:
        fail(where, "x", f"{W.shape[0]} features per sample (x.reshape(N, -1) @ W with W of shape "
             f"{W.shape})", f"shape {shape}")
    return contiguous(x2, W.dtype), shape


def bn_input(x, gamma: np.ndarray, where: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` as ``(N, D)`` with ``D == len(gamma)`` (4-D input flattened), C-contiguous in gamma's dtype."""
    x = float_array(x, "x", where, min_ndim=2)
    shape = x.shape
    x2 = x if x.ndim == 2 else x.reshape(shape[0], -1)
    if x2.shape[1] != gamma.shape[0]:
        fail(where, "x", f"{gamma.shape[0]} features per sample (the length of gamma; 4-D input is "
             "flattened to (N, C*H*W))", f"shape {shape}")
    return contiguous(x2, gamma.dtype), shape


def softmax_input(x, where: str, name: str = "x") -> np.ndarray:
    """Scores ``(N, C)`` with ``N, C >= 1``, C-contiguous (``name``: the argument's name in messages)."""
    x = float_array(x, name, where, ndim=2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        fail(where, name, "of shape (N, C) with N >= 1 and C >= 1", f"shape {x.shape}")
    return contiguous(x)


def dout(d, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    """An upstream gradient checked against the forward output's shape, C-contiguous in ``dtype``."""
    d = float_array(d, "dout", where)
    if d.shape != shape:
        fail(where, "dout", f"of shape {shape} (the shape of the forward output)", f"shape {d.shape}")
    return contiguous(d, dtype)


# -- drivers ------------------------------------------------------------------------------------------

def affine(x2: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x2 @ W + b`` for C-contiguous ``x2`` in W's dtype (new array)."""
    out = np.empty((x2.shape[0], W.shape[1]), dtype=W.dtype)
    np.dot(x2, W, out=out)
    _aff.bias_add(out, contiguous(b))
    return out


def affine_backward(dc: np.ndarray, x2: np.ndarray, W: np.ndarray):
    """``(dout @ W.T, x2.T @ dout, dout.sum(0))`` for C-contiguous ``dc`` in W's dtype."""
    dx = np.dot(dc, W.T)
    dW = np.empty(W.shape, dtype=W.dtype)
    np.dot(x2.T, dc, out=dW)
    return dx, dW, _aff.col_sum(dc)


def uniform_draws(rng, rate: float, shape: tuple, dt: np.dtype) -> tuple[np.ndarray, object]:
    """A dropout forward's uniform draws and drop threshold: ``np.random.rand`` (float64) when ``rng`` is None,
    else ``rng.random(dtype=dt)``; the threshold in the draws' dtype."""
    if rng is None:
        return np.random.rand(*shape), np.float64(rate)
    r = np.empty(shape, dtype=dt)
    rng.random(out=r, dtype=dt)
    return r, dt.type(rate)
