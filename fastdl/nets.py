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

The fused training step (fastdl backend; alpha dropout, not the book's dropout)
    On the fastdl backend the values of ``params`` are views into one flat buffer, in ``params``'
    order, and :meth:`~MultiLayerNetExtend.gradient` writes into views of a second buffer with the
    same layout, so a fastdl optimizer steps the whole model in one kernel call. ``gradient`` runs
    each GEMM with ``np.dot(..., out=)`` into buffers kept per batch size and everything between two
    GEMMs as one compiled kernel (bias + batch norm + activation forward; activation + batch norm +
    bias backward; bias + softmax + cross-entropy + its gradient, or bias + squared error + its gradient
    for ``loss='mse'``), and skips the first layer's
    ``dx``, which nothing uses. The arithmetic is the layers', so the numbers are those of the
    layer-by-layer path. Whatever the fused step does not cover (the book's dropout, another backend, 4-D input,
    a ``params`` entry or layer attribute replaced by another array, a layer replaced, a subclass
    that overrides ``predict``/``loss``) runs the layer-by-layer path, with the same results.

    Differences from the book you can observe: the arrays ``gradient`` returns are the same objects
    every call and are overwritten by the next call (like PyTorch's ``.grad``; copy them to keep
    them); the layers' ``dW``/``db``/``dgamma``/``dbeta`` are those arrays; batch norm's
    ``running_mean``/``running_var`` are arrays owned by the network, updated in place; ``Relu.mask``
    is computed from the kept output (``Relu.out``) when read. The step itself lives in
    :mod:`fastdl.fused_step`.

Copies
    ``copy.deepcopy(net)`` and ``pickle`` work on every backend (the backend travels by name): a
    copy shares no array with the original and builds its own fused step.
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks, _mcdropout, _netio, activations, ops, transfer
from . import layers as _fastdl_layers
from . import reference as _reference
from ._archive import CheckpointError
from ._backends import LAYER_CLASSES, _backend_from_ref, _backend_ref, resolve_backend
from .functional import numerical_gradient
from .fused_step import FusedStep
from .init import std_for
from .metrics import r2_score

__all__ = ["LAYER_CLASSES", "CheckpointError", "MultiLayerNet", "MultiLayerNetExtend", "load", "numerical_gradient",
           "resolve_backend"]

#: the output losses: name -> the backend's loss layer class (``last_layer``)
LOSSES = {"cross_entropy": "SoftmaxWithLoss", "mse": "IdentityWithLoss"}


def _positive_int(value, name: str, where: str) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        _checks.fail(where, name, "a positive integer", _checks.describe(value), TypeError)
    if isinstance(value, bool) or v < 1:
        _checks.fail(where, name, "a positive integer", repr(value), ValueError)
    return v


class MultiLayerNetExtend(transfer.Freezable):
    """Fully connected network with optional batch norm and dropout (the book's ``MultiLayerNetExtend``).

    Layers per hidden unit block: ``Affine{i}``, ``BatchNorm{i}`` (with ``use_batchnorm``),
    ``Activation_function{i}``, ``Dropout{i}`` (with ``use_dropout``); then ``Affine{L}`` and a
    ``SoftmaxWithLoss`` as ``last_layer`` (an ``IdentityWithLoss`` with ``loss='mse'``).

    Parameters
    ----------
    input_size : int
        Features per sample (784 for MNIST, 64 for the 8x8 digits).
    hidden_size_list : list of int
        Units of each hidden layer, e.g. ``[100, 100, 100]``.
    output_size : int
        Number of classes.
    activation : str
        Activation of the hidden layers: any name registered in :mod:`fastdl.activations` (``'relu'``,
        ``'sigmoid'``, ...). Learnable activation parameters join ``params`` as ``alpha1``, ... (per the
        activation's record), after the batch-norm parameters.
    weight_init_std : str or float
        ``'relu'``/``'he'``, ``'sigmoid'``/``'xavier'``, ``'lecun'``, ``'glorot'``, ``'auto'`` (the
        activation's recommended initialisation, from its record) or a fixed std (see :mod:`fastdl.init`).
    weight_decay_lambda : float
        L2 strength λ: the loss adds ``0.5 * λ * sum(W**2)`` per weight matrix, the gradient ``λ * W``.
    use_dropout : bool
        Add a ``Dropout`` layer after each activation.
    dropout_ration : float
        Dropout ratio (the book's spelling), in ``[0, 1)``; the ``rate`` of alpha dropout.
    use_batchnorm : bool
        Add a ``BatchNormalization`` layer after each hidden ``Affine``.
    dtype : numpy dtype
        float64 (default, as the book) or float32; parameters are created in it and inputs cast to it.
    backend : None, str or module
        Layer implementation (see :func:`resolve_backend`).
    dropout_ratio : float, optional
        Alias of ``dropout_ration``; wins when given.
    loss : {'cross_entropy', 'mse'}
        ``'cross_entropy'`` (default): the book's softmax with cross-entropy, a classifier. ``'mse'``:
        regression, :class:`fastdl.layers.IdentityWithLoss` (``0.5 * sum((y - t)**2) / N``) on
        ``output_size`` real targets; :meth:`score` gives the R², :meth:`accuracy` raises.
    l1_lambda : float
        L1 strength λ₁ (Hands-On ML ch. 11) beside the L2 ``weight_decay_lambda``: loss ``+ λ₁ * sum(|W|)``
        per weight matrix, gradient ``+ λ₁ * sign(W)`` (0 where ``W == 0``); fused step included; biases
        and batch-norm parameters are not penalized (as with L2).
    use_alpha_dropout : bool
        :class:`fastdl.layers.AlphaDropout` layers (``AlphaDropout{i}``, rate ``dropout_ratio``; for SELU
        networks) instead of the book's ``Dropout``; implies ``use_dropout``; runs in the fused step too.

    Attributes
    ----------
    params : dict
        ``'W1', 'b1', ..., 'gamma1', 'beta1', ...`` as the book orders them.
    layers : OrderedDict
        The layers by name.
    last_layer : SoftmaxWithLoss or IdentityWithLoss
    loss_name : str
        The ``loss`` argument.
    dtype : numpy.dtype
    backend : module
        The module the layer classes came from.
    """

    _where = "MultiLayerNetExtend"

    def __init__(self, input_size: int, hidden_size_list, output_size: int, activation: str = "relu",
                 weight_init_std: str | float = "relu", weight_decay_lambda: float = 0,
                 use_dropout: bool = False, dropout_ration: float = 0.5, use_batchnorm: bool = False,
                 dtype=np.float64, backend=None, dropout_ratio: float | None = None,
                 loss: str = "cross_entropy", l1_lambda: float = 0, use_alpha_dropout: bool = False) -> None:
        where = self._where
        if not isinstance(loss, str) or loss not in LOSSES:
            _checks.fail(where, "loss", f"one of {tuple(LOSSES)}", repr(loss))
        self.loss_name = loss
        self.input_size = _positive_int(input_size, "input_size", where)
        self.output_size = _positive_int(output_size, "output_size", where)
        if isinstance(hidden_size_list, int | np.integer) or not hasattr(hidden_size_list, "__iter__"):
            _checks.fail(where, "hidden_size_list", "a list of positive integers such as [100, 100]",
                         _checks.describe(hidden_size_list), TypeError)
        self.hidden_size_list = [_positive_int(h, "hidden_size_list entries", where) for h in hidden_size_list]
        self.hidden_layer_num = len(self.hidden_size_list)
        self.activation = activations.get(activation, where).name
        # A Python float: under NumPy 2 an np.float64 lambda would promote float32 gradients.
        self.weight_decay_lambda = _checks.positive_number(weight_decay_lambda, "weight_decay_lambda", where,
                                                           allow_zero=True)
        self.l1_lambda = _checks.positive_number(l1_lambda, "l1_lambda", where, allow_zero=True)
        if dropout_ratio is not None:
            dropout_ration = dropout_ratio
        self.use_alpha_dropout = bool(use_alpha_dropout)
        self.use_dropout = bool(use_dropout) or self.use_alpha_dropout
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
        init = weight_init_std
        if isinstance(init, str) and init.lower() == "auto":
            init = activations.get(self.activation).init
        stds = [std_for(init, sizes[i - 1], sizes[i], where) for i in range(1, len(sizes))]
        self.weight_init_std = weight_init_std

        self.params: dict[str, np.ndarray] = {}
        self._init_weight(sizes, stds)
        self._build_layers()
        #: profiler hook: a dict into which the fused gradient() adds seconds per phase (None: off)
        self._phase_times: dict[str, float] | None = None
        self._frozen: tuple[str, ...] = ()  # frozen params keys (see fastdl.transfer)
        self._fused = FusedStep(self) if self._fused_eligible() else None

    def _fused_eligible(self) -> bool:
        """The fused step covers the fastdl backend without the book's dropout (alpha dropout is covered) or
        learnable activation parameters, unless a subclass changed the math."""
        if (self.backend is not _fastdl_layers or (self.use_dropout and not self.use_alpha_dropout)
                or activations.get(self.activation).params):
            return False
        if self._frozen and not transfer.fused_covers(self):
            return False
        base = MultiLayerNetExtend
        return all(getattr(type(self), name) is getattr(base, name)
                   for name in ("predict", "_forward", "loss", "_weight_decay", "_build_layers", "_init_weight",
                                "_input"))

    # -- copying and pickling ----------------------------------------------------------------------------
    _saved_class = "MultiLayerNetExtend"  # the class name a saved file records (fastdl._netio)

    def _backend_ref(self):
        """The backend as a saved file records it: 'fastdl'/'reference', ('module', name), or the object."""
        return _backend_ref(self.backend)

    def __getstate__(self) -> dict:
        """State for :func:`copy.deepcopy` and :mod:`pickle`: the backend by name, no fused-step buffers.

        A copy rebuilds its own fused step (:meth:`__setstate__`): its ``params`` are again views of
        one flat buffer of its own, it shares no array with the original, and it adopts the copied
        batch-norm running statistics on its first step.
        """
        state = self.__dict__.copy()
        state["backend"] = _backend_ref(self.backend)
        state["_fused"] = None
        state["_phase_times"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["backend"] = _backend_from_ref(state["backend"])
        state.pop("_fast", None)  # (the fused step's name in pickles of fastdl 0.1)
        state.setdefault("loss_name", "cross_entropy")  # (pickles made before loss='mse')
        state.setdefault("l1_lambda", 0.0)  # (... before l1_lambda and alpha dropout)
        state.setdefault("use_alpha_dropout", False)
        state.pop("_plan", None)
        state["_fused"] = None
        state.setdefault("_frozen", ())  # (pickles made before freezing)
        self.__dict__.update(state)
        self._index_layers()
        if self._fused_eligible():
            self._fused = FusedStep(self)

    # -- construction -------------------------------------------------------------------------------------
    def _init_weight(self, sizes: list[int], stds: list[float]) -> None:
        for idx in range(1, len(sizes)):
            w = stds[idx - 1] * np.random.randn(sizes[idx - 1], sizes[idx])
            self.params[f"W{idx}"] = w.astype(self.dtype, copy=False)
            self.params[f"b{idx}"] = np.zeros(sizes[idx], dtype=self.dtype)

    def _activation_layer(self) -> type:
        """The backend's class for the activation: from its registry record, whatever the backend."""
        rec = activations.get(self.activation, self._where)
        if self.backend is _fastdl_layers:
            return _fastdl_layers.activation_layer(rec.name)
        if self.backend is _reference:
            return rec.reference
        name = rec.layer if isinstance(rec.layer, str) else rec.layer.__name__
        cls = getattr(self.backend, name, None)
        if cls is None:
            _checks.fail(self._where, "backend", f"a module with a {name} layer (activation {rec.name!r})",
                         _checks.describe(self.backend), TypeError)
        return cls

    def _build_layers(self) -> None:
        L = self.backend
        activation_layer = self._activation_layer()
        act_params = activations.get(self.activation).params
        self.layers: OrderedDict[str, Any] = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers[f"Affine{idx}"] = L.Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            if self.use_batchnorm:
                self.params[f"gamma{idx}"] = np.ones(self.hidden_size_list[idx - 1], dtype=self.dtype)
                self.params[f"beta{idx}"] = np.zeros(self.hidden_size_list[idx - 1], dtype=self.dtype)
                self.layers[f"BatchNorm{idx}"] = L.BatchNormalization(self.params[f"gamma{idx}"],
                                                                      self.params[f"beta{idx}"])
            width = self.hidden_size_list[idx - 1]
            for p in act_params:  # learnable activation parameters (see fastdl.activations)
                self.params[f"{p.name}{idx}"] = np.full(width, p.init, dtype=self.dtype)
            self.layers[f"Activation_function{idx}"] = activation_layer(
                *(self.params[f"{p.name}{idx}"] for p in act_params))
            if self.use_alpha_dropout:
                self.layers[f"AlphaDropout{idx}"] = self._backend_class("AlphaDropout")(self.dropout_ration)
            elif self.use_dropout:
                self.layers[f"Dropout{idx}"] = L.Dropout(self.dropout_ration)
        idx = self.hidden_layer_num + 1
        self.layers[f"Affine{idx}"] = L.Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
        loss_layer = getattr(L, LOSSES[self.loss_name], None)
        if loss_layer is None:
            _checks.fail(self._where, "backend", f"a module with a {LOSSES[self.loss_name]} layer (loss "
                         f"{self.loss_name!r})", _checks.describe(L), TypeError)
        self.last_layer = loss_layer()
        self._index_layers()

    def _backend_class(self, name: str) -> type:
        """The backend's layer class ``name`` (a module without it: the house TypeError)."""
        cls = getattr(self.backend, name, None)
        if cls is None:
            _checks.fail(self._where, "backend", f"a module with an {name} layer", _checks.describe(self.backend),
                         TypeError)
        return cls

    def _index_layers(self) -> None:
        """``_forward_steps``: (layer, kind) in order, kind 1 for batch norm, 2 for dropout, 0 for the others
        (so the forward does no string tests per call)."""
        frozen_bn = transfer.frozen_bn_layers(self, getattr(self, "_frozen", ()))
        self._forward_steps = [(layer, 3 if key in frozen_bn else 1 if "BatchNorm" in key else 2 if "Dropout" in key
                                else 0) for key, layer in self.layers.items()]

    # -- the book's methods ------------------------------------------------------------------------------
    def _input(self, x, method: str = "predict") -> np.ndarray:
        """``x`` as an array of the network's dtype; integer and bool data are cast, anything else rejected."""
        x = np.asarray(x)
        if x.dtype == self.dtype:
            return x
        if x.dtype.kind not in "biuf":
            _checks.fail(f"{type(self).__name__}.{method}", "x", "a real array (float, integer or bool; complex "
                         "values are not cast: take .real yourself if that is what you mean)", f"dtype {x.dtype}",
                         TypeError)
        return x.astype(self.dtype)

    def _batch(self, x, t, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Validate a batch and its targets before any layer runs; return ``(x, labels)`` (``(x, targets)``
        as ``(N, output_size)`` for ``loss='mse'``).

        ``x`` in the network's dtype, of shape ``(N, input_size)`` (or ``(N, ...)`` with
        ``input_size`` values per sample), ``N >= 1``; ``t`` as the loss layer takes it.
        A rejected call has run no layer: batch-norm statistics, dropout's random stream and
        parameters are as they were.
        """
        where = f"{type(self).__name__}.{method}"
        x = self._input(x, method)
        if x.ndim < 2 or x.shape[0] < 1 or math.prod(x.shape[1:]) != self.input_size:
            _checks.fail(where, "x", f"a batch of shape (N, {self.input_size}) with N >= 1 (or (N, ...) with "
                         f"{self.input_size} values per sample)", f"shape {x.shape}")
        if self.loss_name == "mse":
            return x, ops.targets(t, (x.shape[0], self.output_size), self.dtype, where)
        labels, _ = ops.labels(t, x.shape[0], self.output_size, self.dtype, where)
        return x, labels

    def predict(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        """Scores (before softmax), or the predictions for ``loss='mse'``, for a batch ``x`` (cast to the dtype).

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
        return self._forward(x, train_flg, train_flg)

    def _forward(self, x, bn_train: bool, dropout_train: bool) -> np.ndarray:
        """The forward pass with separate modes for batch norm and dropout (MC dropout runs dropout in
        training mode with batch norm in inference mode)."""
        x = self._input(x)
        y = None if bn_train or dropout_train or self._fused is None else self._fused.predict(self, x)
        if y is not None:  # evaluation in one kernel per block (the fused step; the layers' arithmetic)
            return y
        for layer, kind in self._forward_steps:
            if kind == 0:
                x = layer.forward(x)
            else:
                x = layer.forward(x, bn_train if kind == 1 else dropout_train if kind == 2 else False)  # 3: frozen BN
        return x

    def predict_mc(self, x, n_samples: int = 100, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """MC dropout (Gal & Ghahramani; Géron ch. 11): mean and std of ``n_samples`` stochastic passes.

        Each pass runs dropout (or alpha dropout) in training mode with a new mask and batch norm in
        inference mode (running statistics read, never changed). With ``p_s = softmax(scores_s)`` (the
        outputs for ``loss='mse'``) stacked ``(n_samples, N, C)``: ``mean``/``std`` over axis 0 (ddof 0,
        as Géron's code). Passes run stacked (``x`` tiled, ~1 MB chunks); dropout layer ``i`` draws from
        child ``i`` of ``SeedSequence(seed)``: the masks of a loop of single passes, the numbers to BLAS
        rounding. The network is left as it was; calls run one at a time (a lock; training the same
        network from another thread meanwhile is not supported).

        Parameters
        ----------
        x : numpy.ndarray
            ``(N, input_size)``, ``N >= 1``.
        n_samples : int
            Passes, >= 1.
        rng : None, int or numpy.random.Generator
            An int seeds the masks (same seed, same numbers); a Generator gives one draw for the seed
            (and advances); ``None`` takes it from NumPy's global generator (``np.random.seed`` applies).

        Returns
        -------
        mean, std : numpy.ndarray
            ``(N, output_size)`` in the network's dtype (float32 stays float32).

        Raises
        ------
        TypeError
            A network without dropout layers (``MultiLayerNet``, ``use_dropout=False``). All arguments
            are checked before anything runs.
        """
        return _mcdropout.predict_mc(self, x, n_samples, rng)

    def _weight_decay(self):
        """The penalties: ``0.5 * λ * Σ sum(W**2)`` (L2), then ``+ λ₁ * Σ sum(|W|)`` (L1)."""
        lam, l1 = self.weight_decay_lambda, self.l1_lambda
        weights = [self.params[f"W{idx}"] for idx in range(1, self.hidden_layer_num + 2)]
        decay = 0
        if lam != 0:
            for W in weights:
                decay += 0.5 * lam * np.sum(W**2)
        if l1 != 0:
            decay = decay + sum(l1 * np.sum(np.abs(W)) for W in weights)
        return decay

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False):
        """Cross-entropy loss (``loss='mse'``: ``0.5 * sum((y - t)**2) / N``) plus ``0.5 * λ * Σ sum(W**2)``
        plus ``λ₁ * Σ sum(|W|)``.

        Parameters
        ----------
        x : numpy.ndarray
            Input batch.
        t : numpy.ndarray
            Labels ``(N,)`` or one-hot ``(N, output_size)``; for ``loss='mse'`` real targets
            ``(N, output_size)`` (or ``(N,)`` with one output).
        train_flg : bool
            Training mode (see :meth:`predict`).

        Returns
        -------
        float
            The loss (a NumPy scalar of the network's dtype).

        Notes
        -----
        ``x`` (real, ``(N, input_size)`` with ``N >= 1``; complex is refused, integers are cast) and
        ``t`` (labels in ``[0, output_size)`` or one-hot rows) are checked before any layer runs, so
        a rejected call leaves batch-norm statistics, dropout's random stream and parameters as they were.
        """
        x, _ = self._batch(x, t, "loss")
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

        Notes
        -----
        ``x`` and ``t`` are checked as :meth:`loss` checks them before any layer runs (labels in
        ``[0, output_size)``, one per row).
        """
        if self.loss_name == "mse":
            _checks.fail(f"{type(self).__name__}.accuracy", "the network", "a classifier (loss='cross_entropy'): "
                         "accuracy is not meaningful for regression; use score(x, t), the R²", "loss='mse'",
                         TypeError)
        x, labels = self._batch(x, t, "accuracy")
        y = np.argmax(self.predict(x, train_flg=False), axis=1)
        return float(np.sum(y == labels) / float(y.shape[0]))

    def score(self, x: np.ndarray, t: np.ndarray) -> float:
        """R² of ``predict(x)`` (evaluation mode) for ``loss='mse'``, :meth:`accuracy` for a classifier.

        ``R² = 1 - SS_res / SS_tot`` per output, averaged (:func:`fastdl.metrics.r2_score`, scikit-learn's).

        Parameters
        ----------
        x, t : numpy.ndarray
            Inputs and targets (checked as :meth:`loss` checks them).

        Returns
        -------
        float
            At most 1; 0 for predicting the mean of ``t``; negative for worse.
        """
        if self.loss_name != "mse":
            return self.accuracy(x, t)
        x, targets = self._batch(x, t, "score")
        return r2_score(targets, self.predict(x, train_flg=False))

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
            for name in self._activation_params(idx):
                grads[f"{name}{idx}"] = numerical_gradient(loss_w, self.params[f"{name}{idx}"])
        return grads

    def _activation_params(self, idx: int) -> list[str]:
        """Names of block ``idx``'s learnable activation parameters (none for most activations)."""
        if idx > self.hidden_layer_num:
            return []
        return [p.name for p in activations.get(self.activation).params]

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients by backpropagation (forward in training mode), with ``λ * W + λ₁ * sign(W)`` added to each ``dW``.

        Parameters
        ----------
        x, t : numpy.ndarray
            Batch and targets (labels or one-hot).

        Returns
        -------
        dict
            Same keys as ``params`` (in the book's order: ``W1, b1, gamma1, beta1, W2, ...``). With
            ``λ == λ₁ == 0`` the arrays are the layers' own ``dW``/``db`` (as the book returns ``db``): use
            them before the next backward pass. On the fused path (see the module notes) they are
            views of one gradient buffer, the same objects every call, overwritten by the next call.

        Notes
        -----
        ``x`` and ``t`` are validated before anything runs: a rejected call changes nothing,
        batch-norm running statistics included. The loss is not returned (as in the book), but its
        NaN/Inf is still reported per :func:`fastdl.errstate`, as are non-finite batch statistics.

        Profiler hook: when ``net._phase_times`` is a dict, the fused path adds the seconds
        (``time.perf_counter`` deltas) it spends per phase to its entries ``'validate'`` (argument
        checks, buffers), ``'gemm'`` (every ``np.dot``), ``'forward'`` (the hidden blocks' epilogue
        kernels), ``'loss'`` (softmax, loss and its gradient), ``'backward'`` (the blocks' backward
        kernels) and ``'total'`` (the whole call); ``None`` (the default) costs nothing. The layer
        path does not fill it.
        """
        fused = self._fused
        if fused is not None:
            grads = fused.gradient(self, x, t)
            if grads is not None:
                return grads
        x, _ = self._batch(x, t, "gradient")  # (again in loss: a subclass may override it)
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        skip = self._frozen
        if skip:  # stops below the lowest trainable layer (fastdl.transfer)
            transfer.backward_frozen(self, dout)
        else:
            for layer in reversed(self.layers.values()):
                dout = layer.backward(dout)
        lam, l1 = self.weight_decay_lambda, self.l1_lambda
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{idx}"]
            if f"W{idx}" not in skip:
                grads[f"W{idx}"] = affine.dW + lam * self.params[f"W{idx}"] if lam else affine.dW
                if l1:  # (the subgradient 0 at W == 0: np.sign)
                    grads[f"W{idx}"] = grads[f"W{idx}"] + l1 * np.sign(self.params[f"W{idx}"])
            if f"b{idx}" not in skip:
                grads[f"b{idx}"] = affine.db
            if self.use_batchnorm and idx != self.hidden_layer_num + 1 and f"gamma{idx}" not in skip:
                bn = self.layers[f"BatchNorm{idx}"]
                grads[f"gamma{idx}"] = bn.dgamma
                grads[f"beta{idx}"] = bn.dbeta
            for name in self._activation_params(idx):
                if f"{name}{idx}" not in skip:
                    grads[f"{name}{idx}"] = getattr(self.layers[f"Activation_function{idx}"], "d" + name)
        return grads

    def _set_frozen(self, keys: list[str]) -> None:
        """Freeze exactly ``keys`` (see :class:`fastdl.transfer.Freezable`)."""
        self._frozen = tuple(keys)
        self._index_layers()  # frozen batch norm: inference mode
        self._fused = FusedStep(self) if self._fused_eligible() else None  # (re-packs: trainable keys last)

    def save(self, path) -> Path:
        """Write the network to an ``.npz`` file, atomically and without pickle; read it with :func:`load`.

        The file holds every entry of ``params``, the batch-norm running statistics and momenta,
        the state of any dropout ``Generator`` and the constructor arguments (JSON text); see
        :mod:`fastdl._archive` for the atomic write. Networks on the ``'fastdl'`` and
        ``'reference'`` backends load as they were saved; another layer module is recorded by
        name and must be passed to :func:`load` again.

        Parameters
        ----------
        path : str or Path
            Target file (its directory is created; an existing file is replaced whole).

        Returns
        -------
        pathlib.Path
        """
        return _netio.save(self, path)

    def __repr__(self) -> str:
        sizes = [self.input_size, *self.hidden_size_list, self.output_size]
        extras = "".join([", batchnorm" if self.use_batchnorm else "",
                          f", alpha_dropout={self.dropout_ration}" if self.use_alpha_dropout else
                          f", dropout={self.dropout_ration}" if self.use_dropout else "",
                          f", weight_decay={self.weight_decay_lambda}" if self.weight_decay_lambda else "",
                          f", l1={self.l1_lambda}" if self.l1_lambda else "",
                          f", loss={self.loss_name}" if self.loss_name != "cross_entropy" else ""])
        return (f"{type(self).__name__}({'-'.join(map(str, sizes))}, {self.activation}{extras}, "
                f"{self.dtype.name}, backend={getattr(self.backend, '__name__', type(self.backend).__name__)})")


def load(path, backend=None) -> MultiLayerNetExtend:
    """Read a network written by :meth:`MultiLayerNetExtend.save` (or the network of a trainer checkpoint).

    The file is read with ``allow_pickle=False`` and verified whole before the network is built:
    zip CRCs, every array's presence, shape and dtype against the saved constructor arguments.
    NumPy's global random state is left as it was. Predictions equal the saved network's bit for bit.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.
    backend : None, str or module
        Layer implementation; default: the saved one (a module other than ``'fastdl'`` or
        ``'reference'`` must be given here: names read from a file are not imported).

    Returns
    -------
    MultiLayerNet or MultiLayerNetExtend

    Raises
    ------
    fastdl.CheckpointError
        (a ValueError) A missing, truncated or corrupted file, or an array of another shape or
        dtype than the config implies; the message names the file and the first mismatch.
    """
    return _netio.load(path, NET_CLASSES, backend)


class MultiLayerNet(MultiLayerNetExtend):
    """Fully connected ReLU/sigmoid network (the book's ``MultiLayerNet``): no batch norm, no dropout.

    Layers: ``Affine{i}``, ``Activation_function{i}`` per hidden layer, then ``Affine{L}`` and a
    ``SoftmaxWithLoss`` as ``last_layer`` (``IdentityWithLoss`` with ``loss='mse'``).

    Parameters
    ----------
    input_size : int
        Features per sample.
    hidden_size_list : list of int
        Units of each hidden layer.
    output_size : int
        Number of classes.
    activation : str
        Activation of the hidden layers (a name registered in :mod:`fastdl.activations`).
    weight_init_std : str or float
        Initialisation name or fixed std (see :mod:`fastdl.init`).
    weight_decay_lambda : float
        L2 strength λ.
    dtype : numpy dtype
        float64 (default) or float32.
    backend : None, str or module
        Layer implementation (see :func:`resolve_backend`).
    loss : {'cross_entropy', 'mse'}
        Classification (default) or regression output (see :class:`MultiLayerNetExtend`).
    l1_lambda : float
        L1 strength λ₁ (see :class:`MultiLayerNetExtend`).
    """

    _where = "MultiLayerNet"
    _saved_class = "MultiLayerNet"

    def __init__(self, input_size: int, hidden_size_list, output_size: int, activation: str = "relu",
                 weight_init_std: str | float = "relu", weight_decay_lambda: float = 0,
                 dtype=np.float64, backend=None, loss: str = "cross_entropy", l1_lambda: float = 0) -> None:
        super().__init__(input_size, hidden_size_list, output_size, activation=activation,
                         weight_init_std=weight_init_std, weight_decay_lambda=weight_decay_lambda,
                         dtype=dtype, backend=backend, loss=loss, l1_lambda=l1_lambda)


#: the classes a saved network may name (``net.save`` / :func:`load`, checkpoints)
NET_CLASSES = {"MultiLayerNetExtend": MultiLayerNetExtend, "MultiLayerNet": MultiLayerNet}
