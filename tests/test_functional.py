"""fastdl.functional against the reference, plus hypothesis property tests of the layer math."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, assert_close, with_layout
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastdl import functional as F
from fastdl import layers as L
from fastdl import reference as R

DT_IDS = {"ids": lambda d: np.dtype(d).name}


@pytest.mark.parametrize("layout", ["C", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, **DT_IDS)
def test_activations_match_reference(dtype, layout, rng):
    x = with_layout((rng.standard_normal((9, 7)) * 3).astype(dtype), layout)
    dout = with_layout(rng.standard_normal((9, 7)).astype(dtype), layout)
    np.testing.assert_array_equal(F.relu(x), R.relu(x))
    ref_relu = R.Relu()
    ref_relu.forward(x)
    np.testing.assert_array_equal(F.relu_backward(dout, x), ref_relu.backward(dout))
    y = F.sigmoid(x)
    assert y.dtype == dtype
    assert_close(y, R.sigmoid(x), dtype)
    assert_close(F.sigmoid_backward(dout, y), dout * (1.0 - y) * y, dtype)


@pytest.mark.parametrize("dtype", DTYPES, **DT_IDS)
def test_softmax_and_losses_match_reference(dtype, rng):
    x = with_layout((rng.standard_normal((8, 5)) * 4).astype(dtype), "F")
    labels = rng.integers(0, 5, 8)
    y = F.softmax(x)
    assert y.dtype == dtype
    assert_close(y, R.softmax(x), dtype)
    assert_close(F.softmax(x[0]), R.softmax(x[0]), dtype)
    for t in (labels, np.eye(5, dtype=dtype)[labels]):
        loss = F.cross_entropy_error(y, t)
        assert loss.dtype == dtype
        assert_close(loss, R.cross_entropy_error(R.softmax(x), t), dtype, "reduction")
        loss2, dx = F.softmax_cross_entropy(x, t)
        ref = R.SoftmaxWithLoss()
        assert_close(loss2, ref.forward(x, t), dtype, "reduction")
        assert_close(dx, ref.backward(), dtype)
    # 1-D probabilities with a scalar label or a one-hot row, as the book's cross_entropy_error allows
    assert_close(F.cross_entropy_error(y[0], labels[0]), R.cross_entropy_error(y[0], labels[:1]), dtype,
                 "reduction")
    onehot = np.eye(5, dtype=dtype)[labels[0]]
    assert_close(F.cross_entropy_error(y[0], onehot), R.cross_entropy_error(y[0], onehot), dtype, "reduction")


@pytest.mark.parametrize("dtype", DTYPES, **DT_IDS)
def test_affine_and_batchnorm_functions_match_layers(dtype, rng):
    x = rng.standard_normal((6, 2, 4)).astype(dtype)
    W, b = rng.standard_normal((8, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)
    ref = R.Affine(W, b)
    assert_close(F.affine(x, W, b), ref.forward(x), dtype, "reduction")
    dout = rng.standard_normal((6, 3)).astype(dtype)
    dx, dW, db = F.affine_backward(dout, x, W)
    assert_close(dx, ref.backward(dout), dtype, "reduction")
    assert_close(dW, ref.dW, dtype, "reduction")
    assert_close(db, ref.db, dtype, "reduction")

    gamma, beta = rng.standard_normal(8).astype(dtype), rng.standard_normal(8).astype(dtype)
    bref = R.BatchNormalization(gamma, beta)
    out, xn, std = F.batchnorm_forward(x, gamma, beta)
    assert_close(out, bref.forward(x), dtype, "reduction")
    dout = rng.standard_normal(x.shape).astype(dtype)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, xn, std, gamma)
    assert dx.shape == x.shape
    assert_close(dx, bref.backward(dout), dtype, "reduction")
    assert_close(dgamma, bref.dgamma, dtype, "reduction")
    assert_close(dbeta, bref.dbeta, dtype, "reduction")


def test_functions_do_not_modify_inputs(rng):
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 4))
    keep_x, keep_d = x.copy(), dout.copy()
    F.relu_backward(dout, x)
    F.sigmoid_backward(dout, F.sigmoid(x))
    F.softmax_cross_entropy(x, np.array([0, 1, 2, 3, 0]))
    np.testing.assert_array_equal(x, keep_x)
    np.testing.assert_array_equal(dout, keep_d)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: F.relu(np.ones(3, np.int32)), TypeError, ["relu: x", "int32"]),
    (lambda: F.relu_backward(np.ones(4), np.ones(3)), ValueError, ["dout", "(3,)", "(4,)"]),
    (lambda: F.softmax(np.ones((2, 2, 2))), ValueError, ["softmax: x", "1-D or 2-D"]),
    (lambda: F.cross_entropy_error(np.ones((2, 3)), np.array([0, 3])), ValueError, ["t", "[0, 3)"]),
    (lambda: F.softmax_cross_entropy(np.ones((2, 3)), np.array([0])), ValueError, ["t", "length 2"]),
    (lambda: F.affine(np.ones((2, 3)), np.ones((4, 2)), np.ones(2)), ValueError, ["x", "4 features"]),
    (lambda: F.affine(np.ones((2, 3)), np.ones((3, 2)), np.ones(2, np.float32)), TypeError, ["b", "float32"]),
    (lambda: F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.ones(2)), ValueError, ["beta", "length 3"]),
    (lambda: F.batchnorm_backward(np.ones((2, 3)), np.ones((2, 3)), np.ones(2), np.ones(3)), ValueError,
     ["std", "(3,)"]),
])
def test_bad_arguments(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_optimizer_steps_are_reexported():
    names = ["sgd_step", "momentum_step", "nesterov_step", "adagrad_step", "rmsprop_step", "adam_step"]
    from fastdl import optim

    for name in names:
        assert name in F.__all__
        assert getattr(F, name) is getattr(optim, name)


# --------------------------------------------------------------------------------------------
# hypothesis properties (names contain "hypothesis": CI's bounds-checked subset skips them)
# --------------------------------------------------------------------------------------------

shapes_2d = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12)
finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=32)
float_dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def matrices(draw):
    dtype = draw(float_dtypes)
    return draw(hnp.arrays(dtype, draw(shapes_2d), elements=finite))


@settings(max_examples=40, deadline=None)
@given(matrices())
def test_hypothesis_softmax_rows_sum_to_one(x):
    y = F.softmax(x)
    assert y.dtype == x.dtype
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5 if x.dtype == np.float32 else 1e-12)
    assert_close(y, R.softmax(x), x.dtype)


@settings(max_examples=40, deadline=None)
@given(matrices())
def test_hypothesis_relu_idempotent_and_equal_to_reference(x):
    once = F.relu(x)
    np.testing.assert_array_equal(F.relu(once), once)
    np.testing.assert_array_equal(once, R.relu(x))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_hypothesis_batchnorm_normalises_each_feature(data):
    dtype = data.draw(float_dtypes)
    n = data.draw(st.integers(2, 16))
    d = data.draw(st.integers(1, 10))
    x = data.draw(hnp.arrays(dtype, (n, d), elements=finite))
    bn = L.BatchNormalization(np.ones(d, dtype), np.zeros(d, dtype))
    out = bn.forward(x)
    ref = R.BatchNormalization(np.ones(d, dtype), np.zeros(d, dtype))
    assert_close(out, ref.forward(x), dtype, "reduction", rtol=1e-4 if dtype == np.float32 else None)
    # mean ~0 per feature (rounding of the mean is amplified by 1/std); variance var / (var + eps) <= 1
    ulp = 1e-6 if dtype == np.float32 else 1e-14
    atol = ulp * (1.0 + np.max(np.abs(x), axis=0) / bn.std)
    assert np.all(np.abs(out.mean(axis=0)) <= atol)
    assert np.all(out.var(axis=0) <= 1.0 + 1e-4)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_hypothesis_layers_equal_reference_for_random_shapes(data):
    dtype = data.draw(float_dtypes)
    n, d = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    m = data.draw(st.integers(2, 9))  # the reference treats C == 1 labels as one-hot
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    W, b = rng.standard_normal((d, m)).astype(dtype), rng.standard_normal(m).astype(dtype)
    ours, ref = L.Affine(W, b), R.Affine(W, b)
    out = ours.forward(x)
    assert_close(out, ref.forward(x), dtype, "reduction")
    t = rng.integers(0, m, n)
    sm, smr = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    assert_close(sm.forward(out, t), smr.forward(out, t), dtype, "reduction")
    dout = sm.backward()
    assert_close(dout, smr.backward(), dtype)
    assert_close(ours.backward(dout), ref.backward(dout), dtype, "reduction")
    assert_close(ours.dW, ref.dW, dtype, "reduction")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_exps_are_numpys(dtype):
    """The softmax numerators come from NumPy's exp of ``x - rowmax``: the reference's, to the bit."""
    from fastdl.kernels import softmax as K

    x = (10 * np.random.default_rng(2).standard_normal((7, 33))).astype(dtype)
    y = np.empty_like(x)
    K.exps_into(x, y)
    np.testing.assert_array_equal(y, np.exp(x - np.max(x, axis=1, keepdims=True)))
