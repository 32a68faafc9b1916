"""Search spaces: distributions over the settings of a trial, drawn reproducibly per trial.

A :class:`SearchSpace` maps parameter names to a distribution (:class:`LogUniform`,
:class:`Uniform`, :class:`IntUniform`, :class:`Choice`) or a fixed value. Trial ``k`` of a search
with seed ``s`` draws its settings from ``numpy.random.default_rng(SeedSequence([s, k]))`` and
trains from a second number of the same sequence (:func:`trial_seeds`), so a trial's settings and
results depend on ``(s, k)`` only: not on the number of workers, nor on the order trials run in.

Parameters a trial understands (:data:`PARAMETERS`)
    ``lr``, ``weight_decay``, ``optimizer`` (a name of :data:`fastdl.optim.OPTIMIZERS`, so a new
    optimizer joins the search without a change here), ``activation``, ``weight_init``, ``hidden``
    (a list of layer widths), ``batchnorm``, ``dropout`` (the ratio; 0 means no dropout layers),
    ``batch_size``.

Text form (command line)
    ``loguniform:1e-6:1e-2``, ``uniform:0:0.5``, ``int:50:200``, ``choice:sgd,adam`` (or just
    ``sgd,adam``), or a single value; ``hidden`` values are written ``100x6`` (six layers of 100)
    or ``100-50`` (two layers), e.g. ``choice:100x6,50x3``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .. import _checks

__all__ = ["PARAMETERS", "Choice", "IntUniform", "LogUniform", "SearchSpace", "Uniform", "book_space",
           "parse_distribution", "trial_seeds"]

#: parameter -> (default value, description)
PARAMETERS: dict[str, tuple] = {
    "lr": (0.01, "learning rate of the optimizer"),
    "weight_decay": (0.0, "L2 strength λ of MultiLayerNetExtend"),
    "optimizer": ("sgd", "optimizer name (fastdl.optim.OPTIMIZERS)"),
    "activation": ("relu", "hidden activation"),
    "weight_init": ("relu", "weight init: relu/he, sigmoid/xavier, glorot, lecun, or a std"),
    "hidden": ((100, 100, 100, 100, 100, 100), "hidden layer widths"),
    "batchnorm": (False, "batch normalization after each hidden Affine"),
    "dropout": (0.0, "dropout ratio (0: no dropout layers)"),
    "batch_size": (100, "mini-batch size"),
}


@dataclass(frozen=True)
class _Range:
    """Shared part of the bounded distributions: validated ``low <= high``, dict and text forms."""

    low: float
    high: float
    kind = ""

    def _bound(self, value, name: str):
        raise NotImplementedError

    def __post_init__(self):
        where = type(self).__name__
        low, high = self._bound(self.low, "low"), self._bound(self.high, "high")
        if high < low:
            _checks.fail(where, "high", f">= low ({low})", repr(self.high))
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def to_dict(self) -> dict:
        return {"dist": self.kind, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.kind}:{self.low:g}:{self.high:g}"


class LogUniform(_Range):
    """``exp(U(log low, log high))``: every decade between ``low`` and ``high`` equally likely.

    Attributes
    ----------
    low, high : float
        ``0 < low <= high``.
    """

    kind = "loguniform"

    def _bound(self, value, name: str) -> float:
        return _checks.positive_number(value, name, "LogUniform")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class Uniform(_Range):
    """``U(low, high)``.

    Attributes
    ----------
    low, high : float
        Finite, ``low <= high``.
    """

    kind = "uniform"

    def _bound(self, value, name: str) -> float:
        real = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
        if not real or not math.isfinite(value):
            _checks.fail("Uniform", name, "a finite real number", _checks.describe(value), TypeError)
        return float(value)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


class IntUniform(_Range):
    """An integer drawn uniformly from ``low .. high`` (both included).

    Attributes
    ----------
    low, high : int
        ``low <= high``.
    """

    kind = "int"

    def _bound(self, value, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            _checks.fail("IntUniform", name, "an integer", _checks.describe(value), TypeError)
        return int(value)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high, endpoint=True))


@dataclass(frozen=True)
class Choice:
    """One of ``values``, each equally likely.

    Attributes
    ----------
    values : sequence
        At least one value (lists are stored as tuples).
    """

    values: tuple

    def __post_init__(self):
        if isinstance(self.values, str) or not hasattr(self.values, "__iter__"):
            _checks.fail("Choice", "values", "a non-empty sequence", _checks.describe(self.values), TypeError)
        values = tuple(tuple(v) if isinstance(v, list) else v for v in self.values)
        if not values:
            _checks.fail("Choice", "values", "a non-empty sequence", "an empty one")
        object.__setattr__(self, "values", values)

    def sample(self, rng: np.random.Generator):
        return self.values[int(rng.integers(len(self.values)))]

    def to_dict(self) -> dict:
        return {"dist": "choice", "values": [list(v) if isinstance(v, tuple) else v for v in self.values]}

    def __str__(self) -> str:
        return "choice:" + ",".join(_format_value(v) for v in self.values)


_DISTRIBUTIONS = (LogUniform, Uniform, IntUniform, Choice)


def _format_value(v) -> str:
    if isinstance(v, tuple):
        return "-".join(map(str, v))
    return str(v)


def trial_seeds(seed: int, trial: int) -> tuple[int, int]:
    """The two seeds of trial ``trial``: one for its settings, one for its training.

    Both come from ``numpy.random.SeedSequence([seed, trial]).generate_state(2)``: independent
    streams per trial whatever order trials run in.

    Parameters
    ----------
    seed : int
        The search seed (>= 0).
    trial : int
        The trial number (>= 0).

    Returns
    -------
    tuple of int
        ``(config_seed, train_seed)``, each in ``[0, 2**32)`` (``np.random.seed`` takes them).
    """
    state = np.random.SeedSequence([int(seed), int(trial)]).generate_state(2)
    return int(state[0]), int(state[1])


def _check_value(name: str, value, where: str):
    """Validate one (fixed or possible) value of a known parameter; return it normalized."""
    if name in ("lr",):
        return _checks.positive_number(value, name, where)
    if name == "weight_decay":
        return _checks.positive_number(value, name, where, allow_zero=True)
    if name == "dropout":
        return _checks.positive_number(value, name, where, allow_zero=True, upper=1.0)
    if name == "batch_size":
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            _checks.fail(where, name, "a positive integer", repr(value))
        return int(value)
    if name == "batchnorm":
        if not isinstance(value, bool | np.bool_):
            _checks.fail(where, name, "True or False", repr(value), TypeError)
        return bool(value)
    if name == "optimizer":
        from ..optim import OPTIMIZERS

        if not isinstance(value, str) or value.lower() not in OPTIMIZERS:
            _checks.fail(where, name, f"one of {tuple(OPTIMIZERS)}", repr(value))
        return value.lower()
    if name == "activation":
        if not isinstance(value, str):
            _checks.fail(where, name, "an activation name such as 'relu'", repr(value), TypeError)
        from ..nets import MultiLayerNetExtend

        state = np.random.get_state()  # building the probe draws weights; leave the global stream as it was
        try:  # the network decides which names it knows (new activations join automatically)
            MultiLayerNetExtend(2, [2], 2, activation=value, backend="reference")
        except (ValueError, TypeError) as exc:
            _checks.fail(where, name, "an activation MultiLayerNetExtend accepts", f"{value!r} ({exc})")
        finally:
            np.random.set_state(state)
        return value.lower()
    if name == "weight_init":
        from ..init import std_for

        try:
            std_for(value, 2, 2, where)
        except (ValueError, TypeError) as exc:
            _checks.fail(where, name, "a weight init name or a positive std", f"{value!r} ({exc})")
        return value
    if name == "hidden":
        if isinstance(value, int | np.integer) or isinstance(value, str) or not hasattr(value, "__iter__"):
            _checks.fail(where, name, "a sequence of layer widths such as (100, 100)", _checks.describe(value),
                         TypeError)
        widths = tuple(value)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1 for w in widths):
            _checks.fail(where, name, "a non-empty sequence of positive integers", repr(value))
        return tuple(int(w) for w in widths)
    return value


class SearchSpace:
    """Named distributions (or fixed values) over a trial's settings.

    Parameters
    ----------
    params : mapping
        Name (see :data:`PARAMETERS`) -> distribution or fixed value. Names left out take their
        default from :data:`PARAMETERS`. Values are validated here (optimizer names against
        :data:`fastdl.optim.OPTIMIZERS`, activations by the network), before any trial runs.

    Notes
    -----
    :meth:`sample` draws the distributions in the order of :data:`PARAMETERS`, from a generator
    seeded per trial (:func:`trial_seeds`).
    """

    def __init__(self, params: Mapping | None = None) -> None:
        where = "SearchSpace"
        params = dict(params or {})
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            _checks.fail(where, "params", f"names among {tuple(PARAMETERS)}", ", ".join(map(repr, unknown)))
        self.params: dict = {}
        for name in PARAMETERS:
            value = params.get(name, PARAMETERS[name][0])
            if isinstance(value, _DISTRIBUTIONS):
                self._check_distribution(name, value, where)
                if isinstance(value, Choice):
                    value = Choice(tuple(_check_value(name, v, where) for v in value.values))
            else:
                value = _check_value(name, value, where)
            self.params[name] = value

    @staticmethod
    def _check_distribution(name: str, dist, where: str) -> None:
        numeric = {"lr", "weight_decay", "dropout"}
        if isinstance(dist, LogUniform | Uniform) and name not in numeric:
            _checks.fail(where, name, "a Choice or a fixed value (it is not a real number)", str(dist))
        if isinstance(dist, IntUniform) and name != "batch_size":
            _checks.fail(where, name, "an IntUniform only for batch_size", str(dist))
        if isinstance(dist, LogUniform | Uniform | IntUniform):
            _check_value(name, dist.low, where)
            _check_value(name, dist.high, where)

    @property
    def searched(self) -> list[str]:
        """Names that are drawn (not fixed)."""
        return [k for k, v in self.params.items() if isinstance(v, _DISTRIBUTIONS)]

    def sample(self, rng: np.random.Generator) -> dict:
        """One configuration: every parameter's value (drawn or fixed), JSON-ready.

        Parameters
        ----------
        rng : numpy.random.Generator
            The trial's generator.

        Returns
        -------
        dict
        """
        config = {}
        for name, value in self.params.items():
            v = value.sample(rng) if isinstance(value, _DISTRIBUTIONS) else value
            config[name] = list(v) if isinstance(v, tuple) else v
        return config

    def config_for(self, seed: int, trial: int) -> dict:
        """The configuration of trial ``trial`` of a search seeded with ``seed``."""
        return self.sample(np.random.default_rng(trial_seeds(seed, trial)[0]))

    def to_dict(self) -> dict:
        """JSON-ready description (stored in the results file's header)."""
        return {k: (v.to_dict() if isinstance(v, _DISTRIBUTIONS) else (list(v) if isinstance(v, tuple) else v))
                for k, v in self.params.items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> SearchSpace:
        """Inverse of :meth:`to_dict`."""
        params = {}
        for name, value in data.items():
            if isinstance(value, dict) and "dist" in value:
                kind = value["dist"]
                if kind == "choice":
                    params[name] = Choice(tuple(value["values"]))
                else:
                    cls_ = {"loguniform": LogUniform, "uniform": Uniform, "int": IntUniform}[kind]
                    params[name] = cls_(value["low"], value["high"])
            else:
                params[name] = value
        return cls(params)

    def __eq__(self, other) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.params.items() if isinstance(v, _DISTRIBUTIONS)]
        fixed = [f"{k}={_format_value(v)}" for k, v in self.params.items() if not isinstance(v, _DISTRIBUTIONS)]
        return f"SearchSpace({', '.join(parts + fixed)})"


def book_space() -> SearchSpace:
    """The book's search (section 6.5): ``lr`` in 10**U(-6, -2), ``weight_decay`` in 10**U(-8, -4), SGD, 6x100 ReLU."""
    return SearchSpace({"lr": LogUniform(1e-6, 1e-2), "weight_decay": LogUniform(1e-8, 1e-4)})


def _parse_scalar(name: str, text: str):
    text = text.strip()
    if name == "hidden":
        if "x" in text:
            width, _, depth = text.partition("x")
            return (int(width),) * int(depth)
        return tuple(int(w) for w in text.split("-") if w)
    if name == "batchnorm":
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{text!r} is not yes/no")
    if name in ("optimizer", "activation"):
        return text
    if name == "weight_init":
        try:
            return float(text)
        except ValueError:
            return text
    if name == "batch_size":
        return int(text)
    return float(text)


def parse_distribution(name: str, text: str):
    """A distribution or fixed value for parameter ``name`` from its text form (see the module notes).

    Parameters
    ----------
    name : str
        A key of :data:`PARAMETERS`.
    text : str
        ``loguniform:A:B``, ``uniform:A:B``, ``int:A:B``, ``choice:V1,V2``, ``V1,V2`` or ``V``.

    Returns
    -------
    distribution or value
    """
    where = "parse_distribution"
    if name not in PARAMETERS:
        _checks.fail(where, "name", f"one of {tuple(PARAMETERS)}", repr(name))
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    try:
        if sep and kind in ("loguniform", "log", "uniform", "int"):
            low, sep2, high = rest.partition(":")
            if not sep2:
                raise ValueError("expected two bounds A:B")
            if kind == "int":
                return IntUniform(int(low), int(high))
            cls_ = LogUniform if kind in ("loguniform", "log") else Uniform
            return cls_(float(low), float(high))
        if sep and kind == "choice":
            return Choice(tuple(_parse_scalar(name, v) for v in rest.split(",")))
        if "," in text:
            return Choice(tuple(_parse_scalar(name, v) for v in text.split(",")))
        return _parse_scalar(name, text)
    except ValueError as exc:
        _checks.fail(where, name, "loguniform:A:B, uniform:A:B, int:A:B, choice:V1,V2 or a value",
                     f"{text!r} ({exc})")
