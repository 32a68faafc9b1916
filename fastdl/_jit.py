"""The one place that calls ``numba.njit``.

Every kernel gets its flags here:

* ``cache=True``: compiled code is stored in :func:`fastdl.runtime.cache_dir`; a cache hit costs
  a few milliseconds instead of ~0.1-0.35 s of compilation per kernel and signature. When Numba
  finds no writable place for its cache (a read-only ``NUMBA_CACHE_DIR``, install and home
  directory: "no locator available"), every kernel is compiled with ``cache=False`` instead, after
  one :class:`fastdl.runtime.CacheWarning` that names the variables to set.
* ``error_model='numpy'``: with Numba's default (Python) error model every division gets a
  zero check and the loop does not vectorize (measured: an Adam loop 38 us -> 9 us per 10K).
* ``nogil=True``: kernels release the GIL, so a user's own threads can overlap them.
* no ``fastmath`` by default: results must match :mod:`fastdl.reference`, and the ``nnan``/``ninf``
  flags would fold ``isnan`` to False. ``fastmath=REDUCTION`` (``reassoc``, ``contract``, ``nsz``)
  is allowed where a reduction needs it; it keeps NaN/Inf semantics. ``fastmath=CONTRACT`` (fused
  multiply-add only) is allowed for polynomial evaluations (:mod:`fastdl.kernels.erf`).
* ``boundscheck`` is left to the ``NUMBA_BOUNDSCHECK`` environment variable (CI runs a subset with
  it set to 1).

Scalars (lr, eps, momentum, ...) are always arguments, never globals: Numba freezes globals at
compile time, and a cached kernel would keep the old value.

Parallel kernels are separate Python functions from their serial twins (a driver that splits the
work over ``prange`` chunks and calls the serial worker on each), never the same function jitted
twice with different flags: Numba's on-disk cache index is keyed by function and signature, not
by flags, so two variants of one function would overwrite each other's cache entries. (An
uncached variant, ``cache=False``, writes no entries: it may share its function with a cached one.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numba

# runtime sets NUMBA_CACHE_DIR and GOMP_SPINCOUNT; fastdl/__init__.py imports it before anything imports numba
from . import runtime  # noqa: F401

__all__ = ["CONTRACT", "REDUCTION", "KERNELS", "jit"]

REDUCTION = frozenset({"reassoc", "contract", "nsz"})
CONTRACT = frozenset({"contract"})

#: name -> dispatcher, for ``fastdl warmup`` and the "compiles nothing new" tests.
KERNELS: dict[str, numba.core.registry.CPUDispatcher] = {}

_BASE_FLAGS = {"cache": True, "nogil": True, "error_model": "numpy"}

#: False once Numba found no writable cache location: later kernels compile uncached
_CACHE_USABLE = True


def _njit(f: Callable, flags: dict):
    """``numba.njit(**flags)(f)``; without the on-disk cache (and one warning) when it has no writable place."""
    global _CACHE_USABLE
    if _CACHE_USABLE:
        try:
            return numba.njit(**flags)(f)
        except RuntimeError as exc:
            if "no locator available" not in str(exc):
                raise
            _CACHE_USABLE = False
            warnings.warn(
                f"fastdl: no writable directory for the compiled-kernel cache (tried NUMBA_CACHE_DIR="
                f"{runtime.cache_dir()!r}, the install and the home directory); kernels are compiled again in "
                f"every process; {runtime.cache_hint()} to cache them.",
                runtime.CacheWarning, stacklevel=4)
    return numba.njit(**dict(flags, cache=False))(f)


def jit(func: Callable | None = None, *, parallel: bool = False, fastmath: frozenset | bool = False,
        inline: str = "never", cache: bool = True, name: str | None = None):
    """Compile ``func`` with the project's flags and register it in :data:`KERNELS`.

    Use as ``@jit`` or ``@jit(parallel=True)``. ``cache=False`` only for a driver that takes another
    jitted function as an argument: Numba keys such a specialisation by the argument's per-process
    identity, so a cached one would miss in every new process and add an entry to the cache each time.
    ``name`` registers the kernel under another name than the function's (one function compiled
    twice: cached, and uncached for such arguments).
    """

    def wrap(f: Callable):
        flags = dict(_BASE_FLAGS, parallel=parallel, inline=inline, cache=cache)
        if fastmath:
            flags["fastmath"] = set(fastmath) if not isinstance(fastmath, bool) else fastmath
        dispatcher = _njit(f, flags)
        KERNELS[f"{f.__module__.rsplit('.', 1)[-1]}.{name or f.__name__}"] = dispatcher
        return dispatcher

    return wrap(func) if func is not None else wrap


def compiled_signatures() -> dict[str, int]:
    """Number of compiled signatures per registered kernel."""
    return {name: len(d.signatures) for name, d in KERNELS.items()}
