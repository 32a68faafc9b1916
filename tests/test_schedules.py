"""Learning-rate schedules against their written formulas, Keras 3 and PyTorch's OneCycleLR."""

from __future__ import annotations

import math
import pickle

import pytest

from fastdl import schedules as S

STEPS = (0, 1, 2, 7, 10, 99, 100, 101, 250, 999, 1000, 1001, 3000, 7777)

# (fastdl class, Keras class name, kwargs) for the schedules Keras has
KERAS_CASES = [
    (S.ExponentialDecay, "ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.5}),
    (S.ExponentialDecay, "ExponentialDecay",
     {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96, "staircase": True}),
    (S.InverseTimeDecay, "InverseTimeDecay", {"initial_learning_rate": 0.05, "decay_steps": 10, "decay_rate": 0.5}),
    (S.InverseTimeDecay, "InverseTimeDecay",
     {"initial_learning_rate": 0.05, "decay_steps": 10, "decay_rate": 0.5, "staircase": True}),
    (S.PolynomialDecay, "PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 1000, "power": 2.0}),
    (S.PolynomialDecay, "PolynomialDecay",
     {"initial_learning_rate": 0.1, "decay_steps": 300, "end_learning_rate": 0.01, "power": 0.5, "cycle": True}),
    (S.PiecewiseConstantDecay, "PiecewiseConstantDecay", {"boundaries": [100, 1000], "values": [1.0, 0.5, 0.1]}),
    (S.CosineDecay, "CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 1000}),
    (S.CosineDecay, "CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 1000, "alpha": 0.1}),
    (S.CosineDecay, "CosineDecay",
     {"initial_learning_rate": 0.0, "decay_steps": 900, "warmup_target": 0.2, "warmup_steps": 100}),
    (S.CosineDecayRestarts, "CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 200}),
    (S.CosineDecayRestarts, "CosineDecayRestarts",
     {"initial_learning_rate": 0.1, "first_decay_steps": 150, "t_mul": 1.0, "m_mul": 0.8, "alpha": 0.05}),
]


@pytest.fixture(scope="module")
def keras64():
    keras = pytest.importorskip("keras")
    old = keras.config.floatx()
    keras.config.set_floatx("float64")  # Keras then evaluates the schedule in float64, as fastdl does
    yield keras
    keras.config.set_floatx(old)


@pytest.mark.parametrize(("cls", "keras_name", "kwargs"), KERAS_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(KERAS_CASES)])
def test_matches_keras(cls, keras_name, kwargs, keras64):
    ours = cls(**kwargs)
    theirs = getattr(keras64.optimizers.schedules, keras_name)(**kwargs)
    for step in STEPS:
        expected = float(theirs(step))
        assert ours(step) == pytest.approx(expected, rel=1e-12, abs=1e-15), f"step {step}"


def test_written_formulas():
    lr0 = 0.1
    assert S.ExponentialDecay(lr0, 20, 0.1)(40) == pytest.approx(lr0 * 0.01, rel=1e-15)
    assert S.ExponentialDecay(lr0, 20, 0.1, staircase=True)(39) == pytest.approx(lr0 * 0.1, rel=1e-15)
    assert S.InverseTimeDecay(lr0, 10, 2.0)(5) == pytest.approx(lr0 / 2.0, rel=1e-15)
    # Géron's power scheduling: lr0 / (1 + t/s)^c
    assert S.PowerDecay(lr0, 10, power=2.0)(30) == pytest.approx(lr0 / 16.0, rel=1e-15)
    assert S.PowerDecay(lr0, 10)(10) == S.InverseTimeDecay(lr0, 10, 1.0)(10)
    assert S.PiecewiseConstantDecay([5, 10], [3.0, 2.0, 1.0])(5) == 3.0
    assert S.PiecewiseConstantDecay([5, 10], [3.0, 2.0, 1.0])(6) == 2.0
    assert S.PiecewiseConstantDecay([5, 10], [3.0, 2.0, 1.0])(11) == 1.0
    cos = S.CosineDecay(lr0, 100, alpha=0.2)
    assert cos(0) == pytest.approx(lr0) and cos(50) == pytest.approx(lr0 * (0.8 * 0.5 + 0.2))
    assert cos(100) == pytest.approx(lr0 * 0.2) and cos(1000) == cos(100)
    sgdr = S.CosineDecayRestarts(lr0, 100, t_mul=2.0, m_mul=0.5)
    assert sgdr(100) == pytest.approx(lr0 * 0.5)  # second cycle starts m_mul lower
    assert sgdr(300) == pytest.approx(lr0 * 0.25)  # third cycle starts after 100 + 200 steps
    assert sgdr(200) == pytest.approx(lr0 * 0.5 * 0.5)  # halfway through the second cycle


def test_one_cycle_matches_pytorch():
    torch = pytest.importorskip("torch")
    for kwargs in ({"max_lr": 0.5, "total_steps": 100},
                   {"max_lr": 0.1, "total_steps": 57, "pct_start": 0.25, "anneal_strategy": "linear",
                    "div_factor": 10.0, "final_div_factor": 100.0},
                   {"max_lr": 0.2, "total_steps": 80, "three_phase": True}):
        ours = S.OneCycle(**kwargs)
        w = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, **kwargs)
        for step in range(kwargs["total_steps"]):
            group = opt.param_groups[0]
            assert ours(step) == pytest.approx(group["lr"], rel=1e-12), (kwargs, step)
            assert ours.momentum(step) == pytest.approx(group["momentum"], rel=1e-12), (kwargs, step)
            opt.step()
            sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        S.OneCycle(0.1, 10)(11)


@pytest.mark.parametrize("name", sorted(S.SCHEDULES))
def test_picklable_config_roundtrip(name):
    examples = {
        "exponential": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
        "inverse-time": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
        "power": {"initial_learning_rate": 0.1, "decay_steps": 10, "power": 0.5},
        "polynomial": {"initial_learning_rate": 0.1, "decay_steps": 10},
        "piecewise": {"boundaries": [3], "values": [0.1, 0.01]},
        "cosine": {"initial_learning_rate": 0.1, "decay_steps": 10},
        "cosine-restarts": {"initial_learning_rate": 0.1, "first_decay_steps": 10},
        "one-cycle": {"max_lr": 0.1, "total_steps": 20},
    }
    sched = S.get_schedule(name, **examples[name])
    copy = pickle.loads(pickle.dumps(sched))
    again = type(sched).from_config(sched.get_config())
    assert copy == sched and again == sched
    assert [copy(t) for t in range(15)] == [sched(t) for t in range(15)]
    config = S.schedule_config(sched)
    assert config["class_name"] == type(sched).__name__ and config["config"] == sched.get_config()
    assert all(math.isfinite(sched(t)) for t in range(15))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps must be an integer >= 1"),
    (lambda: S.ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate must be a finite number > 0"),
    (lambda: S.PiecewiseConstantDecay([10, 5], [1.0, 0.5, 0.1]), "boundaries must be a non-empty increasing"),
    (lambda: S.PiecewiseConstantDecay([10], [1.0]), "values must be 2 numbers"),
    (lambda: S.CosineDecay(0.1, 10, alpha=2.0), "alpha must be a number in"),
    (lambda: S.OneCycle(0.1, 10, anneal_strategy="cosine"), "anneal_strategy must be 'cos' or 'linear'"),
    (lambda: S.get_schedule("cosine-restart"), "name must be one of"),
    (lambda: S.ExponentialDecay(0.1, 10, 0.5)(-1), "step must be an integer >= 0"),
    (lambda: S.ExponentialDecay(0.1, 10, 0.5)(1.5), "step must be an integer >= 0"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()
