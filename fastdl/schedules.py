"""Learning-rate schedules: plain callables ``schedule(step) -> float`` (Keras' names and formulas).

``step`` counts the updates done before the one the rate is for: 0 at the first update, as Keras'
``optimizer.iterations``. Every schedule here is a small picklable object (it travels to worker
processes in :mod:`fastdl.search`), evaluated in Python once per update, never per element, with
``get_config()`` for history files and ``from_config()`` to rebuild it. Schedules hold no state
(the step is the argument), so a checkpoint stores the optimizer's step counter, not the schedule.

Any callable taking the step works where a schedule is accepted; the classes below carry Keras 3's
class and argument names, so Keras code from *Hands-On ML* ch. 11 translates line by line:

================================  ==============================================================
``ExponentialDecay``              ``lr0 * decay_rate ** (step / decay_steps)`` (``floor`` with staircase)
``InverseTimeDecay``              ``lr0 / (1 + decay_rate * step / decay_steps)`` (``floor`` with staircase)
``PowerDecay``                    Géron's power scheduling ``lr0 / (1 + step / decay_steps) ** power``
``PolynomialDecay``               Keras' polynomial decay to ``end_learning_rate``
``PiecewiseConstantDecay``        ``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``
``CosineDecay``                   optional linear warm-up, then a half cosine to ``alpha * peak``
``CosineDecayRestarts``           SGDR: cosine cycles, each ``t_mul`` times longer and ``m_mul`` lower
``OneCycle``                      Smith's 1cycle as PyTorch's ``OneCycleLR`` (with momentum cycling)
================================  ==============================================================

Performance scheduling (``ReduceLROnPlateau``) depends on validation results, not on the step:
it is a Trainer callback (:mod:`fastdl.callbacks`), not a schedule.

Keras evaluates its schedules in float32 tensors; these compute in Python float64 (the tests
compare with Keras within float32 rounding). :data:`SCHEDULES` maps the command-line names
(``fastdl train --schedule NAME``) to the classes; :func:`get_schedule` builds one by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import _checks

__all__ = [
    "SCHEDULES",
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "OneCycle",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "PowerDecay",
    "check_step",
    "get_schedule",
    "schedule_config",
]


def check_step(step, where: str) -> int:
    """``step`` as a Python int >= 0, or a TypeError/ValueError in the house wording."""
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        _checks.fail(where, "step", "an integer >= 0 (updates done before this one)", _checks.describe(step),
                     TypeError)
    step = int(step)
    if step < 0:
        _checks.fail(where, "step", "an integer >= 0 (updates done before this one)", repr(step))
    return step


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 1:
        _checks.fail(where, name, "an integer >= 1", _checks.describe(value),
                     TypeError if not hasattr(value, "__index__") or isinstance(value, bool) else ValueError)
    return int(value)


def _fraction(value, name: str, where: str) -> float:
    """A real number in [0, 1]."""
    v = _checks.positive_number(value, name, where, allow_zero=True)
    if v > 1:
        _checks.fail(where, name, "a number in [0, 1]", repr(value))
    return v


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float``, ``get_config()``, ``from_config()``, equality by config."""

    def __call__(self, step) -> float:
        if type(step) is not int or step < 0:  # (an optimizer passes a valid int: no checks, no f-string)
            step = check_step(step, type(self).__name__)
        return self._value(step)

    def _value(self, step: int) -> float:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments (JSON-ready), as Keras' ``get_config``."""
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def from_config(cls, config: dict) -> LearningRateSchedule:
        """A schedule equal to the one that gave ``config``."""
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Decay(LearningRateSchedule):
    """Shared constructor of the ``lr0, decay_steps, decay_rate, staircase`` schedules."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False) -> None:
        where = type(self).__name__
        self.initial_learning_rate = _checks.positive_number(initial_learning_rate, "initial_learning_rate", where)
        self.decay_steps = _positive_int(decay_steps, "decay_steps", where)
        self.decay_rate = _checks.positive_number(decay_rate, "decay_rate", where, allow_zero=True)
        self.staircase = bool(staircase)

    def _p(self, step: int) -> float:
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class ExponentialDecay(_Decay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (Keras' ``ExponentialDecay``).

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``. Géron's exponential
    scheduling ``lr0 * 0.1 ** (t / s)`` is ``ExponentialDecay(lr0, s, 0.1)``.
    """

    def _value(self, step: int) -> float:
        return self.initial_learning_rate * self.decay_rate ** self._p(step)


class InverseTimeDecay(_Decay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (Keras' ``InverseTimeDecay``).

    With ``staircase=True``, ``step / decay_steps`` is floored first.
    """

    def _value(self, step: int) -> float:
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._p(step))


class PowerDecay(LearningRateSchedule):
    """Géron's power scheduling: ``initial_learning_rate / (1 + step / decay_steps) ** power``.

    ``power=1`` is :class:`InverseTimeDecay` with ``decay_rate=1``. Keras has no class of this name.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, power: float = 1.0) -> None:
        where = "PowerDecay"
        self.initial_learning_rate = _checks.positive_number(initial_learning_rate, "initial_learning_rate", where)
        self.decay_steps = _positive_int(decay_steps, "decay_steps", where)
        self.power = _checks.positive_number(power, "power", where, allow_zero=True)

    def _value(self, step: int) -> float:
        return self.initial_learning_rate / (1.0 + step / self.decay_steps) ** self.power

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "power": self.power}


class PolynomialDecay(LearningRateSchedule):
    """Keras' ``PolynomialDecay``: ``(lr0 - end) * (1 - s / decay_steps) ** power + end``.

    ``s = min(step, decay_steps)``; with ``cycle=True`` the horizon grows to the next multiple of
    ``decay_steps`` above ``step`` (``decay_steps`` itself at step 0) instead.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False) -> None:
        where = "PolynomialDecay"
        self.initial_learning_rate = _checks.positive_number(initial_learning_rate, "initial_learning_rate", where)
        self.decay_steps = _positive_int(decay_steps, "decay_steps", where)
        self.end_learning_rate = _checks.positive_number(end_learning_rate, "end_learning_rate", where,
                                                         allow_zero=True)
        self.power = _checks.positive_number(power, "power", where, allow_zero=True)
        self.cycle = bool(cycle)

    def _value(self, step: int) -> float:
        horizon = self.decay_steps
        if self.cycle:
            horizon *= 1 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, horizon)
        p = step / horizon
        return (self.initial_learning_rate - self.end_learning_rate) * (1.0 - p) ** self.power + self.end_learning_rate

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``,
    ``values[-1]`` after the last boundary (Keras' ``PiecewiseConstantDecay``).

    ``boundaries`` are increasing integers; ``values`` has one more entry than ``boundaries``.
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]) -> None:
        where = "PiecewiseConstantDecay"
        try:
            bounds = [int(b) for b in boundaries]
            vals = [float(v) for v in values]
        except (TypeError, ValueError):
            _checks.fail(where, "boundaries, values", "sequences of integers and of numbers",
                         f"{boundaries!r}, {values!r}", TypeError)
        if not bounds or any(b1 >= b2 for b1, b2 in zip(bounds, bounds[1:])):
            _checks.fail(where, "boundaries", "a non-empty increasing sequence of integers", repr(boundaries))
        if len(vals) != len(bounds) + 1:
            _checks.fail(where, "values", f"{len(bounds) + 1} numbers (one more than boundaries)",
                         f"{len(vals)}")
        for v in vals:
            _checks.positive_number(v, "values", where, allow_zero=True)
        self.boundaries, self.values = bounds, vals

    def _value(self, step: int) -> float:
        for bound, value in zip(self.boundaries, self.values):
            if step <= bound:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    """Keras' ``CosineDecay``: an optional linear warm-up, then a half cosine.

    Without warm-up (``warmup_target=None``): with ``s = min(step, decay_steps)``::

        lr = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)

    With ``warmup_target``: for ``step < warmup_steps`` the rate grows linearly from
    ``initial_learning_rate`` to ``warmup_target``; afterwards the formula above runs from
    ``warmup_target`` with ``s = min(step, decay_steps + warmup_steps) - warmup_steps``.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        where = "CosineDecay"
        self.initial_learning_rate = _checks.positive_number(initial_learning_rate, "initial_learning_rate", where,
                                                             allow_zero=warmup_target is not None)
        self.decay_steps = _positive_int(decay_steps, "decay_steps", where)
        self.alpha = _fraction(alpha, "alpha", where)
        self.warmup_target = (None if warmup_target is None
                              else _checks.positive_number(warmup_target, "warmup_target", where))
        if isinstance(warmup_steps, bool) or not hasattr(warmup_steps, "__index__") or int(warmup_steps) < 0:
            _checks.fail(where, "warmup_steps", "an integer >= 0", _checks.describe(warmup_steps))
        self.warmup_steps = int(warmup_steps)

    def _decay(self, step: float, peak: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def _value(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Keras' ``CosineDecayRestarts`` (SGDR, Loshchilov & Hutter): cosine cycles with warm restarts.

    With ``f = step / first_decay_steps``, cycle ``i`` and the fraction ``r`` done of it are
    ``i = floor(f), r = f - i`` when ``t_mul == 1``, else ``i = floor(log(1 - f (1 - t_mul)) / log(t_mul))``,
    ``r = (f - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i``; then::

        lr = initial_learning_rate * ((1 - alpha) * m_mul**i * 0.5 * (1 + cos(pi * r)) + alpha)

    Each cycle is ``t_mul`` times longer than the one before and starts ``m_mul`` times lower.
    """

    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0,
                 m_mul: float = 1.0, alpha: float = 0.0) -> None:
        where = "CosineDecayRestarts"
        self.initial_learning_rate = _checks.positive_number(initial_learning_rate, "initial_learning_rate", where)
        self.first_decay_steps = _positive_int(first_decay_steps, "first_decay_steps", where)
        self.t_mul = _checks.positive_number(t_mul, "t_mul", where)
        self.m_mul = _checks.positive_number(m_mul, "m_mul", where, allow_zero=True)
        self.alpha = _fraction(alpha, "alpha", where)

    def _value(self, step: int) -> float:
        f = step / self.first_decay_steps
        if self.t_mul == 1.0:
            i = math.floor(f)
            r = f - i
        else:
            i = math.floor(math.log(1.0 - f * (1.0 - self.t_mul)) / math.log(self.t_mul))
            r = (f - (1.0 - self.t_mul**i) / (1.0 - self.t_mul)) / self.t_mul**i
        cosine = 0.5 * self.m_mul**i * (1.0 + math.cos(math.pi * r))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha}


class OneCycle(LearningRateSchedule):
    """1cycle (Smith & Topin, 2018) exactly as PyTorch's ``OneCycleLR``; Keras has no 1cycle class.

    The rate starts at ``max_lr / div_factor``, anneals up to ``max_lr`` over the first
    ``pct_start * total_steps - 1`` steps, then down to ``max_lr / div_factor / final_div_factor`` at
    step ``total_steps - 1`` (``three_phase=True``: up, back down to the start over as many steps,
    then to the minimum). ``anneal_strategy`` is ``'cos'`` (``end + (start - end) / 2 * (1 + cos(pi * pct))``)
    or ``'linear'``. Steps past ``total_steps`` raise, as in PyTorch.

    Momentum cycling (``cycle_momentum=True``): :meth:`momentum` gives ``max_momentum`` at the
    start, ``base_momentum`` at the peak rate and ``max_momentum`` again at the end (the inverse
    of the rate). Optimizers with a ``momentum`` (Momentum, Nesterov) or ``beta1`` (Adam and its
    kin) take it at every update when this schedule is their ``lr``.
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        where = "OneCycle"
        self.max_lr = _checks.positive_number(max_lr, "max_lr", where)
        self.total_steps = _positive_int(total_steps, "total_steps", where)
        self.pct_start = _fraction(pct_start, "pct_start", where)
        if anneal_strategy not in ("cos", "linear"):
            _checks.fail(where, "anneal_strategy", "'cos' or 'linear'", repr(anneal_strategy))
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum = _checks.positive_number(base_momentum, "base_momentum", where, allow_zero=True, upper=1.0)
        self.max_momentum = _checks.positive_number(max_momentum, "max_momentum", where, allow_zero=True, upper=1.0)
        self.div_factor = _checks.positive_number(div_factor, "div_factor", where)
        self.final_div_factor = _checks.positive_number(final_div_factor, "final_div_factor", where)
        self.three_phase = bool(three_phase)
        initial = self.max_lr / self.div_factor
        lo = initial / self.final_div_factor
        up_end = self.pct_start * self.total_steps - 1
        if self.three_phase:
            self._phases = ((up_end, initial, self.max_lr, self.max_momentum, self.base_momentum),
                            (2 * self.pct_start * self.total_steps - 2, self.max_lr, initial, self.base_momentum,
                             self.max_momentum),
                            (self.total_steps - 1, initial, lo, self.max_momentum, self.max_momentum))
        else:
            self._phases = ((up_end, initial, self.max_lr, self.max_momentum, self.base_momentum),
                            (self.total_steps - 1, self.max_lr, lo, self.base_momentum, self.max_momentum))

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _at(self, step: int) -> tuple[float, float]:
        if step > self.total_steps:
            _checks.fail("OneCycle", "step", f"<= total_steps ({self.total_steps})", repr(step))
        start_step = 0.0
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(self._phases):
            if step <= end_step or i == len(self._phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return self._anneal(lr0, lr1, pct), self._anneal(m0, m1, pct)
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover

    def _value(self, step: int) -> float:
        return self._at(step)[0]

    def momentum(self, step) -> float | None:
        """The momentum (or ``beta1``) for update ``step``; None when ``cycle_momentum`` is off."""
        if not self.cycle_momentum:
            return None
        return self._at(check_step(step, "OneCycle.momentum"))[1]

    def get_config(self) -> dict:
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "anneal_strategy": self.anneal_strategy, "cycle_momentum": self.cycle_momentum,
                "base_momentum": self.base_momentum, "max_momentum": self.max_momentum,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor,
                "three_phase": self.three_phase}


#: Command-line names -> classes (``fastdl train --schedule NAME``).
SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    "exponential": ExponentialDecay,
    "inverse-time": InverseTimeDecay,
    "power": PowerDecay,
    "polynomial": PolynomialDecay,
    "piecewise": PiecewiseConstantDecay,
    "cosine": CosineDecay,
    "cosine-restarts": CosineDecayRestarts,
    "one-cycle": OneCycle,
}


def get_schedule(name: str, **kwargs) -> LearningRateSchedule:
    """A schedule by its command-line name (see :data:`SCHEDULES`) or class name, with its arguments."""
    by_class = {cls.__name__.lower(): cls for cls in SCHEDULES.values()}
    key = str(name).lower() if isinstance(name, str) else None
    cls = SCHEDULES.get(key) or by_class.get(key or "")
    if cls is None:
        _checks.fail("get_schedule", "name", f"one of {', '.join(map(repr, SCHEDULES))}", repr(name))
    return cls(**kwargs)


def schedule_config(lr) -> dict | float | str:
    """What a history file records for an ``lr``: the number, ``{'class_name', 'config'}``, or the callable's name."""
    if isinstance(lr, LearningRateSchedule):
        return {"class_name": type(lr).__name__, "config": lr.get_config()}
    if callable(lr):
        get_config = getattr(lr, "get_config", None)
        if callable(get_config):
            return {"class_name": type(lr).__name__, "config": get_config()}
        return getattr(lr, "__qualname__", type(lr).__name__)
    return float(lr)
