"""The optimizer rule table: one :class:`Rule` record per optimizer.

A record says everything fastdl needs to know about an update rule: its registry name and
aliases, its class name, the state arrays it keeps, its hyper-parameters (defaults and valid
ranges), its step counters, how the kernel's per-step constants follow from the hyper-parameters
and the step number, its compiled worker (:mod:`fastdl.kernels.optim`), the formula for the
docstrings, the memory traffic per element, and its twins in :mod:`fastdl.reference` and
``torch.optim``. The classes, the ``*_step`` functions, :data:`fastdl.optim.OPTIMIZERS`, the
Trainer's names, the CLI choices, the profiler and the benchmark matrix read it.

Adding an optimizer: a worker loop in :mod:`fastdl.kernels.optim` (``@worker``), a record in
:data:`BUILTIN`, a class in :mod:`fastdl.reference`. A rule defined elsewhere (a test, a user's
package) is a record whose kernel is compiled with ``fastdl._jit.jit``, passed to
:func:`fastdl.optim.register` (or :func:`fastdl.optim.registered` for a while).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import _checks
from ..kernels import optim as _k

__all__ = ["BUILTIN", "MAX_COUNT", "Counter", "Hyper", "Rule", "State"]

#: Largest value an integer step counter may reach (it is stored as int64 in checkpoints).
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class Hyper:
    """A hyper-parameter: constructor argument, attribute, validated on every assignment.

    ``default`` is the constructor's default; the value must be a finite real number ``> 0``
    (``>= 0`` with ``allow_zero``) and ``< upper`` when ``upper`` is given.
    """

    name: str
    default: float
    doc: str
    allow_zero: bool = False
    upper: float | None = None

    def check(self, value, where: str, name: str | None = None) -> float:
        """``value`` as a float, or the house error naming ``name`` (default: the hyper-parameter)."""
        return _checks.positive_number(value, name or self.name, where, allow_zero=self.allow_zero,
                                       upper=self.upper)

    @property
    def range(self) -> str:
        """The valid range in words (``'> 0'``, ``'in [0, 1)'``, ...)."""
        if self.upper is None:
            return ">= 0" if self.allow_zero else "> 0"
        return f"in {'[' if self.allow_zero else '('}0, {self.upper:g})"


@dataclass(frozen=True)
class State:
    """A state array per parameter (``self.<name>[key]``), zeros of the parameter's shape at first."""

    name: str
    doc: str


@dataclass(frozen=True)
class Counter:
    """A Python-side per-step value kept on the optimizer (Adam's ``iter``).

    ``initial`` is its value before the first update: an int (a step count, ``+ 1`` per update
    unless the rule has an ``advance``) or a float (a running product such as Nadam's momentum
    cache, which needs the rule's ``advance``). ``arg`` names it in the ``*_step`` functions, which
    take its value *after* the update has counted it (Adam's ``t = iter + 1``).
    """

    name: str
    arg: str
    doc: str
    initial: int | float = 0

    def check(self, value, where: str, name: str, *, low: int = 0, high: int = MAX_COUNT - 1) -> int | float:
        """``value`` as an int in ``[low, high]`` (a float counter: a finite float), or the house error."""
        if isinstance(self.initial, float):
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
                _checks.fail(where, name, "a finite real number", _checks.describe(value), TypeError)
            if not math.isfinite(value):
                _checks.fail(where, name, "a finite real number", repr(value))
            return float(value)
        bound = {MAX_COUNT: "2**63 - 1", MAX_COUNT - 1: "2**63 - 2"}.get(high, str(high))
        expected = f"an integer in [{low}, {bound}]"
        if type(value) is not int:
            if isinstance(value, bool | np.bool_):
                _checks.fail(where, name, expected, _checks.describe(value), TypeError)
            try:
                value = operator.index(value)
            except TypeError:
                _checks.fail(where, name, expected, _checks.describe(value), TypeError)
        if not low <= value <= high:
            _checks.fail(where, name, expected, repr(value))
        return value


@dataclass(frozen=True, eq=False)
class Rule:
    """One optimizer: what the class, the step function, the kernels and the tools need.

    Attributes
    ----------
    name : str
        Registry key, lower case (``'adam'``); ``aliases`` are other accepted spellings.
    class_name : str
        Name of the generated class (``'Adam'``) and of the reference class unless ``reference`` says otherwise.
    kernel : numba dispatcher
        The compiled worker ``kernel(p, g, s1, s2, s3, c) -> non-finite count`` (see :mod:`fastdl.kernels.optim`).
    hyper : tuple of Hyper
        Constructor arguments, in order.
    constants : callable
        ``constants(*hyper values, *counters) -> tuple`` of at most 8 Python floats, the kernel's ``c[0..7]``
        (counters as they are *after* the update counted them). Computed in Python float64 once per
        update, then rounded to the parameter dtype.
    state : tuple of State
        At most three state arrays, in the order the worker takes them (``s1``, ``s2``, ``s3``).
    counters : tuple of Counter
        Step counters; each update adds 1 to each before ``constants`` reads them, or, with
        ``advance``, sets them to ``advance(*hyper values, *counters)`` (a tuple).
    summary, formula, notes : str
        First docstring line; the update rule, one statement per line, in the kernel's operation
        order; where eps sits and where Keras/PyTorch differ.
    step_required : tuple of str
        Hyper-parameters the ``*_step`` function takes without a default (the book's signatures).
    traffic : int, optional
        Arrays of the parameter's size read plus written per element (for GB/s); default
        ``3 + 2 * len(state)`` (read p, g and each state; write p and each state).
    reference : str or class, optional
        The plain NumPy twin: a class name in :mod:`fastdl.reference` (default ``class_name``) or a class.
    torch : tuple (str, dict) or None
        ``torch.optim`` class name and keyword arguments (besides ``lr``) of the PyTorch twin with the
        same defaults, for the benchmark; None when PyTorch has none.
    """

    name: str
    class_name: str
    kernel: Callable
    hyper: tuple[Hyper, ...]
    constants: Callable[..., tuple]
    state: tuple[State, ...] = ()
    counters: tuple[Counter, ...] = ()
    summary: str = ""
    formula: str = ""
    notes: str = ""
    step_required: tuple[str, ...] = ()
    traffic: int | None = None
    reference: str | type | None = None
    torch: tuple[str, dict] | None = None
    aliases: tuple[str, ...] = ()
    advance: Callable[..., tuple] | None = None
    kind: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        where = f"Rule({self.name!r})"
        if not self.name or self.name != self.name.lower():
            _checks.fail(where, "name", "a non-empty lower-case string", repr(self.name))
        if len(self.state) > 3:
            _checks.fail(where, "state", "at most three state arrays (the kernel takes s1, s2, s3)",
                         repr([s.name for s in self.state]))
        names = [h.name for h in self.hyper]
        if not set(self.step_required) <= set(names):
            _checks.fail(where, "step_required", f"names among {names}", repr(self.step_required))
        if self.advance is None and any(isinstance(c.initial, float) for c in self.counters):
            _checks.fail(where, "advance", "a function when a counter is a float (it cannot count by 1)", "None")
        object.__setattr__(self, "kind", _k.KINDS.get(self.kernel))  # None: a worker from outside the kernels
        if self.traffic is None:
            object.__setattr__(self, "traffic", 3 + 2 * len(self.state))
        if self.reference is None:
            object.__setattr__(self, "reference", self.class_name)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.state)

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hyper)

    @property
    def counter_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.counters)

    @property
    def defaults(self) -> dict[str, float]:
        return {h.name: h.default for h in self.hyper}

    def reference_class(self, module=None) -> type:
        """The reference twin: ``reference`` itself when it is a class, else looked up in ``module``
        (default :mod:`fastdl.reference`)."""
        if isinstance(self.reference, type):
            return self.reference
        if module is None:
            from .. import reference as module
        return getattr(module, self.reference)


# --------------------------------------------------------------------------------------------
# The built-in rules (the book's six, then Hands-On ML ch. 11's three).
# Constants: Python floats in the kernel's c[0..] order.


def _lr(default: float) -> Hyper:
    return Hyper("lr", default, "Learning rate")


def _eps(where: str) -> Hyper:
    return Hyper("eps", 1e-7, f"Added to ``{where}``")


def _betas() -> tuple[Hyper, Hyper]:
    return (Hyper("beta1", 0.9, "Decay of the first moment", allow_zero=True, upper=1.0),
            Hyper("beta2", 0.999, "Decay of the second moment", allow_zero=True, upper=1.0))


def _steps() -> Counter:
    return Counter("iter", "t", "Updates done so far; the next update is step ``t = iter + 1``")


def _sgd_constants(lr: float) -> tuple:
    return (lr,)


def _momentum_constants(lr: float, momentum: float) -> tuple:
    return (lr, momentum)


def _nesterov_constants(lr: float, momentum: float) -> tuple:
    return (lr, momentum, momentum * momentum, (1 + momentum) * lr)


def _adagrad_constants(lr: float, eps: float) -> tuple:
    return (lr, eps)


def _rmsprop_constants(lr: float, decay_rate: float, eps: float) -> tuple:
    return (lr, eps, decay_rate, 1 - decay_rate)


def _adam_constants(lr: float, beta1: float, beta2: float, eps: float, t: int) -> tuple:
    lr_t = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    return (lr_t, eps, 1 - beta1, 1 - beta2)


def _adamax_constants(lr: float, beta1: float, beta2: float, eps: float, t: int) -> tuple:
    return (lr / (1.0 - beta1**t), eps, 1 - beta1, beta2)


def _nadam_schedule(beta1: float, t: int) -> float:
    """Keras 3's momentum cache ``u_t = beta1 * (1 - 0.5 * 0.96**t)``."""
    return beta1 * (1.0 - 0.5 * 0.96**t)


def _nadam_advance(lr: float, beta1: float, beta2: float, eps: float, it: int, u_product: float) -> tuple:
    t = it + 1
    return (t, u_product * beta1 * (1.0 - 0.5 * 0.96**t))


def _nadam_constants(lr: float, beta1: float, beta2: float, eps: float, t: int, u_product: float) -> tuple:
    if not 0.0 <= u_product < 1.0:  # (1 after no step; 1 - u_product divides)
        _checks.fail("Nadam", "u_product", "in [0, 1) (the product of the momentum cache over the steps done)",
                     repr(u_product))
    u_t = _nadam_schedule(beta1, t)
    u_next = _nadam_schedule(beta1, t + 1)
    return (lr * u_next / (1.0 - u_product * u_next), lr * (1.0 - u_t) / (1.0 - u_product),
            1.0 - beta2**t, eps, 1 - beta1, 1 - beta2)


def _adamw_constants(lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, t: int) -> tuple:
    return (*_adam_constants(lr, beta1, beta2, eps, t), lr * weight_decay)


#: what Momentum and Nesterov share: hyper-parameters, the velocity, the step functions' signature
_VELOCITY_RULE = {"hyper": (_lr(0.01), Hyper("momentum", 0.9, "Velocity decay", allow_zero=True, upper=1.0)),
                  "state": (State("v", "Velocity"),), "step_required": ("lr", "momentum")}

BUILTIN: tuple[Rule, ...] = (
    Rule(
        name="sgd", class_name="SGD", kernel=_k.sgd, hyper=(_lr(0.01),), constants=_sgd_constants,
        summary="Stochastic gradient descent.",
        formula="p -= lr * g",
        step_required=("lr",), torch=("SGD", {}),
    ),
    Rule(
        name="momentum", class_name="Momentum", kernel=_k.momentum, constants=_momentum_constants, **_VELOCITY_RULE,
        summary="SGD with (heavy-ball) momentum, as the book writes it.",
        formula="v = momentum * v - lr * g\np += v",
        notes="PyTorch's ``SGD(momentum=...)`` keeps ``b = momentum * b + g`` and steps ``p -= lr * b``: the "
              "same trajectory for a constant ``lr``, different when ``lr`` changes between steps.",
        torch=("SGD", {"momentum": 0.9}),
    ),
    Rule(
        name="nesterov", class_name="Nesterov", kernel=_k.nesterov, constants=_nesterov_constants, **_VELOCITY_RULE,
        summary="Nesterov accelerated gradient in the book's reformulation (Sutskever et al., 2013).",
        formula="p += (momentum * momentum) * v\np -= ((1 + momentum) * lr) * g\nv *= momentum\nv -= lr * g",
        notes="As the book's repository has it since its January 2021 fix: the parameters step with the "
              "*old* ``v``, then ``v`` is updated (fastdl before 0.2 stepped with the new ``v``). PyTorch's "
              "``SGD(nesterov=True)`` uses ``b = momentum * b + g``, ``p -= lr * (g + momentum * b)``, equal "
              "for a constant ``lr`` up to rounding (``v = -lr * b``).",
        torch=("SGD", {"momentum": 0.9, "nesterov": True}),
    ),
    Rule(
        name="adagrad", class_name="AdaGrad", kernel=_k.adagrad, hyper=(_lr(0.01), _eps("sqrt(h)")),
        state=(State("h", "Sum of squared gradients"),), constants=_adagrad_constants,
        summary="AdaGrad (Duchi et al., 2011).",
        formula="h += g * g\np -= (lr * g) / (sqrt(h) + eps)",
        notes="``eps`` sits outside the square root (the book adds ``1e-7``); PyTorch's ``Adagrad`` also adds "
              "it outside, with a default of ``1e-10``.",
        step_required=("lr",), torch=("Adagrad", {"eps": 1e-7}),
    ),
    Rule(
        name="rmsprop", class_name="RMSprop", kernel=_k.rmsprop,
        hyper=(_lr(0.01), Hyper("decay_rate", 0.99, "Decay of the running mean", upper=1.0), _eps("sqrt(h)")),
        state=(State("h", "Running mean of squared gradients"),), constants=_rmsprop_constants,
        summary="RMSprop (Tieleman & Hinton, 2012).",
        formula="h *= decay_rate\nh += ((1 - decay_rate) * g) * g\np -= (lr * g) / (sqrt(h) + eps)",
        notes="``eps`` sits outside the square root, as in PyTorch's ``RMSprop`` (whose ``alpha`` is "
              "``decay_rate`` and whose default ``eps`` is ``1e-8``).",
        step_required=("lr",), torch=("RMSprop", {"alpha": 0.99, "eps": 1e-7}), aliases=("rmsprpo",),
    ),
    Rule(
        name="adam", class_name="Adam", kernel=_k.adam,
        hyper=(_lr(0.001), *_betas(), _eps("sqrt(v)")),
        state=(State("m", "First moment"), State("v", "Second moment")),
        counters=(_steps(),),
        constants=_adam_constants,
        summary="Adam (Kingma & Ba, 2015) in the book's form: bias corrections folded into the step size.",
        formula="t = iter + 1                                        # iter counts the updates\n"
                "lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)     # Python float64, then the param dtype\n"
                "m += (1 - beta1) * (g - m)\nv += (1 - beta2) * (g * g - v)\np -= (lr_t * m) / (sqrt(v) + eps)",
        notes="The paper and PyTorch divide the bias-corrected moments, ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` "
              "with ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``, so their ``eps`` is added "
              "after dividing ``sqrt(v)`` by ``sqrt(1 - beta2**t)``; here (and in Keras 3) ``eps`` is added to the "
              "uncorrected ``sqrt(v)``. The two agree when ``eps`` is negligible against ``sqrt(v)``. ``eps`` "
              "defaults to ``1e-7`` (PyTorch ``1e-8``).",
        torch=("Adam", {"eps": 1e-7}),
    ),
    Rule(
        name="adamax", class_name="AdaMax", kernel=_k.adamax, hyper=(_lr(0.001), *_betas(), _eps("u")),
        state=(State("m", "First moment"), State("u", "Exponentially weighted infinity norm")),
        counters=(_steps(),), constants=_adamax_constants,
        summary="AdaMax (Kingma & Ba, 2015, section 7.1) as Keras 3's ``Adamax``.",
        formula="t = iter + 1\n"
                "lr_t = lr / (1 - beta1**t)                  # Python float64, then the param dtype\n"
                "m += (1 - beta1) * (g - m)\nu = maximum(beta2 * u, |g|)\np -= (lr_t * m) / (u + eps)",
        notes="Keras 3 computes ``p -= (lr * m) / ((1 - beta1**t) * (u + eps))`` (the same up to rounding). "
              "``eps`` is added to ``u``; PyTorch's ``Adamax`` adds it inside the maximum, "
              "``u = max(beta2 * u, |g| + eps)``, and divides by ``u`` (default ``eps`` ``1e-8``).",
        torch=("Adamax", {"eps": 1e-7}),
    ),
    Rule(
        name="nadam", class_name="Nadam", kernel=_k.nadam, hyper=(_lr(0.001), *_betas(), _eps("sqrt(v_hat)")),
        state=(State("m", "First moment"), State("v", "Second moment")),
        counters=(_steps(), Counter("u_product", "u_product", "Running product of the momentum cache "
                                    "``u_1 * ... * u_iter``", initial=1.0)),
        advance=_nadam_advance, constants=_nadam_constants,
        summary="Nadam (Dozat, 2016): Adam with Nesterov momentum, as Keras 3's ``Nadam``.",
        formula="t = iter + 1\n"
                "u_t = beta1 * (1 - 0.5 * 0.96**t)           # the momentum cache, Python float64\n"
                "u_next = beta1 * (1 - 0.5 * 0.96**(t + 1))\n"
                "u_product = u_product * beta1 * (1 - 0.5 * 0.96**t)   # u_1 * ... * u_t\n"
                "cm = lr * u_next / (1 - u_product * u_next)\n"
                "cg = lr * (1 - u_t) / (1 - u_product)\n"
                "bc2 = 1 - beta2**t                          # then each in the param dtype\n"
                "m += (1 - beta1) * (g - m)\nv += (1 - beta2) * (g * g - v)\n"
                "p -= (cm * m + cg * g) / (sqrt(v / bc2) + eps)",
        notes="Keras 3 writes the step as ``m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / "
              "(1 - u_product)``, ``v_hat = v / (1 - beta2**t)``, ``p -= m_hat * lr / (sqrt(v_hat) + eps)``; "
              "here ``lr`` is folded into the two coefficients (the same up to rounding). ``eps`` is added "
              "to the bias-corrected ``sqrt(v_hat)``, as in PyTorch's ``NAdam``. Keras 3 decays the cache "
              "with ``0.96**t``; Keras 2 and PyTorch use ``0.96**(0.004 * t)`` (PyTorch's "
              "``momentum_decay=0.004``), so PyTorch's ``NAdam(momentum_decay=1.0, eps=1e-7)`` is this rule.",
        torch=("NAdam", {"eps": 1e-7, "momentum_decay": 1.0}),
    ),
    Rule(
        name="adamw", class_name="AdamW", kernel=_k.adamw,
        hyper=(_lr(0.001), *_betas(), _eps("sqrt(v)"),
               Hyper("weight_decay", 0.004, "Decoupled weight decay (times ``lr``)", allow_zero=True)),
        state=(State("m", "First moment"), State("v", "Second moment")),
        counters=(_steps(),), constants=_adamw_constants,
        summary="AdamW (Loshchilov & Hutter, 2019) as Keras 3's ``AdamW``: decoupled decay, then Adam "
                "in the book's form.",
        formula="t = iter + 1\n"
                "lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)     # Python float64, then the param dtype\n"
                "wd_lr = lr * weight_decay\n"
                "m += (1 - beta1) * (g - m)\nv += (1 - beta2) * (g * g - v)\n"
                "p -= wd_lr * p                                      # the decay reads p before the step\n"
                "p -= (lr_t * m) / (sqrt(v) + eps)",
        notes="Keras 3 writes the decay ``p = p - p * weight_decay * lr`` (the same up to rounding) before "
              "its Adam step; ``eps`` is added to the uncorrected ``sqrt(v)`` as in fastdl's (and Keras') "
              "Adam. PyTorch's ``AdamW`` decays with ``p *= 1 - lr * weight_decay`` and steps the paper's Adam "
              "(``eps`` after the bias correction, default ``1e-8``), with a default ``weight_decay`` of ``0.01``.",
        torch=("AdamW", {"eps": 1e-7, "weight_decay": 0.004}),
    ),
)
