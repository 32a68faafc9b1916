"""fastdl.layers against fastdl.reference: values, grads, state, dtypes, layouts, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import DTYPES, LAYOUTS, SHAPES, assert_close, with_layout

import fastdl
from fastdl import functional as F
from fastdl import layers as L
from fastdl import reference as R
from fastdl import runtime

SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]
MID = (100, 100)


def _data(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def _affine_pair(rng, dtype, d, m=11):
    W = _data(rng, (d, m), dtype, 0.1)
    b = _data(rng, (m,), dtype)
    return L.Affine(W, b), R.Affine(W, b)


def _bn_pair(rng, dtype, d):
    gamma = _data(rng, (d,), dtype, 0.5, 1.0)
    beta = _data(rng, (d,), dtype)
    return L.BatchNormalization(gamma, beta), R.BatchNormalization(gamma, beta)


# --------------------------------------------------------------------------------------------
# values against the reference over dtype x shape x layout
# --------------------------------------------------------------------------------------------

def check_affine(rng, dtype, shape, layout):
    ours, ref = _affine_pair(rng, dtype, shape[1])
    x = with_layout(_data(rng, shape, dtype), layout)
    out = ours.forward(x)
    assert out.dtype == dtype
    assert_close(out, ref.forward(x), dtype, "reduction")
    dout = with_layout(_data(rng, out.shape, dtype), layout)
    dx = ours.backward(dout)
    assert dx.dtype == dtype and ours.dW.dtype == dtype and ours.db.dtype == dtype
    assert_close(dx, ref.backward(dout), dtype, "reduction")
    assert_close(ours.dW, ref.dW, dtype, "reduction")
    assert_close(ours.db, ref.db, dtype, "reduction")


def check_relu(rng, dtype, shape, layout):
    ours, ref = L.Relu(), R.Relu()
    x = with_layout(_data(rng, shape, dtype), layout)
    out = ours.forward(x)
    np.testing.assert_array_equal(out, ref.forward(x))
    np.testing.assert_array_equal(ours.mask, ref.mask)
    dout = with_layout(_data(rng, shape, dtype), layout)
    keep = dout.copy()
    dx = ours.backward(dout)
    np.testing.assert_array_equal(dx, ref.backward(dout))
    np.testing.assert_array_equal(dout, keep)  # dout untouched (the book writes into it)
    assert out.dtype == dx.dtype == dtype


def check_sigmoid(rng, dtype, shape, layout):
    ours, ref = L.Sigmoid(), R.Sigmoid()
    x = with_layout(_data(rng, shape, dtype, 3.0), layout)
    out = ours.forward(x)
    assert_close(out, ref.forward(x), dtype)
    assert ours.out is out
    dout = with_layout(_data(rng, shape, dtype), layout)
    dx = ours.backward(dout)
    assert_close(dx, ref.backward(dout), dtype)
    assert out.dtype == dx.dtype == dtype


def check_bn(rng, dtype, shape, layout):
    ours, ref = _bn_pair(rng, dtype, shape[1])
    for step in range(2):  # two steps: the running averages start from zeros, then from stats
        x = with_layout(_data(rng, shape, dtype, 2.0, 0.5 + step), layout)
        out = ours.forward(x, train_flg=True)
        assert_close(out, ref.forward(x, train_flg=True), dtype, "reduction")
        dout = with_layout(_data(rng, shape, dtype), layout)
        dx = ours.backward(dout)
        assert_close(dx, ref.backward(dout), dtype, "reduction")
        assert_close(ours.dgamma, ref.dgamma, dtype, "reduction")
        assert_close(ours.dbeta, ref.dbeta, dtype, "reduction")
        assert_close(ours.running_mean, ref.running_mean, dtype, "reduction")
        assert_close(ours.running_var, ref.running_var, dtype, "reduction")
        for a in (out, dx, ours.dgamma, ours.dbeta, ours.running_mean, ours.running_var, ours.xn, ours.std):
            assert a.dtype == dtype
    x = with_layout(_data(rng, shape, dtype, 2.0, 1.0), layout)
    assert_close(ours.forward(x, train_flg=False), ref.forward(x, train_flg=False), dtype, "reduction")


def check_softmax(rng, dtype, shape, layout, onehot=False):
    ours, ref = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    x = with_layout(_data(rng, shape, dtype, 3.0), layout)
    labels = rng.integers(0, shape[1], shape[0])
    t = np.eye(shape[1], dtype=dtype)[labels] if onehot else labels
    loss = ours.forward(x, t)
    assert isinstance(loss, np.generic) and loss.dtype == dtype
    assert_close(loss, ref.forward(x, t), dtype, "reduction")
    assert_close(ours.y, ref.y, dtype)
    for dout in (1, 0.5):
        dx = ours.backward(dout)
        assert dx.dtype == dtype
        assert_close(dx, ref.backward(dout), dtype)


def check_dropout(rng, dtype, shape, layout):
    ours, ref = L.Dropout(0.3), R.Dropout(0.3)
    x = with_layout(_data(rng, shape, dtype), layout)
    np.random.seed(7)
    out = ours.forward(x)
    np.random.seed(7)
    np.testing.assert_array_equal(out, ref.forward(x))  # bit for bit, the book's global RNG
    np.testing.assert_array_equal(ours.mask, ref.mask)
    dout = with_layout(_data(rng, shape, dtype), layout)
    np.testing.assert_array_equal(ours.backward(dout), ref.backward(dout))
    ev = ours.forward(x, train_flg=False)
    np.testing.assert_array_equal(ev, ref.forward(x, train_flg=False))
    assert out.dtype == ev.dtype == dtype


CHECKS = {
    "affine": check_affine,
    "relu": check_relu,
    "sigmoid": check_sigmoid,
    "bn": check_bn,
    "softmax": check_softmax,
    "softmax_onehot": lambda *a: check_softmax(*a, onehot=True),
    "dropout": check_dropout,
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", list(CHECKS))
def test_layer_matches_reference(layer, dtype, shape, layout, rng):
    CHECKS[layer](rng, np.dtype(dtype), shape, layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", list(CHECKS))
def test_parallel_variant_matches_reference(layer, dtype, rng):
    with runtime.parallel_threshold(0):
        CHECKS[layer](rng, np.dtype(dtype), MID, "C")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_serial_and_parallel_agree(dtype, rng):
    """The same inputs through both variants: elementwise kernels identical, reductions within tolerance."""
    x = _data(rng, MID, dtype, 2.0, 1.0)
    gamma, beta = _data(rng, (MID[1],), dtype), _data(rng, (MID[1],), dtype)
    dout = _data(rng, MID, dtype)
    results = []
    for threshold in (10**12, 0):
        with runtime.parallel_threshold(threshold):
            relu, sig, bn = L.Relu(), L.Sigmoid(), L.BatchNormalization(gamma, beta)
            results.append((relu.forward(x), sig.forward(x), bn.forward(x), bn.backward(dout), bn.dgamma))
    (r0, s0, b0, d0, g0), (r1, s1, b1, d1, g1) = results
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_array_equal(s0, s1)
    for a, b in ((b0, b1), (d0, d1), (g0, g1)):
        assert_close(a, b, dtype, "reduction")


# --------------------------------------------------------------------------------------------
# the book's usage: shared parameter objects, 4-D input, mixed dtypes, fresh outputs
# --------------------------------------------------------------------------------------------

def test_affine_keeps_parameter_objects_and_sees_in_place_updates(rng):
    W, b = _data(rng, (6, 4), np.float64), _data(rng, (4,), np.float64)
    layer = L.Affine(W, b)
    x = _data(rng, (3, 6), np.float64)
    layer.forward(x)
    layer.backward(np.ones((3, 4)))
    W -= 0.5 * layer.dW  # what an optimizer does between steps
    b -= 0.5 * layer.db
    assert layer.W is W and layer.b is b
    assert_close(layer.forward(x), x @ W + b, np.float64, "reduction")


def test_affine_repeated_calls_pick_up_every_change(rng):
    """The validated-call cache (same W and b objects) gives the reference's numbers, and a replaced or
    reshaped W, a replaced b, or an input of another dtype, layout or width is validated again."""
    W = rng.standard_normal((6, 4))
    b = rng.standard_normal(4)
    ours, ref = L.Affine(W, b), R.Affine(W, b)
    for _ in range(3):  # the second and third calls take the cached path
        x, dout = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
        np.testing.assert_array_equal(ours.forward(x), ref.forward(x))
        np.testing.assert_array_equal(ours.backward(dout), ref.backward(dout))
        np.testing.assert_array_equal(ours.dW, ref.dW)
        np.testing.assert_array_equal(ours.db, ref.db)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(ours.forward(x32), ref.forward(x32.astype(np.float64)))
    assert ours.x.dtype == np.float64
    np.testing.assert_array_equal(ours.forward(np.asfortranarray(x)), ref.forward(x))
    np.testing.assert_array_equal(ours.backward(np.asfortranarray(dout)), ref.backward(dout))
    ours.W.shape = (4, 6)  # in place: the cached path must not trust the old shape
    with pytest.raises(ValueError, match="features per sample"):
        ours.forward(x)
    ours.W.shape = (6, 4)
    ours.b = np.ones(5)
    with pytest.raises(ValueError, match="b must be of length 4"):
        ours.forward(x)
    with pytest.raises(ValueError, match="b must be of length 4"):
        ours.forward(x)  # (a rejected call leaves no cache behind)
    ours.b = b
    ours.forward(x)
    with pytest.raises(ValueError, match="dout"):
        ours.backward(np.ones((5, 5)))
    ours.W = W.astype(np.float32)
    with pytest.raises(ValueError, match="W"):
        ours.backward(dout)


def test_affine_4d_input_returns_dx_in_input_shape(rng):
    ours, ref = _affine_pair(rng, np.float64, 2 * 3 * 4)
    x = with_layout(_data(rng, (5, 2, 3, 4), np.float64), "strided")
    assert_close(ours.forward(x), ref.forward(x), np.float64, "reduction")
    dout = _data(rng, (5, 11), np.float64)
    dx = ours.backward(dout)
    assert dx.shape == x.shape == ours.original_x_shape
    assert_close(dx, ref.backward(dout), np.float64, "reduction")
    assert_close(ours.dW, ref.dW, np.float64, "reduction")


@pytest.mark.parametrize("layout", ["C", "strided"])
def test_batchnorm_4d_flattens_as_the_book(layout, rng):
    shape = (6, 2, 3, 4)
    ours, ref = _bn_pair(rng, np.float64, 2 * 3 * 4)
    x = with_layout(_data(rng, shape, np.float64, 2.0, 1.0), layout)
    out = ours.forward(x)
    assert out.shape == shape
    assert_close(out, ref.forward(x), np.float64, "reduction")
    dout = with_layout(_data(rng, shape, np.float64), layout)
    dx = ours.backward(dout)
    assert dx.shape == shape
    assert_close(dx, ref.backward(dout), np.float64, "reduction")
    assert_close(ours.dgamma, ref.dgamma, np.float64, "reduction")
    assert_close(ours.forward(x, False), ref.forward(x, False), np.float64, "reduction")


def test_float32_input_into_float64_weights_gives_numpys_float64_numbers(rng):
    """The book feeds float32 MNIST into float64 weights; NumPy then computes in float64."""
    ours, ref = _affine_pair(rng, np.float64, 13)
    x = _data(rng, (7, 13), np.float32)
    out = ours.forward(x)
    assert out.dtype == np.float64
    assert_close(out, ref.forward(x), np.float64, "reduction")
    dout = _data(rng, (7, 11), np.float64)
    assert_close(ours.backward(dout), ref.backward(dout), np.float64, "reduction")
    assert_close(ours.dW, ref.dW, np.float64, "reduction")
    # batch norm casts x to gamma's dtype first (NumPy would take the mean in float32 here)
    bn, bref = _bn_pair(rng, np.float64, 13)
    assert_close(bn.forward(x), bref.forward(x.astype(np.float64)), np.float64, "reduction")
    assert bn.running_mean.dtype == np.float64


def test_float64_input_into_float32_weights_stays_float32(rng):
    ours = L.Affine(_data(rng, (13, 4), np.float32), _data(rng, (4,), np.float32))
    out = ours.forward(_data(rng, (7, 13), np.float64))
    assert out.dtype == np.float32
    dx = ours.backward(_data(rng, (7, 4), np.float64))
    assert dx.dtype == ours.dW.dtype == ours.db.dtype == np.float32


def test_outputs_are_fresh_arrays(rng):
    x = _data(rng, (5, 6), np.float64)
    for layer in (L.Relu(), L.Sigmoid(), L.Affine(np.eye(6), np.zeros(6)), L.Dropout(0.2)):
        a = layer.forward(x)
        b = layer.forward(x)
        assert not np.shares_memory(a, b) and not np.shares_memory(a, x)
        g1 = layer.backward(x)
        g2 = layer.backward(x)
        assert not np.shares_memory(g1, g2) and not np.shares_memory(g1, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("policy", ["serial", "parallel"])
def test_relu_nan_passes_like_the_reference(dtype, policy, rng):
    """The layer keeps no mask: its backward tests ``out <= 0``, which must be the book's ``x <= 0`` everywhere."""
    special = np.array([np.nan, -1.0, 0.0, -0.0, 2.0, np.inf, -np.inf, 1e-300, -1e-300], dtype=dtype)
    x = rng.standard_normal((64, 70)).astype(dtype)
    x.ravel()[: 9 * 400] = np.tile(special, 400)
    dout = rng.standard_normal(x.shape).astype(dtype)
    ours, ref = L.Relu(), R.Relu()
    with runtime.parallel_threshold(0 if policy == "parallel" else 2**62):
        out = ours.forward(x)
        dx = ours.backward(dout)
    np.testing.assert_array_equal(out, ref.forward(x))
    assert not np.signbit(out[x == 0]).any()  # -0.0 is masked to +0.0 as in the reference
    assert ours.out is out and ours.mask.dtype == np.bool_
    np.testing.assert_array_equal(ours.mask, ref.mask)
    np.testing.assert_array_equal(dx, ref.backward(dout.copy()))
    np.testing.assert_array_equal(F.relu_backward(dout, x), dx)  # from the input: the same test
    np.testing.assert_array_equal(F.relu_backward(dout, out), dx)  # or from the output


def test_dropout_zero_times_special_values_like_numpy():
    x = np.array([[np.inf, -np.inf, np.nan, -3.0, 3.0, -0.0]] * 50)
    ours, ref = L.Dropout(0.5), R.Dropout(0.5)
    np.random.seed(3)
    a = ours.forward(x)
    np.random.seed(3)
    with np.errstate(invalid="ignore"):  # inf * False
        b = ref.forward(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dropout_generator_path(dtype, rng):
    x = _data(rng, (64, 33), dtype)
    layer = L.Dropout(0.4, rng=np.random.default_rng(5))
    out = layer.forward(x)
    draws = np.random.default_rng(5).random(x.shape, dtype=np.dtype(dtype))
    expected_mask = draws > np.dtype(dtype).type(0.4)
    np.testing.assert_array_equal(layer.mask, expected_mask)
    np.testing.assert_array_equal(out, x * expected_mask)
    assert out.dtype == dtype
    dout = _data(rng, x.shape, dtype)
    np.testing.assert_array_equal(layer.backward(dout), dout * expected_mask)


def test_batchnorm_running_stats_given_are_copied_not_mutated(rng):
    gamma, beta = np.ones(5, np.float32), np.zeros(5, np.float32)
    rm, rv = np.full(5, 0.5), np.full(5, 2.0)
    ours = L.BatchNormalization(gamma, beta, momentum=0.8, running_mean=rm, running_var=rv)
    ref = R.BatchNormalization(gamma, beta, momentum=0.8, running_mean=rm.astype(np.float32),
                               running_var=rv.astype(np.float32))
    x = _data(rng, (9, 5), np.float32)
    assert_close(ours.forward(x, False), ref.forward(x, False), np.float32)
    ours.forward(x)
    ref.forward(x)
    np.testing.assert_array_equal(rm, 0.5)
    np.testing.assert_array_equal(rv, 2.0)
    assert ours.running_mean.dtype == np.float32
    assert_close(ours.running_mean, ref.running_mean, np.float32)
    assert_close(ours.running_var, ref.running_var, np.float32)


def test_softmax_with_uint8_labels_like_mnist(rng):
    x = _data(rng, (20, 10), np.float32)
    t = rng.integers(0, 10, 20).astype(np.uint8)
    ours, ref = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    assert_close(ours.forward(x, t), ref.forward(x, t), np.float32)
    assert_close(ours.backward(), ref.backward(), np.float32)


def test_softmax_soft_targets_use_argmax_for_loss_and_t_for_gradient(rng):
    x = _data(rng, (6, 4), np.float64)
    t = rng.random((6, 4))
    t /= t.sum(1, keepdims=True)
    ours, ref = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    assert_close(ours.forward(x, t), ref.forward(x, t), np.float64, "reduction")
    assert_close(ours.backward(), ref.backward(), np.float64)


# --------------------------------------------------------------------------------------------
# non-finite values
# --------------------------------------------------------------------------------------------

def test_nonfinite_loss_warns_by_default_and_raises_under_errstate():
    x = np.array([[np.inf, 0.0], [1.0, 2.0]])
    t = np.array([0, 1])
    with pytest.warns(fastdl.NonFiniteWarning, match="SoftmaxWithLoss.forward"):
        L.SoftmaxWithLoss().forward(x, t)
    layer = L.SoftmaxWithLoss()
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match="loss"):
        layer.forward(x, t)
    assert layer.y is None and layer.loss is None


def test_finite_loss_does_not_warn(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L.SoftmaxWithLoss().forward(_data(rng, (4, 3), np.float64), np.array([0, 1, 2, 0]))


def test_nonfinite_batchnorm_statistics_reported_and_state_kept_under_raise(rng):
    bn = L.BatchNormalization(np.ones(3), np.zeros(3))
    bn.forward(_data(rng, (4, 3), np.float64))
    rm, rv, xn = bn.running_mean, bn.running_var, bn.xn
    bad = _data(rng, (4, 3), np.float64)
    bad[1, 2] = np.nan
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match="BatchNormalization"):
        bn.forward(bad)
    assert bn.running_mean is rm and bn.running_var is rv and bn.xn is xn
    with pytest.warns(fastdl.NonFiniteWarning, match="non-finite"):
        bn.forward(bad)
    assert np.isnan(bn.running_mean[2])


# --------------------------------------------------------------------------------------------
# bad input: documented error, argument named, nothing changed
# --------------------------------------------------------------------------------------------

def _trained(layer_name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    if layer_name == "affine":
        layer = L.Affine(rng.standard_normal((3, 2)), np.zeros(2))
    elif layer_name == "bn":
        layer = L.BatchNormalization(np.ones(3), np.zeros(3))
    elif layer_name == "softmax":
        layer = L.SoftmaxWithLoss()
        layer.forward(x, np.array([0, 1, 2, 0]))
        return layer
    else:
        layer = {"relu": L.Relu, "sigmoid": L.Sigmoid, "dropout": L.Dropout}[layer_name]()
    layer.forward(x)
    return layer


def _snapshot(layer):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(layer).items()}


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k] or (a[k] is b[k]), k


X = np.zeros((4, 3))
BAD_CALLS = [
    # (layer, method, args, error, words in the message)
    ("affine", "forward", (np.zeros((4, 5)),), ValueError, ["x", "3 features", "(4, 5)"]),
    ("affine", "forward", (np.zeros(3),), ValueError, ["x", "2-D", "(3,)"]),
    ("affine", "forward", (np.zeros((4, 3), np.int64),), TypeError, ["x", "int64"]),
    ("affine", "forward", (np.zeros((4, 3), np.float16),), TypeError, ["x", "float16"]),
    ("affine", "forward", (np.zeros((4, 3), np.complex128),), TypeError, ["x", "complex128"]),
    ("affine", "forward", (np.zeros((4, 3), bool),), TypeError, ["x", "bool"]),
    ("affine", "backward", (np.zeros((4, 3)),), ValueError, ["dout", "(4, 2)", "(4, 3)"]),
    ("affine", "backward", (np.zeros((4, 2), np.int32),), TypeError, ["dout", "int32"]),
    ("relu", "backward", (np.zeros((4, 4)),), ValueError, ["dout", "(4, 3)", "(4, 4)"]),
    ("relu", "forward", ("abc",), TypeError, ["x"]),
    ("sigmoid", "backward", (np.zeros((3, 4)),), ValueError, ["dout", "(4, 3)"]),
    ("dropout", "backward", (np.zeros(12),), ValueError, ["dout", "(4, 3)", "(12,)"]),
    ("dropout", "forward", (np.zeros(3, np.uint8),), TypeError, ["x", "uint8"]),
    ("bn", "forward", (np.zeros((4, 5)),), ValueError, ["x", "3 features", "(4, 5)"]),
    ("bn", "forward", (np.zeros(3),), ValueError, ["x", "at least 2-D"]),
    ("bn", "forward", (np.zeros((0, 3)),), ValueError, ["x", "at least one row"]),
    ("bn", "backward", (np.zeros((5, 3)),), ValueError, ["dout", "(4, 3)", "(5, 3)"]),
    ("bn", "backward", (np.zeros((4, 3), np.float16),), TypeError, ["dout", "float16"]),
    ("softmax", "forward", (X, np.array([0, 1, 2])), ValueError, ["t", "length 4", "(3,)"]),
    ("softmax", "forward", (X, np.array([0, 1, 3, 0])), ValueError, ["t", "[0, 3)", "[0, 3]"]),
    ("softmax", "forward", (X, np.array([0, -1, 2, 0])), ValueError, ["t", "[0, 3)", "-1"]),
    ("softmax", "forward", (X, np.array([0.0, 1.0, 2.0, 0.0])), TypeError, ["t", "integer", "float64"]),
    ("softmax", "forward", (X, np.array([True, False, True, True])), TypeError, ["t", "bool"]),
    ("softmax", "forward", (X, np.zeros((4, 4))), ValueError, ["t", "(4, 3)", "(4, 4)"]),
    ("softmax", "forward", (X, np.zeros((4, 3), np.complex64)), TypeError, ["t", "complex64"]),
    ("softmax", "forward", (np.zeros((4, 3, 1)), np.zeros(4, int)), ValueError, ["x", "2-D", "(4, 3, 1)"]),
    ("softmax", "forward", (np.zeros((4, 3), np.int64), np.zeros(4, int)), TypeError, ["x", "int64"]),
    ("softmax", "backward", (np.ones(2),), TypeError, ["dout", "scalar"]),
    ("softmax", "backward", (True,), TypeError, ["dout", "scalar"]),
]


@pytest.mark.parametrize("layer_name, method, args, exc, words", BAD_CALLS,
                         ids=[f"{c[0]}.{c[1]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_raises_and_changes_nothing(layer_name, method, args, exc, words):
    layer = _trained(layer_name)
    if method == "backward" and layer_name not in ("softmax",):
        layer.backward(np.ones((4, 2)) if layer_name == "affine" else np.ones((4, 3)))
    before = _snapshot(layer)
    with pytest.raises(exc) as info:
        getattr(layer, method)(*args)
    message = str(info.value)
    assert message.startswith(f"{type(layer).__name__}.{method}:"), message
    for word in words:
        assert word in message, (word, message)
    _same_state(before, _snapshot(layer))


@pytest.mark.parametrize("layer", [L.Relu, L.Sigmoid, L.Dropout, L.SoftmaxWithLoss,
                                   lambda: L.Affine(np.ones((2, 2)), np.ones(2)),
                                   lambda: L.BatchNormalization(np.ones(2), np.ones(2))])
def test_backward_before_forward_is_a_runtime_error(layer):
    with pytest.raises(RuntimeError, match=r"backward: call \w+\.forward.* first"):
        layer().backward(np.ones((2, 2)))


def test_batchnorm_backward_after_eval_only_forward_is_a_runtime_error():
    bn = L.BatchNormalization(np.ones(2), np.ones(2))
    bn.forward(np.ones((3, 2)), train_flg=False)
    with pytest.raises(RuntimeError, match="train_flg=True"):
        bn.backward(np.ones((3, 2)))


CONSTRUCTOR_ERRORS = [
    (lambda: L.Affine(np.ones(3), np.ones(3)), ValueError, ["W", "2-D"]),
    (lambda: L.Affine([[1.0]], np.ones(1)), TypeError, ["W", "numpy array"]),
    (lambda: L.Affine(np.ones((3, 2)), np.ones(3)), ValueError, ["b", "length 2", "(3,)"]),
    (lambda: L.Affine(np.ones((3, 2)), np.ones((1, 2))), ValueError, ["b", "1-D", "(1, 2)"]),
    (lambda: L.Affine(np.ones((3, 2)), np.ones(2, np.float32)), TypeError, ["b", "float64", "float32"]),
    (lambda: L.Affine(np.ones((3, 2), np.int64), np.ones(2)), TypeError, ["W", "int64"]),
    (lambda: L.BatchNormalization(np.ones(3), np.ones(4)), ValueError, ["beta", "length 3"]),
    (lambda: L.BatchNormalization(np.ones((3, 1)), np.ones(3)), ValueError, ["gamma", "1-D"]),
    (lambda: L.BatchNormalization(np.ones(3, np.float16), np.ones(3)), TypeError, ["gamma", "float16"]),
    (lambda: L.BatchNormalization(np.ones(3), np.ones(3), momentum=1.5), ValueError, ["momentum", "1.5"]),
    (lambda: L.BatchNormalization(np.ones(3), np.ones(3), momentum=-0.1), ValueError, ["momentum"]),
    (lambda: L.BatchNormalization(np.ones(3), np.ones(3), momentum="x"), TypeError, ["momentum"]),
    (lambda: L.BatchNormalization(np.ones(3), np.ones(3), running_mean=np.ones(2)), ValueError,
     ["running_mean", "length 3", "(2,)"]),
    (lambda: L.Dropout(1.0), ValueError, ["dropout_ratio", "< 1"]),
    (lambda: L.Dropout(-0.1), ValueError, ["dropout_ratio", ">= 0"]),
    (lambda: L.Dropout(0.5, rng=np.random.RandomState(0)), TypeError, ["rng", "Generator"]),
]


@pytest.mark.parametrize("make, exc, words", CONSTRUCTOR_ERRORS, ids=range(len(CONSTRUCTOR_ERRORS)))
def test_bad_constructor_arguments(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_rejected_batchnorm_forward_keeps_running_stats(rng):
    bn = L.BatchNormalization(np.ones(3), np.zeros(3))
    bn.forward(_data(rng, (4, 3), np.float64))
    rm = bn.running_mean.copy()
    for bad in (np.zeros((4, 2)), np.zeros((4, 3), np.int32)):
        with pytest.raises((ValueError, TypeError)):
            bn.forward(bad)
    np.testing.assert_array_equal(bn.running_mean, rm)


def test_replaced_parameter_of_wrong_length_is_caught_before_a_kernel(rng):
    layer = L.Affine(np.ones((3, 2)), np.ones(2))
    layer.b = np.ones(5)
    with pytest.raises(ValueError, match="Affine.forward: b must be of length 2"):
        layer.forward(np.ones((4, 3)))
    bn = L.BatchNormalization(np.ones(3), np.ones(3))
    bn.forward(np.ones((4, 3)))
    bn.gamma = np.ones(7)
    with pytest.raises(ValueError, match="gamma"):
        bn.backward(np.ones((4, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threshold", [runtime.DEFAULT_PARALLEL_THRESHOLD, 1])  # serial, then parallel
def test_sigmoid_forward_is_the_references_to_the_bit(dtype, threshold):
    """NumPy's exp, then one compiled pass: the reference's values exactly, extremes and NaN included."""
    rng = np.random.default_rng(5)
    extremes = [-1e4, -100.0, -88.0, 0.0, -0.0, 88.0, 100.0, 1e4, np.inf, -np.inf, np.nan]
    x = np.concatenate([30 * rng.standard_normal(989), extremes]).astype(dtype).reshape(25, 40)
    with np.errstate(over="ignore"):
        expected = R.Sigmoid().forward(x)
    with warnings.catch_warnings(), runtime.parallel_threshold(threshold):
        warnings.simplefilter("error")  # exp(-x) overflowing for very negative x is expected: no warning
        out = L.Sigmoid().forward(x)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.dtype(dtype)
