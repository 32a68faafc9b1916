"""Stateless operations for any NumPy loop: the kernels behind :mod:`fastdl.layers` as functions.

Every function validates its arguments first (``TypeError`` for integer, bool, complex or float16
arrays, ``ValueError`` for shapes that do not fit), accepts any memory layout, and returns **new**
arrays; inputs are never modified.

Dtype policy
    Functions with parameters (:func:`affine`, :func:`batchnorm_forward`) compute in the dtype of
    their parameters and cast an input of the other float dtype; the others compute in the dtype of
    their first array argument. float32 stays float32.

The optimizer steps of :mod:`fastdl.optim` (in-place updates of ``p`` and its state) are
re-exported at the end of this module.
"""

from __future__ import annotations

import numpy as np

from . import _checks, activations, ops, runtime
from ._checks import contiguous, fail, float_array
from .kernels import batchnorm as _bn
from .kernels import softmax as _sm

BN_EPS = ops.BN_EPS
XENT_EPS = ops.XENT_EPS


def activation(name: str, x, **options) -> np.ndarray:
    """A registered activation (:mod:`fastdl.activations`) of ``x``, elementwise, in x's dtype (new array).

    Parameters
    ----------
    name : str
        Registry name or alias, e.g. ``'relu'``.
    x : ndarray of float32 or float64, any shape
    **options : float
        The activation's scalar hyper-parameters (its record's ``options``).

    Returns
    -------
    ndarray
        A new C-ordered array of x's shape and dtype.
    """
    rec = activations.get(name, "activation", "name")
    return _forward(rec, contiguous(float_array(x, "x", rec.name)), _consts(rec, options, rec.name))[0]


def activation_backward(name: str, dout, saved, **options) -> np.ndarray:
    """Gradient of :func:`activation` from what its backward needs.

    Parameters
    ----------
    name : str
        Registry name or alias.
    dout : ndarray
        Upstream gradient, the shape of ``saved``.
    saved : ndarray
        The forward input ``x`` (activations whose record saves ``'x'`` or a ``'mask'``) or the
        forward output ``y`` (records saving ``'y'``, e.g. sigmoid).

    Returns
    -------
    ndarray
        A new ``dx`` in saved's dtype (``dout`` is not modified).
    """
    rec = activations.get(name, "activation_backward", "name")
    return _backward(rec, dout, saved, "y" if rec.saves == "y" else "x", options)


def _backward(rec: activations.Activation, dout, saved, arg: str, options: dict) -> np.ndarray:
    """:func:`activation_backward` of a record, ``saved`` named ``arg`` in messages."""
    where = f"{rec.name}_backward"
    saved = float_array(saved, arg, where)
    dout = float_array(dout, "dout", where)
    _checks.same_shape(dout, saved.shape, "dout", where, f"(the shape of {arg})")
    consts = _consts(rec, options, where)
    sc = contiguous(saved)
    if rec.saves == "mask":
        sc = _forward(rec, sc, consts)[1]
    dx = np.empty(sc.shape, dtype=saved.dtype)
    cs = tuple(map(saved.dtype.type, consts))  # the constants in the array's dtype (the driver contract)
    rec.backward(contiguous(dout, saved.dtype).reshape(-1), sc.reshape(-1), dx.reshape(-1), *cs)
    return dx


def _consts(rec: activations.Activation, options: dict, where: str) -> tuple:
    if rec.params:
        fail(where, "name", "an activation without learnable parameters (use its layer)", repr(rec.name))
    known = dict(rec.options)
    for key in options:
        if key not in known:
            fail(where, key, f"one of the options {tuple(known)}", "an unknown keyword", TypeError)
    return tuple(float(ops.scalar(options.get(k, v), k, where, np.dtype(np.float64))) for k, v in rec.options)


def _forward(rec: activations.Activation, xc: np.ndarray, consts: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """``(out, mask)`` of a validated C-contiguous ``xc`` (``mask`` None unless the record saves one)."""
    dt = xc.dtype
    out = np.empty(xc.shape, dtype=dt)
    cs = tuple(map(dt.type, consts))
    if rec.saves == "mask":
        mask = np.empty(xc.shape, dtype=np.bool_)
        rec.forward(xc.reshape(-1), out.reshape(-1), mask.reshape(-1), *cs)
        return out, mask
    rec.forward(xc.reshape(-1), out.reshape(-1), *cs)
    return out, None


def relu(x) -> np.ndarray:
    """Rectified linear unit ``max(0, x)`` elementwise: ``0`` where ``x <= 0``, else ``x`` (NaN passes).

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape

    Returns
    -------
    ndarray
        A new C-ordered array of x's shape and dtype.
    """
    return activation("relu", x)


def relu_backward(dout, x) -> np.ndarray:
    """Gradient of :func:`relu`: ``dx = 0 where x <= 0 else dout`` (``dout`` is not modified).

    Parameters
    ----------
    dout : ndarray
        Upstream gradient, the shape of ``x``.
    x : ndarray
        The forward input (or the forward output: ``out <= 0`` exactly where ``x <= 0``).

    Returns
    -------
    ndarray
        A new array in x's dtype.
    """
    return _backward(activations.get("relu"), dout, x, "x", {})


def sigmoid(x) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))`` elementwise, in x's dtype (new array)."""
    return activation("sigmoid", x)


def sigmoid_backward(dout, y) -> np.ndarray:
    """Gradient of :func:`sigmoid` from its output ``y``: ``dx = dout * (1 - y) * y`` (new array, y's dtype)."""
    return activation_backward("sigmoid", dout, y)


def __getattr__(attr: str):
    """``fastdl.functional.<name>`` and ``<name>_backward`` for every registered activation (and alias)."""
    backward = attr.endswith("_backward")
    name = attr[: -len("_backward")] if backward else attr
    if any(name in rec.names for rec in activations.records()):
        if backward:
            def fn(dout, saved, **options):
                return activation_backward(name, dout, saved, **options)
        else:
            def fn(x, **options):
                return activation(name, x, **options)
        fn.__name__ = fn.__qualname__ = attr
        fn.__doc__ = f"The registered activation {name!r}{' (backward)' if backward else ''}; see :func:`activation`."
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def softmax(x) -> np.ndarray:
    """Row-wise softmax, stabilised by the row maximum.

    ``y[i, j] = exp(x[i, j] - max_k x[i, k]) / sum_l exp(x[i, l] - max_k x[i, k])``

    Parameters
    ----------
    x : ndarray, 1-D ``(C,)`` or 2-D ``(N, C)``, float32 or float64

    Returns
    -------
    ndarray
        A new array of x's shape and dtype whose rows sum to 1.
    """
    x = float_array(x, "x", "softmax", ndim=(1, 2))
    if x.ndim == 1:
        return softmax(x.reshape(1, -1)).reshape(-1) if x.size else x.copy()
    if x.size == 0:
        return np.empty_like(x)
    return _sm.softmax(contiguous(x))


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities ``y`` against targets ``t``, as the book computes it.

    ``loss = -sum_i log(y[i, t_i] + 1e-7) / N`` with ``t_i`` the label of row ``i`` (the ``argmax``
    of a one-hot or probability row of ``t``: soft targets count only their largest entry).

    Parameters
    ----------
    y : ndarray, ``(N, C)`` or ``(C,)``
        Probabilities (for example the output of :func:`softmax`).
    t : ndarray
        Integer labels ``(N,)`` in ``[0, C)`` or one-hot rows ``(N, C)`` (a single label or row
        when ``y`` is 1-D).

    Returns
    -------
    numpy scalar of y's dtype
    """
    where = "cross_entropy_error"
    y = float_array(y, "y", where, ndim=(1, 2))
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = t if isinstance(t, np.ndarray) else np.asarray(t)
        t = t.reshape(1, -1) if t.size == y.size else t.reshape(-1)
    yc = ops.softmax_input(y, where, "y")
    labels, _ = ops.labels(t, yc.shape[0], yc.shape[1], yc.dtype, where)
    return ops.loss_scalar(_sm.xent(yc, labels, XENT_EPS), yc.shape[0], yc.dtype, where)


def softmax_cross_entropy(x, t):
    """Softmax + cross-entropy loss and its gradient in one call.

    ``y = softmax(x)``; ``loss = -sum_i log(y[i, t_i] + 1e-7) / N``;
    ``dx = (y - onehot(t)) / N`` for integer labels, ``dx = (y - t) / N`` for one-hot/probability rows.

    Parameters
    ----------
    x : ndarray ``(N, C)``, float32 or float64
        Scores.
    t : ndarray
        Integer labels ``(N,)`` in ``[0, C)`` or one-hot/probability rows ``(N, C)``.

    Returns
    -------
    loss : numpy scalar of x's dtype
    dx : ndarray ``(N, C)`` of x's dtype
    """
    where = "softmax_cross_entropy"
    xc = ops.softmax_input(x, where)
    labels, probs = ops.labels(t, xc.shape[0], xc.shape[1], xc.dtype, where)
    y, s = _sm.softmax_xent_forward(xc, labels, XENT_EPS)
    loss = ops.loss_scalar(s, xc.shape[0], xc.dtype, where)
    dx = _sm.softmax_xent_backward(y, labels if probs is None else probs, xc.dtype.type(1))
    return loss, dx


def affine(x, W, b) -> np.ndarray:
    """Fully connected layer ``x.reshape(N, -1) @ W + b`` (GEMM by BLAS, bias fused), in W's dtype.

    Parameters
    ----------
    x : ndarray ``(N, ...)`` with ``prod(...) == W.shape[0]``
    W : ndarray ``(D, M)``, float32 or float64
    b : ndarray ``(M,)`` of W's dtype

    Returns
    -------
    ndarray ``(N, M)``
    """
    where = "affine"
    W = ops.param(W, "W", where, 2)
    x2, _ = ops.affine_input(x, W, where)  # (x against W first: a transposed W is reported as such)
    b = ops.bias(b, W, where)
    return ops.affine(x2, W, b)


def affine_backward(dout, x, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`affine`: ``dx = dout @ W.T`` (in x's shape), ``dW = x2.T @ dout``, ``db = sum_i dout[i]``.

    Returns
    -------
    dx, dW, db : ndarrays in W's dtype
    """
    where = "affine_backward"
    W = ops.param(W, "W", where, 2)
    x2, shape = ops.affine_input(x, W, where)
    dout = float_array(dout, "dout", where)
    _checks.same_shape(dout, (x2.shape[0], W.shape[1]), "dout", where, "(the shape of the forward output)")
    dx, dW, db = ops.affine_backward(contiguous(dout, W.dtype), x2, W)
    return dx.reshape(shape), dW, db


def batchnorm_forward(x, gamma, beta, eps: float = BN_EPS):
    """Training-mode batch normalisation with the batch's statistics.

    ``mu = mean_i x[i]``, ``var = mean_i (x[i] - mu)**2`` (biased), ``std = sqrt(var + eps)``,
    ``xn = (x - mu) / std``, ``out = gamma * xn + beta``. 4-D input ``(N, C, H, W)`` is flattened
    to ``(N, C*H*W)`` as the book does. Computes in gamma's dtype.

    Parameters
    ----------
    x : ndarray ``(N, D)`` or ``(N, C, H, W)`` with ``N >= 1``
    gamma, beta : ndarrays ``(D,)``, float32 or float64, the same dtype
    eps : float > 0
        Added to the variance under the square root (the book's ``1e-6``).

    Returns
    -------
    out : ndarray of x's shape
    xn : ndarray ``(N, D)``
    std : ndarray ``(D,)``
        What :func:`batchnorm_backward` needs.
    """
    where = "batchnorm_forward"
    eps = _checks.positive_number(eps, "eps", where)
    gamma = ops.param(gamma, "gamma", where, 1)
    beta = ops.param(beta, "beta", where, 1, gamma.dtype, gamma.shape[0])
    x2, shape = ops.bn_input(x, gamma, where)
    if x2.shape[0] < 1:
        fail(where, "x", "a batch of at least one row", f"shape {shape}")
    z = np.zeros(gamma.shape[0], dtype=gamma.dtype)
    out, xn, _, _, std, _, _, bad = _bn.train_forward(x2, contiguous(gamma), contiguous(beta), eps, 0.0, z, z)
    if bad:
        runtime.report_nonfinite(where, f"{bad} feature(s) have a non-finite mean or variance")
    return out.reshape(shape), xn, std


def batchnorm_backward(dout, xn, std, gamma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`batchnorm_forward` in two passes over ``dout``.

    ``dbeta = sum_i dout[i]``, ``dgamma = sum_i dout[i] * xn[i]``,
    ``dx = (gamma / std) * (dout - dbeta / N - xn * dgamma / N)``.

    Returns
    -------
    dx : ndarray of dout's shape
    dgamma, dbeta : ndarrays ``(D,)``
    """
    where = "batchnorm_backward"
    gamma = ops.param(gamma, "gamma", where, 1)
    xn = float_array(xn, "xn", where, ndim=2)
    std = float_array(std, "std", where, ndim=1)
    d = gamma.shape[0]
    _checks.same_shape(xn, (xn.shape[0], d), "xn", where, "(N, len(gamma))")
    _checks.same_shape(std, (d,), "std", where)
    dout = float_array(dout, "dout", where, min_ndim=2)
    if dout.shape[0] != xn.shape[0] or dout.size != xn.size:
        fail(where, "dout", f"of {xn.shape[0]} rows of {d} values (the shape of xn)", f"shape {dout.shape}")
    dt = gamma.dtype
    dx, dgamma, dbeta = _bn.backward(contiguous(dout.reshape(xn.shape), dt), contiguous(xn, dt),
                                     contiguous(gamma), contiguous(std, dt))
    return dx.reshape(dout.shape), dgamma, dbeta


__all__ = [
    "BN_EPS",
    "XENT_EPS",
    "activation",
    "activation_backward",
    "adagrad_step",
    "adam_step",
    "affine",
    "affine_backward",
    "batchnorm_backward",
    "batchnorm_forward",
    "cross_entropy_error",
    "momentum_step",
    "nesterov_step",
    "numerical_gradient",
    "relu",
    "relu_backward",
    "rmsprop_step",
    "sgd_step",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_cross_entropy",
]

def numerical_gradient(f, x: np.ndarray) -> np.ndarray:
    """Central-difference gradient of ``f`` at ``x``, with ``h = 1e-4``, exactly as the book's ``gradient.py``.

    ``x`` is perturbed in place, one element at a time, and restored.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``; usually ignores its argument and reads the perturbed array through the network.
    x : numpy.ndarray
        The parameter array (changed during the call, restored at the end).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``.
    """
    h = 1e-4
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
        it.iternext()
    return grad


# The in-place optimizer steps live with the optimizers (fastdl/optim/, made from its rule table).
from .optim import adagrad_step, adam_step, momentum_step, nesterov_step, rmsprop_step, sgd_step  # noqa: E402
