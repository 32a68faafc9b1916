"""Whole training step, ``gradient()`` + ``update()``: the book's 784-100x5-10 net, batch 100, Adam."""

import pytest

from fastdl import benchmark as fb


@pytest.mark.parametrize("op", fb.STEP_OPS)
def test_train_step(run_case, op, dtype, impl):
    run_case(fb.make_case(op, "784-100x5-10-b100", dtype, impl))
