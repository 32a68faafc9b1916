"""The book's layers (``common/layers.py``) on Numba kernels: same names, arguments and attributes.

Change ``from common.layers import *`` to ``from fastdl.layers import *``; the network code stays.

Activation layers (:class:`Relu`, :class:`Sigmoid`, and one per activation registered in
:mod:`fastdl.activations`, e.g. ``fastdl.layers.Softsign`` for a record with ``layer="Softsign"``)
are :class:`ActivationLayer` subclasses run by their registry record.

Every ``forward``/``backward`` validates its arguments before any kernel runs (a rejected call
leaves the layer as it was), accepts any memory layout, and returns **new** arrays. Unlike the book,
``Relu.backward`` does not write into ``dout``; like the book's ``Sigmoid``, ``Relu`` keeps the output
it returned for ``backward`` (change that array in place only after ``backward``).

Dtype policy
    A layer with parameters (:class:`Affine`, :class:`BatchNormalization`) computes in its
    parameters' dtype and casts an input of the other float dtype: the book's MNIST is float32
    fed into float64 weights, where NumPy computes in float64 too, so the numbers are the same.
    (float64 input into float32 weights runs in float32, where NumPy would upcast.) Layers without
    parameters compute in the dtype of ``x``; ``backward`` casts ``dout`` to it. float32 stays
    float32 throughout: outputs, gradients and running statistics.

Errors
    Integer, bool, complex and float16 arrays raise ``TypeError``; shapes that do not fit raise
    ``ValueError``; ``backward`` before ``forward`` raises ``RuntimeError``. Messages name the
    argument, what was received and what was expected. A 0-row batch is refused by the layers
    with parameters.

Threads
    A layer shared by threads never hands a kernel a wrong-sized array: ``backward`` reads what one
    forward stored (read once, checked on those references) and raises ``ValueError`` when it does
    not fit. Which forward it pairs with is then ill-defined: give each thread its own layers.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks, activations, ops, runtime
from ._checks import called_before, contiguous, fail, float_array
from .kernels import batchnorm as _bn
from .kernels import dropout as _do
from .kernels.smooth import SELU_ALPHA, SELU_SCALE
from .losses import IdentityWithLoss, SoftmaxWithLoss, _LossLayer  # noqa: F401 (the book's module has them)

__all__ = ["ActivationLayer", "Affine", "AlphaDropout", "BatchNormalization", "Dropout", "Gelu", "IdentityWithLoss",
           "Relu", "Sigmoid", "SoftmaxWithLoss", "activation_layer", "alpha_dropout_constants"]

XENT_EPS = ops.XENT_EPS
BN_EPS = ops.BN_EPS

_SAVES = ("mask", "y", "x")  # what an activation's backward needs (fastdl.activations.SAVES) ...
_SAVED_ATTRS = ("mask", "out", "x")  # ... and the layer attribute that keeps it


class ActivationLayer:
    """An elementwise activation run by its :mod:`fastdl.activations` record (book-style layer).

    ``forward(x)`` returns a new array in x's dtype and keeps what the record's backward needs
    (:attr:`mask`, :attr:`out` or :attr:`x`); ``backward(dout)`` returns a new ``dx`` in the
    forward's dtype (``dout`` is not modified). Subclasses set :attr:`activation` to the registry
    name; :func:`activation_layer` builds one for a registered activation that has no class here.

    Parameters
    ----------
    *params : ndarray ``(D,)``
        The record's learnable parameters, in its order (kept as the very objects given).
    **options : float
        The record's scalar hyper-parameters (defaults from the record).
    """

    #: registry name of the activation (set by each subclass)
    activation: str = ""

    def __init__(self, *params, **options) -> None:
        cls = type(self).__name__
        rec = activations.get(self.activation, cls)
        self._act = rec
        self._where_fwd, self._where_bwd = f"{cls}.forward", f"{cls}.backward"
        self._kind = _SAVES.index(rec.saves)  # 0: mask, 1: out, 2: x (_SAVED_ATTRS)
        self._plain = not (rec.params or rec.options)  # flat arrays, no constants: the short path
        setattr(self, _SAVED_ATTRS[self._kind], None)
        self._dtype: np.dtype | None = None
        known = dict(rec.options)
        for key in options:
            if key not in known:
                fail(cls, key, f"one of the options {tuple(known)}", "an unknown keyword", TypeError)
        f64 = np.dtype(np.float64)
        for key, default in rec.options:  # kept as attributes (read on every call, like a layer's W)
            setattr(self, key, float(ops.scalar(options.get(key, default), key, cls, f64)))
        if len(params) != len(rec.params):
            fail(cls, "params", f"{len(rec.params)} parameter array(s) {tuple(p.name for p in rec.params)}",
                 f"{len(params)}", TypeError)
        for p, a in zip(rec.params, params):
            setattr(self, p.name, ops.param(a, p.name, cls, 1))
            setattr(self, "d" + p.name, None)

    def __setstate__(self, state: dict) -> None:
        act = state["_act"]  # the pickled record; the registered one of its name wins (kernels get renamed)
        rec = activations.get(act.name) if act.name in activations.names() else act
        keep = _SAVED_ATTRS[kind := _SAVES.index(rec.saves)]  # (an old Relu's mask goes: it runs forward again)
        state = {keep: None, **{k: v for k, v in state.items() if k not in _SAVED_ATTRS or k == keep}}
        self.__dict__.update(state, _act=rec, _kind=kind, _plain=not (rec.params or rec.options))

    def _consts(self, dt: np.dtype) -> tuple:
        """The options in ``dt``: the drivers' trailing constants."""
        return tuple(ops.scalar(getattr(self, key), key, self._where_fwd, dt) for key, _ in self._act.options)

    def forward(self, x) -> np.ndarray:
        """Return the activation of ``x`` (a new array in x's dtype) and keep what the backward needs."""
        xc = contiguous(float_array(x, "x", self._where_fwd))
        if not self._plain:
            return self._forward_general(xc)
        out = np.empty(xc.shape, dtype=xc.dtype)
        kind = self._kind
        if kind == 0:
            mask = np.empty(xc.shape, dtype=np.bool_)
            self._act.forward(xc.ravel(), out.ravel(), mask.ravel())  # (views: all three are C-contiguous)
            self.mask = mask
        else:
            self._act.forward(xc.ravel(), out.ravel())
            if kind == 1:
                self.out = out
            else:
                self.x = xc
        self._dtype = xc.dtype
        return out

    def backward(self, dout) -> np.ndarray:
        """Return a new ``dx`` in the forward's dtype (``dout`` is not modified)."""
        kind = self._kind
        saved = self.mask if kind == 0 else self.out if kind == 1 else self.x
        called_before(saved, self._where_bwd, self._where_fwd)
        dt = self._dtype if kind == 0 else saved.dtype
        dc = ops.dout(dout, saved.shape, dt, self._where_bwd)
        if not self._plain:
            return self._backward_general(dc, contiguous(saved) if kind == 0 else contiguous(saved, dt))
        dx = np.empty(saved.shape, dtype=dt)
        self._act.backward(dc.ravel(), saved.ravel(), dx.ravel())  # (ravel copies a strided one)
        return dx

    def _param_arrays(self, d: int, dt: np.dtype, where: str) -> list[np.ndarray]:
        return [contiguous(ops.param(getattr(self, p.name), p.name, where, 1, shape0=d), dt)
                for p in self._act.params]

    def _forward_general(self, xc: np.ndarray) -> np.ndarray:
        """Forward with the record's constants, and with its parameters on ``(N, D)`` arrays."""
        rec = self._act
        dt = xc.dtype
        out = np.empty(xc.shape, dtype=dt)
        mask = np.empty(xc.shape, dtype=np.bool_) if self._kind == 0 else None
        if rec.params:
            if xc.ndim != 2:
                fail(self._where_fwd, "x", "2-D (N, D) for an activation with per-feature parameters",
                     f"shape {xc.shape}")
            params = self._param_arrays(xc.shape[1], dt, self._where_fwd)
            rec.forward(xc, out, *params, *self._consts(dt))
        else:
            arrays = (xc.reshape(-1), out.reshape(-1)) + (() if mask is None else (mask.reshape(-1),))
            rec.forward(*arrays, *self._consts(dt))
        setattr(self, _SAVED_ATTRS[self._kind], (mask, out, xc)[self._kind])
        self._dtype = dt
        return out

    def _backward_general(self, dc: np.ndarray, saved: np.ndarray) -> np.ndarray:
        rec = self._act
        dt = dc.dtype
        dx = np.empty(saved.shape, dtype=dt)
        if not rec.params:
            rec.backward(dc.reshape(-1), saved.reshape(-1), dx.reshape(-1), *self._consts(dt))
            return dx
        params = self._param_arrays(saved.shape[1], dt, self._where_bwd)
        grads = [np.empty(p.shape, dtype=dt) for p in params]
        rec.backward(dc, saved, dx, *params, *grads, *self._consts(dt))
        for p, g in zip(rec.params, grads):
            setattr(self, "d" + p.name, g)
        return dx


class Relu(ActivationLayer):
    """``out = max(0, x)``; backward passes ``dout`` where ``x > 0`` (tested as ``out > 0``: no mask is kept).

    Attributes
    ----------
    out : ndarray or None
        The last forward output (the array ``forward`` returned).
    mask : ndarray of bool or None
        The book's ``x <= 0``, computed from ``out`` when read (NaN is not masked: it passes).
    """

    activation = "relu"

    @property
    def mask(self) -> np.ndarray | None:
        return None if self.out is None else self.out <= 0


class Sigmoid(ActivationLayer):
    """``out = 1 / (1 + exp(-x))``; backward ``dx = dout * (1 - out) * out``.

    Attributes
    ----------
    out : ndarray or None
        The last forward output (the array ``forward`` returned).
    """

    activation = "sigmoid"


class Gelu(ActivationLayer):
    """``out = x*0.5*(1 + erf(x/sqrt 2))``, or with ``approximate='tanh'``
    ``out = 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))``.

    PyTorch's two forms; the tanh form is the registered activation ``'gelu_tanh'`` (its layer
    ``GeluTanh`` is this class with ``approximate='tanh'``).

    Attributes
    ----------
    x : ndarray or None
        The last forward input.
    """

    activation = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            fail("Gelu", "approximate", "'none' or 'tanh'", repr(approximate))
        if approximate == "tanh":
            self.activation = "gelu_tanh"
        super().__init__()
        self.approximate = approximate


_GENERATED: dict[str, tuple] = {}  # name -> (record, class) built by activation_layer


def activation_layer(name: str, where: str = "fastdl.layers.activation_layer") -> type:
    """The fastdl layer class of a registered activation (by name or alias).

    The record's class if it gives one, the class of that name in this module, or else a generated
    :class:`ActivationLayer` subclass (also reachable as ``fastdl.layers.<record.layer>``).
    """
    rec = activations.get(name, where)
    if isinstance(rec.layer, type):
        return rec.layer
    cls = globals().get(rec.layer)
    if isinstance(cls, type) and issubclass(cls, ActivationLayer) and cls.activation == rec.name:
        return cls
    hit = _GENERATED.get(rec.name)
    if hit is None or hit[0] is not rec:
        doc = f"``out = {rec.formula}`` (the registered activation {rec.name!r}; see :class:`ActivationLayer`)."
        cls = type(rec.layer, (ActivationLayer,), {"activation": rec.name, "__doc__": doc, "__module__": __name__})
        _GENERATED[rec.name] = hit = (rec, cls)
    return hit[1]


def __getattr__(attr: str):
    for rec in activations.records():
        if rec.layer == attr:
            return activation_layer(rec.name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


class Affine:
    """Fully connected layer ``out = x.reshape(N, -1) @ W + b``.

    Parameters
    ----------
    W : ndarray ``(D, M)``, float32 or float64
        Weights, kept as the very object given (an optimizer updates it in place).
    b : ndarray ``(M,)`` of W's dtype
        Bias, kept as the very object given.

    Attributes
    ----------
    x : ndarray ``(N, D)`` or None
        The last input, flattened and in W's dtype.
    original_x_shape : tuple or None
        The last input's shape; ``backward`` returns ``dx`` in it.
    dW, db : ndarray or None
        Gradients from the last ``backward`` (new arrays each time). Repeated calls with the same ``W``
        and ``b`` (unchanged) and a C-contiguous 2-D ``x`` of W's dtype check only ``x`` and ``dout``.
    """

    def __init__(self, W, b) -> None:
        W = ops.param(W, "W", "Affine", 2)
        ops.bias(b, W, "Affine")
        self.W = W
        self.b = b
        self.x: np.ndarray | None = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self._last_call: tuple | None = None  # (W, b, W.shape, W.dtype, b.dtype, b.shape, b.strides) last validated

    def _checked(self, W, b) -> bool:
        """``W``, ``b`` are the arrays last validated, unchanged in shape, dtype and layout."""
        p = self._last_call
        return p is not None and W is p[0] and b is p[1] and (W.shape, W.dtype, b.dtype, b.shape, b.strides) == p[2:]

    def forward(self, x) -> np.ndarray:
        """Return ``x.reshape(N, -1) @ W + b`` (new ``(N, M)`` array in W's dtype).

        ``x`` has shape ``(N, ...)`` with ``D`` values per sample; an input of the other float
        dtype is cast to W's dtype.
        """
        W, b = self.W, self.b  # (read once: every check and the kernels see these)
        if (self._checked(W, b) and type(x) is np.ndarray and x.dtype is W.dtype and x.ndim == 2
                and x.shape[1] == W.shape[0] and x.shape[0] >= 1 and x.flags.c_contiguous):  # (checks of x only)
            self.x, self.original_x_shape = x, x.shape
            return ops.affine(x, W, b)
        where = "Affine.forward"
        W = ops.param(W, "W", where, 2)
        x2, shape = ops.affine_input(x, W, where)  # (x against W first: a transposed W is reported as such)
        b = ops.bias(b, W, where)
        out = ops.affine(x2, W, b)
        self.x = x2
        self.original_x_shape = shape
        self._last_call = (W, b, W.shape, W.dtype, b.dtype, b.shape, b.strides) if b.flags.c_contiguous else None
        return out

    def backward(self, dout) -> np.ndarray:
        """Set :attr:`dW` ``= x.T @ dout`` and :attr:`db` ``= dout.sum(0)``; return ``dout @ W.T`` in x's shape."""
        x2, shape, W = self.x, self.original_x_shape, self.W  # read once (another thread may run forward meanwhile)
        if (type(dout) is np.ndarray and self._checked(W, self.b) and type(x2) is np.ndarray
                and x2.dtype is W.dtype and x2.ndim == 2 and x2.shape[1] == W.shape[0] and x2.flags.c_contiguous
                and shape == x2.shape and dout.dtype is W.dtype and dout.shape == (x2.shape[0], W.shape[1])
                and dout.flags.c_contiguous):  # a 2-D forward with the cached W: checks of dout only
            dx, self.dW, self.db = ops.affine_backward(dout, x2, W)
            return dx
        where = "Affine.backward"
        called_before(x2, where, "Affine.forward")
        W = ops.param(W, "W", where, 2)
        if W.shape[0] != x2.shape[1] or W.dtype != x2.dtype:
            fail(where, "W", f"of shape ({x2.shape[1]}, M) and dtype {x2.dtype} as in forward",
                 _checks.describe(W))
        if not shape or shape[0] != x2.shape[0] or math.prod(shape) != x2.size:
            fail(where, "original_x_shape", f"the shape of the stored input x ({x2.shape[0]} rows of "
                 f"{x2.shape[1]} values; was the layer used from two threads at once?)", repr(shape))
        dc = ops.dout(dout, (x2.shape[0], W.shape[1]), W.dtype, where)
        dx, self.dW, self.db = ops.affine_backward(dc, x2, W)
        return dx.reshape(shape)


def _dropout_args(where: str, name: str, ratio, rng) -> None:
    """A dropout layer's ratio in [0, 1) and its rng (None or a Generator), in the house wording."""
    _checks.positive_number(ratio, name, where, allow_zero=True, upper=1.0)
    if rng is not None and not isinstance(rng, np.random.Generator):
        fail(where, "rng", "None or a numpy.random.Generator", _checks.describe(rng), TypeError)


class Dropout:
    """Dropout in the book's form (not inverted).

    Training: ``mask = u > dropout_ratio`` with ``u`` uniform in [0, 1); ``out = x * mask``.
    Evaluation: ``out = x * (1 - dropout_ratio)``. Backward: ``dx = dout * mask``.

    Parameters
    ----------
    dropout_ratio : float in [0, 1)
        Probability of dropping a unit.
    rng : numpy.random.Generator, optional
        ``None`` (default) draws ``np.random.rand(*x.shape)`` from NumPy's global generator,
        exactly as the book does, so a run seeded with ``np.random.seed`` reproduces the book's
        masks bit for bit. A ``Generator`` draws with ``rng.random(out=buf, dtype=x.dtype)``
        (no float64 temporary, faster, compared in x's dtype): a different random stream, so
        masks no longer match the book's.

    Attributes
    ----------
    mask : ndarray of bool or None
        The mask of the last training forward.
    """

    def __init__(self, dropout_ratio: float = 0.5, rng: np.random.Generator | None = None) -> None:
        _dropout_args("Dropout", "dropout_ratio", dropout_ratio, rng)
        self.dropout_ratio = dropout_ratio
        self.rng = rng
        self.mask: np.ndarray | None = None
        self._dtype: np.dtype | None = None

    def forward(self, x, train_flg: bool = True) -> np.ndarray:
        """Return ``x * mask`` (training, new mask) or ``x * (1 - dropout_ratio)`` (evaluation)."""
        x = float_array(x, "x", "Dropout.forward", min_ndim=1)
        xc, dt, ratio = contiguous(x), x.dtype, float(self.dropout_ratio)
        out = np.empty(x.shape, dtype=dt)
        if not train_flg:
            _do.scale(xc.reshape(-1), dt.type(1.0 - ratio), out.reshape(-1))
            return out
        r, thr = ops.uniform_draws(self.rng, ratio, x.shape, dt)
        mask = np.empty(x.shape, dtype=np.bool_)
        _do.forward(xc.reshape(-1), r.reshape(-1), thr, out.reshape(-1), mask.reshape(-1))
        self.mask = mask
        self._dtype = dt
        return out

    def backward(self, dout) -> np.ndarray:
        """Return a new ``dx = dout * mask`` in the training forward's dtype."""
        where = "Dropout.backward"
        called_before(self.mask, where, "Dropout.forward (with train_flg=True)")
        mask = self.mask
        dc = ops.dout(dout, mask.shape, self._dtype, where)
        dx = np.empty(mask.shape, dtype=dc.dtype)
        _do.apply_mask(dc.reshape(-1), mask.reshape(-1), dx.reshape(-1))
        return dx


def alpha_dropout_constants(rate: float) -> tuple[float, float, float]:
    """``(alpha_p, a, b)`` of alpha dropout at ``rate`` (Keras' ``AlphaDropout``), as Python floats.

    ``alpha_p = -scale * alpha`` (SELU's constants), ``a = ((1 - rate) * (1 + rate * alpha_p**2))**-0.5``,
    ``b = -a * alpha_p * rate``.
    """
    alpha_p = -SELU_ALPHA * SELU_SCALE
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    return alpha_p, a, -a * alpha_p * rate


class AlphaDropout:
    """Alpha dropout for self-normalizing (SELU) networks (Klambauer et al. 2017; Keras' ``AlphaDropout``).

    Training (``rate > 0``): a unit is kept where a uniform draw ``u >= rate`` (Keras' test) and
    dropped units are set to SELU's negative saturation ``alpha_p = -scale * alpha`` instead of 0;
    an affine map then restores zero mean and unit variance::

        alpha_p = -1.0507009873554805 * 1.6732632423543772        (= -1.7580993408473766)
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        out = a * x + b      where kept
        out = a * alpha_p + b   where dropped
        dx  = (dout * a) * mask

    Evaluation, and ``rate == 0`` (as Keras, no draws then): the identity (a new array equal to ``x``).
    ``a``, ``b`` and ``a * alpha_p + b`` are rounded to x's dtype and the forward is one compiled pass
    writing ``out`` and the mask. One difference from Keras' formula: Keras computes
    ``a * (x * mask + alpha_p * (1 - mask)) + b``, so a dropped ``inf``/``NaN`` gives NaN there; here a
    dropped unit is the constant whatever ``x`` holds.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping a unit (Keras' name; the nets pass their ``dropout_ratio``).
    rng : numpy.random.Generator, optional
        As :class:`Dropout`: ``None`` draws ``np.random.rand(*x.shape)`` (float64) from NumPy's global
        generator; a ``Generator`` draws ``rng.random(out=buf, dtype=x.dtype)``.

    Attributes
    ----------
    mask : ndarray of bool or None
        The kept units of the last training forward.
    """

    def __init__(self, rate: float = 0.5, rng: np.random.Generator | None = None) -> None:
        _dropout_args("AlphaDropout", "rate", rate, rng)
        self.rate = rate
        self.rng = rng
        self.mask: np.ndarray | None = None
        self._a = None  # a in the dtype of the last training forward (read by backward)

    def _consts(self, dt: np.dtype) -> tuple:
        """``(a, b, a * alpha_p + b)`` as scalars of ``dt`` (the last computed in ``dt``, as Keras' tensors)."""
        alpha_p, a, b = alpha_dropout_constants(float(self.rate))
        tp = dt.type
        return tp(a), tp(b), tp(a) * tp(alpha_p) + tp(b)

    def forward(self, x, train_flg: bool = True) -> np.ndarray:
        """Return alpha dropout of ``x`` (training, new mask) or a copy of ``x`` (evaluation)."""
        where = "AlphaDropout.forward"
        x = float_array(x, "x", where, min_ndim=1)
        _checks.positive_number(self.rate, "rate", where, allow_zero=True, upper=1.0)
        dt = x.dtype
        out = np.empty(x.shape, dtype=dt)
        if not train_flg or float(self.rate) == 0:
            out[...] = x
            if train_flg:
                self.mask, self._a = np.ones(x.shape, dtype=np.bool_), dt.type(1)
            return out
        a, b, c = self._consts(dt)
        r, thr = ops.uniform_draws(self.rng, float(self.rate), x.shape, dt)
        mask = np.empty(x.shape, dtype=np.bool_)
        _do.alpha_forward(contiguous(x).reshape(-1), r.reshape(-1), thr, a, b, c, out.reshape(-1), mask.reshape(-1))
        self.mask, self._a = mask, a
        return out

    def backward(self, dout) -> np.ndarray:
        """Return a new ``dx = (dout * a) * mask`` in the training forward's dtype."""
        where = "AlphaDropout.backward"
        called_before(self.mask, where, "AlphaDropout.forward (with train_flg=True)")
        mask, a = self.mask, self._a
        dc = ops.dout(dout, mask.shape, np.dtype(type(a)), where)
        dx = np.empty(mask.shape, dtype=dc.dtype)
        _do.alpha_backward(dc.reshape(-1), mask.reshape(-1), a, dx.reshape(-1))
        return dx


class BatchNormalization:
    """Batch normalisation over the batch axis (the book's layer).

    Training forward: ``mu = mean(x, 0)``, ``var = mean((x - mu)**2, 0)`` (biased),
    ``std = sqrt(var + 1e-6)``, ``xn = (x - mu) / std``, ``out = gamma * xn + beta``, and
    ``running_mean = momentum * running_mean + (1 - momentum) * mu`` (same for ``running_var``).
    Evaluation forward: ``out = gamma * (x - running_mean) / sqrt(running_var + 1e-6) + beta``.
    Backward (two passes): ``dbeta = sum(dout, 0)``, ``dgamma = sum(dout * xn, 0)``,
    ``dx = (gamma / std) * (dout - dbeta / N - xn * dgamma / N)``.
    4-D input ``(N, C, H, W)`` is flattened to ``(N, C*H*W)`` as the book does.

    Parameters
    ----------
    gamma, beta : ndarray ``(D,)``, float32 or float64, the same dtype
        Scale and shift, kept as the very objects given. The layer computes in their dtype.
    momentum : float in [0, 1]
        Weight of the old running statistics.
    running_mean, running_var : array-like ``(D,)``, optional
        Initial running statistics, copied in gamma's dtype (the given arrays are not changed).
        By default they are created as zeros on the first forward.

    Attributes
    ----------
    running_mean, running_var : ndarray ``(D,)`` or None
        New arrays after every training forward.
    dgamma, dbeta : ndarray ``(D,)`` or None
        Gradients from the last ``backward`` (new arrays each call).
    xn, std, batch_size
        The last training forward's ``(x - mu) / std``, std and N. ``xn`` is not stored by the forward
        (``backward`` recomputes it from the input, the mean and ``1 / std``, rereading the input as
        :class:`Affine` does): computed on first access, a new array per forward; setting it makes
        ``backward`` use the array set. ``std`` is a new array each call.

    Notes
    -----
    Repeated calls with the same arrays (the same ``gamma``/``beta`` objects, the running
    statistics the previous forward set, an ``x`` of the same shape, dtype and C layout) skip the
    full validation: the layer re-checks only identities, shapes and dtypes.

    Threads: calls from several threads at once never hand a kernel an array of the wrong size.
    Each call reads the replay cache and the last forward's arrays once (one tuple) and checks and
    uses only those references. Which forward a ``backward`` pairs with is then whichever stored
    last; a ``backward`` that does not fit it raises ``ValueError``. For meaningful numbers give each
    thread its own layer.
    """

    def __init__(self, gamma, beta, momentum: float = 0.9, running_mean=None, running_var=None) -> None:
        where = "BatchNormalization"
        gamma = ops.param(gamma, "gamma", where, 1)
        ops.param(beta, "beta", where, 1, gamma.dtype, gamma.shape[0])
        m = _checks.positive_number(momentum, "momentum", where, allow_zero=True)
        if m > 1:
            fail(where, "momentum", "a number in [0, 1]", repr(momentum))
        stats = [self._stat(s, name, gamma, where) if s is not None else None
                 for s, name in ((running_mean, "running_mean"), (running_var, "running_var"))]
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean, self.running_var = stats
        self.input_shape: tuple[int, ...] | None = None
        self.batch_size: int | None = None
        self._xn: tuple = (None, None)  # (the forward's (x, mu, inv) that xn is computed from, xn or None)
        self.std: np.ndarray | None = None
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None
        self._train_shape: tuple[int, ...] | None = None
        # validated-call cache: (x shape, x strides, dtype, gamma, beta, gamma's shape, momentum, consts)
        self._last_call: tuple | None = None
        self._own = (None,) * 10  # what the last training forward set and backward reads (see _train)

    @staticmethod
    def _stat(s, name: str, gamma: np.ndarray, where: str, copy: bool = True) -> np.ndarray:
        s = float_array(s, name, where, ndim=1)
        if s.shape != gamma.shape:
            fail(where, name, f"of length {gamma.shape[0]} (the length of gamma)", f"shape {s.shape}")
        return np.array(s, dtype=gamma.dtype, copy=True) if copy else contiguous(s, gamma.dtype)

    @property
    def xn(self) -> np.ndarray | None:
        """The last training forward's ``(x - mu) * (1 / std)``, computed on first access (see the class)."""
        src, xn = self._xn  # one read (another thread may run a forward meanwhile)
        if xn is None and src is not None:
            xn = _bn.normalise(*src)
            self._xn = (src, xn)
        return xn

    @xn.setter
    def xn(self, value) -> None:
        self._xn = (None, value)

    def forward(self, x, train_flg: bool = True) -> np.ndarray:
        """Normalise ``x`` (``(N, D)`` or ``(N, C, H, W)``); return a new array of x's shape.

        Training mode uses the batch's statistics and updates the running ones; evaluation mode
        uses the running statistics. Non-finite batch statistics are reported through
        :func:`fastdl.runtime.report_nonfinite` (before any state changes).
        """
        # One read of the replay cache and of the last forward's arrays: every check below and every array
        # handed to the kernels are these locals (a check on ``self.`` and a second read for the
        # kernel could see another thread's state in between).
        p, own = self._last_call, self._own
        if (train_flg and p is not None and type(x) is np.ndarray and x.shape == p[0] and x.strides == p[1]
                and x.dtype is p[2] and self.gamma is p[3] and self.beta is p[4] and self.momentum is p[6]
                and self.running_mean is own[0] and self.running_var is own[1] and own[6] is p[3]
                and p[3].shape == p[5] and p[4].shape == p[5]):
            return self._train(x, p[0], p[1], p[3], p[5], p[4], own[0], own[1], p[7])
        where = "BatchNormalization.forward"
        gamma = ops.param(self.gamma, "gamma", where, 1)
        beta = ops.param(self.beta, "beta", where, 1, gamma.dtype, gamma.shape[0])
        x2, shape = ops.bn_input(x, gamma, where)
        dt = gamma.dtype
        rm, rv = self.running_mean, self.running_var
        if rm is None or rv is None:
            rm = rv = np.zeros(gamma.shape[0], dtype=dt)
        else:
            rm = self._stat(rm, "running_mean", gamma, where, copy=False)
            rv = self._stat(rv, "running_var", gamma, where, copy=False)
        gc, bc = contiguous(gamma), contiguous(beta)
        if not train_flg:
            out = _bn.eval_forward(x2, gc, bc, BN_EPS, rm, rv)
            if self.running_mean is None or self.running_var is None:
                self.running_mean, self.running_var = rm, rv.copy()
            self.input_shape = shape
            return out.reshape(shape)
        if x2.shape[0] < 1:
            fail(where, "x", "a batch of at least one row in training mode", f"shape {shape}")
        m = self.momentum
        consts = _bn.consts_for(dt, BN_EPS, x2.shape[0], float(m))
        self._last_call = None  # (a rejected call must not leave it stale)
        out = self._train(x2, shape, None, gc, gc.shape, bc, rm, rv, consts)
        replayable = (isinstance(x, np.ndarray) and x.dtype == dt and x.flags.c_contiguous and gc is gamma
                     and bc is beta and type(m) in (float, int))
        self._last_call = (shape, x.strides, dt, gamma, beta, gamma.shape, m, consts) if replayable else None
        return out

    def _train(self, x, shape, strides, gamma, gshape, beta, rm, rv, consts) -> np.ndarray:
        """The training forward on validated arrays (``x`` C-contiguous, of ``shape``, in gamma's dtype).

        ``strides``: the C strides of ``shape`` in this dtype if known (None: taken from the output);
        ``gshape``: gamma's shape.

        Everything ``backward`` needs is stored as one tuple (:attr:`_own`), so a backward reads
        the arrays of one forward, never a mix of two threads' forwards.
        """
        n = shape[0]
        d = gamma.shape[0]
        dt = x.dtype
        out = np.empty(shape, dtype=dt)
        stats = np.empty((6, d), dtype=dt)
        x2 = x.view() if len(shape) == 2 else x.reshape(n, d)  # own object: in-place x.shape/dtype stay out
        bad = _bn.train_forward_into(x2, gamma, beta, rm, rv, consts, stats, _bn.NO_XN[dt],
                                     out if len(shape) == 2 else out.reshape(n, d))
        if bad:
            runtime.report_nonfinite("BatchNormalization.forward",
                                     f"{bad} feature(s) have a non-finite batch mean or variance")
        rm, rv, std = stats[_bn.RM_NEW], stats[_bn.RV_NEW], stats[_bn.STD]
        src = (x2, stats[_bn.MU], stats[_bn.INV])  # what xn is recomputed from
        # (running_mean, running_var, src, std, input shape, its C strides, gamma, gamma's shape, consts, dtype)
        self._own = (rm, rv, src, std, shape, out.strides if strides is None else strides, gamma, gshape, consts, dt)
        self.running_mean, self.running_var, self._xn, self.std = rm, rv, (src, None), std
        self.batch_size = n
        self.input_shape = self._train_shape = shape
        return out

    def backward(self, dout) -> np.ndarray:
        """Set :attr:`dgamma`, :attr:`dbeta`; return a new ``dx`` of the training forward's input shape."""
        own = self._own  # one read: the arrays of one forward (see forward)
        if (self._xn[0] is own[2] and self.std is own[3] and type(dout) is np.ndarray and dout.shape == own[4]
                and dout.strides == own[5] and dout.dtype is own[9] and self.gamma is own[6]
                and own[6].shape == own[7]):  # (xn not set from outside: recomputed from the forward's x)
            return self._grad(dout, own[4], own[2], own[6], own[3], own[8])
        where = "BatchNormalization.backward"
        (src, xn), std, shape = self._xn, self.std, self._train_shape
        src = src if xn is None else None  # (xn not computed: the forward's input, of xn's shape, is checked)
        xn = src[0] if src is not None else xn
        called_before(xn, where, "BatchNormalization.forward (with train_flg=True)")
        xn = float_array(xn, "xn", where, ndim=2)
        dt = xn.dtype
        n, d = xn.shape
        std = float_array(std, "std", where, ndim=1)
        if std.shape != (d,) or shape is None or shape[0] != n or math.prod(shape) != xn.size:
            fail(where, "the stored forward state (xn, std, input shape)",
                 "of one training forward (was the layer used from two threads at once, or were xn/std "
                 "replaced?)", f"xn of shape {xn.shape}, std of shape {std.shape}, input shape {shape}")
        gamma = ops.param(self.gamma, "gamma", where, 1, shape0=d)
        dc = ops.dout(dout, shape, dt, where).reshape(xn.shape)
        consts = _bn.consts_for(dt, BN_EPS, n, 0.0)
        if src is None:  # a computed or given xn: backward reads it as it is
            src = (contiguous(xn), *_bn.identity_stats(d, dt))
        return self._grad(dc, shape, src, contiguous(gamma, dt), contiguous(std, dt), consts)

    def _grad(self, dc, shape, src, gamma, std, consts) -> np.ndarray:
        """Backward on validated arrays; ``src = (x, mu, inv)`` gives ``xn = (x - mu) * inv``."""
        x2 = src[0]
        dx, grads = np.empty(shape, dtype=x2.dtype), np.empty((5, x2.shape[1]), dtype=x2.dtype)
        if len(shape) == 2:
            _bn.backward_into(dc, *src, gamma, std, grads, consts, dx)
        else:
            _bn.backward_into(dc.reshape(x2.shape), *src, gamma, std, grads, consts, dx.reshape(x2.shape))
        self.dgamma, self.dbeta = grads[_bn.DGAMMA], grads[_bn.DBETA]
        return dx
