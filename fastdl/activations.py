"""The activation registry: one record per activation, read by everything that names one.

Layers (:mod:`fastdl.layers`), :mod:`fastdl.functional`, ``MultiLayerNet(Extend)(activation=...)``,
the fused training step, ``fastdl train --activation``, ``fastdl profile --activation`` and the
benchmark matrix all look activations up here. Adding one is one :class:`Activation` record with
its two kernel drivers and its reference twin, passed to :func:`register`::

    register(Activation(
        name="softsign", layer="Softsign", saves="x", init="xavier",
        forward=softsign_forward, backward=softsign_backward,
        reference=RefSoftsign, torch="softsign", formula="x / (1 + |x|)"))

after which ``MultiLayerNetExtend(..., activation="softsign")`` trains with it (layer path and
fused step), ``fastdl.layers.Softsign`` is its layer and ``fastdl.functional.softsign`` /
``softsign_backward`` its functions.

Driver contract
    Drivers take flat C-contiguous arrays of one float dtype (the input's) and write their outputs;
    they validate nothing (callers do, before any kernel runs):

    * ``forward(x, out, *consts)``; ``forward(x, out, mask, *consts)`` when ``saves == 'mask'``
      (``mask`` a bool array the driver fills for the backward);
    * ``backward(dout, saved, dx, *consts)`` with ``saved`` the forward input (``saves='x'``), its
      output (``'y'``) or the mask (``'mask'``).

    Both must work in place (``out`` may be ``x``, ``dx`` may be ``dout``): the fused step runs them
    on its own buffers. ``consts`` are the record's ``options`` (scalar hyper-parameters such as a
    leaky slope) in the array's dtype, in the order declared.

Fused step
    A built-in may name kernel codes of :mod:`fastdl.kernels.fused` (``fused_forward``,
    ``fused_backward``): the activation then runs inside the block's compiled epilogue. Without a
    code, the fused step runs the epilogue with no activation (``LINEAR``) and calls the record's
    driver on the block's buffers, so every registered activation works in the fused step.

Learnable parameters (the hook for PReLU's slope)
    ``params`` lists :class:`Param` entries, one value per feature. A layer then takes the arrays as
    its first constructor arguments and keeps their gradients as ``d<name>``; a net puts them in
    ``params`` as ``<name>1, <name>2, ...``; drivers get 2-D ``(N, D)`` arrays followed by the
    parameter arrays (and, in the backward, the gradient arrays to write) before the constants.
    Nets with such an activation run the layer-by-layer path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _checks
from . import reference as _ref
from .init import INIT_NAMES
from .kernels import activations as _k
from .kernels import fused as _fused
from .kernels import smooth as _s

__all__ = ["SAVES", "Activation", "Param", "get", "names", "records", "register", "unregister"]

#: what a backward may need: the forward input, the forward output, or a boolean mask
SAVES = ("x", "y", "mask")


@dataclass(frozen=True)
class Param:
    """A learnable per-feature parameter of an activation (PReLU's ``alpha``).

    Attributes
    ----------
    name : str
        Stem of the key in a net's ``params`` (``'alpha'`` gives ``'alpha1'``, ``'alpha2'``, ...) and
        the layer attribute (the gradient is ``'d' + name``).
    init : float
        Initial value of every entry.
    """

    name: str
    init: float


@dataclass(frozen=True)
class Activation:
    """One activation: its kernels, what the backward needs, its twins and its defaults.

    Attributes
    ----------
    name : str
        Registry name (lower case), e.g. ``'relu'``.
    layer : str or type
        The fastdl layer class, or its class name: a name not defined in :mod:`fastdl.layers` gets a
        generated :class:`fastdl.layers.ActivationLayer` subclass (``fastdl.layers.<name>``).
    forward, backward : callable
        Kernel drivers (see the module notes for the contract).
    saves : {'x', 'y', 'mask'}
        What the backward needs; the layer keeps it as ``.x``, ``.out`` or ``.mask``.
    reference : type
        Plain NumPy layer class with the book's ``forward(x)``/``backward(dout)`` (the oracle, and the
        class a ``backend='reference'`` net uses).
    torch : str or callable or None
        PyTorch twin for the benchmark: a name in ``torch.nn.functional`` or a callable on a tensor.
    init : str
        Default weight initialisation (a :data:`fastdl.init.INIT_NAMES` entry): ``'he'`` for the ReLU
        family, ``'xavier'`` for sigmoid/tanh, ``'lecun'`` for SELU.
    aliases : tuple of str
        Other accepted names.
    fused_forward, fused_backward : int or None
        Codes of :mod:`fastdl.kernels.fused` run inside the fused step's epilogues (None: the driver).
    options : tuple of (str, float)
        Scalar hyper-parameters and defaults, passed to the drivers as trailing constants.
    params : tuple of Param
        Learnable per-feature parameters (see the module notes).
    formula : str
        One line for docstrings and tables.
    """

    name: str
    layer: str | type
    forward: Callable
    backward: Callable
    saves: str
    reference: type
    torch: str | Callable | None = None
    init: str = "he"
    aliases: tuple[str, ...] = ()
    fused_forward: int | None = None
    fused_backward: int | None = None
    options: tuple[tuple[str, float], ...] = ()
    params: tuple[Param, ...] = field(default=())
    formula: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The name and its aliases."""
        return (self.name, *self.aliases)


_RECORDS: dict[str, Activation] = {}  # name -> record, in registration order
_LOOKUP: dict[str, Activation] = {}  # name or alias -> record

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def register(record: Activation, *, replace: bool = False) -> Activation:
    """Add ``record`` to the registry (validated first: a rejected record changes nothing).

    Parameters
    ----------
    record : Activation
    replace : bool
        Allow replacing a record of the same name (its aliases are replaced too).

    Returns
    -------
    Activation
        ``record``.
    """
    where = "fastdl.activations.register"
    if not isinstance(record, Activation):
        _checks.fail(where, "record", "an Activation", _checks.describe(record), TypeError)
    for n in record.names:
        if not isinstance(n, str) or not _NAME.match(n):
            _checks.fail(where, "name", "a lower-case identifier such as 'leaky_relu'", repr(n))
    if record.saves not in SAVES:
        _checks.fail(where, "saves", f"one of {SAVES}", repr(record.saves))
    if record.init not in INIT_NAMES:
        _checks.fail(where, "init", f"one of {INIT_NAMES}", repr(record.init))
    if not (callable(record.forward) and callable(record.backward)):
        _checks.fail(where, "forward/backward", "callable kernel drivers", "a non-callable", TypeError)
    if not isinstance(record.reference, type):
        _checks.fail(where, "reference", "a layer class", _checks.describe(record.reference), TypeError)
    if not (isinstance(record.layer, type) or (isinstance(record.layer, str) and record.layer.isidentifier())):
        _checks.fail(where, "layer", "a class or a class name", repr(record.layer), TypeError)
    codes = (None, _fused.RELU, _fused.SIGMOID)
    if record.fused_forward not in codes or record.fused_backward not in codes:
        _checks.fail(where, "fused_forward/fused_backward", "None or a code of fastdl.kernels.fused",
                     repr((record.fused_forward, record.fused_backward)))
    if record.params and record.saves == "mask":
        _checks.fail(where, "saves", "'x' or 'y' for an activation with learnable parameters", "'mask'")
    old = _RECORDS.get(record.name)
    if old is not None and not replace:
        _checks.fail(where, "name", "not registered yet (pass replace=True to replace it)", repr(record.name))
    for n in record.names:
        other = _LOOKUP.get(n)
        if other is not None and other is not old:
            _checks.fail(where, "name", f"a name no other activation uses ({n!r} is {other.name!r}'s)", repr(n))
    if any(r.layer == record.layer and r is not old for r in _RECORDS.values()):
        _checks.fail(where, "layer", "a layer no other activation uses", repr(record.layer))
    if old is not None:
        unregister(old.name)
    _RECORDS[record.name] = record
    for n in record.names:
        _LOOKUP[n] = record
    return record


def unregister(name: str) -> Activation:
    """Remove an activation (by name or alias) and return its record."""
    record = get(name, "fastdl.activations.unregister")
    del _RECORDS[record.name]
    for n in record.names:
        _LOOKUP.pop(n, None)
    return record


def get(name, where: str = "fastdl.activations.get", argument: str = "activation") -> Activation:
    """The record of ``name`` (case-insensitive, aliases accepted); ``ValueError`` in the house wording if unknown."""
    record = _LOOKUP.get(name.lower()) if isinstance(name, str) else None
    if record is None:
        _checks.fail(where, argument, f"one of {names()} (registered activations)", repr(name))
    return record


def names() -> tuple[str, ...]:
    """The registered names, in registration order (aliases not included)."""
    return tuple(_RECORDS)


def records() -> tuple[Activation, ...]:
    """The registered records, in registration order."""
    return tuple(_RECORDS.values())


# -- the built-ins ------------------------------------------------------------------------------------

register(Activation(
    name="relu", layer="Relu", forward=_k.relu_forward_out, backward=_k.relu_backward_out, saves="y",
    reference=_ref.Relu, torch="relu", init="he",
    # the backward tests ``out <= 0`` (exactly ``x <= 0``): no mask buffer, here or in the fused kernel; the
    # layer's ``mask`` attribute is computed from ``out`` when read
    fused_forward=_fused.RELU, fused_backward=_fused.RELU,
    formula="max(0, x); NaN passes"))

register(Activation(
    name="sigmoid", layer="Sigmoid", forward=_k.sigmoid_forward, backward=_k.sigmoid_backward, saves="y",
    reference=_ref.Sigmoid, torch="sigmoid", init="xavier",
    # forward by the driver (NumPy's vectorized exp on the block's buffer), backward in the kernel
    fused_forward=None, fused_backward=_fused.SIGMOID,
    formula="1 / (1 + exp(-x))"))


# -- Hands-On ML ch. 11 (PyTorch's definitions; kernels in fastdl.kernels.smooth) ---------------------


def _torch_prelu(x):
    """PyTorch's PReLU with the layer's initial slope (0.25 on every feature), for the benchmark."""
    import torch

    return torch.nn.functional.prelu(x, torch.full((x.shape[-1],), 0.25, dtype=x.dtype))


def _torch_gelu_tanh(x):
    """PyTorch's GELU in its tanh form."""
    import torch

    return torch.nn.functional.gelu(x, approximate="tanh")


register(Activation(
    name="tanh", layer="Tanh", forward=_s.tanh_forward, backward=_s.tanh_backward, saves="y",
    reference=_ref.Tanh, torch="tanh", init="xavier",
    formula="tanh(x); backward dout * (1 - y*y)"))

register(Activation(
    name="leaky_relu", layer="LeakyRelu", forward=_s.leaky_relu_forward, backward=_s.leaky_relu_backward,
    saves="mask", reference=_ref.LeakyRelu, torch="leaky_relu", init="he", options=(("alpha", 0.01),),
    formula="x if x > 0 else alpha*x; alpha = 0.01 as PyTorch (Keras' LeakyReLU layer defaults to 0.3)"))

register(Activation(
    name="prelu", layer="PRelu", forward=_s.prelu_forward, backward=_s.prelu_backward, saves="x",
    reference=_ref.PRelu, torch=_torch_prelu, init="he", params=(Param("alpha", 0.25),),
    formula="x if x > 0 else alpha[j]*x, a learned slope per feature j (init 0.25; dalpha after backward)"))

register(Activation(
    name="elu", layer="Elu", forward=_s.elu_forward, backward=_s.elu_backward, saves="x",
    reference=_ref.Elu, torch="elu", init="he", options=(("alpha", 1.0),),
    formula="x if x > 0 else alpha*(exp(x) - 1)"))

register(Activation(
    name="selu", layer="Selu", forward=_s.selu_forward, backward=_s.selu_backward, saves="x",
    reference=_ref.Selu, torch="selu", init="lecun",
    formula=f"scale*(x if x > 0 else alpha*(exp(x) - 1)), scale = {_s.SELU_SCALE!r}, alpha = {_s.SELU_ALPHA!r}"))

register(Activation(
    name="gelu", layer="Gelu", forward=_s.gelu_forward, backward=_s.gelu_backward, saves="x",
    reference=_ref.Gelu, torch="gelu", init="he",
    formula="0.5*x*(1 + erf(x/sqrt(2))) (approximate='none'; Gelu(approximate='tanh') is 'gelu_tanh')"))

register(Activation(
    name="gelu_tanh", layer="GeluTanh", forward=_s.gelu_tanh_forward, backward=_s.gelu_tanh_backward, saves="x",
    reference=_ref.GeluTanh, torch=_torch_gelu_tanh, init="he",
    formula="0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3))) (GELU's tanh form)"))

register(Activation(
    name="silu", layer="Silu", aliases=("swish",), forward=_s.silu_forward, backward=_s.silu_backward, saves="x",
    reference=_ref.Silu, torch="silu", init="he",
    formula="x*sigmoid(x)"))

register(Activation(
    name="mish", layer="Mish", forward=_s.mish_forward, backward=_s.mish_backward, saves="x",
    reference=_ref.Mish, torch="mish", init="he",
    formula="x*tanh(softplus(x)), softplus(x) = log(1 + exp(x)), linear above 20 as PyTorch"))
