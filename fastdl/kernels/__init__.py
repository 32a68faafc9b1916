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

from .. import runtime


def dispatch(serial, parallel, rows: int, size: int, *args):
    """Run ``parallel(*args, n_chunks)`` when ``size`` elements justify it, else ``serial(*args, 0, rows)``.

    The one place a driver chooses between a worker over rows ``[0, rows)`` and its parallel twin
    (see :func:`fastdl.runtime.use_parallel`); returns what the kernel returns.
    """
    if runtime.use_parallel(size):
        return parallel(*args, runtime.chunks(rows))
    return serial(*args, 0, rows)
