"""Threading-policy evidence: fastdl kernels interleaved with the affine GEMMs (BLAS threads).

Each group holds the same loop with every fastdl kernel forced parallel
(``runtime.parallel_threshold(0)``), forced serial, and under the default (the crossover table). With the
policy in :mod:`fastdl.runtime` (low GOMP spin count) the parallel loop should not be slower than
the serial one; before it, idle OpenMP threads spinning against OpenBLAS made it ~8x slower.
"""

import pytest

from fastdl import benchmark as fb


@pytest.mark.parametrize("policy", list(fb.INTERLEAVE_POLICIES))
@pytest.mark.parametrize("op", list(fb.INTERLEAVE_OPS))
def test_interleave(run_case, op, dtype, policy):
    run_case(fb.make_interleave_case(op, dtype, policy))
