"""Private Numba kernels: arrays and scalars in, arrays out; no classes, dicts or Python objects.

Each module holds, per operation, a serial *worker* that processes a row (or element) range
``[lo, hi)`` of C-contiguous arrays, a *parallel twin* that splits the rows into
``runtime.chunks(rows)`` pieces with ``prange`` and calls the worker on each, and a plain Python
*driver* (no leading underscore) that picks one of them through :func:`dispatch`.
Column reductions run rows-outer with a contiguous inner loop into length-``D`` accumulators; in
parallel each chunk fills its own row of a ``(chunks, D)`` partials buffer, summed afterwards.

Callers (:mod:`fastdl.layers`, :mod:`fastdl.functional`) validate, cast scalars to the array
dtype and make arrays C-contiguous before calling a driver: kernels trust their arguments.
"""

import numpy as np

from .. import runtime


def moves_parallel(family: str, size: int, arrays) -> bool:
    """Should a ``family`` kernel over ``size`` elements that reads/writes ``arrays`` run its parallel twin?

    The bytes moved are the sum of the ``nbytes`` of the NumPy arrays among ``arrays`` (scalars
    ignored), the dtype that of the first array; :func:`fastdl.runtime.use_parallel` decides. Small
    calls return before any byte is counted.
    """
    if size * 8 * len(arrays) < runtime.smallest_crossover():
        return False
    nbytes, itemsize = 0, 0
    for a in arrays:
        if isinstance(a, np.ndarray):
            nbytes += a.nbytes
            itemsize = itemsize or a.itemsize
    return runtime.use_parallel(size, family, nbytes, itemsize or 8)


def dispatch(serial, parallel, rows: int, size: int, *args, family: str):
    """Run ``parallel(*args, n_chunks)`` when the call pays for it, else ``serial(*args, 0, rows)``.

    The one place a driver chooses between a worker over rows ``[0, rows)`` and its parallel twin:
    ``family`` (one of :data:`fastdl.runtime.FAMILIES`) names the crossover the call's bytes are
    compared with (:func:`moves_parallel`); returns what the kernel returns.
    """
    if moves_parallel(family, size, args):
        return parallel(*args, runtime.chunks(rows))
    return serial(*args, 0, rows)
