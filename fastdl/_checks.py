"""Argument validation with one wording for every error.

Every public entry point validates its arguments here *before* any kernel runs: Numba does not
check bounds, so a wrong shape that reached a kernel would read or write past an array. A rejected
call changes nothing.

Messages read ``"<where>: <name> must be <expected>; got <received>"``, for example::

    Affine.forward: x must have 784 features per sample (W has shape (784, 100)); got shape (100, 783)
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def fail(where: str, name: str, expected: str, got: str, exc: type[Exception] = ValueError):
    """Raise ``exc`` with the house wording."""
    raise exc(f"{where}: {name} must be {expected}; got {got}")


def describe(a) -> str:
    """Short description of a received value for error messages."""
    if isinstance(a, np.ndarray):
        return f"shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__} {a!r}" if np.isscalar(a) else type(a).__name__


def float_array(x, name: str, where: str, *, ndim: int | tuple[int, ...] | None = None,
                min_ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as an ndarray of float32/float64, or raise TypeError/ValueError.

    Lists and other array-likes are converted with ``np.asarray``; integer, bool, complex and
    float16 data are rejected (cast them yourself: no silent change of precision).
    """
    if not isinstance(x, np.ndarray):
        if x is None or isinstance(x, str | bytes | dict):
            fail(where, name, "a float32 or float64 numpy array", describe(x), TypeError)
        try:
            x = np.asarray(x)
        except Exception:
            fail(where, name, "a float32 or float64 numpy array", describe(x), TypeError)
    if x.dtype not in FLOAT_DTYPES:
        fail(where, name, "a float32 or float64 array (cast it with .astype(np.float64) or np.float32)",
             f"dtype {x.dtype}", TypeError)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            fail(where, name, f"{' or '.join(f'{d}-D' for d in allowed)}", f"shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        fail(where, name, f"at least {min_ndim}-D", f"shape {x.shape}")
    return x


def same_shape(a: np.ndarray, shape: tuple[int, ...], name: str, where: str, what: str = "") -> None:
    """Raise ValueError unless ``a.shape == shape``."""
    if a.shape != tuple(shape):
        fail(where, name, f"of shape {tuple(shape)}{' ' + what if what else ''}", f"shape {a.shape}")


def contiguous(x: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """C-contiguous ``x`` (in ``dtype`` if given), copying only when needed.

    Kernels are compiled for C-contiguous arrays only, which keeps one signature per dtype.
    """
    if dtype is not None and x.dtype != dtype:
        return np.ascontiguousarray(x, dtype=dtype)
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def called_before(value, where: str, first: str) -> None:
    """Raise RuntimeError when a method needing ``first`` to run before it is called too early."""
    if value is None:
        raise RuntimeError(f"{where}: call {first} first; there is no stored forward pass to differentiate")


def positive_number(value, name: str, where: str, *, allow_zero: bool = False,
                    upper: float | None = None) -> float:
    """A real, finite number > 0 (>= 0 with ``allow_zero``; < ``upper`` if given) as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        fail(where, name, "a real number", describe(value), TypeError)
    v = float(value)
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0) and (upper is None or v < upper)
    if not ok:
        rng = f"{'>= 0' if allow_zero else '> 0'}" + (f" and < {upper}" if upper is not None else "")
        fail(where, name, f"a finite number {rng}", repr(value))
    return v


def count(value, name: str, where: str, minimum: int = 1) -> int:
    """An integer (not bool) >= ``minimum`` as an ``int``: TypeError for another type, ValueError below."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        fail(where, name, f"an integer >= {minimum}", describe(value), TypeError)
    if value < minimum:
        fail(where, name, f"an integer >= {minimum}", repr(value))
    return int(value)
