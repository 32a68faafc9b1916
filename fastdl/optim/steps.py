"""The in-place ``*_step`` functions, one per rule, made from its record.

``adam_step(p, g, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7)``: the parameter, its
gradient, the state arrays in the record's order, the step counters as the update after this one
sees them (Adam's ``t``, 1 for the first step), then the hyper-parameters (those in the record's
``step_required`` without a default, the book's signatures). Each validates everything before a
kernel runs (a rejected call changes nothing) and reports NaN/Inf in the new ``p`` through
:func:`fastdl.errstate`.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import runtime
from .base import check_grad, check_param_array, check_state
from .plan import cast, step_array
from .rules import MAX_COUNT, Rule


def run_step(rule: Rule, where: str, p, g, states: tuple, counters: tuple, hyper: tuple) -> None:
    """Validate one step function call and step ``p`` (and its state) in place."""
    values = [spec.check(v, where) for spec, v in zip(rule.hyper, hyper)]
    counts = [c.check(v, where, c.arg, low=1, high=MAX_COUNT) for c, v in zip(rule.counters, counters)]
    p = check_param_array(p, "p", where)
    g = check_grad(g, p, "g", "p", where)
    states = tuple(check_state(s, p, spec.name, "p", where) for spec, s in zip(rule.state, states))
    n_bad = step_array(rule, p, g, states, cast(rule.constants(*values, *counts), p.dtype))
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
        lines += [f"{h.name} : float{default}", f"    {h.doc} ({h.range})."]
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
    signature = ", ".join(positional + [f"{h}=_defaults[{h!r}]" for h in optional])

    def tup(names) -> str:
        return "(" + "".join(f"{n}, " for n in names) + ")"

    source = (f"def {name}({signature}):\n"
              f"    return _run(_rule, {name!r}, p, g, {tup(rule.state_names)}, "
              f"{tup(c.arg for c in rule.counters)}, {tup(hyper)})\n")
    namespace = {"_run": run_step, "_rule": rule, "_defaults": rule.defaults}
    exec(compile(source, f"<fastdl.optim {name}>", "exec"), namespace)  # noqa: S102 - built from the record
    func = namespace[name]
    func.__doc__ = step_doc(rule)
    func.__module__ = "fastdl.optim"
    return func
