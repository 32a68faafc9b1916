"""Learning-rate schedules as every optimizer's ``lr``: evaluated once per update at ``iterations``."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from fastdl import optim, reference
from fastdl.schedules import CosineDecay, ExponentialDecay, OneCycle, schedule_config

NAMES = list(optim.RULES)


def _params(rng, dtype=np.float64):
    return {"W": rng.standard_normal((6, 5)).astype(dtype), "b": rng.standard_normal(5).astype(dtype)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_schedule_equals_setting_lr_before_each_update(name, dtype, rng):
    """The optimizer's steps with ``lr=schedule`` equal a loop doing ``opt.lr = schedule(t)``: bit for bit."""
    schedule = ExponentialDecay(0.05 if optim.RULES[name].defaults["lr"] > 0.005 else 0.005, 7, 0.5)
    params = _params(rng, dtype)
    by_hand = copy.deepcopy(params)
    scheduled, manual = optim.get_optimizer(name, lr=schedule), optim.get_optimizer(name)
    for t in range(30):
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        scheduled.update(params, grads)
        manual.lr = schedule(t)
        manual.update(by_hand, grads)
    assert scheduled.iterations == manual.iterations == 30
    assert scheduled.lr is schedule
    for k in params:
        np.testing.assert_array_equal(params[k], by_hand[k], err_msg=k)


@pytest.mark.parametrize("name", NAMES)
def test_a_plain_function_and_the_reference(name, rng):
    """Any callable works; the rate at update t is lr(t), t counting from 0 (the reference with lr set by hand)."""
    seen = []

    def halving(step):
        seen.append(step)
        return 0.01 * 0.5 ** (step // 3)

    params = _params(rng)
    expected = copy.deepcopy(params)
    opt = optim.get_optimizer(name, lr=halving)
    ref = getattr(reference, optim.RULES[name].reference)()
    for t in range(8):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.update(params, grads)
        ref.lr = halving(t)
        ref.update(expected, grads)
    assert seen[::2] == list(range(8))  # once per update (and once per reference update above)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "0.1"])  # (0 is valid: cosine ends there)
def test_a_bad_scheduled_value_changes_nothing(bad, rng):
    params = _params(rng)
    opt = optim.Adam(lr=lambda step: 0.01 if step < 2 else bad)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt.update(params, grads)
    opt.update(params, grads)
    before = copy.deepcopy(params), copy.deepcopy(opt.m), opt.iter, opt.iterations
    for _ in range(2):  # fresh validation, then the replay path
        with pytest.raises((ValueError, TypeError), match=r"Adam\.update: lr\(2\) must be"):
            opt.update(params, grads)
        for k in params:
            np.testing.assert_array_equal(params[k], before[0][k])
            np.testing.assert_array_equal(opt.m[k], before[1][k])
        assert (opt.iter, opt.iterations) == before[2:]


@pytest.mark.parametrize(("name", "hyper"), [("momentum", "momentum"), ("nesterov", "momentum"), ("adam", "beta1"),
                                             ("nadam", "beta1"), ("adamax", "beta1"), ("adamw", "beta1")])
def test_one_cycle_drives_momentum_or_beta1(name, hyper, rng):
    cycle = OneCycle(0.05, 20)
    params = _params(rng)
    by_hand = copy.deepcopy(params)
    scheduled, manual = optim.get_optimizer(name, lr=cycle), optim.get_optimizer(name)
    for t in range(20):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        scheduled.update(params, grads)
        manual.lr, value = cycle(t), cycle.momentum(t)
        setattr(manual, hyper, value)
        manual.update(by_hand, grads)
    assert getattr(scheduled, hyper) == optim.RULES[name].defaults[hyper]  # the attribute keeps the caller's value
    for k in params:
        np.testing.assert_array_equal(params[k], by_hand[k], err_msg=k)


def test_state_dict_records_the_config_and_load_keeps_the_schedule(rng):
    schedule = CosineDecay(0.01, 50)
    params = _params(rng)
    opt = optim.Nadam(lr=schedule)
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(10)]
    for g in grads[:5]:
        opt.update(params, g)
    sd = opt.state_dict()
    assert sd["hyper"]["lr"] == schedule_config(schedule) and sd["iterations"] == 5
    pickle.dumps(sd)
    mine = CosineDecay(0.01, 50)
    resumed = optim.Nadam(lr=mine)
    resumed.load_state_dict(sd)
    assert resumed.lr is mine and resumed.iterations == 5
    twin = copy.deepcopy(params)
    for g in grads[5:]:
        opt.update(params, g)
        resumed.update(twin, g)
    for k in params:
        np.testing.assert_array_equal(params[k], twin[k])
    with pytest.raises(ValueError, match=r"state_dict\['hyper'\]\['lr'\] must be a number"):
        optim.Nadam().load_state_dict(sd)  # a schedule's config needs the caller's schedule


def test_iterations_is_validated_before_anything_changes(rng):
    params = _params(rng)
    opt = optim.SGD(lr=ExponentialDecay(0.1, 10, 0.5))
    opt.iterations = -1
    before = copy.deepcopy(params)
    with pytest.raises(ValueError, match=r"SGD\.update: self\.iterations must be an integer"):
        opt.update(params, {k: np.ones_like(v) for k, v in params.items()})
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_trainer_history_records_the_scheduled_rate():
    from fastdl.datasets import load_digits
    from fastdl.nets import MultiLayerNetExtend
    from fastdl.trainer import Trainer

    (x, t), (xt, tt) = load_digits(normalize=True)
    schedule = ExponentialDecay(0.01, 10, 0.5)
    np.random.seed(0)
    trainer = Trainer(MultiLayerNetExtend(64, [16], 10), x[:200], t[:200], xt[:50], tt[:50], epochs=3,
                      mini_batch_size=50, optimizer="adam", optimizer_param={"lr": schedule}, verbose=False, seed=0)
    history = trainer.train()
    rates = [e["learning_rate"] for e in history.epochs]
    # the rate of the last update before each record ('iteration' counts the updates done; the book's
    # Trainer records at the first update of each epoch: 1, 5, 9)
    assert [e["iteration"] for e in history.epochs] == [1, 5, 9]
    assert rates == [schedule(e["iteration"] - 1) for e in history.epochs] and len(set(rates)) == 3
    assert history.config["optimizer_param"]["lr"] == schedule_config(schedule)


def test_trainer_resume_rebuilds_the_schedule_and_the_clipping(tmp_path):
    """A checkpointed run with a schedule and clipnorm, resumed from its checkpoint: the same numbers."""
    from fastdl.datasets import load_digits
    from fastdl.nets import MultiLayerNetExtend
    from fastdl.trainer import Trainer

    (x, t), (xt, tt) = load_digits(normalize=True)
    x, t = x[:300], t[:300]

    def make(epochs, checkpoint_dir=None):
        np.random.seed(0)
        return Trainer(MultiLayerNetExtend(64, [16], 10), x, t, xt[:50], tt[:50], epochs=epochs,
                       mini_batch_size=50, optimizer="nadam", verbose=False, seed=1, checkpoint_dir=checkpoint_dir,
                       checkpoint_keep=10,
                       optimizer_param={"lr": CosineDecay(0.02, 20), "clipnorm": 0.5})

    straight = make(4)
    straight.train()
    make(4, tmp_path).train()
    second = sorted(tmp_path.glob("ckpt-*.npz"))[1]  # mid-run (24 updates in all)
    resumed = Trainer.resume(second, x, t, xt[:50], tt[:50], verbose=False)
    assert isinstance(resumed.optimizer.lr, CosineDecay) and resumed.optimizer.lr == CosineDecay(0.02, 20)
    assert resumed.optimizer.clipnorm == 0.5 and 0 < resumed.optimizer.iterations == resumed.current_iter < 24
    resumed.train()
    for k, v in straight.network.params.items():
        np.testing.assert_array_equal(resumed.network.params[k], v, err_msg=k)
