"""Data sets in the book's return form ``((x_train, t_train), (x_test, t_test))``.

* :func:`load_mnist` reads the four standard MNIST IDX gzip files from a data directory
  (``$FASTDL_DATA``, else ``<user cache>/fastdl/mnist``), downloading missing ones from a list of
  mirrors and checking each file's SHA-256. Parsed arrays are cached as ``mnist.npz`` (loaded with
  ``allow_pickle=False``; nothing is ever pickled), which records the SHA-256 of the IDX files it
  was built from and is checked like them on every load (readable, shapes, dtypes, labels 0-9,
  the recorded hashes equal to :data:`MNIST_FILES`); a bad cache is rebuilt from the IDX files
  with a :class:`~fastdl.runtime.CacheWarning` naming the file and the reason, and is written
  atomically. Offline, the error names the directory where the files can be put by hand.
* :func:`load_digits` gives scikit-learn's bundled 8x8 digits (1,797 images), the offline default of
  the examples and experiments, split into train and test sets per class.
* :func:`load_diabetes` gives scikit-learn's bundled diabetes regression set (442 patients, 10
  features), standardized with the training part's statistics.
* :func:`shuffle_dataset` and :func:`train_val_split` are the book's ``shuffle_dataset`` and the
  validation split of its hyper-parameter search.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np

from . import _checks
from ._io import atomic_write

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "ChecksumError",
    "DatasetUnavailableError",
    "load_diabetes",
    "load_digits",
    "load_mnist",
    "mnist_dir",
    "parse_idx",
    "shuffle_dataset",
    "to_one_hot",
    "train_val_split",
]

#: The four files of MNIST and their SHA-256 (the gzip files as distributed since 1998).
MNIST_FILES = {
    "train_img": ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_label": ("train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_img": ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_label": ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}

#: Tried in order; each URL is a prefix to which the file name is appended.
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

_CACHE_NAME = "mnist.npz"
_CACHE_VERSION = 2  # 2: records the source files' sha256
_N_CLASSES = 10
_TIMEOUT = 30.0


class ChecksumError(OSError):
    """A data file's SHA-256 does not match the expected one."""


class DatasetUnavailableError(OSError):
    """A data file is missing and could not be downloaded."""


def mnist_dir() -> Path:
    """Directory holding the MNIST files: ``$FASTDL_DATA`` if set, else ``<user cache>/fastdl/mnist``.

    Returns
    -------
    pathlib.Path
    """
    if os.environ.get("FASTDL_DATA"):
        return Path(os.environ["FASTDL_DATA"]).expanduser()
    from .runtime import _default_cache_root

    return _default_cache_root() / "mnist"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, timeout: float = _TIMEOUT) -> None:
    """Download ``url`` to ``dest`` (through a temporary file, so a broken transfer leaves nothing)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _verify_local(path: Path, sha256: str) -> None:
    got = _sha256(path)
    if got != sha256:
        raise ChecksumError(f"load_mnist: {path} must have sha256 {sha256}; got {got} "
                            "(the file is corrupt or not the original: delete it to download it again)")


def _ensure_file(directory: Path, filename: str, sha256: str, mirrors: list[str], download: bool) -> Path:
    """Return the verified path of ``filename`` in ``directory``, downloading it when missing."""
    path = directory / filename
    if path.exists():  # verified by the caller
        return path
    hint = (f"download the four MNIST files ({', '.join(f for f, _ in MNIST_FILES.values())}) by hand "
            f"into {directory} (or point FASTDL_DATA at a directory that has them)")
    if not download:
        raise DatasetUnavailableError(f"load_mnist: {filename} is missing from {directory} and download=False; "
                                      + hint)
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            _fetch(url, path)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        got = _sha256(path)
        if got == sha256:
            return path
        path.unlink(missing_ok=True)
        errors.append(f"{url}: sha256 {got} instead of {sha256}")
    if errors and all("sha256" in e for e in errors):
        raise ChecksumError(f"load_mnist: {filename} failed its checksum from every mirror:\n  "
                            + "\n  ".join(errors))
    raise DatasetUnavailableError(f"load_mnist: could not download {filename} (offline?); {hint}.\n  Tried:\n  "
                                  + "\n  ".join(errors or ["no mirrors given"]))


def parse_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) of unsigned bytes into a ``uint8`` array.

    Checks the header: two zero bytes, data type ``0x08`` (unsigned byte), a dimension count of 1-3,
    and a payload of exactly the size the dimensions announce.

    Parameters
    ----------
    path : path-like
        ``*.gz`` files are decompressed.
    expected_magic : int, optional
        ``0x803`` for images, ``0x801`` for labels.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of the announced shape.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"parse_idx: {path} must be a readable IDX file; got {exc}") from None
    if len(data) < 4:
        raise ValueError(f"parse_idx: {path} must start with a 4-byte IDX header; got {len(data)} bytes")
    magic = int.from_bytes(data[:4], "big")
    zero, dtype_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 3:
        raise ValueError(f"parse_idx: {path} must have an unsigned-byte IDX header (0x0000 08 0d); "
                         f"got magic {magic:#010x}")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"parse_idx: {path} must have magic {expected_magic:#010x}; got {magic:#010x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"parse_idx: {path} must hold {ndim} dimension sizes; the file ends early")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(shape)  # exact (np.prod would wrap around in int64)
    if count > np.iinfo(np.intp).max:
        raise ValueError(f"parse_idx: {path} must announce at most {np.iinfo(np.intp).max} elements; "
                         f"got shape {shape} ({count} elements: a corrupt header)")
    if len(data) - header != count:
        raise ValueError(f"parse_idx: {path} must hold {count} bytes of data for shape {shape}; "
                         f"got {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _check_mnist(dataset: dict[str, np.ndarray]) -> str | None:
    """Why ``dataset`` is not MNIST-shaped, or ``None``: uint8 ``(N, 28, 28)`` images, uint8 ``(N,)`` labels 0-9."""
    for part in ("train", "test"):
        img, lab = dataset[f"{part}_img"], dataset[f"{part}_label"]
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[1:] != (28, 28):
            return f"{part} images must be uint8 of shape (N, 28, 28); got {_checks.describe(img)}"
        if lab.dtype != np.uint8 or lab.ndim != 1:
            return f"{part} labels must be uint8 of shape (N,); got {_checks.describe(lab)}"
        if lab.shape[0] != img.shape[0]:
            return (f"the {part} set must have as many labels as images; got {lab.shape[0]} labels for "
                    f"{img.shape[0]} images")
        if lab.size and int(lab.max()) >= _N_CLASSES:
            return f"{part} labels must be in 0-{_N_CLASSES - 1}; got {int(lab.max())}"
    return None


def _load_cache(cache: Path) -> tuple[dict[str, np.ndarray] | None, str]:
    """The checked arrays of ``cache``, or ``(None, why it cannot be used)``."""
    try:
        with open(cache, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # (own handle: closed on any error)
            version = int(z["version"]) if "version" in z.files else None
            if version != _CACHE_VERSION:
                return None, f"cache format {version} instead of {_CACHE_VERSION}"
            for key, (name, sha) in MNIST_FILES.items():
                recorded = str(z[f"sha256_{key}"])
                if recorded != sha:
                    return None, f"built from a {name} with sha256 {recorded}, not {sha}"
            dataset = {key: z[key] for key in MNIST_FILES}
    except Exception as exc:  # noqa: BLE001  (truncated, bad CRC, not a zip, object arrays, missing keys...)
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    why = _check_mnist(dataset)
    return (None, why) if why else (dataset, "")


def _read_mnist(directory: Path, mirrors: list[str], download: bool) -> dict[str, np.ndarray]:
    cache = directory / _CACHE_NAME
    if cache.exists():
        dataset, why = _load_cache(cache)
        if dataset is not None:
            return dataset
        from .runtime import CacheWarning

        warnings.warn(f"load_mnist: the cache {cache} is not usable ({why}); rebuilding it from the IDX files",
                      CacheWarning, stacklevel=3)
    for name, sha in MNIST_FILES.values():  # report a corrupt local file before downloading anything
        if (directory / name).exists():
            _verify_local(directory / name, sha)
    paths = {key: _ensure_file(directory, name, sha, mirrors, download) for key, (name, sha) in MNIST_FILES.items()}
    dataset = {key: parse_idx(p, 0x803 if key.endswith("img") else 0x801) for key, p in paths.items()}
    why = _check_mnist(dataset)
    if why:
        raise ValueError(f"load_mnist: the IDX files in {directory}: {why}")
    hashes = {f"sha256_{key}": np.array(sha) for key, (_, sha) in MNIST_FILES.items()}
    try:
        atomic_write(cache, lambda fh: np.savez(fh, version=np.int64(_CACHE_VERSION), **hashes, **dataset))
    except OSError:
        pass  # a read-only data directory still works, just without the cache
    return dataset


def to_one_hot(t: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Labels ``(N,)`` to one-hot rows ``(N, num_classes)`` of float64 (as the book's ``_change_one_hot_label``).

    Parameters
    ----------
    t : numpy.ndarray
        Integer labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes.

    Returns
    -------
    numpy.ndarray
    """
    t = np.asarray(t)
    T = np.zeros((t.size, num_classes))
    T[np.arange(t.size), t.reshape(-1)] = 1
    return T


def load_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False, *,
               data_dir: str | os.PathLike | None = None, download: bool = True,
               mirrors: list[str] | None = None):
    """MNIST as the book's ``dataset.mnist.load_mnist`` returns it.

    Parameters
    ----------
    normalize : bool
        Scale pixels to ``[0, 1]`` as float32 (else ``uint8`` 0-255).
    flatten : bool
        ``(N, 784)`` rows, else ``(N, 1, 28, 28)`` images.
    one_hot_label : bool
        One-hot ``(N, 10)`` float64 targets, else ``uint8`` labels.
    data_dir : path-like, optional
        Where the files are (default :func:`mnist_dir`).
    download : bool
        Download missing files from ``mirrors``.
    mirrors : list of str, optional
        URL prefixes tried in order (default :data:`MNIST_MIRRORS`).

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_test, t_test))``: 60,000 and 10,000 samples.

    Raises
    ------
    DatasetUnavailableError
        A file is missing and could not be downloaded; the message names the directory to put it in.
    ChecksumError
        A file's SHA-256 is wrong.
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else mnist_dir()
    dataset = _read_mnist(directory, list(MNIST_MIRRORS if mirrors is None else mirrors), download)
    out = {}
    for part in ("train", "test"):
        x = dataset[f"{part}_img"]
        x = x.reshape(x.shape[0], -1)
        if normalize:
            x = x.astype(np.float32)
            x /= 255.0
        if not flatten:
            x = x.reshape(-1, 1, 28, 28)
        t = dataset[f"{part}_label"]
        if one_hot_label:
            t = to_one_hot(t, 10)
        out[part] = (x, t)
    return out["train"], out["test"]


def _stratified_split(t: np.ndarray, test_ratio: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: ``round(test_ratio * n_c)`` of each class ``c`` to test, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(t):
        idx = np.flatnonzero(t == c)
        rng.shuffle(idx)
        n_test = int(round(test_ratio * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    return train_idx, test_idx


def _split_args(loader: str, test_ratio, dtype) -> np.dtype:
    """Validate ``test_ratio`` (in (0, 1)) and ``dtype`` (float32/float64) of a bundled set's loader."""
    _checks.positive_number(test_ratio, "test_ratio", loader, upper=1.0)
    dtype = np.dtype(dtype)
    if dtype not in _checks.FLOAT_DTYPES:
        _checks.fail(loader, "dtype", "float32 or float64", str(dtype), TypeError)
    return dtype


def _sklearn_set(loader: str, test_ratio, dtype, **kwargs):
    """Validate ``test_ratio`` and ``dtype``, then ``sklearn.datasets.<loader>(**kwargs)``: ``(bunch, dtype)``."""
    dtype = _split_args(loader, test_ratio, dtype)
    try:
        import sklearn.datasets
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(f"{loader} needs scikit-learn: pip install 'fastdl[digits]'") from None
    return getattr(sklearn.datasets, loader)(**kwargs), dtype


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``digits.csv.gz`` read directly: ``(data (1797, 64) float64, target int64)``.

    Importing ``sklearn.datasets`` costs ~1.2 s (it loads SciPy and most of scikit-learn), longer than a whole
    warm training run on the digits; the file itself parses in a few milliseconds. ``find_spec`` locates the
    installed package without importing it. When the file is not where scikit-learn has kept it since 0.x
    (``sklearn/datasets/data/digits.csv.gz``), fall back to ``sklearn.datasets.load_digits``.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ImportError("load_digits needs scikit-learn, which bundles the digits: pip install 'fastdl[digits]'")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rb") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
        if table.shape == (1797, 65):
            return table[:, :64], table[:, 64].astype(np.int64)
    import sklearn.datasets  # pragma: no cover - another scikit-learn layout

    bunch = sklearn.datasets.load_digits()  # pragma: no cover
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)  # pragma: no cover


def load_digits(normalize: bool = True, one_hot_label: bool = False, test_ratio: float = 0.2, seed: int = 0,
                *, flatten: bool = True, dtype=np.float64):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 samples, 64 features, 10 classes), split per class.

    Parameters
    ----------
    normalize : bool
        Divide the 0-16 pixel values by 16 (to ``[0, 1]``).
    one_hot_label : bool
        One-hot ``(N, 10)`` targets instead of int64 labels.
    test_ratio : float
        Share of each class that goes to the test set, in ``(0, 1)``.
    seed : int
        Seed of the split (a NumPy ``default_rng``; the global generator is not touched).
    flatten : bool
        ``(N, 64)`` rows, else ``(N, 1, 8, 8)`` images.
    dtype : numpy dtype
        float64 (default) or float32 for ``x``.

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_test, t_test))``; with the defaults 1,438 training and 359 test samples.
    """
    dtype = _split_args("load_digits", test_ratio, dtype)
    x, t = _bundled_digits()
    if normalize:
        x /= 16.0
    x = x.astype(dtype, copy=False)
    train_idx, test_idx = _stratified_split(t, float(test_ratio), seed)
    out = []
    for idx in (train_idx, test_idx):
        xs, ts = x[idx], t[idx]
        if not flatten:
            xs = xs.reshape(-1, 1, 8, 8)
        if one_hot_label:
            ts = to_one_hot(ts, 10)
        out.append((xs, ts))
    return out[0], out[1]


def load_diabetes(normalize: bool = True, test_ratio: float = 0.2, seed: int = 0, *, dtype=np.float64):
    """scikit-learn's bundled diabetes regression set (442 samples, 10 features), split at random.

    The features are the raw ones (``sklearn.datasets.load_diabetes(scaled=False)``: scikit-learn's
    default ``scaled=True`` centres and scales with the statistics of all 442 samples, the test part
    included). With ``normalize`` each feature is standardized with the *training* part's statistics
    only, ``x = (x - mean_train) / std_train`` (``std`` with ``ddof=0``), applied alike to both parts,
    so no test-set statistic leaks into the training data. The target (a disease-progression score
    one year later, 25-346) is never scaled: errors such as RMSE come out in its units.

    Parameters
    ----------
    normalize : bool
        Standardize ``x`` with the training statistics (else the raw features: age in years, BMI, ...).
    test_ratio : float
        Share of samples held out, in ``(0, 1)``: ``round(test_ratio * 442)`` test samples.
    seed : int
        Seed of the split (a NumPy ``default_rng``; the global generator is not touched).
    dtype : numpy dtype
        float64 (default) or float32 for ``x`` and ``t``.

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_test, t_test))`` with ``x`` of shape ``(N, 10)`` and ``t`` a column
        ``(N, 1)`` (the shape of a one-output network's prediction); with the defaults 354 training
        and 88 test samples.
    """
    where = "load_diabetes"
    bunch, dtype = _sklearn_set(where, test_ratio, dtype, scaled=False)
    x = np.asarray(bunch.data, dtype=np.float64)
    t = np.asarray(bunch.target, dtype=np.float64).reshape(-1, 1)
    n = x.shape[0]
    n_test = int(round(float(test_ratio) * n))
    if not 1 <= n_test < n:
        _checks.fail(where, "test_ratio", f"a share leaving both parts non-empty for {n} samples", repr(test_ratio))
    perm = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    x_train, x_test = x[train_idx], x[test_idx]
    if normalize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    return ((x_train.astype(dtype, copy=False), t[train_idx].astype(dtype)),
            (x_test.astype(dtype, copy=False), t[test_idx].astype(dtype)))


def shuffle_dataset(x: np.ndarray, t: np.ndarray, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle samples and targets together (the book's ``common/util.shuffle_dataset``).

    Parameters
    ----------
    x : numpy.ndarray
        Samples, first axis = sample (2-D or 4-D).
    t : numpy.ndarray
        Targets with the same first dimension.
    seed : int, optional
        ``None`` draws from NumPy's global generator as the book does; an int uses its own generator.

    Returns
    -------
    tuple
        Shuffled copies ``(x, t)``.
    """
    x, t = np.asarray(x), np.asarray(t)
    if x.shape[0] != t.shape[0]:
        _checks.fail("shuffle_dataset", "t", f"as many samples as x ({x.shape[0]})", f"shape {t.shape}")
    perm = np.random.permutation(x.shape[0]) if seed is None else np.random.default_rng(seed).permutation(x.shape[0])
    return x[perm], t[perm]


def train_val_split(x: np.ndarray, t: np.ndarray, validation_ratio: float = 0.2, shuffle: bool = True,
                    seed=None):
    """Split training data into training and validation parts, as the book's hyper-parameter search does.

    Shuffles (unless ``shuffle=False``), then the first ``int(N * validation_ratio)`` samples become the
    validation set.

    Parameters
    ----------
    x, t : numpy.ndarray
        Samples and targets.
    validation_ratio : float
        Share held out, in ``(0, 1)``.
    shuffle : bool
        Shuffle first (with :func:`shuffle_dataset`).
    seed : int, optional
        Seed of the shuffle (``None``: NumPy's global generator).

    Returns
    -------
    tuple
        ``((x_train, t_train), (x_val, t_val))``.
    """
    where = "train_val_split"
    _checks.positive_number(validation_ratio, "validation_ratio", where, upper=1.0)
    x, t = np.asarray(x), np.asarray(t)
    if shuffle:
        x, t = shuffle_dataset(x, t, seed)
    n_val = int(x.shape[0] * validation_ratio)
    if n_val < 1 or n_val >= x.shape[0]:
        _checks.fail(where, "validation_ratio", f"a share leaving both parts non-empty for {x.shape[0]} samples",
                     repr(validation_ratio))
    return (x[n_val:], t[n_val:]), (x[:n_val], t[:n_val])
