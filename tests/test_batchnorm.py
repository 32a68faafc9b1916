"""Batch norm's fast paths: the validated-call cache, reused xn buffers, column-split parallel kernels,
ill-conditioned data, and the allocator setting that keeps large outputs from page-faulting."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DTYPES, assert_close

import fastdl
from fastdl import layers as L
from fastdl import reference as R
from fastdl import runtime


def _pair(dtype, d, momentum=0.9, seed=1):
    rng = np.random.default_rng(seed)
    gamma = (rng.standard_normal(d) + 1.0).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    return L.BatchNormalization(gamma, beta, momentum), R.BatchNormalization(gamma, beta, momentum)


def _step_both(ours, ref, x, dout, dtype):
    out = ours.forward(x, True)
    assert out.shape == x.shape and out.dtype == dtype
    # (the reference would average float32 input in float32; the layer computes in gamma's dtype)
    assert_close(out, ref.forward(x.astype(dtype), True), dtype, "reduction")
    assert_close(ours.backward(dout), ref.backward(dout), dtype, "reduction")
    for name in ("dgamma", "dbeta", "running_mean", "running_var", "xn", "std"):
        assert_close(getattr(ours, name), getattr(ref, name), dtype, "reduction", err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shift", "scale"), [(1e4, 1e-3), (-3e2, 1e-2)])
def test_ill_conditioned_batches_match_the_reference(dtype, shift, scale):
    """Large mean, small spread: the two-pass statistics keep the reference's numbers."""
    if dtype == np.float32:
        # x - mu keeps only ~eps32 * shift / scale of its precision, and the book's backward chain and
        # the two-sum formula round that differently (measured: 9e-5 apart at a ratio of 1e4, before
        # and after the rewrite alike); a ratio of 100 stays well inside float32's 1e-5
        shift, scale = shift / 1000, scale * 100
    rng = np.random.default_rng(3)
    ours, ref = _pair(dtype, 37)
    for _ in range(2):
        x = (shift + scale * rng.standard_normal((50, 37))).astype(dtype)
        _step_both(ours, ref, x, rng.standard_normal((50, 37)).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_parallel_column_split_gives_the_serial_numbers_bit_for_bit(dtype):
    """Each thread owns whole columns (no partial sums), so both variants agree exactly."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 300)).astype(dtype)  # 7 rows: the four-row loop and its remainder
    dout = rng.standard_normal((7, 300)).astype(dtype)
    results = []
    for threshold in (10**12, 0):
        with runtime.parallel_threshold(threshold):
            bn = _pair(dtype, 300)[0]
            out = bn.forward(x, True)
            dx = bn.backward(dout)
            results.append([out, dx, bn.xn.copy(), bn.std, bn.dgamma, bn.dbeta, bn.running_mean, bn.running_var])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(6, 40), (6, 2, 4, 5)], ids=["2d", "4d"])
def test_repeated_calls_track_the_reference(shape):
    """Calls that take the cached path (same arrays, same shapes) keep matching the reference."""
    rng = np.random.default_rng(5)
    d = int(np.prod(shape[1:]))
    ours, ref = _pair(np.float64, d)
    for step in range(4):
        x = rng.standard_normal(shape) * (1 + step)
        _step_both(ours, ref, x, rng.standard_normal(shape), np.float64)
    assert_close(ours.forward(x, False), ref.forward(x, False), np.float64, "reduction")


def test_changes_between_calls_are_picked_up():
    """Replacing gamma/beta/running statistics/momentum or changing x's dtype or layout revalidates."""
    rng = np.random.default_rng(6)
    ours, ref = _pair(np.float64, 8)
    x = rng.standard_normal((5, 8))
    dout = rng.standard_normal((5, 8))
    _step_both(ours, ref, x, dout, np.float64)
    _step_both(ours, ref, x, dout, np.float64)
    for layer in (ours, ref):
        layer.gamma = layer.gamma * 2
        layer.beta = layer.beta - 1
        layer.momentum = 0.5
        layer.running_mean = np.full(8, 0.25)
    _step_both(ours, ref, x, dout, np.float64)
    _step_both(ours, ref, np.asfortranarray(x), dout[:, ::-1].copy()[:, ::-1], np.float64)
    _step_both(ours, ref, x.astype(np.float32), dout, np.float64)
    ours.gamma = np.ones(9)
    with pytest.raises(ValueError, match="beta must be of length 9"):
        ours.forward(x, True)
    with pytest.raises(ValueError, match="gamma"):
        ours.backward(dout)
    ours.gamma = np.ones(8)
    with pytest.raises(ValueError, match="x must be 8 features"):
        ours.forward(np.ones((5, 9)), True)
    with pytest.raises(ValueError, match="dout"):
        ours.backward(np.ones((4, 8)))


def test_kept_xn_survives_the_next_forward_and_a_rejected_one():
    """xn buffers take turns: the previous xn is intact after the next forward (documented reuse after that)."""
    rng = np.random.default_rng(7)
    bn = L.BatchNormalization(np.ones(4), np.zeros(4))
    bn.forward(rng.standard_normal((6, 4)), True)
    first, first_copy = bn.xn, bn.xn.copy()
    bn.forward(rng.standard_normal((6, 4)), True)
    assert bn.xn is not first
    np.testing.assert_array_equal(first, first_copy)
    second, second_copy, rm = bn.xn, bn.xn.copy(), bn.running_mean.copy()
    bad = rng.standard_normal((6, 4))
    bad[2, 1] = np.inf
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError):
        bn.forward(bad, True)
    assert bn.xn is second
    np.testing.assert_array_equal(bn.xn, second_copy)
    np.testing.assert_array_equal(bn.running_mean, rm)


def test_rejected_forward_of_another_shape_leaves_a_consistent_layer():
    """A forward of a new shape that raises (non-finite statistics) must not leave a cached plan behind."""
    rng = np.random.default_rng(9)
    ours, ref = _pair(np.float64, 6)
    x, dout = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    _step_both(ours, ref, x, dout, np.float64)
    bad = rng.standard_normal((9, 6))
    bad[0, 0] = np.nan
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError):
        ours.forward(bad, True)
    for _ in range(2):
        _step_both(ours, ref, x, dout, np.float64)


def test_xn_set_from_outside_is_used_by_backward():
    """A network may point xn/std at its own arrays (fastdl.nets does): backward takes those."""
    rng = np.random.default_rng(8)
    bn = L.BatchNormalization(np.ones(5), np.zeros(5))
    x, dout = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    bn.forward(x, True)
    expected = bn.backward(dout)
    xn, std = bn.xn.copy(), bn.std.copy()
    bn.forward(3 * x + 1, True)
    bn.xn, bn.std = xn, std
    np.testing.assert_array_equal(bn.backward(dout), expected)


def test_malloc_tuning_is_reported_and_can_be_turned_off():
    assert runtime.info()["malloc_tuning"] is (sys.platform.startswith("linux") and runtime._MALLOC_TUNED)
    env = dict(os.environ, FASTDL_MALLOC_TUNING="0")
    code = "import fastdl.runtime as r; print(r.info()['malloc_tuning'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_one_feature_statistics_are_numpys_to_the_bit(dtype):
    """NumPy sums an (N, 1) column pairwise (contiguous memory), not row by row: so does the kernel.

    A near-constant feature turns a 1-ulp difference of the mean into ~1e-4 in the output (found by
    hypothesis: eight equal float32 values gave 1.2e-4 instead of the reference's 0).
    """
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 8, 9, 17, 100, 128, 129, 255, 1000, 9000):
        x = (rng.standard_normal((n, 1)) * 3 + 5).astype(dtype)
        for data in (x, np.full((n, 1), 1.2117102, dtype)):
            ours, ref = _pair(dtype, 1)
            ours.forward(data, True)
            ref.forward(data, True)
            for name in ("running_mean", "running_var", "std"):
                np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name), err_msg=f"{name}, n={n}")
            dout = rng.standard_normal((n, 1)).astype(dtype)
            ours.backward(dout)
            ref.backward(dout)
            np.testing.assert_array_equal(ours.dbeta, ref.dbeta, err_msg=f"dbeta, n={n}")
            # x - mean is then the reference's too; xn = (x - mean) * (1 / std) is within 2 ulp of it
            np.testing.assert_allclose(ours.xn, ref.xn, rtol=4 * np.finfo(dtype).eps, atol=0, err_msg=f"n={n}")


def test_one_feature_parallel_and_fused_paths_keep_numpys_statistics():
    from fastdl import nets

    rng = np.random.default_rng(4)
    x = rng.standard_normal((20_000, 1)) + 3
    with runtime.parallel_threshold(0):  # column-split twins: only one chunk owns the column
        ours, ref = _pair(np.float64, 1)
        ours.forward(x, True)
    ref.forward(x, True)
    np.testing.assert_array_equal(ours.running_mean, ref.running_mean)
    np.testing.assert_array_equal(ours.running_var, ref.running_var)
    xs, t = rng.standard_normal((16, 5)), rng.integers(0, 3, 16)
    np.random.seed(0)
    fast = nets.MultiLayerNetExtend(5, [1], 3, use_batchnorm=True)
    np.random.seed(0)
    slow = nets.MultiLayerNetExtend(5, [1], 3, use_batchnorm=True, backend="reference")
    g_fast, g_slow = fast.gradient(xs, t), slow.gradient(xs, t)
    assert fast._fused is not None
    bn_f, bn_s = fast.layers["BatchNorm1"], slow.layers["BatchNorm1"]
    np.testing.assert_array_equal(bn_f.running_mean, bn_s.running_mean)
    np.testing.assert_array_equal(bn_f.running_var, bn_s.running_var)
    np.testing.assert_array_equal(g_fast["beta1"], g_slow["beta1"])


def _layouts(x):
    """x as given (C order), in Fortran order, and as a strided view of a larger array."""
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), dtype=x.dtype)
    wide[:, ::2] = x
    return {"C": x, "F": np.asfortranarray(x), "strided": wide[:, ::2]}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 3, 50])
def test_lazy_xn_is_the_materialised_xn_to_the_bit(dtype, n):
    """The forward no longer stores xn: the attribute, computed on access from x, the mean and 1/std,
    is the xn the kernel writes when asked to (the old layer's), in every layout and for batch 1."""
    from fastdl.kernels import batchnorm as K

    rng = np.random.default_rng(11)
    x = (rng.standard_normal((n, 40)) * 2 + 0.5).astype(dtype)
    dout = rng.standard_normal((n, 40)).astype(dtype)
    gamma = (rng.standard_normal(40) + 1).astype(dtype)
    beta = rng.standard_normal(40).astype(dtype)
    z = np.zeros(40, dtype=dtype)
    out_k, xn_k, _, _, std_k, _, _, _ = K.train_forward(x, gamma, beta, 1e-6, 0.9, z, z)
    dx_k, dgamma_k, dbeta_k = K.backward(dout, xn_k, gamma, std_k)
    for name, xl in _layouts(x).items():
        bn = L.BatchNormalization(gamma, beta)
        out = bn.forward(xl, True)
        dx = bn.backward(dout)  # (before xn is ever read: recomputed inside the kernel)
        np.testing.assert_array_equal(out, out_k, err_msg=name)
        np.testing.assert_array_equal(bn.std, std_k, err_msg=name)
        np.testing.assert_array_equal(bn.xn, xn_k, err_msg=name)
        assert bn.xn is bn.xn  # computed once per forward
        np.testing.assert_array_equal(dx, dx_k, err_msg=name)
        np.testing.assert_array_equal(bn.dgamma, dgamma_k, err_msg=name)
        np.testing.assert_array_equal(bn.dbeta, dbeta_k, err_msg=name)
        if n == 1:  # one row: zero variance, xn = 0
            np.testing.assert_array_equal(bn.xn, np.zeros_like(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_backward_from_a_read_or_a_given_xn_equals_the_recomputing_one(dtype):
    """backward recomputes xn from the forward's input; reading xn first, or setting the same values from
    outside (a copy: the slow, validated path), gives the same gradients to the bit; 4-D input too."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 2, 3, 4)).astype(dtype)
    dout = rng.standard_normal((6, 2, 3, 4)).astype(dtype)
    bn = L.BatchNormalization(np.full(24, 1.5, dtype), np.zeros(24, dtype))
    bn.forward(x, True)
    first = bn.backward(dout)
    bn.forward(x, True)
    xn = bn.xn.copy()
    assert xn.shape == (6, 24) and xn.dtype == dtype
    np.testing.assert_array_equal(bn.backward(dout), first)
    bn.forward(x, True)
    bn.xn = xn
    np.testing.assert_array_equal(bn.backward(dout), first)
    np.testing.assert_array_equal(bn.backward(dout.astype(np.float64 if dtype == np.float32 else np.float32)),
                                  bn.backward(dout.astype(np.float64 if dtype == np.float32 else np.float32)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", ["gaussian", "outlier-in-row-0", "sparse", "large-mean"])
@pytest.mark.parametrize("n", [1000, 8200], ids=["cache", "large"])
def test_one_pass_variance_is_within_the_contract_of_the_exact_one(dtype, case, n):
    """The shifted one-pass variance (shift = row 0; two passes where row 0 is far from the mean) stays
    within the contract of the exactly computed variance (or no farther than the reference), and of the
    reference's. float32 takes it only beyond TWO_PASS_F32_VALUES (8200 x 64 values), two float32 passes
    below (the reference's variance to the bit)."""
    from fastdl.kernels.batchnorm import TWO_PASS_F32_VALUES

    rng = np.random.default_rng(13)
    x = rng.standard_normal((n, 64))
    if case == "outlier-in-row-0":
        x[0, ::2] += 200  # (far: these columns take the two-pass fallback)
        x[0, 1::2] += 5
    elif case == "sparse":  # ReLU-like: mostly zeros, a large value in row 0
        x = np.where(x > 2, x, 0.0)
        x[0] = 10
    elif case == "large-mean":
        x = 30 + 0.5 * x
    x = x.astype(dtype)
    ours, ref = _pair(dtype, 64, momentum=0.0)
    ours.forward(x, True)
    ref.forward(x, True)
    exact = x.astype(np.float64).var(axis=0)
    err_ours = np.max(np.abs(ours.running_var / exact - 1))
    err_ref = np.max(np.abs(ref.running_var / exact - 1))  # (float32's two-pass sums err too: sparse, 3.7e-5)
    assert err_ours <= max(1e-10 if dtype == np.float64 else 1e-5, err_ref), (err_ours, err_ref)
    if case == "outlier-in-row-0":  # ratio (200 - mu)**2 / var >= 1000 > SHIFT_RATIO: the reference's two passes
        np.testing.assert_array_equal(ours.running_var[::2], ref.running_var[::2])
    if dtype == np.float32 and x.size <= TWO_PASS_F32_VALUES:
        np.testing.assert_array_equal(ours.running_var, ref.running_var)
    assert_close(ours.std, ref.std, dtype, "reduction")
    assert_close(ours.xn, ref.xn, dtype, "reduction")


def test_changing_x_shape_or_dtype_in_place_after_forward_cannot_reach_the_backward_kernel():
    # the layer keeps a view object of its own: before, x.shape changed in place made the backward kernel
    # read past x and write past dgamma (a crash); run in a subprocess so that a regression cannot take
    # the test session down
    code = """
import numpy as np
from fastdl.layers import BatchNormalization
rng = np.random.default_rng(0)
x, dout = rng.random((4, 4000)), rng.random((4, 4000))
ref = BatchNormalization(np.ones(4000), np.zeros(4000))
ref.forward(x.copy()); dx_ref = ref.backward(dout)
for change in ("shape", "dtype"):
    bn = BatchNormalization(np.ones(4000), np.zeros(4000))
    y = x.copy(); bn.forward(y)
    if change == "shape":
        y.shape = (4000, 4)
    else:
        y.dtype = np.float32
    dx = bn.backward(dout)
    assert dx.dtype == np.float64 and bn.dgamma.shape == (4000,), (change, dx.dtype, bn.dgamma.shape)
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(bn.dgamma, ref.dgamma)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])


def test_float32_statistics_take_the_same_path_serial_and_parallel():
    x = np.random.default_rng(3).standard_normal((1024, 1024)).astype(np.float32) + 3
    outs = []
    for threshold in (2**62, 0):
        with runtime.parallel_threshold(threshold):
            bn = L.BatchNormalization(np.ones(1024, np.float32), np.zeros(1024, np.float32))
            outs.append((bn.forward(x), bn.std.copy()))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_blocked_eight_row_sums_are_the_row_by_row_sums_to_the_bit(dtype):
    """The one-pass statistics and the backward's two sums (eight rows per step, column blocks) round as
    adding one row at a time, in float64 for the shifted sums: the same bits as NumPy's reduction over
    axis 0, for a row count with a remainder and more columns than one block, serial and parallel."""
    from fastdl.kernels import batchnorm as K

    n, d = 8 * 3 + 5, K.STATS_BLOCK + 37  # float32: above TWO_PASS_F32_VALUES needs n * d > 512K values
    if dtype == np.float32:
        n = (K.TWO_PASS_F32_VALUES // d + 8) // 8 * 8 + 5  # 8k + 5 rows: the four-row step and a one-row rest
        assert n * d > K.TWO_PASS_F32_VALUES
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((n, d)) * 3 + 2).astype(dtype)
    dout = rng.standard_normal((n, d)).astype(dtype)
    gamma, beta, z = np.ones(d, dtype), np.zeros(d, dtype), np.zeros(d, dtype)
    mu = np.add.reduce(x, axis=0) / dtype(n)
    dev = x.astype(np.float64) - x[0].astype(np.float64)
    s1, s2 = np.add.reduce(dev, axis=0) / n, np.add.reduce(dev * dev, axis=0) / n
    var = np.maximum(s2 - s1 * s1, 0.0).astype(dtype)
    for threshold in (2**62, 0):
        with runtime.parallel_threshold(threshold):
            _, _, mu_k, var_k, std_k, _, _, _ = K.train_forward(x, gamma, beta, 1e-6, 0.9, z, z, xn=K.NO_XN[x.dtype])
            np.testing.assert_array_equal(mu_k, mu)
            np.testing.assert_array_equal(var_k, var)
            inv = 1 / std_k
            grads, dx = np.empty((5, d), dtype), np.empty_like(x)
            K.backward_into(dout, x, mu_k, inv, gamma, std_k, grads, K.consts_for(x.dtype, 0.0, n, 0.0), dx)
            np.testing.assert_array_equal(grads[K.DBETA], np.add.reduce(dout, axis=0))
            np.testing.assert_array_equal(grads[K.DGAMMA], np.add.reduce(dout * ((x - mu_k) * inv), axis=0))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("d", [1, 15, 300, 1043])
def test_streaming_stores_write_the_plain_stores_bits(dtype, d, monkeypatch):
    """out and dx written with streaming stores (forced from 0 bytes) equal the plain stores' arrays,
    serial and column-split parallel, for row starts at every alignment (odd widths) and for an output
    that is not even aligned to its itemsize (no streaming store then)."""
    from fastdl.kernels import batchnorm as K

    rng = np.random.default_rng(22)
    n = 13
    x = (rng.standard_normal((n, d)) + 0.5).astype(dtype)
    dout = rng.standard_normal((n, d)).astype(dtype)
    gamma, beta = (rng.standard_normal(d) + 1).astype(dtype), rng.standard_normal(d).astype(dtype)
    z = np.zeros(d, dtype)

    def run(out):
        stats, grads, dx = np.empty((6, d), dtype), np.empty((5, d), dtype), np.empty_like(x)
        consts = K.consts_for(x.dtype, 1e-6, n, 0.9)
        K.train_forward_into(x, gamma, beta, z, z, consts, stats, K.NO_XN[x.dtype], out)
        K.backward_into(dout, x, stats[K.MU], stats[K.INV], gamma, stats[K.STD], grads, consts, dx)
        return out.copy(), dx, grads[:2].copy()

    raw = np.zeros(x.nbytes + 1, np.uint8)
    misaligned = raw[1:].view(dtype).reshape(n, d)  # address odd: not a multiple of the itemsize
    for threshold in (2**62, 0):
        with runtime.parallel_threshold(threshold):
            monkeypatch.setattr(K, "STREAM_MIN_BYTES", 2**62)
            plain = run(np.empty_like(x))
            monkeypatch.setattr(K, "STREAM_MIN_BYTES", 0)
            for out in (np.empty_like(x), misaligned):
                for a, b in zip(run(out), plain):
                    np.testing.assert_array_equal(a, b)


def test_aligned_head_leaves_the_aligned_part_to_the_streaming_stores():
    """The streaming loop really runs: ``aligned_head`` stops at the first 64-byte boundary, and returns the
    whole width only when there is none inside or the data is not aligned to its itemsize."""
    from fastdl.kernels.ntstore import aligned_head

    raw = np.zeros(4096, np.uint8)
    base = (-raw.ctypes.data) % 64  # the first 64-byte boundary inside raw
    row = raw[base:base + 8 * 200].view(np.float64)  # starts on a boundary
    assert aligned_head(row, 0, 200) == 0
    assert aligned_head(row, 1, 200) == 7  # elements 1..7, then element 8 starts a boundary
    assert aligned_head(row, 3, 5) == 2  # no boundary inside: the whole segment
    f32 = raw[base + 4:base + 4 + 4 * 300].view(np.float32)  # 4 bytes past a boundary
    assert aligned_head(f32, 0, 300) == 15
    odd = raw[base + 1:base + 1 + 8 * 100].view(np.float64)  # not aligned to 8 bytes: no streaming store at all
    assert aligned_head(odd, 0, 100) == 100
