"""Performance invariants of the layer kernels: a second call compiles nothing new; float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest

from fastdl import _jit, runtime
from fastdl import layers as L

LAYER_KERNEL_MODULES = ("activations", "affine", "batchnorm", "softmax", "dropout")


def _one_step(dtype, rng):
    """Every layer forward and backward once (both target kinds, both dropout generators)."""
    x = rng.standard_normal((6, 5)).astype(dtype)
    outputs = []
    affine = L.Affine(rng.standard_normal((5, 4)).astype(dtype), np.zeros(4, dtype))
    outputs += [affine.forward(x), affine.backward(np.ones((6, 4), dtype)), affine.dW, affine.db]
    bn = L.BatchNormalization(np.ones(5, dtype), np.zeros(5, dtype))
    outputs += [bn.forward(x), bn.backward(x), bn.dgamma, bn.dbeta, bn.running_mean, bn.running_var,
                bn.forward(x, train_flg=False)]
    for layer in (L.Relu(), L.Sigmoid(), L.Dropout(0.3), L.Dropout(0.3, rng=np.random.default_rng(0))):
        outputs += [layer.forward(x), layer.backward(x)]
    outputs.append(L.Dropout(0.3).forward(x, train_flg=False))
    for t in (np.array([0, 1, 2, 3, 4, 0]), np.eye(5, dtype=dtype)[[0, 1, 2, 3, 4, 0]]):
        sm = L.SoftmaxWithLoss()
        outputs += [sm.forward(x, t), sm.backward()]
    return outputs


def _layer_signatures():
    return {k: v for k, v in _jit.compiled_signatures().items() if k.split(".")[0] in LAYER_KERNEL_MODULES}


@pytest.mark.parametrize("threshold", [10**12, 0], ids=["serial", "parallel"])
def test_second_call_compiles_nothing_new(threshold, rng):
    with runtime.parallel_threshold(threshold):
        for dtype in (np.float32, np.float64):
            _one_step(dtype, rng)
        before = _layer_signatures()
        for dtype in (np.float32, np.float64):
            _one_step(dtype, rng)
            _one_step(dtype, rng)
        assert _layer_signatures() == before


def test_at_most_one_signature_per_dtype(rng):
    """Kernels take C-contiguous arrays only, so layouts do not multiply the signatures."""
    for dtype in (np.float32, np.float64):
        _one_step(dtype, rng)
    x = np.asfortranarray(rng.standard_normal((6, 5)))
    L.Relu().forward(x)
    L.BatchNormalization(np.ones(5), np.zeros(5)).forward(x[:, ::-1])
    for name, n in _layer_signatures().items():
        # dropout's forward also sees float64 draws with float32 x (the book's global generator)
        limit = 3 if name.startswith("dropout._fwd") else 2
        assert n <= limit, (name, n)


@pytest.mark.parametrize("threshold", [10**12, 0], ids=["serial", "parallel"])
def test_float32_stays_float32_everywhere(threshold, rng):
    with runtime.parallel_threshold(threshold):
        outputs = _one_step(np.float32, rng)
    for i, a in enumerate(outputs):
        assert a.dtype == np.float32, (i, a.dtype)


def test_loss_is_a_numpy_scalar_of_x_dtype(rng):
    for dtype in (np.float32, np.float64):
        loss = L.SoftmaxWithLoss().forward(rng.standard_normal((3, 4)).astype(dtype), np.array([0, 1, 3]))
        assert isinstance(loss, np.generic) and loss.dtype == dtype



def test_fused_step_calls_layer_kernels_with_their_own_types(rng, monkeypatch):
    """The fused kernels call layer kernels (softmax rows, cross-entropy rows, column sums) with the
    argument types the layers use (a literal ``0`` would be a second, ``Literal[int]`` signature).

    A fused kernel loaded from the cache compiles none of its callees and a callee that already has a
    matching signature is reused, so the check runs on fresh uncached copies of both.
    """
    import numba

    from fastdl import nets
    from fastdl.kernels import fused

    fresh = {}
    for name in ("_shift_rows", "_normalize_rows", "_xent_rows", "_col_stats", "_act", "_act_grad"):
        fresh[name] = numba.njit(getattr(fused, name).py_func)
        monkeypatch.setattr(fused, name, fresh[name])
    for name in ("block_forward", "block_backward", "bias_shift", "softmax_xent_grad", "add_scaled"):
        monkeypatch.setattr(fused, name, numba.njit(getattr(fused, name).py_func))
    for dtype in (np.float32, np.float64):
        net = nets.MultiLayerNetExtend(12, [8, 8], 3, use_batchnorm=True, weight_decay_lambda=0.1, dtype=dtype)
        net.gradient(rng.standard_normal((5, 12)).astype(dtype), np.array([0, 1, 2, 0, 1]))
        assert net._fused is not None
    for name in ("_shift_rows", "_normalize_rows", "_xent_rows", "_col_stats"):
        sigs = fresh[name].signatures
        assert len(sigs) == 2, (name, sigs)
        assert not any(isinstance(t, numba.types.Literal) for sig in sigs for t in sig), (name, sigs)
