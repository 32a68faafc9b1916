"""Layer forward/backward: affine, batch norm, relu, sigmoid, dropout, softmax-with-loss."""

import pytest

from fastdl import benchmark as fb


@pytest.mark.parametrize("size", list(fb.LAYER_SIZES))
@pytest.mark.parametrize("op", fb.LAYER_OPS)
def test_layer(run_case, op, size, dtype, impl):
    run_case(fb.make_case(op, size, dtype, impl))
