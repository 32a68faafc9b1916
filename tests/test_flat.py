"""fastdl._flat: pack() builds one buffer of views, span() recognises such a layout (and nothing else)."""

from __future__ import annotations

import numpy as np
import pytest

from fastdl import _flat

SHAPES = {"W": (3, 4), "b": (4,), "one": (1,), "s": (), "none": (0,), "V": (2, 2, 2)}


@pytest.fixture
def packed(rng):
    values = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    buffer, views = _flat.pack(values)
    return values, buffer, views


def test_pack_copies_values_into_views_of_one_buffer(packed):
    values, buffer, views = packed
    assert buffer.ndim == 1 and buffer.flags.c_contiguous and buffer.dtype == np.float64
    assert buffer.size == sum(int(np.prod(s)) for s in SHAPES.values())
    assert list(views) == list(values)
    offset = 0
    for k, v in views.items():
        assert type(v) is np.ndarray and v.shape == SHAPES[k] and v.flags.c_contiguous
        np.testing.assert_array_equal(v, values[k])
        assert not np.shares_memory(v, values[k])
        np.testing.assert_array_equal(buffer[offset:offset + v.size], values[k].ravel())
        offset += v.size
    views["W"][0, 0] = 42.0  # writes land in the buffer
    assert buffer[0] == 42.0
    assert _flat.span(list(views.values())) == (buffer, 0, buffer.size)


def test_pack_dtype_and_empty_input():
    buffer, views = _flat.pack({"a": np.ones(3, np.float32), "b": np.arange(2.0)})
    assert buffer.dtype == np.float32 and views["b"].dtype == np.float32  # the first array's dtype
    np.testing.assert_array_equal(views["b"], [0.0, 1.0])
    buffer, views = _flat.pack({"a": np.ones(3, np.float32)}, dtype=np.float64)
    assert buffer.dtype == np.float64
    buffer, views = _flat.pack({})
    assert buffer.size == 0 and views == {}


def test_span_of_a_sub_range_and_leading_empty_arrays():
    buffer = np.arange(20.0)
    empty = buffer[5:5]
    arrays = [empty, buffer[5:11].reshape(2, 3), buffer[11:11], buffer[11:12], buffer[12:16].reshape(2, 2)]
    base, start, stop = _flat.span(arrays)
    assert base is buffer and (start, stop) == (5, 16)
    assert _flat.span([buffer[3:3], buffer[7:9]]) == (buffer, 7, 9)  # an empty first array's pointer is ignored


@pytest.mark.parametrize("case", ["replaced", "gap", "order", "dtype", "strided", "fortran", "other-base",
                                  "not-array", "empty-list", "only-empty", "subclass"])
def test_span_rejects_what_is_not_a_tiling(case, packed):
    _, buffer, views = packed
    arrays = list(views.values())
    if case == "replaced":
        arrays[1] = arrays[1].copy()
    elif case == "gap":
        arrays = [buffer[0:4], buffer[5:9]]
    elif case == "order":
        arrays = [arrays[1], arrays[0]]
    elif case == "dtype":
        arrays = [buffer[0:4], buffer[4:8].view(np.int64)]
    elif case == "strided":
        arrays = [buffer[0:8:2]]
    elif case == "fortran":
        arrays = [buffer[0:12].reshape(4, 3).T]  # a view of the right memory, but not C-ordered
    elif case == "other-base":
        arrays = [arrays[0], np.zeros(4)]
    elif case == "not-array":
        arrays = [arrays[0], [0.0] * 4]
    elif case == "empty-list":
        arrays = []
    elif case == "only-empty":
        arrays = [buffer[2:2], buffer[3:3]]
    elif case == "subclass":
        arrays = [np.asarray(a).view(np.matrix) if a.ndim == 2 else a for a in arrays]
    assert _flat.span(arrays) is None
