"""The book's fully connected networks, ``MultiLayerNet`` and ``MultiLayerNetExtend``, on any layer backend.

Same constructor arguments, attributes and methods as *Deep Learning from Scratch*
(``common/multi_layer_net.py`` and ``common/multi_layer_net_extend.py``), plus ``dtype`` and
``backend``:

* ``backend=None`` or ``'fastdl'``: the compiled layers of :mod:`fastdl.layers`;
* ``backend='reference'``: the plain NumPy layers of :mod:`fastdl.reference`;
* any module (or object) with ``Affine, Relu, Sigmoid, BatchNormalization, Dropout, SoftmaxWithLoss``
  (the book's own ``common.layers`` works).

Weights are drawn exactly as the book draws them (``np.random.randn(n_in, n_out) * std`` from NumPy's
global generator, layer by layer, then cast to ``dtype``), so two networks built after the same
``np.random.seed`` have identical weights whatever the backend. Each ``Affine`` layer holds the very
arrays stored in ``params``; optimizers change those arrays in place.
"""

from __future__ import annotations

import importlib
import operator
from collections import OrderedDict
from types import ModuleType
from typing import Any

import numpy as np

from . import _checks
from .init import std_for

__all__ = ["LAYER_CLASSES", "MultiLayerNet", "MultiLayerNetExtend", "numerical_gradient", "resolve_backend"]

#: The layer classes a backend must provide.
LAYER_CLASSES = ("Affine", "Relu", "Sigmoid", "BatchNormalization", "Dropout", "SoftmaxWithLoss")

_BACKEND_MODULES = {"fastdl": "fastdl.layers", "reference": "fastdl.reference"}


def resolve_backend(backend: str | ModuleType | Any | None, where: str = "resolve_backend"):
    """Return the object providing the layer classes for ``backend``.

    Parameters
    ----------
    backend : None, str or module
        ``None``/``'fastdl'`` (compiled layers), ``'reference'`` (plain NumPy), or any object with
        the attributes listed in :data:`LAYER_CLASSES`.
    where : str
        Caller name for error messages.

    Returns
    -------
    module or object
        Something with the six layer classes as attributes.
    """
    if backend is None:
        backend = "fastdl"
    if isinstance(backend, str):
        name = _BACKEND_MODULES.get(backend.lower())
        if name is None:
            _checks.fail(where, "backend", f"one of {tuple(_BACKEND_MODULES)}, None or a module with the "
                         f"layer classes {LAYER_CLASSES}", repr(backend))
        return importlib.import_module(name)
    missing = [c for c in LAYER_CLASSES if not hasattr(backend, c)]
    if missing:
        _checks.fail(where, "backend", f"a module with the layer classes {LAYER_CLASSES}",
                     f"{_checks.describe(backend)} without {', '.join(missing)}", TypeError)
    return backend


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


def _positive_int(value, name: str, where: str) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        _checks.fail(where, name, "a positive integer", _checks.describe(value), TypeError)
    if isinstance(value, bool) or v < 1:
        _checks.fail(where, name, "a positive integer", repr(value), ValueError)
    return v


class MultiLayerNetExtend:
    """Fully connected network with optional batch norm and dropout (the book's ``MultiLayerNetExtend``).

    Layers per hidden unit block: ``Affine{i}``, ``BatchNorm{i}`` (with ``use_batchnorm``),
    ``Activation_function{i}``, ``Dropout{i}`` (with ``use_dropout``); then ``Affine{L}`` and a
    ``SoftmaxWithLoss`` as ``last_layer``.

    Parameters
    ----------
    input_size : int
        Features per sample (784 for MNIST, 64 for the 8x8 digits).
    hidden_size_list : list of int
        Units of each hidden layer, e.g. ``[100, 100, 100]``.
    output_size : int
        Number of classes.
    activation : {'relu', 'sigmoid'}
        Activation of the hidden layers.
    weight_init_std : str or float
        ``'relu'``/``'he'``, ``'sigmoid'``/``'xavier'``, ``'lecun'``, ``'glorot'`` or a fixed std
        (see :mod:`fastdl.init`).
    weight_decay_lambda : float
        L2 strength λ: the loss adds ``0.5 * λ * sum(W**2)`` per weight matrix, the gradient ``λ * W``.
    use_dropout : bool
        Add a ``Dropout`` layer after each activation.
    dropout_ration : float
        Dropout ratio (the book's spelling), in ``[0, 1)``.
    use_batchnorm : bool
        Add a ``BatchNormalization`` layer after each hidden ``Affine``.
    dtype : numpy dtype
        float64 (default, as the book) or float32; parameters are created in it and inputs cast to it.
    backend : None, str or module
        Layer implementation (see :func:`resolve_backend`).
    dropout_ratio : float, optional
        Alias of ``dropout_ration``; wins when given.

    Attributes
    ----------
    params : dict
        ``'W1', 'b1', ..., 'gamma1', 'beta1', ...`` as the book orders them.
    layers : OrderedDict
        The layers by name.
    last_layer : SoftmaxWithLoss
    dtype : numpy.dtype
    backend : module
        The module the layer classes came from.
    """

    _where = "MultiLayerNetExtend"

    def __init__(self, input_size: int, hidden_size_list, output_size: int, activation: str = "relu",
                 weight_init_std: str | float = "relu", weight_decay_lambda: float = 0,
                 use_dropout: bool = False, dropout_ration: float = 0.5, use_batchnorm: bool = False,
                 dtype=np.float64, backend=None, dropout_ratio: float | None = None) -> None:
        where = self._where
        self.input_size = _positive_int(input_size, "input_size", where)
        self.output_size = _positive_int(output_size, "output_size", where)
        if isinstance(hidden_size_list, int | np.integer) or not hasattr(hidden_size_list, "__iter__"):
            _checks.fail(where, "hidden_size_list", "a list of positive integers such as [100, 100]",
                         _checks.describe(hidden_size_list), TypeError)
        self.hidden_size_list = [_positive_int(h, "hidden_size_list entries", where) for h in hidden_size_list]
        self.hidden_layer_num = len(self.hidden_size_list)
        if not isinstance(activation, str) or activation.lower() not in ("relu", "sigmoid"):
            _checks.fail(where, "activation", "'relu' or 'sigmoid'", repr(activation))
        self.activation = activation.lower()
        # A Python float: under NumPy 2 an np.float64 lambda would promote float32 gradients.
        self.weight_decay_lambda = _checks.positive_number(weight_decay_lambda, "weight_decay_lambda", where,
                                                           allow_zero=True)
        if dropout_ratio is not None:
            dropout_ration = dropout_ratio
        self.use_dropout = bool(use_dropout)
        self.use_batchnorm = bool(use_batchnorm)
        self.dropout_ration = _checks.positive_number(dropout_ration, "dropout_ratio", where, allow_zero=True,
                                                      upper=1.0)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            _checks.fail(where, "dtype", "float32 or float64", repr(dtype), TypeError)
        if self.dtype not in _checks.FLOAT_DTYPES:
            _checks.fail(where, "dtype", "float32 or float64", str(self.dtype), TypeError)
        self.backend = resolve_backend(backend, where)
        # resolve the init spec once for every layer (raises on a bad name before anything is drawn)
        sizes = [self.input_size, *self.hidden_size_list, self.output_size]
        stds = [std_for(weight_init_std, sizes[i - 1], sizes[i], where) for i in range(1, len(sizes))]
        self.weight_init_std = weight_init_std

        self.params: dict[str, np.ndarray] = {}
        self._init_weight(sizes, stds)
        self._build_layers()

    # -- construction -------------------------------------------------------------------------------------
    def _init_weight(self, sizes: list[int], stds: list[float]) -> None:
        for idx in range(1, len(sizes)):
            w = stds[idx - 1] * np.random.randn(sizes[idx - 1], sizes[idx])
            self.params[f"W{idx}"] = w.astype(self.dtype, copy=False)
            self.params[f"b{idx}"] = np.zeros(sizes[idx], dtype=self.dtype)

    def _build_layers(self) -> None:
        L = self.backend
        activation_layer = {"sigmoid": L.Sigmoid, "relu": L.Relu}[self.activation]
        self.layers: OrderedDict[str, Any] = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers[f"Affine{idx}"] = L.Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            if self.use_batchnorm:
                self.params[f"gamma{idx}"] = np.ones(self.hidden_size_list[idx - 1], dtype=self.dtype)
                self.params[f"beta{idx}"] = np.zeros(self.hidden_size_list[idx - 1], dtype=self.dtype)
                self.layers[f"BatchNorm{idx}"] = L.BatchNormalization(self.params[f"gamma{idx}"],
                                                                      self.params[f"beta{idx}"])
            self.layers[f"Activation_function{idx}"] = activation_layer()
            if self.use_dropout:
                self.layers[f"Dropout{idx}"] = L.Dropout(self.dropout_ration)
        idx = self.hidden_layer_num + 1
        self.layers[f"Affine{idx}"] = L.Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
        self.last_layer = L.SoftmaxWithLoss()
        # (name, layer, takes train_flg) once, so predict does no string tests per call
        self._plan = [(layer, "Dropout" in key or "BatchNorm" in key) for key, layer in self.layers.items()]

    # -- the book's methods ------------------------------------------------------------------------------
    def _input(self, x) -> np.ndarray:
        x = np.asarray(x)
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def predict(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        """Scores (before softmax) for a batch ``x``; cast to the network's dtype if needed.

        Parameters
        ----------
        x : numpy.ndarray
            ``(N, input_size)`` (or ``(N, C, H, W)`` with ``C*H*W == input_size``).
        train_flg : bool
            Training mode for batch norm (batch statistics) and dropout (random mask).

        Returns
        -------
        numpy.ndarray
            ``(N, output_size)``.
        """
        x = self._input(x)
        for layer, takes_flag in self._plan:
            x = layer.forward(x, train_flg) if takes_flag else layer.forward(x)
        return x

    def _weight_decay(self):
        lam = self.weight_decay_lambda
        if lam == 0:
            return 0
        decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params[f"W{idx}"]
            decay += 0.5 * lam * np.sum(W**2)
        return decay

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False):
        """Cross-entropy loss plus ``0.5 * λ * Σ sum(W**2)``.

        Parameters
        ----------
        x : numpy.ndarray
            Input batch.
        t : numpy.ndarray
            Labels ``(N,)`` or one-hot ``(N, output_size)``.
        train_flg : bool
            Training mode (see :meth:`predict`).

        Returns
        -------
        float
            The loss (a NumPy scalar of the network's dtype).
        """
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self._weight_decay()

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        """Fraction of samples whose highest score is the label (``t`` as labels or one-hot).

        Parameters
        ----------
        x : numpy.ndarray
            Inputs.
        t : numpy.ndarray
            Labels or one-hot targets.

        Returns
        -------
        float
        """
        y = np.argmax(self.predict(x, train_flg=False), axis=1)
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return float(np.sum(y == t) / float(y.shape[0]))

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients by central differences (slow; for checking :meth:`gradient`).

        The loss is taken in training mode, as the book's ``MultiLayerNetExtend`` does; with dropout on,
        each evaluation draws a new mask, so compare with dropout off.

        Parameters
        ----------
        x, t : numpy.ndarray
            A (small) batch and its targets.

        Returns
        -------
        dict
            Same keys as ``params``.
        """
        x = self._input(x)

        def loss_w(_):
            return self.loss(x, t, train_flg=True)

        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            grads[f"W{idx}"] = numerical_gradient(loss_w, self.params[f"W{idx}"])
            grads[f"b{idx}"] = numerical_gradient(loss_w, self.params[f"b{idx}"])
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                grads[f"gamma{idx}"] = numerical_gradient(loss_w, self.params[f"gamma{idx}"])
                grads[f"beta{idx}"] = numerical_gradient(loss_w, self.params[f"beta{idx}"])
        return grads

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients by backpropagation (forward in training mode), with ``λ * W`` added to each ``dW``.

        Parameters
        ----------
        x, t : numpy.ndarray
            Batch and targets (labels or one-hot).

        Returns
        -------
        dict
            Same keys as ``params``. With ``λ == 0`` the arrays are the layers' own ``dW``/``db``
            (as the book returns ``db``): use them before the next backward pass.
        """
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        lam = self.weight_decay_lambda
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{idx}"]
            grads[f"W{idx}"] = affine.dW + lam * self.params[f"W{idx}"] if lam else affine.dW
            grads[f"b{idx}"] = affine.db
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                bn = self.layers[f"BatchNorm{idx}"]
                grads[f"gamma{idx}"] = bn.dgamma
                grads[f"beta{idx}"] = bn.dbeta
        return grads

    def __repr__(self) -> str:
        sizes = [self.input_size, *self.hidden_size_list, self.output_size]
        extras = "".join([", batchnorm" if self.use_batchnorm else "",
                          f", dropout={self.dropout_ration}" if self.use_dropout else "",
                          f", weight_decay={self.weight_decay_lambda}" if self.weight_decay_lambda else ""])
        return (f"{type(self).__name__}({'-'.join(map(str, sizes))}, {self.activation}{extras}, "
                f"{self.dtype.name}, backend={getattr(self.backend, '__name__', type(self.backend).__name__)})")


class MultiLayerNet(MultiLayerNetExtend):
    """Fully connected ReLU/sigmoid network (the book's ``MultiLayerNet``): no batch norm, no dropout.

    Layers: ``Affine{i}``, ``Activation_function{i}`` per hidden layer, then ``Affine{L}`` and a
    ``SoftmaxWithLoss`` as ``last_layer``.

    Parameters
    ----------
    input_size : int
        Features per sample.
    hidden_size_list : list of int
        Units of each hidden layer.
    output_size : int
        Number of classes.
    activation : {'relu', 'sigmoid'}
        Activation of the hidden layers.
    weight_init_std : str or float
        Initialisation name or fixed std (see :mod:`fastdl.init`).
    weight_decay_lambda : float
        L2 strength λ.
    dtype : numpy dtype
        float64 (default) or float32.
    backend : None, str or module
        Layer implementation (see :func:`resolve_backend`).
    """

    _where = "MultiLayerNet"

    def __init__(self, input_size: int, hidden_size_list, output_size: int, activation: str = "relu",
                 weight_init_std: str | float = "relu", weight_decay_lambda: float = 0,
                 dtype=np.float64, backend=None) -> None:
        super().__init__(input_size, hidden_size_list, output_size, activation=activation,
                         weight_init_std=weight_init_std, weight_decay_lambda=weight_decay_lambda,
                         dtype=dtype, backend=backend)
