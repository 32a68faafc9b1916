"""The rows of the op matrix: how each layer/activation op and each optimizer's torch twin is set up.

* :data:`LAYER_TABLE` -- layer/activation name -> :class:`LayerOp`: a setup per implementation
  (``reference``, ``fastdl``, ``torch``) and a work model. A row gives the ops ``<name>-forward``
  and ``<name>-backward`` (and ``<name>-fwd-bwd`` when ``fwd_bwd`` is set); an implementation
  without a setup has no column.
* :func:`torch_twins` -- optimizer name -> its PyTorch twin (the rules' own, plus :data:`TORCH_OPTIMIZERS`);
  a name without one has no torch column.

How to add a row: :mod:`fastdl.benchmark`. :mod:`fastdl.benchmark.cases` turns rows into cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import activations, layers, reference
from .traffic import activation_model, batchnorm_model, dropout_model, gemm_model, softmax_loss_model, streams


class Unavailable(RuntimeError):
    """An implementation cannot run here (torch not installed, an op without this implementation)."""


def torch_module():
    """``torch``, imported on first use: it is optional, and importing it takes about a second."""
    try:
        import torch
    except ImportError as exc:
        raise Unavailable("torch is not installed") from exc
    return torch


# ----------------------------------------------------------------------------------------------
# layer ops
# ----------------------------------------------------------------------------------------------

class LayerData(NamedTuple):
    """The generated input of one layer case: ``x`` of shape ``(n, d)``; ``h`` is affine's output width."""

    rng: np.random.Generator
    n: int
    d: int
    h: int
    x: np.ndarray
    dtype: str
    seed: int


class Calls(NamedTuple):
    """What a setup returns: zero-argument callables. ``backward`` is valid once ``forward`` ran."""

    forward: Callable[[], object]
    backward: Callable[[], object]
    fwd_bwd: Callable[[], object]


@dataclass(frozen=True)
class LayerOp:
    """One row of :data:`LAYER_TABLE`.

    Attributes
    ----------
    setups : dict
        impl (``'reference'``, ``'fastdl'``, ``'torch'``) -> ``setup(data: LayerData) -> Calls``.
    work : callable
        ``work(direction, n, d, h, itemsize) -> (amount, unit)``, direction ``'forward'``,
        ``'backward'`` or ``'fwd-bwd'``: bytes of compulsory traffic (``'GB/s'``) or flops (``'GFLOP/s'``).
        The models of :mod:`fastdl.benchmark.traffic` (``streams``, ``ArrayModel``, ``GemmModel``) also
        give the roofline column its :class:`~fastdl.benchmark.traffic.Traffic` (a plain function: no
        roofline for that row).
    fwd_bwd : bool
        Also benchmark ``<name>-fwd-bwd``: forward then backward, the two calls of a training step.
    """

    setups: dict
    work: Callable[[str, int, int, int, int], tuple[float, str]]
    fwd_bwd: bool = False


def gemm_work(direction: str, n: int, d: int, h: int, itemsize: int) -> tuple[float, str]:
    """Work model of affine: 2ndh flops forward, 4ndh backward (dx and dW); see :class:`~.traffic.GemmModel`."""
    return gemm_model(direction, n, d, h, itemsize)


def numpy_calls(layer, forward: Callable[[], object], dout) -> Calls:
    """:class:`Calls` of a book-style layer (reference or fastdl): ``backward`` is ``layer.backward(dout)``."""
    def backward():
        return layer.backward(dout)

    return Calls(forward, backward, lambda: (forward(), layer.backward(dout)))


def torch_calls(forward: Callable[[], object], inputs: list, data: LayerData, rng: np.random.Generator) -> Calls:
    """:class:`Calls` of a PyTorch forward: backwards through ``torch.autograd.grad`` on ``inputs``."""
    torch = torch_module()
    out = forward()
    if out.ndim == 0:
        dout = torch.ones_like(out)
    else:
        dout = torch.from_numpy(rng.standard_normal(tuple(out.shape)).astype(data.dtype))
    return Calls(forward, lambda: torch.autograd.grad(out, inputs, dout, retain_graph=True),
                 lambda: torch.autograd.grad(forward(), inputs, dout))


def _torch_input(data: LayerData):
    """(torch, its dtype, ``x`` as a tensor needing a gradient, the rng of torch's own draws)."""
    torch = torch_module()
    tdt = {"float32": torch.float32, "float64": torch.float64}[data.dtype]
    return torch, tdt, torch.from_numpy(data.x).requires_grad_(True), np.random.default_rng(data.seed + 1)


def _dout(data: LayerData, width: int | None = None) -> np.ndarray:
    return data.rng.standard_normal((data.n, width or data.d)).astype(data.dtype)


def _affine(module):
    def setup(data: LayerData) -> Calls:
        W = (0.01 * data.rng.standard_normal((data.d, data.h))).astype(data.dtype)
        layer = module.Affine(W, np.zeros(data.h, dtype=data.dtype))
        return numpy_calls(layer, lambda: layer.forward(data.x), _dout(data, data.h))

    return setup


def _torch_affine(data: LayerData) -> Calls:
    torch, tdt, x, rng = _torch_input(data)
    W = torch.from_numpy((0.01 * rng.standard_normal((data.d, data.h))).astype(data.dtype)).requires_grad_(True)
    b = torch.zeros(data.h, dtype=tdt, requires_grad=True)
    return torch_calls(lambda: torch.addmm(b, x, W), [x, W, b], data, rng)


def _batchnorm(module):
    def setup(data: LayerData) -> Calls:
        layer = module.BatchNormalization(np.ones(data.d, dtype=data.dtype), np.zeros(data.d, dtype=data.dtype))
        return numpy_calls(layer, lambda: layer.forward(data.x, train_flg=True), _dout(data))

    return setup


def _torch_batchnorm(data: LayerData) -> Calls:
    torch, tdt, x, rng = _torch_input(data)
    F = torch.nn.functional
    gamma = torch.ones(data.d, dtype=tdt, requires_grad=True)
    beta = torch.zeros(data.d, dtype=tdt, requires_grad=True)
    rm, rv = torch.zeros(data.d, dtype=tdt), torch.ones(data.d, dtype=tdt)
    return torch_calls(lambda: F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-6),
                       [x, gamma, beta], data, rng)


def _dropout(module):
    def setup(data: LayerData) -> Calls:
        layer = module.Dropout(0.5)
        return numpy_calls(layer, lambda: layer.forward(data.x, train_flg=True), _dout(data))

    return setup


def _torch_dropout(data: LayerData) -> Calls:
    torch, _, x, rng = _torch_input(data)
    return torch_calls(lambda: torch.nn.functional.dropout(x, 0.5, training=True), [x], data, rng)


def _softmax_loss(module):
    def setup(data: LayerData) -> Calls:
        layer = module.SoftmaxWithLoss()
        t = data.rng.integers(0, data.d, data.n)
        return numpy_calls(layer, lambda: layer.forward(data.x, t), 1)

    return setup


def _torch_softmax_loss(data: LayerData) -> Calls:
    torch, _, x, rng = _torch_input(data)
    t = torch.from_numpy(rng.integers(0, data.d, data.n))
    return torch_calls(lambda: torch.nn.functional.cross_entropy(x, t), [x], data, rng)


def activation(layer_class: str, torch_function: str | None = None, forward: int = 2, backward: int = 3) -> LayerOp:
    """A :data:`LAYER_TABLE` row for an elementwise activation layer.

    Parameters
    ----------
    layer_class : str
        Class name in :mod:`fastdl.layers` and :mod:`fastdl.reference` (built without arguments).
    torch_function : str, optional
        Name in ``torch.nn.functional`` (or ``torch``) of the PyTorch twin; None: no torch column.
    forward, backward : int
        Arrays of ``n x d`` values moved per call (the work model).
    """
    def numpy_setup(module):
        def setup(data: LayerData) -> Calls:
            layer = getattr(module, layer_class)()
            return numpy_calls(layer, lambda: layer.forward(data.x), _dout(data))

        return setup

    def torch_setup(data: LayerData) -> Calls:
        torch, _, x, rng = _torch_input(data)
        fn = getattr(torch, torch_function, None) or getattr(torch.nn.functional, torch_function)
        return torch_calls(lambda: fn(x), [x], data, rng)

    setups = {"reference": numpy_setup(reference), "fastdl": numpy_setup(layers)}
    if torch_function is not None:
        setups["torch"] = torch_setup
    return LayerOp(setups, streams(forward, backward), fwd_bwd=True)


def registered_activation(record: activations.Activation) -> LayerOp:
    """The row of a record of :mod:`fastdl.activations`: its fastdl layer, its reference twin, its torch twin.

    Work model (:func:`~fastdl.benchmark.traffic.activation_model`): forward reads ``x`` and writes ``y``
    (and the mask); backward reads ``dout`` and what the record saves (``x`` or ``y``: one array; a mask:
    one byte per value) and writes ``dx``. Forward, backward and forward+backward are ops.
    """
    def setup_with(make_layer):
        def setup(data: LayerData) -> Calls:
            # learnable per-feature parameters (PReLU's slope) at their initial value
            layer = make_layer(*(np.full(data.d, p.init, dtype=data.dtype) for p in record.params))
            return numpy_calls(layer, lambda: layer.forward(data.x), _dout(data))

        return setup

    def torch_setup(data: LayerData) -> Calls:
        torch, _, x, rng = _torch_input(data)
        twin = record.torch
        fn = twin if callable(twin) else (getattr(torch, twin, None) or getattr(torch.nn.functional, twin))
        return torch_calls(lambda: fn(x), [x], data, rng)

    setups = {"reference": setup_with(record.reference),
              "fastdl": setup_with(lambda *params: layers.activation_layer(record.name)(*params))}
    if record.torch is not None:
        setups["torch"] = torch_setup
    return LayerOp(setups, activation_model(record), fwd_bwd=True)


#: layer name -> :class:`LayerOp`, for the rows that are not registered activations (add your own here); the
#: order is the order of the tables. :func:`layer_table` adds a row per registered activation.
LAYER_TABLE: dict[str, LayerOp] = {
    "affine": LayerOp({"reference": _affine(reference), "fastdl": _affine(layers), "torch": _torch_affine},
                      gemm_model),
    "batchnorm": LayerOp({"reference": _batchnorm(reference), "fastdl": _batchnorm(layers),
                          "torch": _torch_batchnorm}, batchnorm_model, fwd_bwd=True),
    "dropout": LayerOp({"reference": _dropout(reference), "fastdl": _dropout(layers), "torch": _torch_dropout},
                       dropout_model),
    "softmax-loss": LayerOp({"reference": _softmax_loss(reference), "fastdl": _softmax_loss(layers),
                             "torch": _torch_softmax_loss}, softmax_loss_model),
}


def layer_table() -> dict[str, LayerOp]:
    """Every layer row now: :data:`LAYER_TABLE`, then one per activation registered in :mod:`fastdl.activations`
    (read at each call, so an activation registered later joins the matrix; an explicit row wins)."""
    rows = dict(LAYER_TABLE)
    for record in activations.records():
        rows.setdefault(record.name, registered_activation(record))
    return rows


# ----------------------------------------------------------------------------------------------
# optimizer ops
# ----------------------------------------------------------------------------------------------

#: optimizer name -> (torch.optim class name, keyword arguments) for optimizers outside the rule table (a
#: class added to fastdl.optim.OPTIMIZERS alone); the rules' own twins come from their records
#: (:func:`torch_twins`). torch's AdaGrad/RMSprop/Adam place eps differently from the book: compare with
#: torch for speed, with the reference for numbers.
TORCH_OPTIMIZERS: dict[str, tuple[str, dict]] = {}


def torch_twins() -> dict[str, tuple[str, dict]]:
    """Every optimizer's PyTorch twin now: the ``torch`` field of each rule of :data:`fastdl.optim.RULES`,
    then :data:`TORCH_OPTIMIZERS` (which wins)."""
    from .. import optim

    twins = {name: rule.torch for name, rule in optim.RULES.items() if rule.torch is not None}
    twins.update(TORCH_OPTIMIZERS)
    return twins


def torch_optimizer(torch, name: str, params: list, lr: float):
    """The torch twin of optimizer ``name`` (:func:`torch_twins`), fused on CPU where supported, else foreach."""
    twins = torch_twins()
    if name not in twins:
        raise Unavailable(f"{name} has no torch twin")
    cls_name, kwargs = twins[name]
    cls = getattr(torch.optim, cls_name)
    for variant in ({"fused": True}, {"foreach": True}, {}):
        try:
            opt = cls(params, lr=lr, **kwargs, **variant)
            opt.step()  # fused CPU support is only checked on the first step
            return opt
        except (RuntimeError, TypeError, ValueError):
            continue
    raise Unavailable(f"torch optimizer for {name} could not be built")  # pragma: no cover
