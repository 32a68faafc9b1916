"""fastdl.optim against the plain NumPy reference: a table of (name, kwargs) runs every optimizer.

Tolerances: float64 must stay within 1e-9 relative of the reference after 200 steps (the kernels
use the reference's operation order, and on the development machine the results are bit-for-bit
identical). float32 uses 1e-6: both sides do every operation in float32 with correctly rounded
+, -, *, /, sqrt in the same order, so they agree bit for bit too; 1e-6 (~8 float32 ulps) leaves
room only for a platform whose libm/NumPy SIMD rounds differently, and is far tighter than the
1e-5 the layer tests use (a real deviation, such as a float64 intermediate or a reordered
expression, shows up at ~1e-7 after one step and grows over 200).
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
from conftest import assert_close, with_layout
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastdl
from fastdl import _jit, optim, reference, runtime

# name -> constructor kwargs used by the table-driven tests (non-default values, so a mix-up
# between arguments shows); a rule added to the table later gets each default scaled by 0.9
_WRITTEN = [
    ("sgd", {"lr": 0.05}),
    ("momentum", {"lr": 0.02, "momentum": 0.8}),
    ("nesterov", {"lr": 0.02, "momentum": 0.85}),
    ("adagrad", {"lr": 0.05, "eps": 1e-6}),
    ("rmsprop", {"lr": 0.01, "decay_rate": 0.9, "eps": 1e-6}),
    ("adam", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
]
CASES = [(name, dict(_WRITTEN).get(name, {h.name: 0.9 * h.default for h in rule.hyper}))
         for name, rule in optim.RULES.items()]
CASE_IDS = [name for name, _ in CASES]
# the state dicts each optimizer keeps (compared with the reference twin's attributes of the same names)
STATE = {name: rule.state_names for name, rule in optim.RULES.items()}
RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-6}


def make_pair(name, kwargs):
    """The fastdl optimizer and its reference twin."""
    cls = optim.OPTIMIZERS[name]
    return cls(**kwargs), getattr(reference, cls.__name__)(**kwargs)


def make_params(rng, dtype):
    return {
        "W": (0.1 * rng.standard_normal((20, 30))).astype(dtype),
        "b": (0.1 * rng.standard_normal(30)).astype(dtype),
        "gamma": np.ones(30, dtype=dtype),
    }


def random_grads(rng, params):
    return {k: rng.standard_normal(np.shape(v)).astype(np.asarray(v).dtype) for k, v in params.items()}


def snapshot(opt, params):
    """Deep copies of everything an update may touch."""
    state = {n: copy.deepcopy(getattr(opt, n)) for n in STATE[type(opt).__name__.lower()]}
    return copy.deepcopy(params), state, getattr(opt, "iter", None)


def assert_unchanged(opt, params, snap):
    params0, state0, iter0 = snap
    assert params.keys() == params0.keys()
    for k in params0:
        np.testing.assert_array_equal(params[k], params0[k], err_msg=k)
        assert np.asarray(params[k]).dtype == np.asarray(params0[k]).dtype
    for n, s0 in state0.items():
        s = getattr(opt, n)
        if s0 is None:
            assert s is None, n
        else:
            assert s.keys() == s0.keys()
            for k in s0:
                np.testing.assert_array_equal(s[k], s0[k], err_msg=f"{n}[{k}]")
    assert getattr(opt, "iter", None) == iter0


# ---------------------------------------------------------------------------------------------
# Numbers against the reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_200_steps_match_reference(name, kwargs, dtype, rng):
    dtype = np.dtype(dtype)
    opt, ref = make_pair(name, kwargs)
    params = make_params(rng, dtype)
    ref_params = copy.deepcopy(params)
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(200):
        grads = random_grads(rng, params)
        opt.update(params, grads)
        ref.update(ref_params, grads)
    for k in params:
        assert id(params[k]) == ids[k], f"params[{k!r}] was replaced"
        assert params[k].dtype == dtype
        assert_close(params[k], ref_params[k], rtol=RTOL[dtype], err_msg=k)
    for n in STATE[name]:
        for k in params:
            state = getattr(opt, n)[k]
            assert state.dtype == dtype and state.shape == params[k].shape
            assert_close(state, getattr(ref, n)[k], rtol=RTOL[dtype], err_msg=f"{n}[{k}]")
    if name == "adam":
        assert opt.iter == ref.iter == 200


@pytest.mark.parametrize("layout", ["F", "strided"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_non_contiguous_params(name, kwargs, layout, rng):
    opt, ref = make_pair(name, kwargs)
    base = make_params(rng, np.float64)
    params = {k: with_layout(v, layout) for k, v in base.items()}
    ref_params = copy.deepcopy(base)
    owners = {k: v.base for k, v in params.items()}  # the bigger arrays of the strided views
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(5):
        grads = random_grads(rng, base)
        # gradients in yet another layout than the parameters
        grads = {k: with_layout(g, "F" if layout == "strided" else "C") for k, g in grads.items()}
        opt.update(params, grads)
        ref.update(ref_params, grads)
    for k in params:
        assert id(params[k]) == ids[k]
        assert_close(params[k], ref_params[k], rtol=1e-12, err_msg=k)
        if layout == "strided":
            outside = np.ones(owners[k].shape, dtype=bool)
            outside[tuple(slice(None, None, 2) for _ in params[k].shape)] = False
            assert not owners[k][outside].any(), "entries outside the strided view were written"


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_scalar_2d_demo(name, kwargs):
    """The book's chapter-6 demo: f(x, y) = x**2 / 20 + y**2 from (-7, 2), params kept as floats."""
    lr = {"sgd": 0.95, "momentum": 0.1, "nesterov": 0.1, "adagrad": 1.5, "rmsprop": 0.1, "adam": 0.3}.get(name, 0.1)
    kwargs = dict(kwargs, lr=lr)
    opt, ref = make_pair(name, kwargs)
    params, ref_params = {"x": -7.0, "y": 2.0}, {"x": -7.0, "y": 2.0}
    for _ in range(30):
        grads = {"x": params["x"] / 10.0, "y": 2.0 * params["y"]}
        ref_grads = {"x": ref_params["x"] / 10.0, "y": 2.0 * ref_params["y"]}
        opt.update(params, grads)
        ref.update(ref_params, ref_grads)
        for k in params:
            assert type(params[k]) is float
            assert params[k] == pytest.approx(float(ref_params[k]), rel=1e-12, abs=1e-300)
    for n in STATE[name]:
        assert all(np.shape(s) == () and s.dtype == np.float64 for s in getattr(opt, n).values())
    assert abs(params["x"]) < 7.0  # it moved towards the minimum


@pytest.mark.parametrize("scalar", [np.float32, np.float64])
def test_numpy_scalar_params_keep_their_type(scalar):
    opt, ref = make_pair("adam", {"lr": 0.3})
    params = {"x": scalar(-7.0)}
    ref_params = {"x": np.array(-7.0, dtype=scalar)}
    for _ in range(3):
        grads = {"x": scalar(params["x"] / scalar(10))}
        opt.update(params, grads)
        ref.update(ref_params, {"x": np.array(grads["x"])})
    assert type(params["x"]) is scalar
    assert opt.m["x"].dtype == np.dtype(scalar)
    assert params["x"] == ref_params["x"][()]


class _Tagged(np.ndarray):
    """An ndarray subclass, as np.memmap or a user's own array type would be."""


def test_ndarray_subclass_params_and_grads(rng):
    base = rng.standard_normal((6, 5))
    params = {"W": base.copy().view(_Tagged)}
    expected = {"W": base.copy()}
    grads = rng.standard_normal((6, 5))
    obj = params["W"]
    optim.Adam().update(params, {"W": grads.view(_Tagged)})
    reference.Adam().update(expected, {"W": grads})
    assert params["W"] is obj and type(obj) is _Tagged
    np.testing.assert_array_equal(np.asarray(obj), expected["W"])


def test_other_float_grad_dtype_is_cast_to_param_dtype(rng):
    p32 = rng.standard_normal((5, 4)).astype(np.float32)
    g64 = rng.standard_normal((5, 4))
    params, expected = {"W": p32.copy()}, {"W": p32.copy()}
    optim.Adam().update(params, {"W": g64})
    optim.Adam().update(expected, {"W": g64.astype(np.float32)})
    assert params["W"].dtype == np.float32
    np.testing.assert_array_equal(params["W"], expected["W"])


@pytest.mark.skipif(not runtime.parallel_available() or runtime.get_num_threads() < 2,
                    reason="needs a parallel threading layer and 2+ threads")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_parallel_variant_matches(name, kwargs, dtype, rng, monkeypatch):
    calls = []
    parallel = optim._k.step_parallel

    def spy(*args):
        calls.append(args[1].size)
        return parallel(*args)

    monkeypatch.setattr(optim._k, "step_parallel", spy)
    params = {"W": rng.standard_normal((33, 31)).astype(dtype), "b": rng.standard_normal(7).astype(dtype)}
    serial_params, ref_params = copy.deepcopy(params), copy.deepcopy(params)
    opt, ref = make_pair(name, kwargs)
    serial_opt = optim.OPTIMIZERS[name](**kwargs)
    for _ in range(10):
        grads = random_grads(rng, params)
        with runtime.parallel_threshold(0):
            opt.update(params, grads)
        serial_opt.update(serial_params, grads)
        ref.update(ref_params, grads)
    assert len(calls) == 20, "the parallel kernel did not run"
    for k in params:
        np.testing.assert_array_equal(params[k], serial_params[k])  # elementwise: identical
        assert_close(params[k], ref_params[k], rtol=RTOL[np.dtype(dtype)])


def _step_call_from_table(name):
    """A step function call in the record's argument order (for rules without a written-out call below)."""
    rule = optim.RULES[name]
    return lambda p, g, s, kw, t: optim.STEP_FUNCTIONS[name](p, g, *[s[n] for n in rule.state_names],
                                                             *[t for _ in rule.counters], **kw)


STEP_CALLS = {
    "sgd": lambda p, g, s, kw, t: optim.sgd_step(p, g, kw["lr"]),
    "momentum": lambda p, g, s, kw, t: optim.momentum_step(p, g, s["v"], kw["lr"], kw["momentum"]),
    "nesterov": lambda p, g, s, kw, t: optim.nesterov_step(p, g, s["v"], kw["lr"], kw["momentum"]),
    "adagrad": lambda p, g, s, kw, t: optim.adagrad_step(p, g, s["h"], kw["lr"], eps=kw["eps"]),
    "rmsprop": lambda p, g, s, kw, t: optim.rmsprop_step(p, g, s["h"], kw["lr"], decay_rate=kw["decay_rate"],
                                                         eps=kw["eps"]),
    "adam": lambda p, g, s, kw, t: optim.adam_step(p, g, s["m"], s["v"], t, lr=kw["lr"], beta1=kw["beta1"],
                                                   beta2=kw["beta2"], eps=kw["eps"]),
    # Nadam's second counter is the running product of the momentum cache after step t
    "nadam": lambda p, g, s, kw, t: optim.nadam_step(
        p, g, s["m"], s["v"], t, math.prod(kw["beta1"] * (1 - 0.5 * 0.96**i) for i in range(1, t + 1)), **kw),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_step_functions_match_classes(name, kwargs, dtype, rng):
    p = rng.standard_normal((9, 11)).astype(dtype)
    params = {"p": p.copy()}
    # state in a non-contiguous layout: the function must update it in place all the same
    state = {n: with_layout(np.zeros_like(p), "strided") for n in STATE[name]}
    opt = optim.OPTIMIZERS[name](**kwargs)
    for t in range(1, 21):
        g = rng.standard_normal(p.shape).astype(dtype)
        opt.update(params, {"p": g})
        STEP_CALLS.get(name, _step_call_from_table(name))(p, g, state, kwargs, t)
    np.testing.assert_array_equal(p, params["p"])
    for n in STATE[name]:
        np.testing.assert_array_equal(state[n], getattr(opt, n)["p"])


def test_default_hyper_parameters_are_the_books():
    expected = {
        "sgd": {"lr": 0.01},
        "momentum": {"lr": 0.01, "momentum": 0.9},
        "nesterov": {"lr": 0.01, "momentum": 0.9},
        "adagrad": {"lr": 0.01, "eps": 1e-7},
        "rmsprop": {"lr": 0.01, "decay_rate": 0.99, "eps": 1e-7},
        "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
        # Hands-On ML ch. 11: Keras 3's defaults
        "adamax": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
        "nadam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
        "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.004},
    }
    for name, values in expected.items():
        opt = optim.OPTIMIZERS[name]()
        assert {k: getattr(opt, k) for k in values} == values
        for n in STATE[name]:
            assert getattr(opt, n) is None  # created on the first update
    assert optim.Adam().iter == 0


# ---------------------------------------------------------------------------------------------
# Property test: one step from random state equals the reference


@settings(max_examples=40, deadline=None)
@given(
    case=st.sampled_from(CASES),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
    data=st.data(),
    lr=st.floats(1e-4, 1.0),
    beta=st.floats(0.0, 0.999),
    eps=st.floats(1e-9, 1e-3),
    steps=st.integers(1, 3),
)
def test_hypothesis_matches_reference(case, shape, data, lr, beta, eps, steps):
    name, _ = case
    kwargs = {
        "sgd": {"lr": lr},
        "momentum": {"lr": lr, "momentum": beta},
        "nesterov": {"lr": lr, "momentum": beta},
        "adagrad": {"lr": lr, "eps": eps},
        "rmsprop": {"lr": lr, "decay_rate": max(beta, 1e-3), "eps": eps},
        "adam": {"lr": lr, "beta1": beta, "beta2": 0.999, "eps": eps},
    }.get(name, case[1])
    values = hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3))
    p = data.draw(values)
    opt, ref = make_pair(name, kwargs)
    params, ref_params = {"p": p.copy()}, {"p": p.copy()}
    for _ in range(steps):
        g = data.draw(values)
        opt.update(params, {"p": g})
        ref.update(ref_params, {"p": g.copy()})
    assert_close(params["p"], ref_params["p"], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input: the documented error, and nothing changes


def _bad_update_cases(rng):
    good = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}

    def grads_for(params):
        return {k: np.ones(np.shape(v)) for k, v in params.items()}

    readonly = good["b"].copy()
    readonly.flags.writeable = False
    # (id, params, grads, exception, words in the message); the bad key comes last, so an
    # implementation that stepped key by key would already have changed 'W'
    return [
        ("params-not-dict", [good["W"]], grads_for(good), TypeError, "params"),
        ("grads-not-dict", good, [np.ones(4)], TypeError, "grads"),
        ("grads-missing-key", good, {"W": np.ones((3, 4))}, ValueError, "'b'"),
        ("grad-shape", good, {"W": np.ones((3, 4)), "b": np.ones(5)}, ValueError, "grads['b']"),
        ("grad-int", good, {"W": np.ones((3, 4)), "b": np.ones(4, dtype=np.int64)}, TypeError, "grads['b']"),
        ("grad-bool", good, {"W": np.ones((3, 4)), "b": np.ones(4, dtype=bool)}, TypeError, "bool"),
        ("grad-complex", good, {"W": np.ones((3, 4)), "b": np.ones(4, dtype=complex)}, TypeError, "complex"),
        ("grad-float16", good, {"W": np.ones((3, 4)), "b": np.ones(4, dtype=np.float16)}, TypeError, "float16"),
        ("param-int", {**good, "b": np.ones(4, dtype=np.int32)}, grads_for(good), TypeError, "params['b']"),
        ("param-float16", {**good, "b": np.ones(4, dtype=np.float16)}, grads_for(good), TypeError, "float16"),
        ("param-readonly", {**good, "b": readonly}, grads_for(good), ValueError, "writeable"),
        ("param-str", {**good, "b": "0.5"}, grads_for(good), TypeError, "params['b']"),
        ("param-bool", {**good, "b": True}, {**grads_for(good), "b": 1.0}, TypeError, "params['b']"),
    ]


@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "after-one-update"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_bad_update_changes_nothing(name, kwargs, warm, rng):
    for case_id, params, grads, exc, words in _bad_update_cases(rng):
        opt = optim.OPTIMIZERS[name](**kwargs)
        if warm:
            warm_params = {k: v for k, v in params.items() if isinstance(v, np.ndarray)} \
                if isinstance(params, dict) else {}
            warm_params = {k: np.zeros(v.shape) for k, v in warm_params.items()}
            opt.update(warm_params, {k: np.ones(v.shape) for k, v in warm_params.items()})
        snap = snapshot(opt, params if isinstance(params, dict) else {})
        with pytest.raises(exc, match=r"update: .*must be") as info:
            opt.update(params, grads)
        assert words in str(info.value), (case_id, str(info.value))
        assert_unchanged(opt, params if isinstance(params, dict) else {}, snap)


@pytest.mark.parametrize(("name", "kwargs"), [c for c in CASES if STATE[c[0]]], ids=CASE_IDS[1:])
def test_existing_state_of_another_shape_or_dtype_is_rejected(name, kwargs, rng):
    opt = optim.OPTIMIZERS[name](**kwargs)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    opt.update(params, random_grads(rng, params))
    for replaced, exc in (({"b": rng.standard_normal(5)}, ValueError),
                          ({"b": rng.standard_normal(4).astype(np.float32)}, TypeError)):
        bad = {**params, **replaced}
        snap = snapshot(opt, bad)
        with pytest.raises(exc, match=r"self\.\w+\['b'\]"):
            opt.update(bad, random_grads(rng, bad))
        assert_unchanged(opt, bad, snap)
    store = getattr(opt, STATE[name][-1])
    store["b"] = None  # a user broke the state: rejected before any array changes
    snap = snapshot(opt, params)
    with pytest.raises(TypeError, match=r"self\.\w+\['b'\] must be a numpy array"):
        opt.update(params, random_grads(rng, params))
    assert_unchanged(opt, params, snap)


BAD_HYPER = [
    ("sgd", {"lr": 0}, ValueError), ("sgd", {"lr": -0.1}, ValueError), ("sgd", {"lr": float("nan")}, ValueError),
    ("sgd", {"lr": "0.1"}, TypeError), ("sgd", {"lr": True}, TypeError),
    ("momentum", {"momentum": 1.0}, ValueError), ("momentum", {"momentum": -0.1}, ValueError),
    ("nesterov", {"momentum": None}, TypeError),
    ("adagrad", {"eps": 0.0}, ValueError),
    ("rmsprop", {"decay_rate": 0.0}, ValueError), ("rmsprop", {"decay_rate": 1.0}, ValueError),
    ("adam", {"beta1": 1.0}, ValueError), ("adam", {"beta2": -1e-3}, ValueError),
    ("adam", {"eps": -1e-7}, ValueError), ("adam", {"lr": float("inf")}, ValueError),
]


@pytest.mark.parametrize(("name", "kwargs", "exc"), BAD_HYPER,
                         ids=[f"{n}-{next(iter(k))}={next(iter(k.values()))!r}" for n, k, _ in BAD_HYPER])
def test_bad_hyper_parameters(name, kwargs, exc):
    (arg,) = kwargs
    with pytest.raises(exc, match=rf"{arg} must be"):
        optim.OPTIMIZERS[name](**kwargs)
    opt = optim.OPTIMIZERS[name]()
    before = getattr(opt, arg)
    with pytest.raises(exc, match=rf"{arg} must be"):  # also when set later (a schedule)
        setattr(opt, arg, kwargs[arg])
    assert getattr(opt, arg) == before


def test_boundary_hyper_parameters_are_accepted():
    assert optim.Momentum(momentum=0).momentum == 0.0
    assert optim.Adam(beta1=0.0, beta2=0.0).beta2 == 0.0
    opt = optim.SGD()
    opt.lr = 0.5
    params = {"x": np.ones(3)}
    opt.update(params, {"x": np.ones(3)})
    np.testing.assert_array_equal(params["x"], np.full(3, 0.5))


def test_step_function_bad_input_changes_nothing(rng):
    p = rng.standard_normal((4, 5))
    m, v = np.zeros_like(p), np.zeros_like(p)
    g = np.ones_like(p)
    readonly = np.zeros_like(p)
    readonly.flags.writeable = False
    bad_calls = [
        (lambda: optim.adam_step(p, g, m, v.astype(np.float32), 1), TypeError, "v must be of dtype float64"),
        (lambda: optim.adam_step(p, g, m, v[:, :4], 1), ValueError, "v must be of shape"),
        (lambda: optim.adam_step(p, g, m, readonly, 1), ValueError, "v must be a writeable"),
        (lambda: optim.adam_step(p, g, m, v, 0), ValueError, "t must be"),
        (lambda: optim.adam_step(p, g, m, v, 1.5), TypeError, "t must be"),
        (lambda: optim.adam_step(p, g, m, v, True), TypeError, "t must be"),
        (lambda: optim.adam_step(p, g, m, v, 1, beta2=1.0), ValueError, "beta2 must be"),
        (lambda: optim.momentum_step(p, g, [0.0] * 20, 0.1, 0.9), TypeError, "v must be a numpy array"),
        (lambda: optim.sgd_step(p.astype(np.float16), g, 0.1), TypeError, "p must be"),
        (lambda: optim.sgd_step(p, g.astype(np.int64), 0.1), TypeError, "g must be"),
        (lambda: optim.sgd_step(p, g.T, 0.1), ValueError, "g must be of shape"),
        (lambda: optim.sgd_step(p, g, 0.0), ValueError, "lr must be"),
        (lambda: optim.sgd_step(readonly, g, 0.1), ValueError, "p must be a writeable"),
        (lambda: optim.adagrad_step(p, g, m, 0.1, eps=0), ValueError, "eps must be"),
        (lambda: optim.rmsprop_step(p, g, m, 0.1, decay_rate=1.5), ValueError, "decay_rate must be"),
        (lambda: optim.nesterov_step(p, g, m[::2], 0.1, 0.9), ValueError, "v must be of shape"),
    ]
    before = [a.copy() for a in (p, m, v)]
    for call, exc, words in bad_calls:
        with pytest.raises(exc) as info:
            call()
        assert words in str(info.value)
        for a, b in zip((p, m, v), before):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Registry


def test_get_optimizer_by_name_class_and_instance():
    for name, cls in optim.OPTIMIZERS.items():
        assert type(optim.get_optimizer(name)) is cls
        assert type(optim.get_optimizer(name.upper())) is cls
    assert type(optim.get_optimizer("RMSprpo")) is optim.RMSprop  # the book's Trainer spelling
    opt = optim.get_optimizer("adam", lr=0.02, beta1=0.5)
    assert (opt.lr, opt.beta1, opt.beta2) == (0.02, 0.5, 0.999)
    assert optim.get_optimizer(optim.Momentum, lr=0.3).lr == 0.3
    mine = optim.SGD()
    assert optim.get_optimizer(mine) is mine
    assert set(optim.OPTIMIZERS) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                                     "adamax", "nadam", "adamw"}


def test_get_optimizer_errors():
    with pytest.raises(ValueError, match="'sgd'.*'adamw'") as info:
        optim.get_optimizer("adamwx")  # (adamw is a built-in since Hands-On ML ch. 11)
    assert "adamwx" in str(info.value)
    with pytest.raises(ValueError, match="kwargs"):
        optim.get_optimizer(optim.SGD(), lr=0.1)
    with pytest.raises(TypeError):
        optim.get_optimizer(3)
    with pytest.raises(TypeError):
        optim.get_optimizer(dict)
    with pytest.raises(TypeError):
        optim.get_optimizer("sgd", momentum=0.9)  # SGD takes no momentum
    with pytest.raises(ValueError, match="lr must be"):
        optim.get_optimizer("adam", lr=-1)


# ---------------------------------------------------------------------------------------------
# NaN/Inf reporting


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_nonfinite_gradient_warns_or_raises(name, kwargs):
    def fresh():
        return {"W": np.ones((3, 4)), "b": np.ones(4)}

    g_bad = {"W": np.ones((3, 4)), "b": np.array([1.0, np.inf, np.nan, 1.0])}
    opt, params = optim.OPTIMIZERS[name](**kwargs), fresh()
    with pytest.warns(fastdl.NonFiniteWarning, match=r"params\['b'\] \(2\)") as record:
        opt.update(params, g_bad)
    assert "params['W']" not in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller of update
    opt, params = optim.OPTIMIZERS[name](**kwargs), fresh()
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match=r"params\['b'\]"):
        opt.update(params, g_bad)
    assert not np.array_equal(params["W"], fresh()["W"])  # the step was applied before the report
    with fastdl.errstate(nonfinite="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        optim.OPTIMIZERS[name](**kwargs).update(fresh(), g_bad)


def test_nonfinite_count_in_parallel_variant():
    p = np.ones(1000)
    g = np.zeros(1000)
    g[[3, 500, 999]] = [np.nan, np.inf, -np.inf]
    with runtime.parallel_threshold(0), pytest.warns(fastdl.NonFiniteWarning, match=r"\(3 values\)"):
        optim.sgd_step(p, g, 0.1)


# ---------------------------------------------------------------------------------------------
# Compilation


def test_second_update_compiles_nothing_new(rng):
    def run_all():
        for dtype in (np.float32, np.float64):
            for name, kwargs in CASES:
                params = make_params(rng, dtype)
                params["F"] = np.asfortranarray(rng.standard_normal((4, 6)).astype(dtype))
                opt = optim.OPTIMIZERS[name](**kwargs)
                for _ in range(2):
                    opt.update(params, random_grads(rng, params))
                with runtime.parallel_threshold(0):
                    opt.update(params, random_grads(rng, params))

    run_all()
    before = _jit.compiled_signatures()
    assert before["optim.step"] >= 2  # (the workers show no signatures when loaded from the cache)
    run_all()
    assert _jit.compiled_signatures() == before


# ---------------------------------------------------------------------------------------------
# Replayed plans and the whole-model fast path (parameters and gradients as views of flat buffers)

# odd sizes, a 1-element array, a 0-d array and an empty one among them
FLAT_SHAPES = {"W1": (7, 5), "b1": (5,), "one": (1,), "s": (), "none": (0,), "W2": (5, 3), "b2": (3,)}


def flat_model(rng, dtype):
    """Packed params, the gradient buffer and its views (one buffer each, same offsets)."""
    values = {k: (0.5 * rng.standard_normal(s)).astype(dtype) for k, s in FLAT_SHAPES.items()}
    _, params = fastdl._flat.pack(values)
    gbuf, grads = fastdl._flat.pack({k: np.zeros(s, dtype) for k, s in FLAT_SHAPES.items()})
    return params, gbuf, grads


def copies(arrays):
    return {k: v.copy() for k, v in arrays.items()}


@pytest.fixture
def kernel_calls(monkeypatch):
    """Sizes of the arrays each serial/parallel kernel call stepped."""
    calls = []
    for name in ("step", "step_parallel"):
        kernel = getattr(optim._k, name)

        def spy(*args, _kernel=kernel):
            calls.append(args[1].size)
            return _kernel(*args)

        monkeypatch.setattr(optim._k, name, spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_flat_fast_path_matches_per_key_and_reference(name, kwargs, dtype, rng, kernel_calls):
    dtype = np.dtype(dtype)
    params, gbuf, grads = flat_model(rng, dtype)
    per_key, ref_params = copies(params), copies(params)
    opt, ref = make_pair(name, kwargs)
    per_key_opt = optim.OPTIMIZERS[name](**kwargs)
    total = gbuf.size
    for step in range(100):
        gbuf[:] = rng.standard_normal(total)
        del kernel_calls[:]
        with runtime.parallel_threshold(0 if step % 10 == 9 else runtime.get_parallel_threshold()):
            opt.update(params, grads)
        assert kernel_calls == [total], "the whole model was not stepped by one kernel call"
        per_key_opt.update(per_key, copies(grads))  # new gradient objects every step: per key
        ref.update(ref_params, copies(grads))
    for k in params:
        np.testing.assert_array_equal(params[k], per_key[k], err_msg=k)
        assert_close(params[k], ref_params[k], rtol=RTOL[dtype], err_msg=k)
    for n in STATE[name]:
        store = getattr(opt, n)
        assert fastdl._flat.span([store[k] for k in params]) is not None, f"{n}: not views of one buffer"
        for k in params:
            assert store[k].dtype == dtype and store[k].shape == params[k].shape
            np.testing.assert_array_equal(store[k], getattr(per_key_opt, n)[k], err_msg=f"{n}[{k}]")
    if name == "adam":
        assert opt.iter == per_key_opt.iter == 100


@pytest.mark.parametrize(("name", "kwargs"), [CASES[1], CASES[5]], ids=[CASE_IDS[1], CASE_IDS[5]])
def test_switching_layouts_mid_run_keeps_the_state(name, kwargs, rng, kernel_calls):
    params, gbuf, grads = flat_model(rng, np.float64)
    per_key = copies(params)
    opt, twin = optim.OPTIMIZERS[name](**kwargs), optim.OPTIMIZERS[name](**kwargs)

    def step(expect_calls):
        gbuf[:] = rng.standard_normal(gbuf.size)
        del kernel_calls[:]
        opt.update(params, grads)
        assert len(kernel_calls) == expect_calls
        twin.update(per_key, copies(grads))
        for k in params:
            np.testing.assert_array_equal(params[k], per_key[k], err_msg=k)
        for n in STATE[name]:
            for k in params:
                np.testing.assert_array_equal(getattr(opt, n)[k], getattr(twin, n)[k], err_msg=f"{n}[{k}]")

    for _ in range(5):
        step(1)
    params["b1"] = params["b1"].copy()  # the user replaced one array: the layout is gone
    for _ in range(5):
        step(len(params))
    _, packed = fastdl._flat.pack(params)  # packed again (a new buffer): one call again
    params.clear()
    params.update(packed)
    for _ in range(5):
        step(1)
    grads_copy = copies(grads)  # gradients that are not views of one buffer: one call per key
    gbuf[:] = rng.standard_normal(gbuf.size)
    opt.update(params, grads_copy)
    twin.update(per_key, grads_copy)
    for k in params:
        np.testing.assert_array_equal(params[k], per_key[k], err_msg=k)


def test_rejected_calls_on_the_fast_path_change_nothing(rng):
    params, gbuf, grads = flat_model(rng, np.float64)
    opt = optim.Adam(lr=0.01)
    for _ in range(3):
        gbuf[:] = rng.standard_normal(gbuf.size)
        opt.update(params, grads)
    assert opt._plan is not None and opt._plan.gwhole is not None
    readonly = params["b1"]
    int_grad = np.ones(5, dtype=np.int64)
    bad_calls = [
        (lambda: opt.update(params, {k: g for k, g in grads.items() if k != "W2"}), ValueError, "'W2'"),
        (lambda: opt.update(params, {**grads, "b1": int_grad}), TypeError, "grads['b1']"),
        (lambda: opt.update(params, {**grads, "b1": np.ones(4)}), ValueError, "grads['b1']"),
        (lambda: opt.update({**params, "extra": np.ones(3, np.int32)}, {**grads, "extra": np.ones(3)}),
         TypeError, "params['extra']"),
    ]
    for call, exc, words in bad_calls:
        snap = snapshot(opt, params)
        with pytest.raises(exc, match=r"update: .*must be") as info:
            call()
        assert words in str(info.value)
        assert_unchanged(opt, params, snap)
    # what can change on the very same objects: the writeable flag and the shape
    snap = snapshot(opt, params)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['b1'\] must be a writeable"):
        opt.update(params, grads)
    assert_unchanged(opt, params, snap)
    readonly.flags.writeable = True
    params["W1"].shape = (5, 7)
    with pytest.raises(ValueError, match=r"grads\['W1'\] must be of shape \(5, 7\)"):
        opt.update(params, grads)
    grads["W1"].shape = (5, 7)  # both reshaped: now the existing state has the old shape
    with pytest.raises(ValueError, match=r"self\.m\['W1'\] must be of shape \(5, 7\)"):
        opt.update(params, grads)
    params["W1"].shape = grads["W1"].shape = (7, 5)
    assert_unchanged(opt, params, snap)
    opt.m["b2"] = None  # a user broke the state
    snap = snapshot(opt, params)
    with pytest.raises(TypeError, match=r"self\.m\['b2'\] must be a numpy array"):
        opt.update(params, grads)
    assert_unchanged(opt, params, snap)


@pytest.mark.parametrize("layout", ["per-key", "whole-model"])
@pytest.mark.parametrize(("name", "kwargs"), [c for c in CASES if STATE[c[0]]], ids=CASE_IDS[1:])
def test_replay_rejects_a_state_array_made_read_only(name, kwargs, layout, rng, kernel_calls):
    """Issue 12, defect 7: the replay path wrote through a state array made read-only after an update."""
    if layout == "whole-model":
        params, gbuf, grads = flat_model(rng, np.float64)
        gbuf[:] = rng.standard_normal(gbuf.size)
    else:
        params = {"W": rng.standard_normal((4, 3)), "b1": rng.standard_normal(3)}
        grads = random_grads(rng, params)
    opt = optim.OPTIMIZERS[name](**kwargs)
    for _ in range(2):  # the second call replays the plan of the first
        opt.update(params, grads)
    store = STATE[name][-1]
    getattr(opt, store)["b1"].flags.writeable = False
    snap = snapshot(opt, params)
    del kernel_calls[:]
    with pytest.raises(ValueError, match=rf"update: self\.{store}\['b1'\] must be a writeable array"):
        opt.update(params, grads)
    assert kernel_calls == []
    assert_unchanged(opt, params, snap)
    getattr(opt, store)["b1"].flags.writeable = True  # writeable again: accepted (and replayed) again
    opt.update(params, grads)
    opt.update(params, grads)
    assert opt._plan is not None


@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "replay"])
@pytest.mark.parametrize(("value", "exc"), [(2**63 - 1, ValueError), (-1, ValueError),
                                            (np.int64(2**63 - 1), ValueError), (1.0, TypeError), (True, TypeError),
                                            (None, TypeError)],
                         ids=["2**63-1", "-1", "int64-max", "float", "bool", "None"])
def test_adam_iter_is_validated_before_anything_changes(value, exc, warm, rng):
    """Issue 12, defect 8: Adam's counter at 2**63-1 or negative; a rejected call must not change it."""
    params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    grads = random_grads(rng, params)
    opt = optim.Adam()
    if warm:
        opt.update(params, grads)
        opt.update(params, grads)
    opt.iter = value
    snap = snapshot(opt, params)
    with pytest.raises(exc, match=r"Adam\.update: self\.iter must be an integer in \[0, 2\*\*63 - 2\]"):
        opt.update(params, grads)
    assert opt.iter is value
    assert_unchanged(opt, params, snap)
    opt.iter = np.int64(2**63 - 2)  # the largest accepted (a NumPy integer is accepted too)
    opt.update(params, grads)
    assert opt.iter == 2**63 - 1 and type(opt.iter) is int


def test_adam_step_number_range():
    p, g = np.ones(3), np.ones(3)
    m, v = np.zeros(3), np.zeros(3)
    for t, exc in ((2**63, ValueError), (-5, ValueError), (np.float64(2.0), TypeError)):
        with pytest.raises(exc, match=r"adam_step: t must be an integer in \[1, 2\*\*63 - 1\]"):
            optim.adam_step(p, g, m, v, t)
    np.testing.assert_array_equal(p, 1.0)
    optim.adam_step(p, g, m, v, np.int64(2**63 - 1))  # beta**t underflows to 0: lr_t = lr
    np.testing.assert_allclose(p, 1.0 - 0.001 * 0.1 / (np.sqrt(0.001) + 1e-7))


def test_nonfinite_reported_on_the_fast_path(rng, kernel_calls):
    params, gbuf, grads = flat_model(rng, np.float64)
    opt = optim.Adam()
    opt.update(params, grads)
    grads["b2"][:2] = [np.nan, np.inf]
    del kernel_calls[:]
    with pytest.warns(fastdl.NonFiniteWarning, match=r"parameters: params\['b2'\] \(2\)$") as record:
        opt.update(params, grads)
    assert kernel_calls == [gbuf.size]
    assert record[0].filename == __file__
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match=r"params\['b2'\] \(2\)"):
        opt.update(params, grads)


def test_plan_replay_notices_new_state_and_dicts(rng):
    """A replaced state dict or entry, a new params dict with the same arrays, another key: all exact."""
    params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    ref_params = copies(params)
    opt, ref = make_pair("momentum", {"lr": 0.1, "momentum": 0.9})
    for step in range(8):
        grads = random_grads(rng, params)
        if step == 3:
            opt.v["W"] = opt.v["W"] * 2.0  # a user rescales the velocity with a new array
            ref.v["W"] = ref.v["W"] * 2.0
        if step == 5:
            params = dict(params)  # another dict object holding the same arrays
        if step == 6:
            opt.v = ref.v = None  # reset
        opt.update(params, grads)
        ref.update(ref_params, grads)
        for k in params:
            assert_close(params[k], ref_params[k], rtol=1e-12, err_msg=(step, k))


# ---------------------------------------------------------------------------------------------
# Nesterov as the book's repository prints it since its January 2021 fix


class _UpstreamNesterov:
    """The book's ``common/optimizer.py`` Nesterov, written out literally (upstream since January 2021)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)
        for key in params.keys():
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("path", ["per-key", "whole-model", "step-function", "reference"])
def test_nesterov_is_the_books_current_formula(path, dtype, rng):
    shapes = {"W1": (7, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)}
    start = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    upstream, expected = _UpstreamNesterov(), {k: v.copy() for k, v in start.items()}
    if path == "whole-model":  # parameters and gradients tile flat buffers: one kernel call per step
        _, params = fastdl._flat.pack(start)
        gbuf, grads = fastdl._flat.pack({k: np.zeros_like(v) for k, v in start.items()})
    else:
        params = {k: v.copy() for k, v in start.items()}
    opt = reference.Nesterov() if path == "reference" else optim.Nesterov()
    v = {k: np.zeros_like(a) for k, a in start.items()}
    for _ in range(100):
        g = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        upstream.update(expected, g)
        if path == "step-function":
            for k in params:
                optim.nesterov_step(params[k], g[k], v[k], 0.01, 0.9)
        elif path == "whole-model":
            for k in grads:
                grads[k][...] = g[k]
            opt.update(params, grads)
        else:
            opt.update(params, g)
    for k in shapes:
        if dtype == np.float64:
            np.testing.assert_array_equal(params[k], expected[k])  # same operations, same order: same bits
        else:
            assert_close(params[k], expected[k], rtol=1e-5)
    state = v if path == "step-function" else opt.v
    for k in shapes:
        assert_close(state[k], upstream.v[k], rtol=1e-12 if dtype == np.float64 else 1e-5)


def test_nesterov_equals_pytorch_sgd_nesterov(rng):
    torch = pytest.importorskip("torch")
    lr, momentum = 0.05, 0.9
    p0 = rng.standard_normal((6, 4))
    params = {"p": p0.copy()}
    opt = optim.Nesterov(lr=lr, momentum=momentum)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch.optim.SGD([tp], lr=lr, momentum=momentum, nesterov=True)
    for _ in range(50):
        g = rng.standard_normal(p0.shape)
        opt.update(params, {"p": g})
        tp.grad = torch.tensor(g)
        topt.step()
    # equal up to rounding (v = -lr * b); the old form (new v in the step) is ~1e-2 off here
    np.testing.assert_allclose(params["p"], tp.detach().numpy(), rtol=1e-10, atol=1e-12)
