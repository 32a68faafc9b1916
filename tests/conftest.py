"""Shared fixtures: seeded generators, the dtype x shape x layout grid, and the tolerances.

Tolerances (DESIGN.md section 5): float64 elementwise <= 1e-12 relative, reductions <= 1e-10;
float32 <= 1e-5. ``assert_close`` adds an absolute floor scaled by the reference's magnitude, so
entries that cancel to ~0 (batch-norm gradients, centred data) are judged against the size of
the array, not their own.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keras 3 is a test oracle on its PyTorch backend (no TensorFlow or JAX needed); set before any import of keras
os.environ.setdefault("KERAS_BACKEND", "torch")

DTYPES = (np.float32, np.float64)
# batch 1, a small odd shape, the book's 100x100, a large one
SHAPES = ((1, 13), (7, 13), (100, 100), (256, 1024))
LAYOUTS = ("C", "F", "strided")

RTOL = {
    (np.dtype(np.float64), "elementwise"): 1e-12,
    (np.dtype(np.float64), "reduction"): 1e-10,
    (np.dtype(np.float32), "elementwise"): 1e-5,
    (np.dtype(np.float32), "reduction"): 1e-5,
}


def rtol_for(dtype, kind: str = "elementwise") -> float:
    return RTOL[(np.dtype(dtype), kind)]


def assert_close(actual, expected, dtype=None, kind: str = "elementwise", rtol: float | None = None,
                 err_msg: str = "") -> None:
    """Elementwise ``|a - e| <= rtol * |e| + rtol * max|e|`` (relative, with a floor scaled to the array)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    dtype = np.dtype(dtype if dtype is not None else expected.dtype)
    tol = rtol if rtol is not None else rtol_for(dtype, kind)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=err_msg)


def assert_matches_edges(actual, expected, rtol, what, scale):
    """Same NaN and infinity positions; elsewhere ``|a - e| <= rtol * (|e| + scale)``.

    ``scale`` is the largest magnitude of the ordinary (random) inputs' results: near saturation
    (tanh' at |x| ~ 8, GELU's left tail) the result is a difference of nearly equal numbers, and any
    two correct implementations differ there by rounding at the array's scale, not the entry's.
    """
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan, err_msg=f"{what}: NaN positions differ")
    a, e = actual[~nan], expected[~nan]
    inf = np.isinf(e)
    np.testing.assert_array_equal(a[inf], e[inf], err_msg=f"{what}: infinities differ")
    np.testing.assert_allclose(a[~inf], e[~inf], rtol=rtol, atol=rtol * scale, err_msg=what)


def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as ``a`` in a C-contiguous, Fortran-ordered or strided (sliced) array."""
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        assert not view.flags.c_contiguous or a.size <= 1
        return view
    raise ValueError(layout)


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def shape(request):
    return request.param


@pytest.fixture(params=LAYOUTS)
def layout(request):
    return request.param
