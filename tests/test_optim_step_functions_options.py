"""The ``*_step`` functions take a schedule ``lr`` (with ``step``) and ``clipvalue``/``clipnorm`` like the classes."""

from __future__ import annotations

import numpy as np
import pytest

from fastdl import optim
from fastdl.schedules import ExponentialDecay

NAMES = [rule.name for rule in optim.rules.BUILTIN]


def _step_args(rule, p, g, states, t):
    """Positional arguments of ``<name>_step``: p, g, the states, the counters after this update, required hyper."""
    opt_counters = []
    for c in rule.counters:
        opt_counters.append(t[c.name])
    return (p, g, *states, *opt_counters)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", [{"clipvalue": 0.3}, {"clipnorm": 1.5}, {}], ids=["clipvalue", "clipnorm", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_step_function_equals_the_class_with_a_schedule_and_clipping(name, options, dtype, rng):
    rule = optim.RULES[name]
    schedule = ExponentialDecay(0.05, 3, 0.5)
    opt = optim.OPTIMIZERS[name](lr=schedule, **options)
    p = rng.standard_normal((6, 4)).astype(dtype)
    mine = p.copy()
    states = [np.zeros_like(p) for _ in rule.state]
    counters = {c.name: c.initial for c in rule.counters}
    step_fn = optim.STEP_FUNCTIONS[name]
    for k in range(8):
        g = (3 * rng.standard_normal(p.shape)).astype(dtype)
        given = g.copy()
        opt.update({"W": p}, {"W": g})
        counters = {c.name: getattr(opt, c.name) for c in rule.counters}  # (as the update after this one sees them)
        required = [schedule if h == "lr" else rule.defaults[h] for h in rule.hyper_names if h in rule.step_required]
        optional = {h: rule.defaults[h] for h in rule.hyper_names if h not in rule.step_required and h != "lr"}
        if "lr" not in rule.step_required:
            optional["lr"] = schedule
        step_fn(*_step_args(rule, mine, g, states, counters), *required, **optional, step=k, **options)
        np.testing.assert_array_equal(g, given)  # never written
        np.testing.assert_array_equal(mine, p, err_msg=f"step {k}")  # the same bits as the class


def test_step_function_rejects_bad_schedule_and_clipping_arguments_before_any_change(rng):
    p, g = rng.standard_normal(5), rng.standard_normal(5)
    before = p.copy()
    schedule = ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="sgd_step: step must be an integer >= 0"):
        optim.sgd_step(p, g, schedule)
    with pytest.raises(ValueError, match="sgd_step: step must be None when lr is a number"):
        optim.sgd_step(p, g, 0.1, step=3)
    with pytest.raises(ValueError, match="sgd_step: clipvalue, clipnorm must be at most one of them"):
        optim.sgd_step(p, g, 0.1, clipvalue=1.0, clipnorm=1.0)
    with pytest.raises(ValueError, match="sgd_step: clipnorm must be"):
        optim.sgd_step(p, g, 0.1, clipnorm=-1.0)
    with pytest.raises(ValueError, match=r"sgd_step: lr\(0\) must be"):
        optim.sgd_step(p, g, lambda step: float("nan"), step=0)
    np.testing.assert_array_equal(p, before)
    optim.sgd_step(p, g, schedule, step=10, clipnorm=1.0)
    np.testing.assert_allclose(p, before - 0.05 * g * (1.0 / max(np.linalg.norm(g), 1.0)), rtol=1e-15)
