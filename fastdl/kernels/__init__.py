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

import os

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


_POOL = None  # the helper threads of numpy_map (made on first use)


def _helpers():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="fastdl-numpy")
    return _POOL


def _run_with(err: dict, fn, *arrays) -> None:
    with np.errstate(**err):  # NumPy's error state is per thread: the caller's holds in the helper too
        fn(*arrays)


def numpy_map(fn, x: np.ndarray, out: np.ndarray) -> None:
    """``fn(x, out)``: NumPy ufuncs on flat arrays, split over threads when the call pays for it.

    ``fn(xs, os)`` must compute ``os`` from ``xs`` element by element (NumPy ufuncs writing
    ``out=``); ``out`` may be ``x``. Serial unless the ``ufunc`` family's crossover says otherwise;
    then the arrays are cut into :func:`fastdl.runtime.chunks` contiguous pieces, the first computed
    by the calling thread and the others by helper threads (NumPy releases the GIL in its loops):
    every element gets the value the serial call gives it. The caller's ``np.errstate`` applies in
    the helpers; an error they raise is raised here.
    """
    n = x.size
    if not moves_parallel("ufunc", n, (x, out)):
        fn(x, out)
        return
    k = runtime.chunks(n)
    err = np.geterr()
    cuts = [i * n // k for i in range(k + 1)]
    pool = _helpers()
    futures = [pool.submit(_run_with, err, fn, x[lo:hi], out[lo:hi]) for lo, hi in zip(cuts[1:-1], cuts[2:])]
    try:
        fn(x[:cuts[1]], out[:cuts[1]])
    finally:
        for f in futures:
            f.result()
