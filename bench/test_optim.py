"""Optimizer ``update`` of a {'W', 'b'} dict with 10K, 1M and 8M values in W (and with gradient clipping at 1M, 8M)."""

import pytest

from fastdl import benchmark as fb


@pytest.mark.parametrize("size", list(fb.PARAM_SIZES))
@pytest.mark.parametrize("op", list(fb.OPTIMIZER_OPS))
def test_optimizer_update(run_case, op, size, dtype, impl):
    run_case(fb.make_case(op, size, dtype, impl))


@pytest.mark.parametrize("size", list(fb.CLIP_SIZES))
@pytest.mark.parametrize("op", list(fb.CLIP_OPS))
def test_optimizer_update_clipped(run_case, op, size, dtype, impl):
    run_case(fb.make_case(op, size, dtype, impl))
