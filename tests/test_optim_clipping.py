"""Gradient clipping on every optimizer (``clipnorm``, ``clipvalue``, ``global_clipnorm``), Keras' semantics.

Against a plain NumPy reference (clip the gradients as Keras does, then the reference optimizer)
and against Keras 3 (float64). The kernels clip ``g[i]`` as they read it and multiply by a scale
computed in Python float64 from one compiled sum of squares; Keras multiplies ``g * clipnorm`` and
divides by ``max(norm, clipnorm)`` per element: the same up to a rounding per step, so float64
agrees within the contract's 1e-12 and float32 within 1e-5.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import numpy as np
import pytest
from conftest import assert_close

import fastdl
from fastdl import optim, reference

NAMES = list(optim.RULES)
OPTIONS = [("clipvalue", 0.3), ("clipnorm", 1.5), ("global_clipnorm", 2.0)]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
# Keras 3.x on the torch backend rounds the norm's clip to float32 even in float64: ``ops.maximum(norm, clipnorm)``
# and ``ops.minimum(1 / norm, 1 / clipnorm)`` of a float64 tensor and a Python float return float32 tensors
# (checked with keras.ops directly). One step's clipped gradient is then ~4e-8 relative off the exact
# ``g * c / max(norm, c)`` (the NumPy reference above, matched within 1e-12); after 50 steps the weights
# differ by up to ~2e-7. 1e-6 holds that float32 rounding and is far below a wrong rule (per-array for
# global, no clipping: both change the first step by 10 % and more with these gradients).
KERAS_NORM_RTOL = 1e-6


def clipped(grads: dict, option: str, value: float) -> dict:
    """Keras' ``_clip_gradients`` in NumPy (float64 norms): :func:`fastdl.reference.clip_gradients`."""
    return reference.clip_gradients(grads, option, value)


def _net_buffers(rng, dtype):
    """Parameters and gradients as views of two flat buffers (the whole-model path), and their flat gradient."""
    shapes = {"W1": (8, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)}
    sizes = [int(np.prod(s)) for s in shapes.values()]
    offsets = np.cumsum([0, *sizes])
    flat_p = rng.standard_normal(offsets[-1]).astype(dtype)
    flat_g = np.empty_like(flat_p)
    views = lambda flat: {k: flat[a:b].reshape(s) for (k, s), a, b in zip(shapes.items(), offsets, offsets[1:])}  # noqa: E731
    return views(flat_p), views(flat_g), flat_g


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("option", "value"), OPTIONS, ids=[o for o, _ in OPTIONS])
@pytest.mark.parametrize("name", NAMES)
def test_matches_the_numpy_reference_per_key_and_whole_model(name, option, value, dtype, rng):
    kwargs = {"lr": 0.05} if optim.RULES[name].defaults["lr"] > 0.005 else {"lr": 0.005}
    ref = getattr(reference, optim.RULES[name].reference)(**kwargs)
    _check_against_the_reference(lambda: optim.get_optimizer(name, **kwargs, **{option: value}), ref, option, value,
                                 dtype, rng, 30)


def _check_against_the_reference(make, ref, option, value, dtype, rng, steps):
    """``steps`` updates of ``make()`` on the whole-model buffers and per key against ``ref`` on clipped gradients."""
    dtype = np.dtype(dtype)
    params, grads, flat_g = _net_buffers(rng, dtype)
    separate = {k: v.copy() for k, v in params.items()}
    expected = {k: v.copy() for k, v in params.items()}
    whole, per_key = make(), make()
    for _ in range(steps):
        flat_g[:] = 3 * rng.standard_normal(flat_g.size)
        given = {k: g.copy() for k, g in grads.items()}
        whole.update(params, grads)
        per_key.update(separate, {k: g.copy() for k, g in grads.items()})
        ref.update(expected, clipped(grads, option, value))
        for k in grads:  # the caller's gradients are never written
            np.testing.assert_array_equal(grads[k], given[k])
    if option != "clipnorm":
        assert whole._plan is not None and whole._plan.gwhole is not None  # one kernel call for the model
    for k in params:
        np.testing.assert_array_equal(params[k], separate[k], err_msg=k)  # per key and whole model: same bits
        assert params[k].dtype == dtype
        assert_close(params[k], expected[k], rtol=RTOL[dtype], err_msg=k)


@pytest.mark.parametrize(("option", "value"), OPTIONS, ids=[o for o, _ in OPTIONS])
@pytest.mark.parametrize(("name", "keras_name", "kwargs"), [
    ("sgd", "SGD", {"lr": 0.1}), ("adam", "Adam", {"lr": 0.01}), ("nadam", "Nadam", {"lr": 0.01})])
def test_matches_keras(name, keras_name, kwargs, option, value, rng):
    keras = pytest.importorskip("keras")
    old = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        shapes = {"W": (6, 4), "b": (4,)}
        params = {k: rng.standard_normal(s) for k, s in shapes.items()}
        variables = {k: keras.Variable(v.copy(), dtype="float64") for k, v in params.items()}
        keras_opt = getattr(keras.optimizers, keras_name)(learning_rate=kwargs["lr"], **{option: value})
        opt = optim.get_optimizer(name, **kwargs, **{option: value})
        for _ in range(50):
            grads = {k: 3 * rng.standard_normal(s) for k, s in shapes.items()}
            opt.update(params, grads)
            keras_opt.apply([keras.ops.convert_to_tensor(grads[k]) for k in shapes], [variables[k] for k in shapes])
        for k in shapes:
            expected = keras.ops.convert_to_numpy(variables[k])
            rtol = 1e-12 if option == "clipvalue" else KERAS_NORM_RTOL
            np.testing.assert_allclose(params[k], expected, rtol=rtol, atol=rtol * np.max(np.abs(expected)))
    finally:
        keras.config.set_floatx(old)


def test_at_most_one_option_and_positive_values():
    with pytest.raises(ValueError, match="at most one of them"):
        optim.Adam(clipnorm=1.0, clipvalue=0.5)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="clipnorm must be a finite number > 0"):
            optim.SGD(clipnorm=bad)
    with pytest.raises(TypeError, match="global_clipnorm must be a real number"):
        optim.SGD(global_clipnorm="1")
    assert repr(optim.SGD(lr=0.1, clipvalue=0.5)) == "SGD(lr=0.1, clipvalue=0.5)"


@pytest.mark.parametrize("layout", ["per-key", "whole-model"])
@pytest.mark.parametrize("option", ["clipnorm", "global_clipnorm"])
def test_nonfinite_gradient_norm_is_reported_before_anything_changes(option, layout, rng):
    if layout == "whole-model":
        params, grads, flat_g = _net_buffers(rng, np.float64)
        flat_g[:] = rng.standard_normal(flat_g.size)
    else:
        params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    opt = optim.Adam(**{option: 1.0})
    opt.update(params, grads)
    opt.update(params, grads)  # (the second call replays the plan where there is one)
    key = next(iter(grads))
    grads[key][(0,) * grads[key].ndim] = np.nan
    before = copy.deepcopy(params), copy.deepcopy(opt.m), opt.iter
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match="norm is not finite"):
        opt.update(params, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], before[0][k])
        np.testing.assert_array_equal(opt.m[k], before[1][k])
    assert opt.iter == before[2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.update(params, grads)  # the default policy warns; the step goes on as Keras' (NaN scale)
    assert any("norm is not finite" in str(w.message) for w in caught)
    assert np.isnan(params[key]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_parallel_norm_matches_the_reference(dtype, rng, monkeypatch):
    """Above the parallel threshold the sum of squares is split over the threads (per-thread partials)."""
    calls = []
    original = optim._k.sumsq_parallel
    monkeypatch.setattr(optim._k, "sumsq_parallel", lambda a, n: calls.append(n) or original(a, n))
    dtype = np.dtype(dtype)
    params, grads, flat_g = _net_buffers(rng, dtype)
    expected = {k: v.copy() for k, v in params.items()}
    opt, ref = optim.SGD(lr=0.1, global_clipnorm=1.0), reference.SGD(lr=0.1)
    with fastdl.runtime.parallel_threshold(0):
        for _ in range(5):
            flat_g[:] = 3 * rng.standard_normal(flat_g.size)
            opt.update(params, grads)
            ref.update(expected, clipped(grads, "global_clipnorm", 1.0))
    assert len(calls) == 5 * len(grads)
    for k in params:
        assert_close(params[k], expected[k], rtol=RTOL[dtype], err_msg=k)


# A rule registered from outside the package: its worker does not read c[6], c[7]; it steps with a clipped copy.
@fastdl._jit.jit
def _outside_momentum_kernel(p, g, v, s2, s3, c):
    """``v = mom * v - lr * g``; ``p += v`` (the book's Momentum, written outside fastdl.kernels.optim)."""
    lr = c[0]
    mom = c[1]
    bad = False
    for i in range(p.size):
        vi = mom * v[i] - lr * g[i]
        v[i] = vi
        x = p[i] + vi
        p[i] = x
        d = x - x
        bad |= d != d
    return fastdl.kernels.optim.count_nonfinite(p) if bad else 0


OUTSIDE = optim.Rule(
    name="outside_momentum", class_name="OutsideMomentum", kernel=_outside_momentum_kernel,
    hyper=(optim.Hyper("lr", 0.01, "Learning rate"), optim.Hyper("momentum", 0.9, "Velocity decay", upper=1.0)),
    state=(optim.State("v", "Velocity"),), constants=lambda lr, momentum: (lr, momentum),
    summary="Momentum from outside the package (clipping test).", formula="v = momentum * v - lr * g\np += v",
    reference=reference.Momentum,
)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("option", "value"), OPTIONS, ids=[o for o, _ in OPTIONS])
def test_rule_registered_from_outside_clips_like_the_reference(option, value, dtype, parallel, rng):
    with optim.registered(OUTSIDE, module=__name__) as cls:
        assert OUTSIDE.kind is None and "global_clipnorm" in str(cls.__init__.__signature__)
        assert "clipped copy of the gradient" in cls.__doc__
        with fastdl.runtime.parallel_threshold(0) if parallel else contextlib.nullcontext():
            _check_against_the_reference(lambda: cls(lr=0.05, **{option: value}), reference.Momentum(lr=0.05),
                                         option, value, dtype, rng, 20)


def test_rule_from_outside_with_eight_constants_rejects_clipping_at_construction():
    rule = optim.Rule(name="eight", class_name="Eight", kernel=_outside_momentum_kernel,
                      hyper=(optim.Hyper("lr", 0.01, "Learning rate"),), state=(optim.State("v", "Velocity"),),
                      constants=lambda lr: (lr, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), formula="(test)")
    with optim.registered(rule, module=__name__) as cls:
        cls(lr=0.1)  # without clipping: fine
        with pytest.raises(ValueError, match=r"Eight: clipnorm must be None for a rule with more than 6 constants"):
            cls(clipnorm=1.0)
