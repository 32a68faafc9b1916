"""Reliability (issue 12): layers shared by threads, rejected calls that change nothing, clear messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastdl.functional as F
from fastdl import layers as L
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend

_HERE = Path(__file__).parent

# --------------------------------------------------------------------------------------------
# threads: no kernel ever sees a buffer of the wrong size
# --------------------------------------------------------------------------------------------



def test_layers_and_nets_shared_by_two_threads_never_corrupt_memory():
    """Two threads, 2048- and 4-row batches out of phase, through one BN, Affine, Dropout, loss and two nets.

    Before the fix the batch-norm layer handed a kernel a buffer sized for the other thread's batch
    (``free(): corrupted unsorted chunks`` or SIGSEGV). Run in a subprocess so a crash fails this test.
    """
    proc = subprocess.run([sys.executable, str(_HERE / "_stress_threads.py")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-3000:]}"


def test_every_interleaving_of_two_calls_on_one_layer_is_right_or_refused():
    """Deterministic twin of the stress test (BN, Affine, SoftmaxWithLoss): today's main fails it by a
    batch-norm output computed with the other batch's statistics, then a segfault."""
    proc = subprocess.run([sys.executable, str(_HERE / "_interleave.py")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-3000:]}"
    assert int(proc.stdout.split()[-1]) > 1000  # (the replay ran)


def test_bn_backward_rejects_a_std_of_the_wrong_length():
    bn = L.BatchNormalization(np.ones(6), np.zeros(6))
    x = np.random.default_rng(1).standard_normal((5, 6))
    bn.forward(x)
    bn.std = np.ones(2)  # (the kernel would read past it)
    with pytest.raises(ValueError, match=r"BatchNormalization.backward: the stored forward state .* must be"):
        bn.backward(x)


def test_bn_backward_rejects_an_xn_of_another_batch():
    bn = L.BatchNormalization(np.ones(6), np.zeros(6))
    rng = np.random.default_rng(2)
    bn.forward(rng.standard_normal((3, 6)))
    xn_small = bn.xn
    x = rng.standard_normal((40, 6))
    bn.forward(x)
    bn.xn = xn_small
    with pytest.raises(ValueError, match=r"stored forward state .* must be .*two threads"):
        bn.backward(x)


def test_bn_backward_pairs_with_one_forward():
    """The cached backward reads xn, std, shape and N from one forward (here the last one)."""
    rng = np.random.default_rng(3)
    bn = L.BatchNormalization(np.ones(6), np.zeros(6))
    ref = L.BatchNormalization(np.ones(6), np.zeros(6))
    x1, x2 = rng.standard_normal((50, 6)), rng.standard_normal((7, 6))
    bn.forward(x1)
    bn.forward(x2)
    ref.forward(x2)
    d = rng.standard_normal((7, 6))
    np.testing.assert_array_equal(bn.backward(d), ref.backward(d))
    np.testing.assert_array_equal(bn.dgamma, ref.dgamma)


def test_softmax_with_loss_backward_rejects_a_y_that_does_not_fit_the_targets():
    layer = L.SoftmaxWithLoss()
    rng = np.random.default_rng(4)
    layer.forward(rng.standard_normal((4, 3)), np.array([0, 1, 2, 0]))
    layer.y = F.softmax(rng.standard_normal((2048, 3)))  # (the kernel would read 2048 labels out of 4)
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss.backward: y must be of shape \(4, 3\)"):
        layer.backward()


def test_affine_backward_rejects_an_input_shape_of_another_batch():
    layer = L.Affine(np.ones((5, 3)), np.zeros(3))
    layer.forward(np.ones((8, 5)))
    layer.original_x_shape = (4, 5)
    with pytest.raises(ValueError, match=r"Affine.backward: original_x_shape must be the shape of the stored"):
        layer.backward(np.ones((8, 3)))


# --------------------------------------------------------------------------------------------
# a rejected call changes nothing, on every path of the nets
# --------------------------------------------------------------------------------------------

def _snapshot(net):
    bns = [layer for key, layer in net.layers.items() if "BatchNorm" in key]
    stats = [(np.copy(b.running_mean), np.copy(b.running_var)) for b in bns]
    return ({k: v.copy() for k, v in net.params.items()}, stats, np.random.get_state())


def _assert_same(a, b):
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    for (m1, v1), (m2, v2) in zip(a[1], b[1], strict=True):
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(v1, v2)
    assert a[2][0] == b[2][0] and a[2][2:] == b[2][2:]
    np.testing.assert_array_equal(a[2][1], b[2][1])  # the global RNG did not advance


_BAD = [
    ("labels out of range", lambda x, t: (x, np.full_like(t, 7)), ValueError, r"\bt must be labels in \[0, 4\)"),
    ("one label short", lambda x, t: (x, t[:-1]), ValueError, r"\bt must be of length 12"),
    ("float labels", lambda x, t: (x, t.astype(float)), TypeError, r"\bt must be integer"),
    ("(N, 1) labels", lambda x, t: (x, t[:, None]), ValueError, r"\bt must be .*pass t\.ravel\(\)"),
    ("complex x", lambda x, t: (x + 1j, t), TypeError, r"\bx must be a real array"),
    ("0-row batch", lambda x, t: (x[:0], t[:0]), ValueError, r"\bx must be a batch of shape \(N, 9\) with N >= 1"),
    ("wrong width", lambda x, t: (x[:, :8], t), ValueError, r"\bx must be a batch of shape \(N, 9\)"),
]


@pytest.mark.parametrize("backend", ["fastdl", "reference"])
@pytest.mark.parametrize("kw", [{"use_dropout": True, "use_batchnorm": True}, {"use_batchnorm": True}, {}],
                         ids=["dropout+bn", "bn", "plain"])
@pytest.mark.parametrize("method", ["gradient", "loss", "accuracy"])
@pytest.mark.parametrize(("case", "make", "exc", "pattern"), _BAD, ids=[b[0] for b in _BAD])
def test_rejected_net_call_changes_nothing(backend, kw, method, case, make, exc, pattern):
    np.random.seed(5)
    net = MultiLayerNetExtend(9, [8, 6], 4, backend=backend, **kw)
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((12, 9)), rng.integers(0, 4, 12)
    net.gradient(x, t)  # running statistics exist, buffers and plans are built
    before = _snapshot(net)
    bx, bt = make(x, t)
    call = {"gradient": net.gradient, "loss": lambda a, b: net.loss(a, b, train_flg=True),
            "accuracy": net.accuracy}[method]
    with pytest.raises(exc, match=rf"MultiLayerNetExtend\.{method}: {pattern}"):
        call(bx, bt)
    _assert_same(_snapshot(net), before)


def test_multilayernet_names_itself():
    net = MultiLayerNet(9, [8], 4)
    with pytest.raises(ValueError, match=r"^MultiLayerNet\.gradient: t must be labels in \[0, 4\)"):
        net.gradient(np.zeros((3, 9)), np.array([0, 1, 4]))


# --------------------------------------------------------------------------------------------
# clear messages (issue 12, defect 8)
# --------------------------------------------------------------------------------------------

_W, _B = np.ones((5, 3)), np.zeros(3)


@pytest.mark.parametrize(("call", "exc", "pattern"), [
    (lambda: L.Affine(_W, _B).forward(np.ones((0, 5))), ValueError,
     r"^Affine.forward: x must be a batch of at least one row \(N >= 1\); got shape \(0, 5\)$"),
    (lambda: F.affine(np.ones((0, 5)), _W, _B), ValueError, r"^affine: x must be a batch of at least one row"),
    (lambda: F.affine_backward(np.ones((0, 3)), np.ones((0, 5)), _W), ValueError,
     r"^affine_backward: x must be a batch of at least one row"),
    # a transposed W is reported against x, not as a wrong bias length
    (lambda: F.affine(np.ones((2, 5)), _W.T.copy(), _B), ValueError,
     r"^affine: x must be 3 features per sample .*W of shape \(3, 5\)"),
    (lambda: L.Affine(_W.T.copy(), _B), ValueError, r"^Affine: b must be of length 5 .*is W transposed\?"),
    (lambda: F.cross_entropy_error(np.ones((0, 3)), np.zeros(0, int)), ValueError,
     r"^cross_entropy_error: y must be of shape \(N, C\) with N >= 1"),
    (lambda: F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps=-1), ValueError,
     r"^batchnorm_forward: eps must be a finite number > 0; got -1$"),
    (lambda: F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps=float("nan")), ValueError,
     r"^batchnorm_forward: eps must be a finite number > 0"),
    (lambda: F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps="a"), TypeError,
     r"^batchnorm_forward: eps must be a real number; got str 'a'$"),
    (lambda: F.softmax_cross_entropy(np.ones((3, 4)), np.zeros((3, 1), int)), ValueError,
     r"^softmax_cross_entropy: t must be .*pass t\.ravel\(\)"),
])
def test_messages_name_the_argument_and_the_fix(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_net_gradient_rejects_complex_x_without_a_warning():
    import warnings
    net = MultiLayerNetExtend(5, [4], 3, use_batchnorm=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no ComplexWarning on the way: rejected before any cast)
        with pytest.raises(TypeError, match=r"^MultiLayerNetExtend\.gradient: x must be a real array"):
            net.gradient(np.ones((2, 5)) + 1j, np.zeros(2, int))


def test_net_still_casts_integer_input():
    net = MultiLayerNetExtend(5, [4], 3)
    x = np.arange(10).reshape(2, 5)
    np.testing.assert_array_equal(net.predict(x), net.predict(x.astype(np.float64)))
