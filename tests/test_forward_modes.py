"""The nets' forward runs batch norm and dropout with separate training flags (MC dropout needs dropout
in training mode with batch norm in inference mode); predict(x, train_flg) keeps the book's meaning."""

import numpy as np
import pytest

from fastdl.nets import MultiLayerNetExtend


@pytest.mark.parametrize("backend", ["fastdl", "reference"])
def test_dropout_in_training_mode_with_batch_norm_in_inference_mode(backend):
    np.random.seed(0)
    net = MultiLayerNetExtend(6, [20, 20], 3, use_batchnorm=True, use_dropout=True, dropout_ratio=0.5,
                              backend=backend)
    x = np.random.default_rng(1).standard_normal((8, 6))
    net.predict(x, train_flg=True)  # running statistics exist from here on
    stats = [(layer.running_mean.copy(), layer.running_var.copy())
             for name, layer in net.layers.items() if "BatchNorm" in name]
    np.random.seed(2)
    a = net._forward(x, bn_train=False, dropout_train=True)
    np.random.seed(3)
    b = net._forward(x, bn_train=False, dropout_train=True)
    assert not np.array_equal(a, b)  # dropout drew new masks
    for (m, v), (name, layer) in zip(stats, [(n, lay) for n, lay in net.layers.items() if "BatchNorm" in n]):
        np.testing.assert_array_equal(layer.running_mean, m, err_msg=name)  # batch norm did not train
        np.testing.assert_array_equal(layer.running_var, v, err_msg=name)
    # the same masks with batch norm in inference mode give what predict's layers give in that mode
    np.random.seed(2)
    again = net._forward(x, bn_train=False, dropout_train=True)
    np.testing.assert_array_equal(again, a)
    np.testing.assert_array_equal(net.predict(x), net._forward(x, False, False))
