"""A toy optimizer defined entirely through the rule table, from outside the package.

SignSGD (``p -= lr * sign(g)``): its kernel loop, its record and a tiny reference class live in
this module and nowhere else. Registered for the duration of each test (the ``signsgd`` fixture),
it is usable by name in ``get_optimizer``, ``make_optimizer``/``Trainer``, a ``MultiLayerNetExtend``
training step (whole-model path), the step functions and the profiler's traffic model; afterwards
it is gone again.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import assert_close

import fastdl
from fastdl import _jit, datasets, optim, runtime
from fastdl.kernels.optim import count_nonfinite
from fastdl.nets import MultiLayerNetExtend
from fastdl.optim import Hyper, Rule
from fastdl.trainer import Trainer, make_optimizer


@_jit.jit
def signsgd_kernel(p, g, s1, s2, s3, c):
    """``p -= lr * sign(g)`` with ``c = (lr,)``; the non-finite count (the kernels' contract)."""
    lr = c[0]
    bad = False
    for i in range(p.size):
        x = p[i] - lr * np.sign(g[i])
        p[i] = x
        d = x - x
        bad |= d != d
    return count_nonfinite(p) if bad else 0


class ReferenceSignSGD:
    """The plain NumPy twin, in the book's style."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * np.sign(grads[key])


RULE = Rule(
    name="signsgd", class_name="SignSGD", kernel=signsgd_kernel,
    hyper=(Hyper("lr", 0.01, "Learning rate"),), constants=lambda lr: (lr,),
    summary="SGD with the sign of the gradient (a toy rule for the registry test).",
    formula="p -= lr * sign(g)", reference=ReferenceSignSGD, aliases=("sign_sgd",),
)


@pytest.fixture
def signsgd():
    """The SignSGD class while the test runs; unregistered afterwards, whatever happens."""
    assert "signsgd" not in optim.OPTIMIZERS
    with optim.registered(RULE, module=__name__) as cls:
        yield cls
    assert "signsgd" not in optim.OPTIMIZERS and "sign_sgd" not in optim.ALIASES


def test_usable_by_name_and_removed_afterwards(signsgd):
    assert type(optim.get_optimizer("SignSGD")) is signsgd
    assert type(optim.get_optimizer("sign_sgd", lr=0.5)) is signsgd
    assert optim.get_optimizer("signsgd", lr=0.5).lr == 0.5
    assert type(make_optimizer("signsgd", {"lr": 0.1})) is signsgd
    assert type(make_optimizer("signsgd", {"lr": 0.1}, backend="reference")) is ReferenceSignSGD
    assert str(inspect.signature(signsgd)) == "(lr=0.01, *, clipnorm=None, clipvalue=None, global_clipnorm=None)"
    assert "p -= lr * sign(g)" in signsgd.__doc__
    assert optim.rule_of(signsgd()) is RULE and optim.rule_of(ReferenceSignSGD()) is RULE
    assert RULE.traffic == 3 and RULE.kind is None  # no state: read p and g, write p
    with pytest.raises(ValueError, match="lr must be"):
        signsgd(lr=-1.0)
    with pytest.raises(ValueError, match="names not registered yet"):
        optim.register(RULE)


def test_unknown_after_unregistering():
    with optim.registered(RULE):
        pass
    with pytest.raises(ValueError, match="get_optimizer: name must be one of"):
        optim.get_optimizer("signsgd")
    with pytest.raises(ValueError, match="not a built-in"):
        optim.unregister("adam")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_update_and_step_function_match_the_reference(signsgd, dtype, rng):
    params = {"W": rng.standard_normal((5, 7)).astype(dtype), "b": rng.standard_normal(7).astype(dtype)}
    ref_params = {k: v.copy() for k, v in params.items()}
    by_function = {k: v.copy() for k, v in params.items()}
    opt, ref = signsgd(lr=0.03), ReferenceSignSGD(lr=0.03)
    for _ in range(6):
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        grads["b"][0] = 0.0  # sign(0) = 0
        opt.update(params, grads)
        ref.update(ref_params, grads)
        for k in by_function:
            optim.STEP_FUNCTIONS["signsgd"](by_function[k], grads[k], 0.03)
    for k in params:
        assert params[k].dtype == dtype
        np.testing.assert_array_equal(params[k], ref_params[k])  # same operations: same bits
        np.testing.assert_array_equal(by_function[k], ref_params[k])
    with pytest.warns(fastdl.NonFiniteWarning, match=r"params\['b'\] \(1\)"):
        opt.update(params, {"W": np.ones((5, 7), dtype), "b": np.array([np.nan] + [1.0] * 6, dtype)})


@pytest.mark.skipif(not runtime.parallel_available() or runtime.get_num_threads() < 2,
                    reason="needs a parallel threading layer and 2+ threads")
def test_parallel_driver_takes_the_outside_worker(signsgd, rng):
    params = {"W": rng.standard_normal((33, 31))}
    serial = {"W": params["W"].copy()}
    grads = {"W": rng.standard_normal((33, 31))}
    with runtime.parallel_threshold(0):
        signsgd().update(params, grads)
    signsgd().update(serial, grads)
    np.testing.assert_array_equal(params["W"], serial["W"])
    assert optim._k.step_parallel_with.signatures  # compiled for this worker (uncached)


def test_training_step_on_the_whole_model_path_and_the_trainer(signsgd):
    (x_train, t_train), (x_test, t_test) = datasets.load_digits()
    x, t = x_train[:50], t_train[:50]
    np.random.seed(4)
    net = MultiLayerNetExtend(64, [20, 20], 10)  # (no batch norm: it leaves b1 a gradient of ~1e-17 noise)
    np.random.seed(4)
    ref_net = MultiLayerNetExtend(64, [20, 20], 10, backend="reference")
    opt, ref = optim.get_optimizer("signsgd", lr=0.01), ReferenceSignSGD(lr=0.01)
    for _ in range(4):
        opt.update(net.params, net.gradient(x, t))
        ref.update(ref_net.params, ref_net.gradient(x, t))
    assert opt._plan is not None and opt._plan.gwhole is not None, "not stepped as one flat buffer"
    for k in net.params:
        assert_close(net.params[k], ref_net.params[k], rtol=1e-10, err_msg=k)
    np.random.seed(4)
    trainer = Trainer(MultiLayerNetExtend(64, [20], 10), x_train[:200], t_train[:200], x_test, t_test, epochs=2,
                      mini_batch_size=50, optimizer="signsgd", optimizer_param={"lr": 0.01}, verbose=False, seed=0)
    assert type(trainer.optimizer) is signsgd
    history = trainer.train()
    assert history.train_loss[-1] < history.train_loss[0]


class ReferenceHalvingSGD:
    """SGD whose step halves at every update (a float counter, as Nadam's momentum-cache product)."""

    def __init__(self, lr=0.1):
        self.lr = lr
        self.scale = 1.0

    def update(self, params, grads):
        self.scale *= 0.5
        for key in params.keys():
            params[key] -= (self.lr * self.scale) * grads[key]


HALVING = Rule(
    name="halvingsgd", class_name="HalvingSGD", kernel=optim._k.sgd,  # a built-in worker, other constants
    hyper=(Hyper("lr", 0.1, "Learning rate"),), constants=lambda lr, scale: (lr * scale,),
    counters=(optim.Counter("scale", "scale", "Step scale, halved at every update", initial=1.0),),
    advance=lambda lr, scale: (scale * 0.5,),
    formula="scale *= 0.5\np -= (lr * scale) * g", reference=ReferenceHalvingSGD,
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_a_float_counter_and_a_built_in_worker(dtype, rng):
    with optim.registered(HALVING) as cls:
        params = {"W": rng.standard_normal((4, 6)).astype(dtype)}
        expected, by_function = {"W": params["W"].copy()}, params["W"].copy()
        opt, ref = optim.get_optimizer("halvingsgd"), ReferenceHalvingSGD()
        for step in range(1, 4):
            g = rng.standard_normal((4, 6)).astype(dtype)
            opt.update(params, {"W": g})
            ref.update(expected, {"W": g})
            optim.STEP_FUNCTIONS["halvingsgd"](by_function, g, 0.5**step)
        assert type(opt) is cls and HALVING.kind == optim._k.KINDS[optim._k.sgd]
        assert opt.scale == 0.125
        assert (str(inspect.signature(optim.STEP_FUNCTIONS["halvingsgd"]))
                == "(p, g, scale, lr=0.1, *, step=None, clipvalue=None, clipnorm=None)")
        np.testing.assert_array_equal(params["W"], expected["W"])
        np.testing.assert_array_equal(by_function, expected["W"])
        twin = cls()
        twin.load_state_dict(opt.state_dict())  # the checkpoint protocol is generic over the record's counters
        assert twin.scale == 0.125 and type(twin.state_dict()["counters"]["scale"]) is float
        opt.scale = float("nan")
        before = params["W"].copy()
        with pytest.raises(ValueError, match=r"HalvingSGD\.update: self\.scale must be a finite real number"):
            opt.update(params, {"W": g})
        np.testing.assert_array_equal(params["W"], before)
    with pytest.raises(ValueError, match="a function when a counter is a float"):
        Rule(name="x", class_name="X", kernel=optim._k.sgd, hyper=(), constants=lambda s: (s,),
             counters=(optim.Counter("s", "s", "", initial=1.0),))


def test_toy_joins_the_benchmark_matrix(signsgd):
    from fastdl import benchmark

    assert "signsgd-update" in benchmark.OPTIMIZER_OPS
    assert benchmark.cases.work("signsgd-update", "10K", "float64")[0] == 3 * 8 * (100 * 100 + 100)  # no state
    states = {}
    for impl in ("fastdl", "reference"):
        case = benchmark.make_case("signsgd-update", "10K", "float64", impl)
        case.fn()
        states[impl] = case.fn.state["params"]
    for key, value in states["fastdl"].items():  # the same data and the same rule: the same numbers
        np.testing.assert_allclose(value, states["reference"][key], rtol=1e-12)
    assert any(op == "signsgd-update" for op, _ in benchmark.default_matrix(torch=False).entries)
    with pytest.raises(benchmark.Unavailable, match="no torch twin"):  # the toy names none
        benchmark.make_case("signsgd-update", "10K", "float64", "torch").fn()


def test_builtin_rules_bring_their_torch_twins():
    from fastdl import benchmark

    assert benchmark.torch_twins()["nesterov"] == ("SGD", {"momentum": 0.9, "nesterov": True})
    assert set(benchmark.torch_twins()) >= set(optim.RULES)
