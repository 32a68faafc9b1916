"""fastdl.init: the standard deviations, name resolution and the book's draw order."""

import math

import numpy as np
import pytest

from fastdl import init


def test_rules_give_the_documented_values():
    assert init.xavier(100) == math.sqrt(1 / 100)
    assert init.lecun(50) == math.sqrt(1 / 50)
    assert init.he(100) == math.sqrt(2 / 100)
    assert init.glorot(784, 100) == math.sqrt(2 / 884)
    assert init.fixed(0.01) == 0.01


@pytest.mark.parametrize(("spec", "expected"), [
    ("relu", math.sqrt(2 / 64)), ("He", math.sqrt(2 / 64)), ("sigmoid", math.sqrt(1 / 64)),
    ("XAVIER", math.sqrt(1 / 64)), ("lecun", math.sqrt(1 / 64)), ("glorot", math.sqrt(2 / 74)), (0.5, 0.5), (1, 1.0),
])
def test_std_for_names_and_numbers(spec, expected):
    assert init.std_for(spec, 64, 10) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(("spec", "exc"), [("bogus", ValueError), (0.0, ValueError), (-1.0, ValueError),
                                           (float("nan"), ValueError), (None, TypeError), (True, TypeError)])
def test_std_for_rejects_bad_specs(spec, exc):
    with pytest.raises(exc, match="weight_init_std"):
        init.std_for(spec, 10, 10)


@pytest.mark.parametrize("n", [0, -3])
def test_fans_must_be_positive(n):
    with pytest.raises(ValueError, match="n_in"):
        init.he(n)
    with pytest.raises(TypeError, match="n_in"):
        init.he(2.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_weight_is_the_books_draw(dtype):
    np.random.seed(3)
    w = init.init_weight(20, 7, "relu", dtype)
    np.random.seed(3)
    book = math.sqrt(2 / 20) * np.random.randn(20, 7)
    assert w.dtype == dtype
    np.testing.assert_array_equal(w, book.astype(dtype))
