"""Optimizers with the book's API (``common/optimizer.py``), stepped by compiled single-pass kernels.

Drop-in for *Deep Learning from Scratch*::

    from fastdl.optim import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam

    optimizer = Adam(lr=0.001)
    optimizer.update(network.params, grads)   # every array in params changes in place

Each class has the book's name, constructor arguments, defaults and attributes (``lr``,
``momentum``, ``decay_rate``, ``beta1``, ``beta2``, ``eps``; state dicts ``v``, ``h``, ``m`` and
Adam's step counter ``iter``), created on the first ``update`` with each parameter's dtype and
shape. The arithmetic is the book's, in the book's operation order, so float64 runs print the
numbers of :mod:`fastdl.reference` and float32 parameters are stepped in float32.

``update`` validates every key (types, dtypes, shapes, writeable arrays, existing state, step
counters) before it changes anything: a rejected call leaves ``params`` and the optimizer's state
exactly as they were. NaN/Inf in the updated parameters is reported through
:func:`fastdl.errstate` after the whole step has been applied. Two fast paths give the same bits:
a repeated call with the same objects replays the validated layout of the last accepted one, and
parameters and gradients that tile flat buffers (as :mod:`fastdl.nets` builds them) are stepped
by one kernel call for the whole model, with the state moved into flat buffers too
(:class:`~fastdl.optim.plan.Plan`; measurements in docs/design-notes.md, "Optimizers").

Beyond the book, Hands-On ML ch. 11's three with Keras 3's names, defaults and formulas:
:class:`AdaMax` (``'adamax'``), :class:`Nadam` (``'nadam'``) and :class:`AdamW` (``'adamw'``).

The same rules as plain in-place functions for any NumPy loop: :func:`sgd_step`,
:func:`momentum_step`, :func:`nesterov_step`, :func:`adagrad_step`, :func:`rmsprop_step`,
:func:`adam_step`, :func:`adamax_step`, :func:`nadam_step`, :func:`adamw_step`.

Learning-rate schedules: ``lr`` of every optimizer may be a callable ``schedule(step) -> float``
(any :mod:`fastdl.schedules` object or a plain function), evaluated in Python once per update at
``step = opt.iterations`` (the updates done before this one, 0 at the first, as Keras'
``iterations``) and validated (finite, >= 0: a cosine schedule ends at 0) before anything changes; a schedule with
``momentum(step)`` (:class:`~fastdl.schedules.OneCycle`) also sets ``momentum``/``beta1`` for that
update (the attribute keeps the caller's value). ``opt.lr`` returns the schedule itself.

Saving and resuming: ``opt.state_dict()`` returns copies of the hyper-parameters, step counters
and state arrays (a schedule as its config, with the ``iterations`` it continues from), and
``opt.load_state_dict(d)`` restores them (keeping the caller's schedule object) (validated whole before anything
changes), so a run saved after step k and restored into a new optimizer continues bit for bit. A
learning-rate schedule or callback joins a :class:`~fastdl.Trainer` checkpoint through the same
protocol: ``state_dict()`` returning a dict of numbers, strings, lists, dicts and arrays, and
``load_state_dict(d)``.

Every optimizer is a record of :mod:`fastdl.optim.rules`; the classes and step functions are made
from it. :data:`OPTIMIZERS` maps the lower-case names to the classes, :func:`get_optimizer` builds
one by name as the book's ``Trainer`` does, and :func:`register` adds a rule defined elsewhere.

Layout of the package: ``rules`` (the table), ``base`` (the class, validation), ``plan`` (layouts,
kernel launches, the replay plan), ``steps`` (the step functions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .. import _checks
from ..kernels import optim as _k  # noqa: F401 - the kernels (tests watch their calls here)
from .base import optimizer_class
from .rules import BUILTIN, Counter, Hyper, Rule, State
from .steps import step_function

#: Name -> rule record, in registration order (the book's six first, then AdaMax, Nadam, AdamW).
RULES: dict[str, Rule] = {}
#: Name -> optimizer class (lower-case names, as the book's ``Trainer`` uses).
OPTIMIZERS: dict[str, type] = {}
#: Name -> in-place step function (``'adam'`` -> :func:`adam_step`).
STEP_FUNCTIONS: dict[str, Callable] = {}
#: Other spellings -> name (the book's ``Trainer`` writes ``'rmsprpo'``).
ALIASES: dict[str, str] = {}


def register(rule: Rule, module: str = "fastdl.optim") -> type:
    """Add ``rule`` to :data:`RULES`, :data:`OPTIMIZERS`, :data:`STEP_FUNCTIONS` and its aliases; its class.

    Parameters
    ----------
    rule : Rule
        The record; its name and aliases must not be taken yet.
    module : str
        ``__module__`` of the generated class (where pickle looks it up).

    Returns
    -------
    type
        The optimizer class (also ``OPTIMIZERS[rule.name]``).
    """
    where = "fastdl.optim.register"
    if not isinstance(rule, Rule):
        _checks.fail(where, "rule", "a fastdl.optim.rules.Rule", _checks.describe(rule), TypeError)
    for name in (rule.name, *rule.aliases):
        if name in RULES or name in ALIASES:
            _checks.fail(where, "rule.name and rule.aliases", "names not registered yet", repr(name))
    cls = optimizer_class(rule, module)
    RULES[rule.name] = rule
    OPTIMIZERS[rule.name] = cls
    STEP_FUNCTIONS[rule.name] = step_function(rule)
    ALIASES.update(dict.fromkeys(rule.aliases, rule.name))
    return cls


def unregister(name: str) -> None:
    """Remove a rule added by :func:`register` (and its aliases); the book's six stay."""
    rule = RULES[name]
    if rule in BUILTIN:
        _checks.fail("fastdl.optim.unregister", "name", "a rule added by register (not a built-in one)", repr(name))
    for table in (RULES, OPTIMIZERS, STEP_FUNCTIONS):
        del table[name]
    for alias in rule.aliases:
        del ALIASES[alias]


@contextlib.contextmanager
def registered(rule: Rule, module: str = "fastdl.optim") -> Iterator[type]:
    """``with registered(rule) as cls:`` the rule is usable by name inside the block, removed after."""
    cls = register(rule, module)
    try:
        yield cls
    finally:
        unregister(rule.name)


def rule_of(optimizer) -> Rule | None:
    """The rule of an optimizer instance or class, fastdl's or its reference twin (by class name), or None."""
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    rule = getattr(cls, "_rule", None)
    if isinstance(rule, Rule):
        return rule
    return next((r for r in RULES.values() if r.reference is cls
                 or (isinstance(r.reference, str) and r.reference == cls.__name__)), None)


def get_optimizer(name_or_instance, **kwargs):
    """An optimizer from a name (``'adam'``, case-insensitive), a class, or an existing instance.

    Parameters
    ----------
    name_or_instance : str, optimizer class or optimizer instance
        A key of :data:`OPTIMIZERS` or an alias (the book's misspelling ``'rmsprpo'``), one of the
        classes, or an object with an ``update(params, grads)`` method, returned as is.
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
        key = ALIASES.get(key, key)
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


# The built-ins: classes and step functions as module attributes (SGD ... AdamW, sgd_step ... adamw_step).
for _rule in BUILTIN:
    globals()[_rule.class_name] = register(_rule)
    globals()[f"{_rule.name}_step"] = STEP_FUNCTIONS[_rule.name]
del _rule

__all__ = [  # noqa: PLE0604 - the class and function names come from the table
    "ALIASES", "OPTIMIZERS", "RULES", "STEP_FUNCTIONS", "Counter", "Hyper", "Rule", "State", "get_optimizer",
    "register", "registered", "rule_of", "unregister",
    *(r.class_name for r in BUILTIN), *(f"{r.name}_step" for r in BUILTIN),
]
