"""Optimizers with the book's API (``common/optimizer.py``), stepped by compiled single-pass kernels.

Drop-in for *Deep Learning from Scratch*::

    from fastdl.optim import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam

    optimizer = Adam(lr=0.001)
    optimizer.update(network.params, grads)   # every array in params changes in place

Each class has the book's name, constructor arguments, defaults and attributes (``lr``,
``momentum``, ``decay_rate``, ``beta1``, ``beta2``, ``eps``; state dicts ``v``, ``h``, ``m`` and
Adam's step counter ``iter``), created on the first :meth:`update` with each parameter's dtype and
shape. The arithmetic is the book's, in the book's operation order, so float64 runs print the
numbers of :mod:`fastdl.reference` and float32 parameters are stepped in float32.

:meth:`update` validates every key (types, dtypes, shapes, writeable arrays, existing state)
before it changes anything: a rejected call leaves ``params`` and the optimizer's state exactly as
they were. NaN/Inf in the updated parameters is reported through :func:`fastdl.errstate` (a
:class:`~fastdl.NonFiniteWarning` by default) after the whole step has been applied.

Fast paths (same numbers, bit for bit: every rule is elementwise):

* Repeated calls. An accepted update remembers its layout (1-D views of every parameter and state
  array). The next call with the same parameter objects under the same keys, with unchanged
  shapes, dtypes and writeable flags, and the same state objects, skips the re-validation and
  goes straight to the kernels (on the development machine ~4 us of Python for a 2-array dict
  and ~12 us for the 22 arrays of the book's 5-hidden-layer batch-norm net, against ~15 us per
  array for the full validation). Anything else, including bad input, takes the full
  validation first.
* Whole model. When the parameters, in ``params``' key order, are views tiling one flat buffer
  back to back (:func:`fastdl._flat.pack` builds such dicts) and the gradients tile another buffer
  the same way, one kernel call steps the whole model (serial or parallel by the total size). The
  state then lives in flat buffers too: after the first such update ``self.m[key]`` and friends
  are views of one buffer (existing values are copied in, so a reference to an earlier state
  array no longer follows the optimizer). Replacing one array, passing another dict or
  gradients in another layout simply takes the per-array path again, with the state kept.

The same machinery is available as plain in-place functions for any NumPy loop:
:func:`sgd_step`, :func:`momentum_step`, :func:`nesterov_step`, :func:`adagrad_step`,
:func:`rmsprop_step`, :func:`adam_step`.

Saving and resuming: ``opt.state_dict()`` returns copies of the hyper-parameters, step counters
and state arrays, and ``opt.load_state_dict(d)`` restores them (validated whole before anything
changes), so a run saved after step k and restored into a new optimizer continues bit for bit. A
learning-rate schedule or callback joins a :class:`~fastdl.Trainer` checkpoint through the same
protocol: ``state_dict()`` returning a dict of numbers, strings, lists, dicts and arrays, and
``load_state_dict(d)``.

:data:`OPTIMIZERS` maps the lower-case names to the classes and :func:`get_optimizer` builds one
by name, as the book's ``Trainer`` does.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, MutableMapping

import numpy as np

from . import _checks, _flat, runtime
from .kernels import optim as _k

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "AdaGrad",
    "Adam",
    "Momentum",
    "Nesterov",
    "RMSprop",
    "adagrad_step",
    "adam_step",
    "get_optimizer",
    "momentum_step",
    "nesterov_step",
    "rmsprop_step",
    "sgd_step",
]

_FLOATS = _checks.FLOAT_DTYPES
_F32 = np.dtype(np.float32)


def _is_float(dtype: np.dtype) -> bool:
    """float32/float64 in native byte order (identity with the builtin dtypes first: ~5x cheaper)."""
    return dtype is _F64 or dtype is _F32 or dtype in _FLOATS
_F64 = np.dtype(np.float64)
_MISSING = object()


# --------------------------------------------------------------------------------------------
# Constants of each rule, as Python floats (the caller casts them to the parameter dtype, which
# is what NumPy 2 does with a "weak" Python-float scalar). The order of the tuple is the kernel's
# c0..c3 (see fastdl.kernels.optim).


def _sgd_constants(lr: float) -> tuple:
    return (lr, 0.0, 0.0, 0.0)


def _momentum_constants(lr: float, momentum: float) -> tuple:
    return (lr, momentum, 0.0, 0.0)


def _nesterov_constants(lr: float, momentum: float) -> tuple:
    return (lr, momentum, momentum * momentum, (1 + momentum) * lr)


def _adagrad_constants(lr: float, eps: float) -> tuple:
    return (lr, eps, 0.0, 0.0)


def _rmsprop_constants(lr: float, decay_rate: float, eps: float) -> tuple:
    return (lr, eps, decay_rate, 1 - decay_rate)


def _adam_constants(lr: float, beta1: float, beta2: float, eps: float, t: int) -> tuple:
    lr_t = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    return (lr_t, eps, 1 - beta1, 1 - beta2)


# --------------------------------------------------------------------------------------------
# Layouts: the kernels see 1-D C-contiguous arrays.


def _order(p: np.ndarray) -> str:
    """Memory order in which ``p`` is one contiguous block ('C' also for non-contiguous p)."""
    if p.flags.c_contiguous or not p.flags.f_contiguous:
        return "C"
    return "F"


def _flat_inout(a: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A 1-D view of ``a`` in ``order`` when there is one, else a contiguous copy plus ``a`` to write back."""
    if order == "C":
        if a.flags.c_contiguous:
            return a.ravel(), None  # a view (ravel is ~2x cheaper than reshape(-1) per call)
    elif a.flags.f_contiguous:
        return a.ravel(order="F"), None
    return np.ascontiguousarray(np.ravel(a, order=order)), a


def _flat_in(g: np.ndarray, order: str, dtype: np.dtype) -> np.ndarray:
    """``g`` as a 1-D contiguous array of ``dtype`` in ``order`` (a view when possible)."""
    if g.dtype != dtype:
        g = g.astype(dtype, order="K")
    flat, _ = _flat_inout(g, order)
    return flat


def _cast(constants: tuple, dtype: np.dtype) -> np.ndarray:
    """The rule's constants as an array of the parameter dtype (each rounded like ``dtype.type(c)``,
    which is NumPy 2's weak-scalar arithmetic); the kernels read ``c0..c3`` from it."""
    return np.array(constants, dtype=dtype)


def _run(kind: int, pf: np.ndarray, gf: np.ndarray, s1: np.ndarray, s2: np.ndarray, c: np.ndarray) -> int:
    """One kernel call over 1-D C-contiguous arrays, serial or parallel by size; the non-finite count."""
    n = pf.size
    if runtime.use_parallel(n):  # tests the size before asking Numba for the thread count
        return _k.step_parallel(kind, pf, gf, s1, s2, c, runtime.chunks(n))
    return _k.step(kind, pf, gf, s1, s2, c)


def _step_array(kind: int, p: np.ndarray, g: np.ndarray, states, c: np.ndarray) -> int:
    """Step one validated parameter array (and its state) in place; return the non-finite count.

    The per-array code path of the classes and the step functions. ``c`` holds the constants in
    ``p.dtype`` (:func:`_cast`). ``p`` is stepped through a 1-D view in its own memory order (C or
    Fortran), ``g`` is flattened in the same logical order, and any array without such a view
    (a strided slice) is stepped as a contiguous copy and written back.
    """
    order = _order(p)
    pf, p_back = _flat_inout(p, order)
    gf = _flat_in(g, order, p.dtype)
    flats = [_flat_inout(s, order) for s in states]
    s1 = flats[0][0] if flats else pf
    s2 = flats[1][0] if len(flats) > 1 else pf
    bad = _run(kind, pf, gf, s1, s2, c)
    if p_back is not None:
        p_back[...] = pf.reshape(p_back.shape, order=order)
    for flat, target in flats:
        if target is not None:
            target[...] = flat.reshape(target.shape, order=order)
    return bad


# --------------------------------------------------------------------------------------------
# Validation


def _check_param_array(p, name: str, where: str) -> np.ndarray:
    if not isinstance(p, np.ndarray):
        _checks.fail(where, name, "a float32 or float64 numpy array", _checks.describe(p), TypeError)
    if not _is_float(p.dtype):
        _checks.fail(where, name, "a float32 or float64 array (cast it with .astype(np.float64) or np.float32)",
                     f"dtype {p.dtype}", TypeError)
    if not p.flags.writeable:
        _checks.fail(where, name, "a writeable array (it is updated in place)", "a read-only array")
    return p if type(p) is np.ndarray else np.asarray(p)  # a subclass (np.memmap ...): a plain view


def _check_grad(g, p: np.ndarray, name: str, pname: str, where: str) -> np.ndarray:
    if not isinstance(g, np.ndarray) or not _is_float(g.dtype):
        g = _checks.float_array(g, name, where)
    if g.shape != p.shape:
        _checks.fail(where, name, f"of shape {p.shape} like {pname}", f"shape {g.shape}")
    return g if type(g) is np.ndarray else np.asarray(g)


def _check_state(s, p: np.ndarray, name: str, pname: str, where: str) -> np.ndarray:
    if not isinstance(s, np.ndarray):
        _checks.fail(where, name, f"a numpy array like {pname}", _checks.describe(s), TypeError)
    if s.dtype != p.dtype:
        _checks.fail(where, name, f"of dtype {p.dtype} like {pname}", f"dtype {s.dtype}", TypeError)
    if s.shape != p.shape:
        _checks.fail(where, name, f"of shape {p.shape} like {pname}", f"shape {s.shape}")
    if not s.flags.writeable:
        _checks.fail(where, name, "a writeable array (it is updated in place)", "a read-only array")
    return s if type(s) is np.ndarray else np.asarray(s)


def _param_entry(key, value, where: str):
    """``(array, scalar_type)``: the parameter as an ndarray (a fresh 0-d one for a scalar)."""
    name = f"params[{key!r}]"
    if isinstance(value, np.ndarray):
        return _check_param_array(value, name, where), None
    if isinstance(value, np.floating) and value.dtype in _FLOATS:
        return np.array(value), type(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return np.array(float(value)), float
    _checks.fail(where, name, "a float32/float64 numpy array or a real number", _checks.describe(value),
                 TypeError)


def _check_hyper(value, name: str, where: str, *, allow_zero: bool = False, upper: float | None = None):
    return _checks.positive_number(value, name, where, allow_zero=allow_zero, upper=upper)


_HYPER_RULES = {
    "lr": {},
    "eps": {},
    "momentum": {"allow_zero": True, "upper": 1.0},
    "decay_rate": {"upper": 1.0},
    "beta1": {"allow_zero": True, "upper": 1.0},
    "beta2": {"allow_zero": True, "upper": 1.0},
}


def _hyper(where: str, **values) -> tuple:
    """Validate hyper-parameters by name (see ``_HYPER_RULES``) and return them as floats."""
    return tuple(_check_hyper(v, k, where, **_HYPER_RULES[k]) for k, v in values.items())


class _Hyper:
    """A hyper-parameter attribute validated whenever it is set (``opt.lr = 0.1`` works as in the book)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute {self.name!r}") from None

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = _check_hyper(value, self.name, type(obj).__name__, **_HYPER_RULES[self.name])


# --------------------------------------------------------------------------------------------
# Replay: what an accepted update learned about its arrays, reused while nothing has changed


_is = operator.is_
_dtype = operator.attrgetter("dtype")
_pmeta = operator.attrgetter("shape", "dtype", "flags.writeable")
_gmeta = operator.attrgetter("shape", "dtype")  # (a gradient is only read: it may be read-only)


def _has_view(a: np.ndarray, order: str) -> bool:
    """True when ``a`` is one contiguous block in ``order`` (so ``_flat_inout`` returns a view)."""
    return bool(a.flags.c_contiguous if order == "C" else a.flags.f_contiguous)


class _Plan:
    """The validated layout of one accepted ``update``: 1-D views of every parameter and state array.

    Built when every parameter is a plain ``ndarray`` with a 1-D view in its own memory order and
    every state array has one in the same order (no scalars, no strided slices, no subclasses).
    Later calls replay it when :meth:`match` finds the same parameter and state objects under the
    same keys, with the same shapes, dtypes and writeable flags: everything that can change on an
    existing object (short of the deprecated ``strides`` setter), so the full validation could
    only confirm what the plan knows. On any difference the full validation runs again: bad input
    is rejected with its usual message before anything changes, good input gets a new plan.

    When the parameters tile one buffer back to back in key order (:func:`fastdl._flat.span`),
    each state lives in one flat buffer too (the state dicts hold views of it; existing values
    are copied in) and, whenever the gradients also tile one buffer, one kernel call steps the
    whole model. The arithmetic is elementwise, so the results are identical either way.
    """

    __slots__ = ("keys", "n", "params", "state_values", "pmeta", "gmeta", "grads", "named_stores", "orders", "pflat",
                 "sflat",
                 "whole", "gflat", "gwhole", "calls", "cbufs", "consts")

    def __init__(self, entries: list, names: tuple, stores: list) -> None:
        keys = [e[0] for e in entries]
        params = [e[1] for e in entries]
        self.keys, self.n = keys, len(keys)
        self.named_stores = tuple(zip(names, stores))
        self.orders = [_order(p) for p in params]
        self.whole = None
        dtypes = list(map(_dtype, params))
        if params and all(d == dtypes[0] for d in dtypes) and _flat.span(params) is not None:
            self.whole = self._flatten_state(keys, params, stores)
        columns = [[store[k] for k in keys] for store in stores]
        # the objects (compared by identity) and what may change on them
        self.params = params
        self.state_values = [list(store.values()) for store in stores]
        self.pmeta = list(map(_pmeta, params))
        self.gmeta = list(map(_gmeta, params))
        self.pflat = [_flat_inout(p, o)[0] for p, o in zip(params, self.orders)]
        self.sflat = [tuple(_flat_inout(column[i], o)[0] for column in columns)
                      for i, o in enumerate(self.orders)]
        self.grads = self.gflat = self.gwhole = self.calls = None  # the gradient side: see learn_grads
        self.cbufs = {d: np.zeros(4, d) for d in dtypes}
        self.consts = None

    @classmethod
    def build(cls, entries: list, names: tuple, stores: list) -> _Plan | None:
        """A plan for the accepted ``entries`` ``(key, p, g, scalar_type)``, or None if they do not qualify."""
        for key, p, _, scalar_type in entries:
            if scalar_type is not None or type(p) is not np.ndarray:
                return None
            order = _order(p)
            if not _has_view(p, order):
                return None
            for store in stores:
                s = store[key]
                if type(s) is not np.ndarray or not _has_view(s, order):
                    return None
        return cls(entries, names, stores)

    @staticmethod
    def _flatten_state(keys: list, params: list, stores: list) -> tuple:
        """Whole-model 1-D views ``(p, (state, ...))``; moves each state into one flat buffer first
        unless it already tiles one in key order (the dicts then hold views of that buffer)."""
        base, start, stop = _flat.span(params)
        flat_states = []
        for store in stores:
            column = [store[k] for k in keys]
            found = _flat.span(column) if all(s.dtype == base.dtype for s in column) else None
            if found is not None and found[2] - found[1] == stop - start:
                flat_states.append(found[0][found[1]:found[2]])
                continue
            buffer = np.empty(stop - start, base.dtype)
            offset = 0
            for k, p, s in zip(keys, params, column):
                view = buffer[offset:offset + p.size].reshape(p.shape)
                view[...] = s
                store[k] = view
                offset += p.size
            flat_states.append(buffer)
        return base[start:stop], tuple(flat_states)

    def match(self, opt: _Optimizer, params: dict, grads: dict) -> bool:
        """True when this plan still describes ``params``, the optimizer state and ``grads``.

        Parameters: same objects under the same keys (no key added or removed), same shape, dtype
        and writeable flag. State: the same dicts holding the same objects in the same order (a
        user who replaces ``opt.m[key]`` is heard; one who reshapes a state array in place is not).
        Gradients: the same objects with the same shape and dtype, or new ones that
        :meth:`learn_grads` accepts.
        """
        keys = self.keys
        try:
            pl = list(map(params.__getitem__, keys))
            gl = list(map(grads.__getitem__, keys))
        except KeyError:
            return False
        if len(params) != self.n or not all(map(_is, pl, self.params)):
            return False
        for (name, store), values in zip(self.named_stores, self.state_values):
            if getattr(opt, name) is not store or len(store) != len(values) or not all(
                    map(_is, store.values(), values)):  # (every entry in order: cheaper than lookups)
                return False
        if list(map(_pmeta, pl)) != self.pmeta:
            return False
        if self.grads is None or not all(map(_is, gl, self.grads)):
            return self.learn_grads(gl)  # new gradient objects (a book-style backward pass)
        return list(map(_gmeta, gl)) == self.gmeta

    def learn_grads(self, gl: list) -> bool:
        """Take ``gl`` (the gradients in key order) when each has a 1-D view matching its parameter."""
        flat = []
        for g, (shape, dtype), order in zip(gl, self.gmeta, self.orders):
            if (type(g) is not np.ndarray or (g.dtype is not dtype and g.dtype != dtype) or g.shape != shape
                    or not _has_view(g, order)):
                return False
            flat.append(g.ravel(order=order))
        self.gwhole = None
        if self.whole is not None:
            found = _flat.span(gl)
            if found is not None and found[2] - found[1] == self.whole[0].size:
                self.gwhole = found[0][found[1]:found[2]]
        self.grads, self.gflat = gl, flat
        if self.gwhole is not None:  # the kernel calls' arguments, ready for run()
            p, states = self.whole
            self.calls = [(p, self.gwhole, *(states + (p, p))[:2], self.cbufs[p.dtype], p.size)]
        else:
            self.calls = [(pf, gf, *(states + (pf, pf))[:2], self.cbufs[pf.dtype], pf.size)
                          for pf, gf, states in zip(self.pflat, flat, self.sflat)]
        return True

    def run(self, kind: int, consts: tuple) -> list:
        """Step everything with the rule's constants; ``[(index, non-finite count), ...]`` of the bad keys."""
        last = self.consts
        if consts != last:
            only_first = last is not None and consts[1:] == last[1:]  # (Adam: only lr_t moves)
            for buf in self.cbufs.values():
                if only_first:
                    buf[0] = consts[0]  # rounded to the buffer's dtype, like dtype.type(c)
                else:
                    buf[:] = consts
            self.consts = consts
        bad = []
        use_parallel = runtime.use_parallel
        for i, (p, g, s1, s2, c, n) in enumerate(self.calls):
            if use_parallel(n):
                n_bad = _k.step_parallel(kind, p, g, s1, s2, c, runtime.chunks(n))
            else:
                n_bad = _k.step(kind, p, g, s1, s2, c)
            if n_bad:
                bad.append((i, n_bad))
        if bad and self.gwhole is not None:  # one call for the whole model: count per key
            counts = [int(np.count_nonzero(~np.isfinite(pf))) for pf in self.pflat]
            bad = [(i, c) for i, c in enumerate(counts) if c]
        return bad


# --------------------------------------------------------------------------------------------
# The classes


class _Optimizer:
    """Shared ``update``: validate everything, create missing state, step each key, report NaN/Inf."""

    _kind: int = _k.SGD
    _state_names: tuple[str, ...] = ()  # the state dicts, created on the first update
    _hyper_names: tuple[str, ...] = ()  # constructor arguments, in the order _rule takes them
    _rule = staticmethod(_sgd_constants)  # hyper-parameters -> the kernel's constants

    # validated on every assignment (a learning-rate schedule may set opt.lr later)
    lr = _Hyper()
    momentum = _Hyper()
    decay_rate = _Hyper()
    beta1 = _Hyper()
    beta2 = _Hyper()
    eps = _Hyper()

    def _setup(self, **hyper) -> None:
        """Set (and so validate) the hyper-parameters; the state dicts start as None."""
        for name, value in hyper.items():
            setattr(self, name, value)
        for name in self._state_names:
            setattr(self, name, None)
        self._plan = None  # see _Plan: the layout of the last accepted update, replayed while valid

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_plan"] = None  # copies and pickles re-learn the layout (it holds the arrays' identities)
        return state

    def _constants(self) -> tuple:
        d = self.__dict__  # (where the _Hyper descriptors store the values; read directly, ~4x cheaper)
        return self._rule(*[d[n] for n in self._hyper_names])

    def _advance(self) -> None:
        """Called once per accepted ``update`` before the constants are read (Adam's counter)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyper_names)
        return f"{type(self).__name__}({args})"

    # -- saving and restoring (self-contained: reads only the class tables and the state dicts) ------
    _counter_names: tuple[str, ...] = ()  # step counters kept by state_dict (Adam: ("iter",))

    def state_dict(self) -> dict:
        """Everything that determines the next steps, as copies: ``{'class', 'hyper', 'counters', 'state'}``.

        ``hyper`` maps each hyper-parameter to its current value (``lr`` as a schedule left it),
        ``counters`` each step counter (Adam's ``iter``) to an int, ``state`` each state dict
        (``'v'``, ``'h'``, ``'m'`` ...) to ``None`` (before the first update) or a dict of new arrays
        (copies, never views of the optimizer's buffers). :meth:`load_state_dict` takes it back.

        Returns
        -------
        dict
        """
        d = self.__dict__
        state = {}
        for name in self._state_names:
            store = getattr(self, name)
            state[name] = None if store is None else {k: np.array(v, copy=True, order="K") for k, v in store.items()}
        return {"class": type(self).__name__, "hyper": {n: d[n] for n in self._hyper_names},
                "counters": {n: int(getattr(self, n)) for n in self._counter_names}, "state": state}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore what :meth:`state_dict` returned; the next update continues bit for bit.

        Everything is validated before anything changes (a rejected call changes nothing): the
        class name when given, exactly this class's hyper-parameters (with the constructor's rules),
        counters (integers >= 0) and state dicts, each ``None`` or a dict of float32/float64 arrays,
        the same keys in every dict with one shape and dtype per key. Whether or not this optimizer
        has stepped: when a state dict holds the same keys, shapes and dtypes, the values are copied
        into its existing (writeable) arrays, which keeps the whole-model flat buffers; otherwise it
        is replaced by copies. Shapes against the parameters are checked by the next :meth:`update`.

        Parameters
        ----------
        state_dict : mapping
            As returned by :meth:`state_dict` (of an optimizer of the same class).

        Raises
        ------
        TypeError, ValueError
            Anything missing, extra or malformed; nothing changes.
        """
        cls, where = type(self).__name__, f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            _checks.fail(where, "state_dict", "a dict from state_dict()", _checks.describe(state_dict), TypeError)
        if set(state_dict) - {"class"} != {"hyper", "counters", "state"}:
            _checks.fail(where, "state_dict", "a dict with the keys 'hyper', 'counters', 'state' (and 'class')",
                         f"keys {sorted(map(str, state_dict))}")
        if state_dict.get("class", cls) != cls:
            _checks.fail(where, "state_dict['class']", repr(cls), repr(state_dict["class"]))
        parts = {}
        for part, names in (("hyper", self._hyper_names), ("counters", self._counter_names),
                            ("state", self._state_names)):
            given = state_dict[part]
            if not isinstance(given, Mapping) or set(given) != set(names):
                _checks.fail(where, f"state_dict[{part!r}]", f"a dict with the keys {list(names)}",
                             f"keys {sorted(map(str, given))}" if isinstance(given, Mapping) else
                             _checks.describe(given), TypeError if not isinstance(given, Mapping) else ValueError)
            parts[part] = given
        hyper = {n: _check_hyper(v, f"hyper[{n!r}]", where, **_HYPER_RULES[n]) for n, v in parts["hyper"].items()}
        counters = {}
        for n, v in parts["counters"].items():
            is_int = isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
            if not is_int or not 0 <= v < 2**63:
                _checks.fail(where, f"counters[{n!r}]", "an integer in [0, 2**63)", _checks.describe(v),
                             ValueError if is_int else TypeError)
            counters[n] = int(v)
        stores = [parts["state"][n] for n in self._state_names]
        first = None  # (name, dict): the other state dicts must have its keys, shapes and dtypes
        for name, store in zip(self._state_names, stores):
            if store is None:
                continue
            if not isinstance(store, Mapping):
                _checks.fail(where, f"state[{name!r}]", "None or a dict of arrays", _checks.describe(store), TypeError)
            if first is not None and list(store) != list(first[1]):
                _checks.fail(where, f"state[{name!r}]", f"a dict with the keys of state[{first[0]!r}], "
                             f"{list(first[1])}", f"keys {list(store)}")
            for key, a in store.items():
                if not isinstance(a, np.ndarray) or not _is_float(a.dtype):
                    _checks.fail(where, f"state[{name!r}][{key!r}]", "a float32 or float64 array",
                                 _checks.describe(a), TypeError)
                like = a if first is None else first[1][key]
                if a.shape != like.shape or a.dtype != like.dtype:
                    _checks.fail(where, f"state[{name!r}][{key!r}]", f"of shape {like.shape} and dtype {like.dtype} "
                                 f"like state[{first[0]!r}][{key!r}]", _checks.describe(a))
            first = first or (name, store)
        if first is not None and any(s is None for s in stores):
            _checks.fail(where, "state", "all None or all dicts", "a mix")
        # accepted: assign
        for name, new in zip(self._state_names, stores):
            cur = getattr(self, name, None)
            if new is not None and type(cur) is dict and list(cur) == list(new) and all(
                    type(c) is np.ndarray and c.shape == a.shape and c.dtype == a.dtype and c.flags.writeable
                    for c, a in zip(cur.values(), new.values())):
                for c, a in zip(cur.values(), new.values()):
                    np.copyto(c, a)  # in place: flat whole-model buffers (and a replay plan) stay valid
            else:  # new dict objects: the replay plan sees other state objects and re-validates
                setattr(self, name, None if new is None else
                        {k: np.array(a, copy=True, order="K") for k, a in new.items()})
        for n, v in hyper.items():
            setattr(self, n, v)
        for n, v in counters.items():
            setattr(self, n, v)

    def update(self, params: dict, grads: dict) -> None:
        """Step every entry of ``params`` in place with the matching entry of ``grads``.

        Parameters
        ----------
        params : dict
            Name -> float32/float64 ndarray (any layout, changed in place and still the same object
            afterwards), or a real number (a Python float or NumPy float32/float64 scalar, whose new
            value is written back into the dict as the same kind of scalar; a Python int becomes a
            float).
        grads : dict
            Must hold every key of ``params`` with the same shape. A gradient of the other float
            dtype is cast to the parameter's dtype; integer, bool, complex and float16 data raise.

        Raises
        ------
        TypeError
            ``params``/``grads`` not mappings, non-float data, existing state of another dtype.
        ValueError
            A missing gradient, a shape mismatch, a read-only parameter or state array.

        Notes
        -----
        Everything is validated before anything changes, so a rejected call leaves ``params``
        and the optimizer's state (including Adam's ``iter``) as they were. NaN/Inf in the new
        parameters is reported per :func:`fastdl.errstate` after all keys have been stepped.

        A call with the same parameter and state objects as the previous accepted one (same keys,
        shapes, dtypes, writeable flags) replays that call's validated layout instead of
        validating again; parameters and gradients that tile flat buffers are stepped by one
        kernel call, with the state moved into flat buffers (see the module notes).
        """
        plan = self._plan
        if plan is not None and type(params) is dict and type(grads) is dict and plan.match(self, params, grads):
            self._advance()
            bad = plan.run(self._kind, self._constants())
            if bad:
                keys = plan.keys
                runtime.report_nonfinite(f"{type(self).__name__}.update", "NaN/Inf in the updated parameters: "
                                         + ", ".join(f"params[{keys[i]!r}] ({n})" for i, n in bad))
            return
        where = f"{type(self).__name__}.update"
        if type(params) is not dict and not isinstance(params, Mapping):
            _checks.fail(where, "params", "a dict of name -> array", _checks.describe(params), TypeError)
        if type(grads) is not dict and not isinstance(grads, Mapping):
            _checks.fail(where, "grads", "a dict of name -> array", _checks.describe(grads), TypeError)
        entries = []
        has_scalar = False
        for key, p in params.items():
            # fast accept of the common case; anything else takes the full checks (and messages)
            if type(p) is np.ndarray and (p.dtype is _F64 or p.dtype is _F32) and p.flags.writeable:
                scalar_type = None
            else:
                p, scalar_type = _param_entry(key, p, where)
                has_scalar = has_scalar or scalar_type is not None
            if key not in grads:
                _checks.fail(where, "grads", "a dict with every key of params",
                             f"no {key!r} (grads has {sorted(map(repr, grads))})")
            g = grads[key]
            if type(g) is not np.ndarray or g.dtype is not p.dtype or g.shape != p.shape:
                g = _check_grad(g, p, f"grads[{key!r}]", f"params[{key!r}]", where)
            entries.append((key, p, g, scalar_type))
        if has_scalar and not isinstance(params, MutableMapping):
            _checks.fail(where, "params", "a mutable dict when it holds scalars (new values are stored in it)",
                         type(params).__name__, TypeError)
        stores = []
        for name in self._state_names:
            store = getattr(self, name)
            if store is not None:
                if type(store) is not dict and not isinstance(store, MutableMapping):
                    _checks.fail(where, f"self.{name}", "None or a dict of state arrays",
                                 _checks.describe(store), TypeError)
                for key, p, _, _ in entries:
                    s = store.get(key, _MISSING)
                    if s is not _MISSING and not (type(s) is np.ndarray and s.dtype is p.dtype
                                              and s.shape == p.shape and s.flags.writeable):
                        _check_state(s, p, f"self.{name}[{key!r}]", f"params[{key!r}]", where)
            stores.append(store)
        # Accepted: create what is missing, then step.
        for i, name in enumerate(self._state_names):
            if stores[i] is None:
                stores[i] = {}
                setattr(self, name, stores[i])
            store = stores[i]
            for key, p, _, _ in entries:
                if key not in store:
                    store[key] = np.zeros(p.shape, p.dtype, order=_order(p))
        self._advance()
        constants = self._constants()
        kind = self._kind
        plan = None
        if type(params) is dict and type(grads) is dict:  # (what the replay in update accepts)
            plan = _Plan.build(entries, self._state_names, stores)
        self._plan = plan
        if plan is not None and plan.learn_grads([grads[key] for key, _, _, _ in entries]):
            bad = [f"params[{entries[i][0]!r}] ({n})" for i, n in plan.run(kind, constants)]
        else:
            cast = {}  # dtype -> constants in that dtype
            bad = []
            for key, p, g, scalar_type in entries:
                c = cast.get(p.dtype)
                if c is None:
                    c = cast[p.dtype] = _cast(constants, p.dtype)
                n_bad = _step_array(kind, p, g, [store[key] for store in stores], c)
                if scalar_type is not None:
                    params[key] = scalar_type(p[()])
                if n_bad:
                    bad.append(f"params[{key!r}] ({n_bad})")
        if bad:
            runtime.report_nonfinite(where, f"NaN/Inf in the updated parameters: {', '.join(bad)}")


class SGD(_Optimizer):
    """Stochastic gradient descent.

    Update rule, per parameter ``p`` with gradient ``g``::

        p -= lr * g

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (> 0).
    """

    _kind = _k.SGD
    _hyper_names = ("lr",)
    _rule = staticmethod(_sgd_constants)

    def __init__(self, lr: float = 0.01) -> None:
        self._setup(lr=lr)



class Momentum(_Optimizer):
    """SGD with (heavy-ball) momentum, as the book writes it.

    Update rule, with velocity ``v`` (``self.v[key]``, zeros on the first update)::

        v = momentum * v - lr * g
        p += v

    PyTorch's ``SGD(momentum=...)`` keeps ``b = momentum * b + g`` and steps ``p -= lr * b``: the
    same trajectory for a constant ``lr``, different when ``lr`` changes between steps.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (> 0).
    momentum : float, default 0.9
        Velocity decay, in [0, 1).
    """

    _kind = _k.MOMENTUM
    _state_names = ("v",)
    _hyper_names = ("lr", "momentum")
    _rule = staticmethod(_momentum_constants)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        self._setup(lr=lr, momentum=momentum)



class Nesterov(_Optimizer):
    """Nesterov accelerated gradient in the book's reformulation (Sutskever et al., 2013).

    Update rule, with velocity ``v`` (``self.v[key]``, zeros on the first update), in this order,
    as the book's repository has it since its January 2021 fix ("Fix Nesterov update function"):
    the parameters step with the *old* ``v``, then ``v`` is updated::

        p += (momentum * momentum) * v
        p -= ((1 + momentum) * lr) * g
        v *= momentum
        v -= lr * g

    This steps the parameters directly instead of evaluating the gradient at the look-ahead
    point ``p + momentum * v`` (the paper's form). PyTorch's ``SGD(nesterov=True)`` uses
    ``b = momentum * b + g``, ``p -= lr * (g + momentum * b)``, equal for a constant ``lr``
    up to rounding (``v = -lr * b``). fastdl before 0.2 (and the book's first printing) updated
    ``v`` first and stepped with the new ``v``, which is not Nesterov's method.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (> 0).
    momentum : float, default 0.9
        Velocity decay, in [0, 1).
    """

    _kind = _k.NESTEROV
    _state_names = ("v",)
    _hyper_names = ("lr", "momentum")
    _rule = staticmethod(_nesterov_constants)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        self._setup(lr=lr, momentum=momentum)



class AdaGrad(_Optimizer):
    """AdaGrad (Duchi et al., 2011).

    Update rule, with the sum of squared gradients ``h`` (``self.h[key]``, zeros at first)::

        h += g * g
        p -= (lr * g) / (sqrt(h) + eps)

    ``eps`` sits outside the square root (the book adds ``1e-7``); PyTorch's ``Adagrad`` also adds
    it outside, with a default of ``1e-10``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (> 0).
    eps : float, default 1e-7
        Added to ``sqrt(h)`` (> 0).
    """

    _kind = _k.ADAGRAD
    _state_names = ("h",)
    _hyper_names = ("lr", "eps")
    _rule = staticmethod(_adagrad_constants)

    def __init__(self, lr: float = 0.01, eps: float = 1e-7) -> None:
        self._setup(lr=lr, eps=eps)



class RMSprop(_Optimizer):
    """RMSprop (Tieleman & Hinton, 2012).

    Update rule, with the running mean of squared gradients ``h`` (``self.h[key]``, zeros at
    first), in this order::

        h *= decay_rate
        h += ((1 - decay_rate) * g) * g
        p -= (lr * g) / (sqrt(h) + eps)

    ``eps`` sits outside the square root, as in PyTorch's ``RMSprop`` (whose ``alpha`` is
    ``decay_rate`` and whose default ``eps`` is ``1e-8``).

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (> 0).
    decay_rate : float, default 0.99
        Decay of the running mean, in (0, 1).
    eps : float, default 1e-7
        Added to ``sqrt(h)`` (> 0).
    """

    _kind = _k.RMSPROP
    _state_names = ("h",)
    _hyper_names = ("lr", "decay_rate", "eps")
    _rule = staticmethod(_rmsprop_constants)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99, eps: float = 1e-7) -> None:
        self._setup(lr=lr, decay_rate=decay_rate, eps=eps)



class Adam(_Optimizer):
    """Adam (Kingma & Ba, 2015) in the book's form: bias corrections folded into the step size.

    Update rule at step ``t = self.iter`` (incremented first, so the first update has ``t = 1``),
    with moments ``m``, ``v`` (``self.m[key]``, ``self.v[key]``, zeros at first)::

        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)     # Python float64, then the param dtype
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g * g - v)
        p -= (lr_t * m) / (sqrt(v) + eps)

    Differences from the paper and PyTorch: they divide the bias-corrected moments,
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1**t)`` and
    ``v_hat = v / (1 - beta2**t)``, so their ``eps`` is added after dividing ``sqrt(v)`` by
    ``sqrt(1 - beta2**t)``; here ``eps`` is added to the uncorrected ``sqrt(v)``. The two agree
    when ``eps`` is negligible against ``sqrt(v)``. Also, ``eps`` defaults to ``1e-7`` (PyTorch
    ``1e-8``).

    Parameters
    ----------
    lr : float, default 0.001
        Learning rate (> 0).
    beta1 : float, default 0.9
        Decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        Decay of the second moment, in [0, 1).
    eps : float, default 1e-7
        Added to ``sqrt(v)`` (> 0).
    """

    _kind = _k.ADAM
    _state_names = ("m", "v")
    _hyper_names = ("lr", "beta1", "beta2", "eps")
    _counter_names = ("iter",)

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7) -> None:
        self._setup(lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        self.iter = 0

    def _advance(self) -> None:
        self.iter += 1

    def _constants(self) -> tuple:
        d = self.__dict__
        return _adam_constants(d["lr"], d["beta1"], d["beta2"], d["eps"], self.iter)


# --------------------------------------------------------------------------------------------
# Registry


OPTIMIZERS: dict[str, type] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}

#: Other spellings accepted by :func:`get_optimizer` (the book's ``Trainer`` writes ``'rmsprpo'``).
_ALIASES = {"rmsprpo": "rmsprop"}


def get_optimizer(name_or_instance, **kwargs):
    """An optimizer from a name (``'adam'``, case-insensitive), a class, or an existing instance.

    Parameters
    ----------
    name_or_instance : str, optimizer class or optimizer instance
        A key of :data:`OPTIMIZERS` (the book's misspelling ``'rmsprpo'`` is accepted too), one
        of the classes, or an object with an ``update(params, grads)`` method, returned as is.
    **kwargs
        Constructor arguments (``lr=0.01`` ...); not allowed with an instance.

    Returns
    -------
    object
        The optimizer.

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones), or ``kwargs`` with an instance.
    TypeError
        Anything else, or constructor arguments the class does not take.
    """
    where = "get_optimizer"
    if isinstance(name_or_instance, str):
        key = name_or_instance.lower()
        key = _ALIASES.get(key, key)
        if key not in OPTIMIZERS:
            _checks.fail(where, "name", f"one of {', '.join(repr(k) for k in OPTIMIZERS)}",
                         repr(name_or_instance))
        return OPTIMIZERS[key](**kwargs)
    if isinstance(name_or_instance, type):
        if name_or_instance not in OPTIMIZERS.values():
            _checks.fail(where, "name_or_instance", "an optimizer name, class or instance",
                         f"class {name_or_instance.__name__}", TypeError)
        return name_or_instance(**kwargs)
    if callable(getattr(name_or_instance, "update", None)):
        if kwargs:
            _checks.fail(where, "kwargs", "empty when an optimizer instance is given",
                         ", ".join(sorted(kwargs)))
        return name_or_instance
    _checks.fail(where, "name_or_instance", "an optimizer name, class or instance",
                 _checks.describe(name_or_instance), TypeError)


# --------------------------------------------------------------------------------------------
# Step functions for any NumPy loop


def _step_inputs(where: str, p, g, states: dict) -> tuple:
    p = _check_param_array(p, "p", where)
    g = _check_grad(g, p, "g", "p", where)
    return p, g, tuple(_check_state(s, p, name, "p", where) for name, s in states.items())


def _apply(where: str, kind: int, p: np.ndarray, g: np.ndarray, states: tuple, constants: tuple) -> None:
    n_bad = _step_array(kind, p, g, states, _cast(constants, p.dtype))
    if n_bad:
        runtime.report_nonfinite(where, f"NaN/Inf in the updated p ({n_bad} values)")


def sgd_step(p: np.ndarray, g: np.ndarray, lr: float) -> None:
    """In-place SGD step: ``p -= lr * g``.

    Parameters
    ----------
    p : ndarray
        float32/float64 parameters, any layout, writeable; changed in place.
    g : ndarray
        Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s).
    lr : float
        Learning rate (> 0).

    Raises
    ------
    TypeError, ValueError
        Non-float or non-array input, shape mismatch, read-only ``p``, bad ``lr``; nothing changes.
    """
    where = "sgd_step"
    (lr,) = _hyper(where, lr=lr)
    p, g, states = _step_inputs(where, p, g, {})
    _apply(where, _k.SGD, p, g, states, _sgd_constants(lr))


def momentum_step(p: np.ndarray, g: np.ndarray, v: np.ndarray, lr: float, momentum: float) -> None:
    """In-place momentum step: ``v = momentum * v - lr * g``; ``p += v``.

    Parameters
    ----------
    p : ndarray
        float32/float64 parameters, any layout, writeable; changed in place.
    g : ndarray
        Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s).
    v : ndarray
        Velocity, same shape and dtype as ``p``, writeable; changed in place.
    lr : float
        Learning rate (> 0).
    momentum : float
        In [0, 1).

    Raises
    ------
    TypeError, ValueError
        Bad dtype, shape, layout flags or hyper-parameter; nothing changes.
    """
    where = "momentum_step"
    lr, momentum = _hyper(where, lr=lr, momentum=momentum)
    p, g, states = _step_inputs(where, p, g, {"v": v})
    _apply(where, _k.MOMENTUM, p, g, states, _momentum_constants(lr, momentum))


def nesterov_step(p: np.ndarray, g: np.ndarray, v: np.ndarray, lr: float, momentum: float) -> None:
    """In-place Nesterov step in the book's current form (see :class:`Nesterov`).

    ``p += (momentum * momentum) * v``; ``p -= ((1 + momentum) * lr) * g`` (with the old ``v``);
    then ``v *= momentum``; ``v -= lr * g``.

    Parameters
    ----------
    p : ndarray
        float32/float64 parameters, any layout, writeable; changed in place.
    g : ndarray
        Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s).
    v : ndarray
        Velocity, same shape and dtype as ``p``, writeable; changed in place.
    lr : float
        Learning rate (> 0).
    momentum : float
        In [0, 1).

    Raises
    ------
    TypeError, ValueError
        Bad dtype, shape, layout flags or hyper-parameter; nothing changes.
    """
    where = "nesterov_step"
    lr, momentum = _hyper(where, lr=lr, momentum=momentum)
    p, g, states = _step_inputs(where, p, g, {"v": v})
    _apply(where, _k.NESTEROV, p, g, states, _nesterov_constants(lr, momentum))


def adagrad_step(p: np.ndarray, g: np.ndarray, h: np.ndarray, lr: float, eps: float = 1e-7) -> None:
    """In-place AdaGrad step: ``h += g * g``; ``p -= (lr * g) / (sqrt(h) + eps)``.

    Parameters
    ----------
    p : ndarray
        float32/float64 parameters, any layout, writeable; changed in place.
    g : ndarray
        Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s).
    h : ndarray
        Sum of squared gradients, same shape and dtype as ``p``, writeable; changed in place.
    lr : float
        Learning rate (> 0).
    eps : float, default 1e-7
        Added outside the square root (> 0).

    Raises
    ------
    TypeError, ValueError
        Bad dtype, shape, layout flags or hyper-parameter; nothing changes.
    """
    where = "adagrad_step"
    lr, eps = _hyper(where, lr=lr, eps=eps)
    p, g, states = _step_inputs(where, p, g, {"h": h})
    _apply(where, _k.ADAGRAD, p, g, states, _adagrad_constants(lr, eps))


def rmsprop_step(p: np.ndarray, g: np.ndarray, h: np.ndarray, lr: float, decay_rate: float = 0.99,
                 eps: float = 1e-7) -> None:
    """In-place RMSprop step.

    ``h *= decay_rate``; ``h += ((1 - decay_rate) * g) * g``; ``p -= (lr * g) / (sqrt(h) + eps)``.

    Parameters
    ----------
    p : ndarray
        float32/float64 parameters, any layout, writeable; changed in place.
    g : ndarray
        Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s).
    h : ndarray
        Running mean of squared gradients, same shape and dtype as ``p``; changed in place.
    lr : float
        Learning rate (> 0).
    decay_rate : float, default 0.99
        In (0, 1).
    eps : float, default 1e-7
        Added outside the square root (> 0).

    Raises
    ------
    TypeError, ValueError
        Bad dtype, shape, layout flags or hyper-parameter; nothing changes.
    """
    where = "rmsprop_step"
    lr, decay_rate, eps = _hyper(where, lr=lr, decay_rate=decay_rate, eps=eps)
    p, g, states = _step_inputs(where, p, g, {"h": h})
    _apply(where, _k.RMSPROP, p, g, states, _rmsprop_constants(lr, decay_rate, eps))


def adam_step(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float = 0.001,
              beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7) -> None:
    """In-place Adam step number ``t`` (1 for the first) in the book's form (see :class:`Adam`).

    ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` (in Python float64, then ``p``'s dtype);
    ``m += (1 - beta1) * (g - m)``; ``v += (1 - beta2) * (g * g - v)``;
    ``p -= (lr_t * m) / (sqrt(v) + eps)``.

    Parameters
    ----------
    p : ndarray
        float32/float64 parameters, any layout, writeable; changed in place.
    g : ndarray
        Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s).
    m, v : ndarray
        First and second moments, same shape and dtype as ``p``, writeable; changed in place.
    t : int
        Step number, >= 1 (the caller counts; :class:`Adam` keeps it in ``iter``).
    lr : float, default 0.001
        Learning rate (> 0).
    beta1, beta2 : float, default 0.9, 0.999
        Moment decays, in [0, 1).
    eps : float, default 1e-7
        Added to ``sqrt(v)`` (> 0).

    Raises
    ------
    TypeError, ValueError
        Bad dtype, shape, layout flags, step number or hyper-parameter; nothing changes.
    """
    where = "adam_step"
    lr, beta1, beta2, eps = _hyper(where, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    if isinstance(t, bool | np.bool_):
        _checks.fail(where, "t", "an integer >= 1", _checks.describe(t), TypeError)
    try:
        t = operator.index(t)
    except TypeError:
        _checks.fail(where, "t", "an integer >= 1", _checks.describe(t), TypeError)
    if t < 1:
        _checks.fail(where, "t", "an integer >= 1", repr(t))
    p, g, states = _step_inputs(where, p, g, {"m": m, "v": v})
    _apply(where, _k.ADAM, p, g, states, _adam_constants(lr, beta1, beta2, eps, t))
