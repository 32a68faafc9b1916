"""Run-time policy: kernel cache directory, threads, the OpenMP/BLAS truce, non-finite reporting.

This module is imported by ``fastdl/__init__.py`` *before* Numba, because two of its settings
must be in the environment before the libraries that read them load:

``NUMBA_CACHE_DIR``
    Compiled kernels are cached on disk (``cache=True``). Numba's default cache sits beside the
    source files, which fails on a read-only install. Unless you set ``NUMBA_CACHE_DIR`` yourself,
    fastdl uses ``$FASTDL_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastdl/numba`` (``~/.cache/fastdl/numba``;
    ``%LOCALAPPDATA%\\fastdl\\numba`` on Windows, ``~/Library/Caches/fastdl/numba`` on macOS), and
    falls back to a directory under the system temporary directory when that is not writable. In
    either, kernels go to a subdirectory named by a hash of the kernel sources
    (:func:`kernel_source_key`): Numba checks only a function's own file, so a kernel calling into a
    changed module would otherwise keep the old code. Directories of older sources can be deleted.
    When Numba finds no writable place at all (a read-only ``NUMBA_CACHE_DIR``, install and home),
    kernels run uncached (compiled in every process) after one :class:`CacheWarning` that says to
    set ``FASTDL_CACHE_DIR`` or ``NUMBA_CACHE_DIR``.

``GOMP_SPINCOUNT`` (only with Numba's ``omp`` layer)
    fastdl prefers Numba's ``tbb`` threading layer (the ``tbb`` wheel is a dependency on x86-64) and
    sets nothing for it. Where only ``omp`` loads (or ``NUMBA_THREADING_LAYER=omp``), GNU OpenMP's idle
    threads spin for ~300,000 iterations after every parallel region and fight OpenBLAS's threads:
    a 784x100 training-style loop ran ~8x slower on the 2-core development machine (8.7 ms instead
    of ~1.0 ms per iteration). fastdl then sets ``GOMP_SPINCOUNT=1000`` unless you set it (before
    libgomp loads). It applies to every libgomp the process loads afterwards, PyTorch's bundled one
    included: imported after fastdl, PyTorch's 2-thread CPU ops slowed down by up to ~10x there. With
    ``tbb`` none of this applies: its idle workers yield the core; the calling thread starts on the
    work at once, so a parallel call whose worker is asleep costs about what the serial one does
    (``omp``'s caller waits for the wake-up); and PyTorch keeps its own OpenMP settings.

``FASTDL_MALLOC_TUNING`` (glibc on Linux only)
    glibc serves every allocation above its mmap threshold (dynamic, at most 32 MiB) with fresh
    pages from the kernel and returns them on free, and it gives the free top of its heap back to
    the kernel above a trim threshold. A layer that returns a new 1024x4096 float64 array (32 MiB)
    per call therefore page-faults and zero-fills 8192 pages per array per call: measured on the
    2-core development machine, a batch-norm forward+backward of that size spent about a third of
    its time in page faults (float32's 16 MiB arrays too, once two were freed together and trimmed).
    At import fastdl raises ``M_MMAP_THRESHOLD`` to 64 MiB and ``M_TRIM_THRESHOLD`` to 256 MiB
    (``mallopt``), so freed arrays up to 64 MiB are reused warm. The cost: the process may keep up
    to 256 MiB of freed memory instead of returning it. It affects the whole process (NumPy, PyTorch,
    everything using malloc). Set ``FASTDL_MALLOC_TUNING=0`` before importing fastdl to keep glibc's
    defaults; :func:`info` reports whether the tuning is active.

Threading policy
    * Threading layer: ``tbb`` (then ``omp``) when available; the ``workqueue`` layer costs ~64 us
      per launch, so when neither is available fastdl runs every kernel serially. The crossover
      tables below are stored per layer.
    * Every parallel-capable kernel exists as a serial and a parallel variant and belongs to a kernel
      *family* (:data:`FAMILIES`: cheap streaming elementwise passes, transcendental activations,
      NumPy ufuncs cut into pieces, softmax + loss, batch norm, optimizer steps, the clip-norm
      reduction, max-norm). The parallel
      variant runs when the bytes the call moves (the sum of its arrays' sizes in bytes) reach the
      family's measured crossover for the dtype (:func:`get_crossovers`, stored in
      ``fastdl/_crossovers.py``, written by ``python bench/crossovers.py --write``), *and* more than
      one thread is allowed. :func:`set_parallel_threshold` (or the :func:`parallel_threshold`
      context manager) overrides the table with one element count for every kernel, as before;
      :func:`reset_parallel_threshold` returns to the table. ``FASTDL_NUM_THREADS=1`` in the
      environment (or one Numba thread) makes every kernel serial. Before the table, one fixed
      threshold of 1,048,576 elements decided for every kernel: measured on the 2-core development
      machine, standalone, parallel paid from ~256K elements (Adam 1M float64: 2.35 -> 1.45 ms);
      interleaved with the affine GEMMs forcing every kernel parallel was far slower (the book's
      784-100x5-10 step: 2.6 ms serial, 13.4 ms) because tiny kernels went parallel too. ``fastdl
      bench`` prints the interleave rows that check the table's choice between GEMMs.
    * BLAS keeps its own threads (fastdl does not change them); see docs/design-notes.md for how the
      interleaved loop was measured.

Processes: fork after a parallel kernel
    Numba's ``omp`` layer uses GNU OpenMP, which is not fork-safe: a child forked from a process
    that started Numba's OpenMP threads (a parallel kernel, or even asking Numba for its thread
    count) is killed by Numba ("Terminating: fork() called from a process already using GNU
    OpenMP") the first time it enters a parallel region, and a ``multiprocessing.Pool`` whose
    workers die that way waits forever. Fork is the default start method on Linux before Python
    3.14. fastdl therefore marks every process created by ``os.fork`` (``os.register_at_fork``):
    in a forked child :func:`use_parallel` is always False and every kernel runs its serial
    variant (same numbers, one core per worker process, which is what a pool wants anyway). The
    rule holds on the ``tbb`` layer too (TBB is fork-safe; a pool still wants one core per worker).
    Processes started with ``spawn`` or ``forkserver`` (a fresh interpreter) are not affected;
    ``spawn`` remains the recommended start method for worker processes.

Non-finite values
    The loss layer and the optimizers check their results for NaN/Inf (a scalar check, or a
    count accumulated inside the kernel's single pass). What happens then follows
    :func:`errstate`: ``'warn'`` (default, a :class:`NonFiniteWarning`, as NumPy warns on
    overflow), ``'raise'`` (:class:`FloatingPointError`) or ``'ignore'``. Like ``np.errstate``
    the policy is a context variable: it holds for the current thread (and asyncio task) only;
    a new thread starts with ``'warn'``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math
import numbers
import operator
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CacheWarning",
    "NonFiniteWarning",
    "blas_probe",
    "cache_dir",
    "errstate",
    "FAMILIES",
    "get_crossovers",
    "get_nonfinite_policy",
    "get_num_threads",
    "get_parallel_threshold",
    "info",
    "parallel_available",
    "parallel_threshold",
    "report_nonfinite",
    "reset_parallel_threshold",
    "set_nonfinite_policy",
    "set_num_threads",
    "set_parallel_threshold",
    "threads",
]

#: the element count that decided for every kernel before the crossover table (``use_parallel(n)`` without a
#: family still uses it: ``8 * n`` bytes against 8 MiB)
DEFAULT_PARALLEL_THRESHOLD = 1_048_576
DEFAULT_GOMP_SPINCOUNT = "1000"


def _default_cache_root() -> Path:
    if os.environ.get("FASTDL_CACHE_DIR"):
        return Path(os.environ["FASTDL_CACHE_DIR"])
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fastdl"


def writable_dir_problem(path: str | os.PathLike) -> str | None:
    """Create ``path`` (with its parents) and probe it with a small file; return why that failed, or None.

    Parameters
    ----------
    path : path-like
        Directory that must exist (it is created) and accept new files.

    Returns
    -------
    str or None
        ``None`` when ``path`` is a writable directory now, else a short reason such as
        ``"an existing file"`` or ``"Not a directory"`` (the operating system's words).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        return "an existing file, not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _writable_dir(path: Path) -> bool:
    return writable_dir_problem(path) is None


#: ``GOMP_SPINCOUNT`` as the environment had it before fastdl's default (None: it was unset)
USER_GOMP_SPINCOUNT = os.environ.get("GOMP_SPINCOUNT")


#: True when the user set ``NUMBA_CACHE_DIR`` (then it, not ``FASTDL_CACHE_DIR``, decides the cache place)
USER_NUMBA_CACHE_DIR = bool(os.environ.get("NUMBA_CACHE_DIR"))


def cache_hint() -> str:
    """Which variable to set for a writable kernel cache (for messages)."""
    if USER_NUMBA_CACHE_DIR:
        return "set NUMBA_CACHE_DIR to a writable directory"
    return "set FASTDL_CACHE_DIR (or NUMBA_CACHE_DIR) to a writable directory"


#: the package files whose compiled code Numba caches (kernels, the jit wrapper, the optimizer kind-switch)
_KERNEL_SOURCES = ("kernels/*.py", "_jit.py", "optim/*.py")


def kernel_source_key() -> str:
    """A short hash of the kernel sources: the name of fastdl's cache subdirectory.

    Numba checks a cached function against its own file's time stamp only, so a kernel that calls a
    kernel of another module kept the callee's old code after that module changed. Keying the
    directory on the contents of every kernel source gives changed sources a fresh cache.
    """
    digest = hashlib.sha1()
    root = Path(__file__).resolve().parent
    for pattern in _KERNEL_SOURCES:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"?")
    return digest.hexdigest()[:12]


def _configure_environment() -> str:
    """Set NUMBA_CACHE_DIR (unless the user did); return the cache dir."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    key = kernel_source_key()
    candidate = _default_cache_root() / "numba" / key
    if not _writable_dir(candidate):
        user = os.getuid() if hasattr(os, "getuid") else "user"
        candidate = Path(tempfile.gettempdir()) / f"fastdl-numba-{user}" / key
        _writable_dir(candidate)
    os.environ["NUMBA_CACHE_DIR"] = str(candidate)
    return str(candidate)


_CACHE_DIR = _configure_environment()

#: mallopt settings applied at import (see the module docstring): M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
MALLOC_MMAP_THRESHOLD = 64 << 20
MALLOC_TRIM_THRESHOLD = 256 << 20


def _tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once (Linux/glibc only; opt out: FASTDL_MALLOC_TUNING=0)."""
    if os.environ.get("FASTDL_MALLOC_TUNING", "1").strip().lower() in ("0", "off", "false", "no"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl's mallopt ignores these options)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD))


_MALLOC_TUNED = _tune_malloc()

import numba  # noqa: E402  (after the environment is set)

from . import _checks  # noqa: E402

# Numba reads NUMBA_CACHE_DIR when it is first imported; if the user imported it before fastdl,
# set the config value directly (the cache locator reads it at compile time).
if not numba.config.CACHE_DIR:
    numba.config.CACHE_DIR = _CACHE_DIR


def _preload_tbb() -> None:
    """Make the ``tbb`` wheel's library findable by Numba's ``tbbpool``.

    pip puts it in ``<prefix>/lib`` (``<prefix>\\Library\\bin`` on Windows), with ``<prefix>`` the
    environment's or, for ``--user`` installs, the user base: not on the loader's search path outside
    conda. A library the loader finds by name is left alone; else the wheel's is loaded once by its
    absolute path with ``RTLD_GLOBAL``, so that later loads by name find it (on Windows its directory
    is added to the DLL search path instead). The user base counts only where user site-packages are
    enabled.
    """
    import ctypes
    import site

    bases = [sys.prefix]
    if site.ENABLE_USER_SITE and site.USER_BASE:
        bases.append(site.USER_BASE)
    bases = [Path(b) for b in bases if Path(b).is_absolute()]
    if sys.platform == "win32":
        for base in bases:
            if (base / "Library" / "bin" / "tbb12.dll").is_file():
                os.add_dll_directory(str(base / "Library" / "bin"))
                return
        return
    name = "libtbb.12.dylib" if sys.platform == "darwin" else "libtbb.so.12"
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        return
    except OSError:
        pass
    for base in bases:
        if (base / "lib" / name).is_file():
            try:
                ctypes.CDLL(str(base / "lib" / name), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return


def _try_layer(name: str) -> bool:
    """Can Numba run parallel regions on layer ``name`` (its library loads, TBB new enough)?"""
    ours = name == "omp" and "GOMP_SPINCOUNT" not in os.environ
    try:
        if name == "tbb":
            _preload_tbb()
            from numba.np.ufunc.parallel import _check_tbb_version_compatible

            with warnings.catch_warnings():  # (Numba warns that the layer is disabled: fastdl falls back instead)
                warnings.simplefilter("ignore")
                _check_tbb_version_compatible()
            __import__("numba.np.ufunc.tbbpool")
        else:
            os.environ.setdefault("GOMP_SPINCOUNT", DEFAULT_GOMP_SPINCOUNT)  # before libgomp loads
            __import__("numba.np.ufunc.omppool")
    except Exception:  # ImportError, or OSError when libtbb/libgomp is missing or TBB too old
        if ours:  # no libgomp: leave the environment as it was (a later PyTorch keeps its defaults)
            os.environ.pop("GOMP_SPINCOUNT", None)
        return False
    return True


def _pick_threading_layer() -> str | None:
    """Prefer tbb, then omp; return None when only the slow workqueue layer exists.

    ``NUMBA_THREADING_LAYER=omp`` or ``=tbb`` in the environment (any case, as Numba reads it) picks
    that layer: fastdl prepares it (the spin-count default for omp, the library for tbb) and, when it
    does not load, warns and runs every kernel serially instead of failing at the first parallel one.
    """
    user = (os.environ.get("NUMBA_THREADING_LAYER") or "").strip().lower()
    if user and user not in ("default", "safe", "forksafe", "threadsafe"):
        if user in ("omp", "tbb") and not _try_layer(user):
            warnings.warn(f"fastdl: NUMBA_THREADING_LAYER={user} does not load here; every kernel runs serially "
                          "(unset it to let fastdl pick tbb or omp)", RuntimeWarning, stacklevel=2)
            return None
        return None if user == "workqueue" else user
    for name in ("tbb", "omp"):
        if _try_layer(name):
            numba.config.THREADING_LAYER = name
            return name
    return None


_THREADING_LAYER = _pick_threading_layer()
#: the user's element-count override (:func:`set_parallel_threshold`); None: the crossover table decides
_parallel_threshold: int | None = None
_POLICIES = ("warn", "raise", "ignore")
#: the non-finite policy of the current thread / asyncio task (see :func:`errstate`)
_NONFINITE_POLICY: contextvars.ContextVar[str] = contextvars.ContextVar("fastdl_nonfinite_policy", default="warn")

#: True in a process created by ``os.fork`` after fastdl was imported: kernels run serially there
_FORKED_CHILD = False


def _mark_forked_child() -> None:
    global _FORKED_CHILD
    _FORKED_CHILD = True


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_mark_forked_child)


def cache_dir() -> str:
    """Directory where compiled kernels are cached."""
    return str(numba.config.CACHE_DIR or _CACHE_DIR)


def parallel_available() -> bool:
    """True when a fast threading layer (omp or tbb) is available."""
    return _THREADING_LAYER is not None


def get_num_threads() -> int:
    """Threads the parallel kernels may use (Numba's setting)."""
    return numba.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the threads the parallel kernels may use (1 .. ``numba.config.NUMBA_NUM_THREADS``)."""
    top = numba.config.NUMBA_NUM_THREADS
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}") from None
    if not 1 <= n <= top:
        raise ValueError(f"set_num_threads: n must be in [1, {top}], got {n}")
    numba.set_num_threads(n)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Context manager: run the enclosed code with ``n`` kernel threads, then restore."""
    old = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def get_parallel_threshold() -> int | None:
    """The element count set by :func:`set_parallel_threshold`, or None when the crossover table decides."""
    return _parallel_threshold


def set_parallel_threshold(n: int) -> None:
    """Override the crossover table: every kernel runs parallel from ``n`` elements (0: always, a huge value: never).

    The override holds for the whole process until :func:`reset_parallel_threshold` (or the end of a
    :func:`parallel_threshold` block). With one thread allowed, with ``FASTDL_NUM_THREADS=1`` and in
    forked children every kernel still runs serially.

    Parameters
    ----------
    n : int
        A non-negative integer (a float with an integer value such as ``1e6`` is accepted).

    Raises
    ------
    TypeError
        ``n`` is not a real number (``None``, a string, a bool).
    ValueError
        ``n`` is negative, not a whole number, NaN or infinite.
    """
    global _parallel_threshold
    where, expected = "set_parallel_threshold", "a non-negative integer (0: always parallel; 2**62: never)"
    if isinstance(n, bool) or not isinstance(n, numbers.Real):
        _checks.fail(where, "n", expected, _checks.describe(n), TypeError)
    if not math.isfinite(n) or n < 0 or int(n) != n:
        _checks.fail(where, "n", expected, repr(n))
    _parallel_threshold = int(n)


def reset_parallel_threshold() -> None:
    """Drop the :func:`set_parallel_threshold` override: the per-family crossover table decides again."""
    global _parallel_threshold
    _parallel_threshold = None


@contextlib.contextmanager
def parallel_threshold(n: int | None) -> Iterator[None]:
    """Context manager form of :func:`set_parallel_threshold`; ``None`` runs the block under the crossover table.

    On exit the previous state (an override or the table) comes back. Tests force either variant with
    it (``0``: parallel, ``2**62``: serial).
    """
    global _parallel_threshold
    old = _parallel_threshold
    if n is None:
        reset_parallel_threshold()
    else:
        set_parallel_threshold(n)
    try:
        yield
    finally:
        _parallel_threshold = old


# -- the crossover table ----------------------------------------------------------------------------

#: The kernel families with a crossover of their own (see :func:`get_crossovers` for what each holds).
FAMILIES = ("stream", "transcendental", "ufunc", "softmax", "batchnorm", "optimizer", "clipnorm", "maxnorm")
#: bytes a call without a family must move to run parallel (the old 1,048,576 float64 elements)
DEFAULT_CROSSOVER_BYTES = 8 * DEFAULT_PARALLEL_THRESHOLD


def _load_crossovers() -> tuple[dict, dict]:
    """``{(family, itemsize): bytes}`` and the table's provenance, from :mod:`fastdl._crossovers`.

    The stored tables are per threading layer (a parallel launch costs each layer differently); a
    layer without a table of its own uses the ``omp`` one (its provenance says so).
    """
    from . import _crossovers

    layer = _THREADING_LAYER if _THREADING_LAYER in _crossovers.MEASURED else "omp"
    table = {}
    for family, per_layer in _crossovers.CROSSOVERS.items():  # {family: {layer: {dtype: bytes}}}
        for dtype, nbytes in per_layer.get(layer, per_layer.get("omp", {})).items():  # (a family not measured: 8 MiB)
            table[(family, 4 if dtype == "float32" else 8)] = int(nbytes)
    return table, dict(_crossovers.MEASURED[layer], layer=layer)


_CROSSOVERS, _CROSSOVERS_MEASURED = _load_crossovers()


def get_crossovers() -> dict:
    """The serial/parallel crossovers in use: ``{family: {"float32": bytes, "float64": bytes}}``.

    A call of a family's kernel runs its parallel variant from that many bytes moved (the sum of the
    sizes of the arrays it reads and writes). Families: ``stream`` (ReLU, leaky ReLU, PReLU, dropout,
    the sigmoid/tanh finishing and backward passes, bias add, column sums), ``transcendental`` (ELU,
    SELU, GELU, SiLU, Mish forward and backward, :mod:`fastdl.kernels.vmath`), ``ufunc`` (NumPy's
    ``exp``/``tanh`` of the sigmoid and tanh forwards and the softmax numerators, cut into pieces for
    helper threads: :func:`fastdl.kernels.numpy_map`), ``softmax`` (softmax
    and the softmax + cross-entropy passes), ``batchnorm`` (training statistics and apply, backward,
    evaluation), ``optimizer`` (one rule step: ``size * itemsize * rule.traffic`` bytes), ``clipnorm``
    (the gradient sum of squares) and ``maxnorm`` (:class:`fastdl.constraints.MaxNorm`). Measured by
    ``python bench/crossovers.py --write`` on the machine named in ``fastdl/_crossovers.py``
    (:func:`info` reports it). :func:`set_parallel_threshold` overrides the whole table.
    """
    out: dict = {}
    for (family, itemsize), nbytes in _CROSSOVERS.items():
        out.setdefault(family, {})["float32" if itemsize == 4 else "float64"] = nbytes
    return out


def _threads_from_env() -> int | None:
    """``FASTDL_NUM_THREADS`` as a positive int (None when unset; a bad value warns once and is ignored)."""
    raw = os.environ.get("FASTDL_NUM_THREADS", "").strip()
    if not raw:
        return None
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    warnings.warn(f"fastdl: FASTDL_NUM_THREADS must be a positive integer; got {raw!r} (ignored)", RuntimeWarning,
                  stacklevel=2)
    return None


#: ``FASTDL_NUM_THREADS`` (None: unset). 1 makes every kernel serial (no OpenMP thread ever starts);
#: a larger value caps Numba's threads, applied (to the calling thread: Numba's setting is per thread)
#: when the first parallel kernel is chosen.
_ENV_THREADS = _threads_from_env()
_env_threads_applied = False


def _threads_allow_parallel() -> bool:
    global _env_threads_applied
    if _ENV_THREADS is not None and not _env_threads_applied:
        _env_threads_applied = True
        if _ENV_THREADS > 1:
            numba.set_num_threads(min(_ENV_THREADS, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads() > 1


def use_parallel(n_elements: int, family: str | None = None, nbytes: int | None = None, itemsize: int = 8) -> bool:
    """Driver-level decision: run the parallel variant of a ``family`` kernel that moves ``nbytes`` bytes?

    With an override (:func:`set_parallel_threshold`): ``n_elements >= threshold``. Otherwise
    ``nbytes`` (default ``n_elements * itemsize``) against the family's crossover for the dtype of
    that ``itemsize`` (:func:`get_crossovers`; without a family, 8 MiB). Always False when no fast
    threading layer exists, with one thread (``FASTDL_NUM_THREADS=1`` included), and in a process
    created by ``os.fork`` (GNU OpenMP is not fork-safe; see the module docstring). The size is
    tested before Numba is asked for its thread count.
    """
    threshold = _parallel_threshold
    if threshold is not None:
        if n_elements < threshold:
            return False
    else:
        if nbytes is None:
            nbytes = n_elements * itemsize
        if nbytes < _CROSSOVERS.get((family, itemsize), DEFAULT_CROSSOVER_BYTES):
            return False
    return _THREADING_LAYER is not None and not _FORKED_CHILD and _ENV_THREADS != 1 and _threads_allow_parallel()


def smallest_crossover() -> int:
    """Bytes below which no call runs parallel under the table (0 under an override): a driver's cheap early exit."""
    return 0 if _parallel_threshold is not None else _SMALLEST


def _set_crossovers(table: dict) -> dict:
    """Replace the table in use with ``{family: {dtype: bytes}}`` (tests); returns the previous one."""
    global _CROSSOVERS, _SMALLEST
    old = get_crossovers()
    _CROSSOVERS = {(f, 4 if dt == "float32" else 8): int(b) for f, per in table.items() for dt, b in per.items()}
    _SMALLEST = min(_CROSSOVERS.values(), default=DEFAULT_CROSSOVER_BYTES)
    return old


_SMALLEST = min(_CROSSOVERS.values(), default=DEFAULT_CROSSOVER_BYTES)


def chunks(n_rows: int) -> int:
    """Number of work chunks for a parallel kernel over ``n_rows`` rows (one per thread, at most)."""
    return max(1, min(numba.get_num_threads(), n_rows))


class CacheWarning(RuntimeWarning):
    """Compiled kernels cannot be cached on disk (no writable cache directory): they compile in every process."""


class NonFiniteWarning(RuntimeWarning):
    """A loss, statistic or updated parameter became NaN or infinite."""


def get_nonfinite_policy() -> str:
    """The non-finite policy of the current thread (or asyncio task): ``'warn'``, ``'raise'`` or ``'ignore'``."""
    return _NONFINITE_POLICY.get()


def _check_policy(policy, where: str) -> str:
    if not isinstance(policy, str) or policy not in _POLICIES:
        _checks.fail(where, "nonfinite policy", f"one of {_POLICIES}", repr(policy))
    return policy


def set_nonfinite_policy(policy: str) -> None:
    """``'warn'`` (default), ``'raise'`` or ``'ignore'``: what a detected NaN/Inf does.

    The setting holds for the current thread (and asyncio task) only, as ``np.seterr`` does:
    other threads keep theirs, and a new thread starts with ``'warn'``. Prefer :func:`errstate`,
    which restores the previous policy.
    """
    _NONFINITE_POLICY.set(_check_policy(policy, "set_nonfinite_policy"))


@contextlib.contextmanager
def errstate(nonfinite: str) -> Iterator[None]:
    """Like ``np.errstate``: ``with fastdl.errstate(nonfinite='raise'): ...``.

    The policy is a context variable: it applies to the enclosed code in the current thread (and
    asyncio task) and to nothing running concurrently in other threads; leaving the block restores
    the policy the block started with.
    """
    token = _NONFINITE_POLICY.set(_check_policy(nonfinite, "errstate"))
    try:
        yield
    finally:
        _NONFINITE_POLICY.reset(token)


def report_nonfinite(where: str, what: str) -> None:
    """Report a detected NaN/Inf according to the current thread's policy. ``where`` names the call site."""
    policy = _NONFINITE_POLICY.get()
    if policy == "ignore":
        return
    message = f"{where}: {what}"
    if policy == "raise":
        raise FloatingPointError(message)
    warnings.warn(message, NonFiniteWarning, stacklevel=3)


def info() -> dict:
    """Versions, threads and settings, recorded beside every benchmark."""
    import platform

    import numpy as np

    return {
        "fastdl_threading_layer": _THREADING_LAYER or "serial-only",
        "numba_threads": numba.get_num_threads(),
        "parallel_threshold": "crossover table" if _parallel_threshold is None else _parallel_threshold,
        "fastdl_num_threads": _ENV_THREADS,
        "crossovers_measured": f"{_CROSSOVERS_MEASURED.get('when', 'not measured')} "
                               f"({_CROSSOVERS_MEASURED.get('layer')} layer)",
        "forked_child_serial": _FORKED_CHILD,
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "malloc_tuning": _MALLOC_TUNED,
        "cache_dir": cache_dir(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def blas_probe(n: int = 100, calls: int = 50) -> float:
    """Median seconds of an ``n x n`` float64 GEMM (``np.dot``): a detector of stalled BLAS threads.

    A 100x100 GEMM normally takes well under 0.1 ms; when another process occupies a core,
    multi-threaded OpenBLAS can stall for milliseconds per call, and any figure containing GEMMs is
    then meaningless. ``fastdl bench`` and ``fastdl profile`` warn above 1 ms.
    """
    import numpy as np  # in the function, as in info(): this module loads before NumPy and Numba

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    out = np.empty((n, n))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
