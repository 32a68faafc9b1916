"""The in-place ``*_step`` functions, one per rule, made from its record.

``adam_step(p, g, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7)``: the parameter, its
gradient, the state arrays in the record's order, the step counters as the update after this one
sees them (Adam's ``t``, 1 for the first step), then the hyper-parameters (those in the record's
``step_required`` without a default, the book's signatures), then, keyword only, ``step`` (the
updates done before this one, for a schedule ``lr``) and ``clipvalue``/``clipnorm`` (Keras'
clipping of the one gradient ``g``). Each validates everything before a kernel runs (a rejected
call changes nothing) and reports NaN/Inf in the new ``p`` through :func:`fastdl.errstate`.

What the classes have and these do not: ``global_clipnorm`` (with one gradient it is ``clipnorm``;
a norm over several arrays needs all of them, which a per-array function does not see: use an
optimizer class) and 1cycle's momentum cycling (pass ``momentum=schedule.momentum(step)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _checks, runtime
from ..schedules import check_step
from .base import check_grad, check_param_array, check_state, clip_constants, grad_sumsq, is_schedule
from .plan import cast, step_array
from .rules import MAX_COUNT, Rule


def run_step(rule: Rule, where: str, p, g, states: tuple, counters: tuple, hyper: tuple, step=None,
             clipvalue=None, clipnorm=None) -> None:
    """Validate one step function call and step ``p`` (and its state) in place."""
    names = rule.hyper_names
    lr = hyper[names.index("lr")] if "lr" in names else None
    if is_schedule(lr):  # a schedule: evaluated once, at the step the caller gives
        if step is None:
            _checks.fail(where, "step", "an integer >= 0 (the updates done before this one) when lr is a schedule",
                         "None", TypeError)
        step = check_step(step, where)
        value = _checks.positive_number(lr(step), f"lr({step})", where, allow_zero=True)
        hyper = tuple(value if n == "lr" else h for n, h in zip(names, hyper))
    elif step is not None:
        _checks.fail(where, "step", "None when lr is a number (it is the argument of a schedule lr)", repr(step))
    values = [spec.check(v, where) for spec, v in zip(rule.hyper, hyper)]
    counts = [c.check(v, where, c.arg, low=1, high=MAX_COUNT) for c, v in zip(rule.counters, counters)]
    clip = {n: v for n, v in (("clipvalue", clipvalue), ("clipnorm", clipnorm)) if v is not None}
    if len(clip) > 1:
        _checks.fail(where, "clipvalue, clipnorm", "at most one of them",
                     f"clipvalue={clipvalue!r}, clipnorm={clipnorm!r}")
    clip = {n: _checks.positive_number(v, n, where) for n, v in clip.items()}
    p = check_param_array(p, "p", where)
    g = check_grad(g, p, "g", "p", where)
    states = tuple(check_state(s, p, spec.name, "p", where) for spec, s in zip(rule.state, states))
    constants = rule.constants(*values, *counts)
    for option, value in clip.items():  # (at most one) the norm: one compiled read of g, before any change
        sumsq = 0.0 if option == "clipvalue" else grad_sumsq([np.ravel(g, order="K")], option, where)[0]
        constants = clip_constants(constants, option, value, sumsq, where)
    n_bad = step_array(rule, p, g, states, cast(constants, p.dtype))
    if n_bad:
        runtime.report_nonfinite(where, f"NaN/Inf in the updated p ({n_bad} values)")


def step_doc(rule: Rule) -> str:
    """The step function's docstring: the formula, the parameters, what it raises."""
    lines = [f"In-place {rule.class_name} step (see :class:`fastdl.optim.{rule.class_name}`)::", "",
             *("    " + line for line in rule.formula.splitlines()), "",
             "Parameters", "----------",
             "p : ndarray", "    float32/float64 parameters, any layout, writeable; changed in place.",
             "g : ndarray", "    Gradient of ``p``'s shape (the other float dtype is cast to ``p``'s)."]
    for s in rule.state:
        lines += [f"{s.name} : ndarray", f"    {s.doc}, same shape and dtype as ``p``, writeable; changed in place."]
    for c in rule.counters:
        lines += [f"{c.arg} : int", f"    Step number, >= 1 (the caller counts; :class:`{rule.class_name}` "
                                    f"keeps the steps done in ``{c.name}``)."]
    for h in rule.hyper:
        default = "" if h.name in rule.step_required else f", default {h.default!r}"
        if h.name == "lr":
            lines += [f"lr : float or callable{default}",
                      f"    {h.doc} ({h.range}), or a schedule ``lr(step) -> float`` (:mod:`fastdl.schedules`) "
                      "evaluated at ``step``."]
        else:
            lines += [f"{h.name} : float{default}", f"    {h.doc} ({h.range})."]
    if "lr" in rule.hyper_names:
        lines += ["step : int, optional (keyword only)", "    Updates done before this one (0 at the first), the "
                  "argument of a schedule ``lr``; required with one, not allowed without."]
    lines += ["clipvalue, clipnorm : float, optional (keyword only)",
              "    At most one (> 0): ``g`` clipped to ``[-clipvalue, clipvalue]``, or scaled by",
              "    ``clipnorm / max(norm(g), clipnorm)`` (Keras' semantics), as the kernel reads it; ``g`` is",
              "    never written. ``global_clipnorm`` is the classes' (with one array it is ``clipnorm``)."]
    lines += ["", "Raises", "------", "TypeError, ValueError",
              "    Bad dtype, shape, layout flags, step number or hyper-parameter; nothing changes."]
    return "\n".join(lines)


def step_function(rule: Rule) -> Callable:
    """``<name>_step`` of ``rule`` with its own signature (made like a dataclass's ``__init__``)."""
    name = f"{rule.name}_step"
    hyper = rule.hyper_names
    required = [h for h in hyper if h in rule.step_required]
    optional = [h for h in hyper if h not in rule.step_required]
    positional = ["p", "g", *rule.state_names, *(c.arg for c in rule.counters), *required]
    keywords = ["step=None"] if "lr" in hyper else []
    keywords += ["clipvalue=None", "clipnorm=None"]
    signature = ", ".join(positional + [f"{h}=_defaults[{h!r}]" for h in optional] + ["*"] + keywords)

    def tup(names) -> str:
        return "(" + "".join(f"{n}, " for n in names) + ")"

    source = (f"def {name}({signature}):\n"
              f"    return _run(_rule, {name!r}, p, g, {tup(rule.state_names)}, "
              f"{tup(c.arg for c in rule.counters)}, {tup(hyper)}, {'step' if 'lr' in hyper else 'None'}, "
              f"clipvalue, clipnorm)\n")
    namespace = {"_run": run_step, "_rule": rule, "_defaults": rule.defaults}
    exec(compile(source, f"<fastdl.optim {name}>", "exec"), namespace)  # noqa: S102 - built from the record
    func = namespace[name]
    func.__doc__ = step_doc(rule)
    func.__module__ = "fastdl.optim"
    return func
