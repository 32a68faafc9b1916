"""The optimizer base class: validation, state creation, the replay plan, NaN/Inf reporting.

:func:`optimizer_class` turns a :class:`~fastdl.optim.rules.Rule` into a class with the book's API
(constructor arguments and defaults from the record, validated hyper-parameter attributes, the
state dicts and step counters as attributes, ``update(params, grads)``).
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Mapping, MutableMapping

import numpy as np

from .. import _checks, runtime
from ..kernels import optim as _k
from ..schedules import schedule_config
from .plan import N_RULE_CONSTANTS, Plan, cast, order, step_array
from .rules import MAX_COUNT, Counter, Hyper, Rule

_FLOATS = _checks.FLOAT_DTYPES
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_MISSING = object()
_NUMBERS = (int, float, np.number)
_INF = float("inf")
_ITERATIONS = Counter("iterations", "iterations", "Updates done so far")  # (its range check)
#: The gradient clipping options of every optimizer (Keras' names), at most one of them.
CLIP_OPTIONS = ("clipnorm", "clipvalue", "global_clipnorm")
#: Hyper-parameters a schedule's ``momentum(step)`` drives (1cycle's momentum cycling), in this order of preference.
MOMENTUM_NAMES = ("momentum", "beta1")


def is_schedule(value) -> bool:
    """True for a callable ``lr`` (a schedule): anything callable that is not a number."""
    return callable(value) and not isinstance(value, _NUMBERS)


def is_float(dtype: np.dtype) -> bool:
    """float32/float64 in native byte order (identity with the builtin dtypes first: ~5x cheaper)."""
    return dtype is _F64 or dtype is _F32 or dtype in _FLOATS


# --------------------------------------------------------------------------------------------
# Validation


def check_param_array(p, name: str, where: str) -> np.ndarray:
    if not isinstance(p, np.ndarray):
        _checks.fail(where, name, "a float32 or float64 numpy array", _checks.describe(p), TypeError)
    if not is_float(p.dtype):
        _checks.fail(where, name, "a float32 or float64 array (cast it with .astype(np.float64) or np.float32)",
                     f"dtype {p.dtype}", TypeError)
    if not p.flags.writeable:
        _checks.fail(where, name, "a writeable array (it is updated in place)", "a read-only array")
    return p if type(p) is np.ndarray else np.asarray(p)  # a subclass (np.memmap ...): a plain view


def check_grad(g, p: np.ndarray, name: str, pname: str, where: str) -> np.ndarray:
    if not isinstance(g, np.ndarray) or not is_float(g.dtype):
        g = _checks.float_array(g, name, where)
    if g.shape != p.shape:
        _checks.fail(where, name, f"of shape {p.shape} like {pname}", f"shape {g.shape}")
    return g if type(g) is np.ndarray else np.asarray(g)


def check_state(s, p: np.ndarray, name: str, pname: str, where: str) -> np.ndarray:
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
        return check_param_array(value, name, where), None
    if isinstance(value, np.floating) and value.dtype in _FLOATS:
        return np.array(value), type(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return np.array(float(value)), float
    _checks.fail(where, name, "a float32/float64 numpy array or a real number", _checks.describe(value),
                 TypeError)


def clip_constants(constants: tuple, option: str, value: float, sumsq: float, where: str) -> tuple:
    """``constants`` padded to eight with the clipping pair ``(scale, bound)`` for ``c[6], c[7]``.

    ``sumsq``: the sum of squares of the gradients the norm is of (one array for ``clipnorm``,
    all of them for ``global_clipnorm``; from :func:`grad_sumsq`; unused for ``clipvalue``).
    """
    if len(constants) > N_RULE_CONSTANTS:
        _checks.fail(where, option, f"None for a rule with more than {N_RULE_CONSTANTS} constants", repr(value))
    pad = (0.0,) * (N_RULE_CONSTANTS - len(constants))
    if option == "clipvalue":
        return (*constants, *pad, 1.0, value)
    norm = math.sqrt(sumsq)
    if option == "clipnorm":
        scale = value / max(norm, value)  # (Keras: g * clipnorm / max(norm, clipnorm))
    else:
        scale = value * min(1.0 / norm, 1.0 / value) if norm > 0 else value * (1.0 / value)  # (Keras' form)
    if not math.isfinite(norm):
        scale = math.nan
    return (*constants, *pad, scale, math.inf)


def grad_sumsq(flats, option: str, where: str) -> list:
    """Sums of squares of the 1-D gradient arrays (one compiled pass each, parallel above the threshold),
    NaN/Inf reported through :func:`fastdl.errstate` before anything changes."""
    use_parallel = runtime.use_parallel
    sums = [_k.sumsq_parallel(f, runtime.chunks(f.size)) if use_parallel(f.size, "clipnorm", f.nbytes, f.itemsize)
            else _k.sumsq(f) for f in flats]
    if not all(map(math.isfinite, sums)):
        runtime.report_nonfinite(where, f"NaN/Inf in the gradients: their norm is not finite, so {option} scales "
                                 "them by NaN (Keras' rule) and the step writes NaN")
    return sums


def _rule_constants(rule: Rule) -> int:
    """How many constants ``rule`` gives at its first update with the default hyper-parameters (0 if that fails)."""
    hyper = [h.default for h in rule.hyper]
    counters = [c.initial for c in rule.counters]
    try:
        counters = list(rule.advance(*hyper, *counters)) if rule.advance is not None else [c + 1 for c in counters]
        return len(rule.constants(*hyper, *counters))
    except Exception:  # noqa: BLE001 - a probe: the update reports a real problem with its own message
        return 0


class _HyperAttr:
    """A hyper-parameter attribute validated whenever it is set (``opt.lr = 0.1`` works as in the book)."""

    def __init__(self, spec: Hyper) -> None:
        self.spec = spec
        self.name = spec.name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute {self.name!r}") from None

    def __set__(self, obj, value) -> None:
        if self.name == "lr" and is_schedule(value):
            obj.__dict__["lr"] = value  # a schedule: evaluated once per update (see _Optimizer._scheduled)
        else:
            obj.__dict__[self.name] = self.spec.check(value, type(obj).__name__)


# --------------------------------------------------------------------------------------------
# The base class


class _Optimizer:
    """Shared ``update``: validate everything, create missing state, step each key, report NaN/Inf.

    A subclass made by :func:`optimizer_class` sets ``_rule`` and the name tuples derived from it.
    """

    _rule: Rule
    _state_names: tuple[str, ...] = ()  # the state dicts, created on the first update
    _hyper_names: tuple[str, ...] = ()  # constructor arguments, in the order the rule's constants take them
    _counter_names: tuple[str, ...] = ()  # step counters (Adam: ("iter",))

    def _set_clipping(self, clipnorm=None, clipvalue=None, global_clipnorm=None) -> None:
        """Validate and keep the clipping option (at most one; a finite number > 0 or None)."""
        where = type(self).__name__
        given = {n: v for n, v in zip(CLIP_OPTIONS, (clipnorm, clipvalue, global_clipnorm)) if v is not None}
        if len(given) > 1:
            _checks.fail(where, "clipnorm, clipvalue, global_clipnorm", "at most one of them",
                         ", ".join(f"{n}={v!r}" for n, v in given.items()))
        values = {n: _checks.positive_number(v, n, where) for n, v in given.items()}
        if values and self._rule.kind is None and _rule_constants(self._rule) > N_RULE_CONSTANTS:
            _checks.fail(where, next(iter(values)), f"None for a rule with more than {N_RULE_CONSTANTS} constants "
                         "(c[6], c[7] carry the clipping)", repr(next(iter(given.values()))))
        for n in CLIP_OPTIONS:
            self.__dict__[n] = values.get(n)
        self._clip = next(iter(values.items()), None)  # (option, value) or None

    def _clip_constants(self, constants: tuple, sumsq: float, where: str) -> tuple:
        """``constants`` padded to eight with the clipping pair ``(scale, bound)`` for ``c[6], c[7]``
        (:func:`clip_constants` with this optimizer's option)."""
        return clip_constants(constants, *self._clip, sumsq, where)

    def _setup(self, **hyper) -> None:
        """Set (and so validate) the hyper-parameters; the state dicts start as None, the counters at their start."""
        clipping = {n: hyper.pop(n, None) for n in CLIP_OPTIONS}
        for name, value in hyper.items():
            setattr(self, name, value)
        self._set_clipping(**clipping)
        for name in self._state_names:
            setattr(self, name, None)
        for counter in self._rule.counters:
            setattr(self, counter.name, counter.initial)
        self.iterations = 0  # updates done (Keras' ``iterations``): the step a schedule is evaluated at
        self._plan = None  # see Plan: the layout of the last accepted update, replayed while valid

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_plan"] = None  # copies and pickles re-learn the layout (it holds the arrays' identities)
        return state

    # -- saving and restoring (generic over the record's state, hyper-parameter and counter names) ----

    def state_dict(self) -> dict:
        """Everything that determines the next steps, as copies: ``{'class', 'hyper', 'counters', 'state'}``.

        ``hyper`` maps each hyper-parameter to its current value (``lr`` as a callback left it; a
        schedule as its JSON-ready config, :func:`fastdl.schedules.schedule_config`), ``counters``
        each step counter of the rule (Adam's ``iter``) to an int (Nadam's ``u_product``: a
        float), ``iterations`` the updates done (the step a schedule reads), ``state`` each state dict
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
        counters = {c.name: type(c.initial)(getattr(self, c.name)) for c in self._rule.counters}  # (int or float)
        hyper = {n: schedule_config(d[n]) if n == "lr" and is_schedule(d[n]) else d[n] for n in self._hyper_names}
        clipping = {n: d[n] for n in CLIP_OPTIONS if d.get(n) is not None}
        return {"class": type(self).__name__, "hyper": hyper, "counters": counters,
                "iterations": int(d.get("iterations", 0)), "clipping": clipping, "state": state}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore what :meth:`state_dict` returned; the next update continues bit for bit.

        Everything is validated before anything changes (a rejected call changes nothing): the
        class name when given, exactly this class's hyper-parameters (with the constructor's rules),
        counters (integers >= 0) and state dicts, each ``None`` or a dict of float32/float64 arrays,
        the same keys in every dict with one shape and dtype per key. Whether or not this optimizer
        has stepped: when a state dict holds the same keys, shapes and dtypes, the values are copied
        into its existing (writeable) arrays, which keeps the whole-model flat buffers; otherwise it
        is replaced by copies. Shapes against the parameters are checked by the next :meth:`update`.

        A schedule is not rebuilt from its recorded config: when ``hyper['lr']`` is a config (a
        dict or a name), this optimizer must have a schedule as its ``lr`` already (the caller's
        object, constructed as for the saved run), and keeps it; the restored ``iterations`` make
        it continue at the saved step. ``iterations`` may be missing (a dict from before schedules):
        then it is the rule's first integer counter (Adam's ``iter``), or 0. ``clipping`` (the
        option and its value, ``{}`` for none) replaces this optimizer's when given.

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
        if set(state_dict) - {"class", "iterations", "clipping"} != {"hyper", "counters", "state"}:
            _checks.fail(where, "state_dict", "a dict with the keys 'hyper', 'counters', 'state' (and 'class', "
                         "'iterations', 'clipping')", f"keys {sorted(map(str, state_dict))}")
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
        saved_lr = parts["hyper"].get("lr")
        keep_schedule = "lr" in self._hyper_names and isinstance(saved_lr, Mapping | str)
        if keep_schedule and not is_schedule(self.__dict__.get("lr")):
            _checks.fail(where, "state_dict['hyper']['lr']", "a number (it is a schedule's config: construct this "
                         "optimizer with the schedule, then load)", repr(saved_lr))
        hyper = {h.name: h.check(parts["hyper"][h.name], where, f"hyper[{h.name!r}]") for h in self._rule.hyper
                 if not (keep_schedule and h.name == "lr")}
        counters = {c.name: c.check(parts["counters"][c.name], where, f"counters[{c.name!r}]")
                    for c in self._rule.counters}
        clipping = state_dict.get("clipping")
        if clipping is not None:  # validated by a scratch copy (nothing of self changes here)
            if not isinstance(clipping, Mapping) or not set(clipping) <= set(CLIP_OPTIONS):
                _checks.fail(where, "state_dict['clipping']", f"a dict with keys among {list(CLIP_OPTIONS)}",
                             _checks.describe(clipping), TypeError if not isinstance(clipping, Mapping) else ValueError)
            scratch = object.__new__(type(self))
            scratch._set_clipping(**clipping)
        if "iterations" in state_dict:
            iterations = _checks.count(state_dict["iterations"], "state_dict['iterations']", where, minimum=0)
        else:
            iterations = next((v for c, v in zip(self._rule.counters, counters.values())
                               if not isinstance(c.initial, float)), 0)
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
                if not isinstance(a, np.ndarray) or not is_float(a.dtype):
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
        self.iterations = iterations
        if clipping is not None:
            self._set_clipping(**clipping)
            self._plan = None  # (clipnorm keeps no plan)

    def _grad_sumsq(self, flats) -> list:
        """Sums of squares of the 1-D gradient arrays (:func:`grad_sumsq` with this optimizer's option)."""
        return grad_sumsq(flats, self._clip[0], f"{type(self).__name__}.update")

    def __repr__(self) -> str:
        args = ", ".join([f"{n}={getattr(self, n)!r}" for n in self._hyper_names]
                         + [f"{n}={self.__dict__[n]!r}" for n in CLIP_OPTIONS if self.__dict__.get(n) is not None])
        return f"{type(self).__name__}({args})"

    # _tick() -> constants: counts this update (the step counters) and returns the rule's constants;
    # called once per update after everything else is validated, a counter out of range rejected before
    # any counter changes. Written out per rule by tick_function.

    def _scheduled(self, schedule, step, momentum):
        """``(lr, momentum)`` for update ``step``: ``schedule(step)`` validated (finite, >= 0: Keras' cosine
        and polynomial schedules end at 0), and the schedule's ``momentum(step)`` (1cycle) in place of
        ``momentum`` when it has one (else as given)."""
        lr = schedule(step)
        if not (type(lr) is float and 0.0 <= lr < _INF):  # (NaN fails both comparisons)
            lr = _checks.positive_number(lr, f"lr({step})", f"{type(self).__name__}.update", allow_zero=True)
        if momentum is not None:
            cycle = getattr(schedule, "momentum", None)
            value = cycle(step) if callable(cycle) else None
            if value is not None:
                name = next(n for n in MOMENTUM_NAMES if n in self._hyper_names)
                spec = self._rule.hyper[self._hyper_names.index(name)]
                momentum = spec.check(value, f"{type(self).__name__}.update", f"{name}({step})")
        return lr, momentum

    def _check_counter(self, name: str, value) -> int | float:
        """``value`` if it is a valid value of the counter ``name``, else the house error (nothing changed yet)."""
        spec = next((c for c in self._rule.counters if c.name == name), _ITERATIONS)
        return spec.check(value, f"{type(self).__name__}.update", f"self.{name}")

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
            ``params``/``grads`` not mappings, non-float data, existing state of another dtype, a
            step counter that is not an integer.
        ValueError
            A missing gradient, a shape mismatch, a read-only parameter or state array, a step
            counter out of range (Adam's ``iter`` must be in [0, 2**63 - 2]).

        Notes
        -----
        Everything is validated before anything changes, so a rejected call leaves ``params``
        and the optimizer's state (including Adam's ``iter``) as they were. NaN/Inf in the new
        parameters is reported per :func:`fastdl.errstate` after all keys have been stepped.

        A call with the same parameter and state objects as the previous accepted one (same keys,
        shapes, dtypes, writeable flags) replays that call's validated layout instead of
        validating again; parameters and gradients that tile flat buffers are stepped by one
        kernel call, with the state moved into flat buffers (see :mod:`fastdl.optim`).
        """
        plan = self._plan
        if plan is not None and type(params) is dict and type(grads) is dict and plan.match(self, params, grads):
            if self._clip is None:
                bad = plan.run(self._rule, self._tick())
            else:  # (global_clipnorm or clipvalue: clipnorm never keeps a plan)
                total = 0.0 if self._clip[0] == "clipvalue" else sum(self._grad_sumsq(plan.gflat))
                bad = plan.run(self._rule, self._clip_constants(self._tick(), total, f"{type(self).__name__}.update"))
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
                g = check_grad(g, p, f"grads[{key!r}]", f"params[{key!r}]", where)
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
                        check_state(s, p, f"self.{name}[{key!r}]", f"params[{key!r}]", where)
            stores.append(store)
        clip = self._clip
        sums = None
        if clip is not None and clip[0] != "clipvalue":  # the norms: read each gradient once, before any change
            sums = self._grad_sumsq([np.ravel(g, order="K") for _, _, g, _ in entries])
        constants = self._tick()  # (the last check: the step counters; they count this update from here)
        # Accepted: create what is missing, then step.
        for i, name in enumerate(self._state_names):
            if stores[i] is None:
                stores[i] = {}
                setattr(self, name, stores[i])
            store = stores[i]
            for key, p, _, _ in entries:
                if key not in store:
                    store[key] = np.zeros(p.shape, p.dtype, order=order(p))
        rule = self._rule
        plan = None
        if type(params) is dict and type(grads) is dict and (clip is None or clip[0] != "clipnorm"):
            plan = Plan.build(entries, self._state_names, stores)  # (what the replay in update accepts)
        self._plan = plan
        if clip is not None and clip[0] != "clipnorm":
            constants = self._clip_constants(constants, sum(sums or ()), where)
        if plan is not None and plan.learn_grads([grads[key] for key, _, _, _ in entries]):
            bad = [f"params[{entries[i][0]!r}] ({n})" for i, n in plan.run(rule, constants)]
        else:
            by_dtype = {}  # dtype -> constants in that dtype
            bad = []
            for i, (key, p, g, scalar_type) in enumerate(entries):
                if clip is not None and clip[0] == "clipnorm":  # a scale per array
                    c = cast(self._clip_constants(constants, sums[i], where), p.dtype)
                else:
                    c = by_dtype.get(p.dtype)
                if c is None:
                    c = by_dtype[p.dtype] = cast(constants, p.dtype)
                n_bad = step_array(rule, p, g, [store[key] for store in stores], c)
                if scalar_type is not None:
                    params[key] = scalar_type(p[()])
                if n_bad:
                    bad.append(f"params[{key!r}] ({n_bad})")
        if bad:
            runtime.report_nonfinite(where, f"NaN/Inf in the updated parameters: {', '.join(bad)}")


# --------------------------------------------------------------------------------------------
# Classes from records


_WIDTH = 96  # docstring line width


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def class_doc(rule: Rule) -> str:
    """The class docstring: summary, the exact update rule, the notes, the parameters, a pointer."""
    parts = [rule.summary or f"The {rule.class_name} update rule."]
    if rule.state:
        states = [f"``{s.name}`` ({s.doc.lower()}, ``self.{s.name}[key]``)" for s in rule.state]
        states = " and ".join([", ".join(states[:-1]), states[-1]] if len(states) > 1 else states)
        parts.append(textwrap.fill(f"Update rule per parameter ``p`` with gradient ``g``, in this order, with "
                                   f"{states}, zeros on the first update::", _WIDTH))
    else:
        parts.append("Update rule per parameter ``p`` with gradient ``g``::")
    parts.append(_indent(rule.formula))
    if rule.notes:
        parts.append(textwrap.fill(rule.notes, _WIDTH))
    lines = ["Parameters", "----------"]
    for h in rule.hyper:
        if h.name == "lr":
            lines += [f"lr : float or callable, default {h.default!r}",
                      *("    " + line for line in textwrap.wrap(
                          f"{h.doc} ({h.range}), or a schedule ``lr(step) -> float`` evaluated once per update "
                          "at ``step = iterations`` (0 at the first; :mod:`fastdl.schedules`), its value finite "
                          "and >= 0 (a schedule may end at 0), checked before anything changes; a schedule with "
                          f"``momentum(step)`` (1cycle) also drives {' / '.join(f'``{n}``' for n in MOMENTUM_NAMES)}.",
                          _WIDTH - 4))]
        else:
            lines += [f"{h.name} : float, default {h.default!r}", f"    {h.doc} ({h.range})."]
    outside = ("" if rule.kind is not None else " This rule's worker is not one of fastdl.kernels.optim: it steps "
               "with a clipped copy of the gradient instead (one more pass over it).")
    lines += ["clipnorm, clipvalue, global_clipnorm : float, optional (keyword only)",
              *("    " + line for line in textwrap.wrap(
                  "Gradient clipping with Keras' semantics, at most one (> 0): ``clipvalue`` clips each element "
                  "to ``[-clipvalue, clipvalue]``; ``clipnorm`` scales each gradient array by ``clipnorm / "
                  "max(norm, clipnorm)`` (its own L2 norm); ``global_clipnorm`` scales all of them by "
                  "``c * min(1 / norm, 1 / c)`` with ``norm`` the L2 norm of all gradients together. The "
                  "caller's gradients are never written: the kernel reads ``g[i]``, clips it and multiplies "
                  "it by the scale (``c[6], c[7]``), the norm being one compiled reduction per array (on the "
                  "whole-model path over the key's views of the gradient buffer: one pass over it, and the "
                  "same sums, so the same bits, as per key). NaN/Inf in the gradients of a norm is reported "
                  "through :func:`fastdl.errstate` before anything changes (``'raise'``: the update is rejected); "
                  "otherwise the step goes on as Keras' does, with the scale NaN, and writes NaN into the "
                  "parameters (reported again)." + outside, _WIDTH - 4))]
    parts.append("\n".join(lines))
    lines = ["Attributes", "----------", "iterations : int", "    Updates done so far (starts at 0)."]
    if rule.counters:
        for c in rule.counters:
            lines += [f"{c.name} : {type(c.initial).__name__}", f"    {c.doc} (starts at {c.initial})."]
    parts.append("\n".join(lines))
    parts.append("Notes\n-----\n" + textwrap.fill(  # a section of its own, not the tail of "Attributes"
        "See :mod:`fastdl.optim` for what ``update`` validates and guarantees, and "
        "docs/design-notes.md (Optimizers) for the measurements behind the kernels.", _WIDTH))
    return "\n\n".join(parts)


def tick_function(rule: Rule):
    """``_tick`` of :class:`_Optimizer` written out for ``rule`` (made like a dataclass's ``__init__``)."""
    lines = ["def _tick(self):", "    d = self.__dict__"]
    hyper = [f"h{i}" for i in range(len(rule.hyper))]
    lines += [f"    h{i} = d[{h.name!r}]" for i, h in enumerate(rule.hyper)]
    names = rule.hyper_names
    lines += ["    it = d.get('iterations', 0)",  # the updates done: the step a schedule reads
              "    if not (type(it) is int and 0 <= it < MAX_COUNT):",
              "        it = self._check_counter('iterations', it)"]
    if "lr" in names:  # a schedule: evaluated here, once per update, validated before anything changes
        lr = f"h{names.index('lr')}"
        mom = next((f"h{names.index(n)}" for n in MOMENTUM_NAMES if n in names), None)
        lines += [f"    if type({lr}) is not float:",
                  f"        {lr}, {mom or '_'} = self._scheduled({lr}, it, {mom})"]
    counters = [f"c{i}" for i in range(len(rule.counters))]
    for i, c in enumerate(rule.counters):
        valid = (f"type(c{i}) is float and c{i} - c{i} == 0.0" if isinstance(c.initial, float)
                 else f"type(c{i}) is int and 0 <= c{i} < MAX_COUNT")
        lines += [f"    c{i} = d.get({c.name!r}, _MISSING)",
                  f"    if not ({valid}):",
                  f"        c{i} = self._check_counter({c.name!r}, c{i})"]
    if rule.advance is not None:
        lines.append(f"    {''.join(f'{c}, ' for c in counters)}= _advance({', '.join(hyper + counters)})")
    else:
        lines += [f"    {c} += 1" for c in counters]
    lines.append(f"    constants = _constants({', '.join(hyper + counters)})")
    lines += [f"    d[{c.name!r}] = c{i}" for i, c in enumerate(rule.counters)]
    lines += ["    d['iterations'] = it + 1", "    return constants"]
    namespace = {"_constants": rule.constants, "_advance": rule.advance, "_MISSING": _MISSING,
                 "MAX_COUNT": MAX_COUNT}
    exec(compile("\n".join(lines) + "\n", f"<fastdl.optim {rule.class_name}._tick>", "exec"), namespace)  # noqa: S102
    func = namespace["_tick"]
    func.__doc__ = "Count this update (the step counters) and return the rule's constants."
    return func


def optimizer_class(rule: Rule, module: str = "fastdl.optim") -> type:
    """The book-style class of ``rule``: ``Cls(**hyper)``, ``update(params, grads)``, the state as attributes."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(h.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=h.default)
               for h in rule.hyper]
    clipping = CLIP_OPTIONS
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in clipping]
    signature = inspect.Signature(params)
    names = rule.hyper_names

    def __init__(self, *args, **kwargs) -> None:
        bound = signature.bind(self, *args, **kwargs)  # a TypeError for arguments the class does not take
        bound.apply_defaults()
        self._setup(**{n: bound.arguments[n] for n in (*names, *clipping)})

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{rule.class_name}.__init__"
    namespace = {
        "__init__": __init__,
        "__doc__": class_doc(rule),
        "__module__": module,
        "__qualname__": rule.class_name,
        "_rule": rule,
        "_state_names": rule.state_names,
        "_hyper_names": names,
        "_counter_names": rule.counter_names,
        "_tick": tick_function(rule),
        **{h.name: _HyperAttr(h) for h in rule.hyper},
    }
    return type(rule.class_name, (_Optimizer,), namespace)
