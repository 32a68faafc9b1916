"""fastdl.datasets: MNIST from small IDX files the tests write (never the network), digits, splits."""

import gzip
import hashlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fastdl import datasets

N_TRAIN, N_TEST = 6, 4


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return magic + dims + array.astype(np.uint8).tobytes()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A directory of four small MNIST-format files, and MNIST_FILES pointing at their checksums."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_img": rng.integers(0, 256, (N_TRAIN, 28, 28)),
        "train_label": rng.integers(0, 10, N_TRAIN),
        "test_img": rng.integers(0, 256, (N_TEST, 28, 28)),
        "test_label": rng.integers(0, 10, N_TEST),
    }
    src = tmp_path / "mirror"
    src.mkdir()
    files = {}
    for key, (name, _) in datasets.MNIST_FILES.items():
        data = gzip.compress(_idx_bytes(arrays[key]))
        (src / name).write_bytes(data)
        files[key] = (name, hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(datasets, "MNIST_FILES", files)
    return src, {k: v.astype(np.uint8) for k, v in arrays.items()}


def test_load_mnist_downloads_verifies_parses_and_caches(mirror, tmp_path):
    src, arrays = mirror
    data_dir = tmp_path / "data"
    (x_train, t_train), (x_test, t_test) = datasets.load_mnist(data_dir=data_dir, mirrors=[src.as_uri()])
    assert x_train.shape == (N_TRAIN, 784) and x_test.shape == (N_TEST, 784)
    assert x_train.dtype == np.float32 and t_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, arrays["train_img"].reshape(N_TRAIN, -1).astype(np.float32) / 255.0)
    np.testing.assert_array_equal(t_test, arrays["test_label"])
    assert (data_dir / "mnist.npz").exists()
    # the cache alone is enough now (and is read without pickle)
    for f in data_dir.glob("*.gz"):
        f.unlink()
    (x2, t2), _ = datasets.load_mnist(normalize=False, flatten=False, one_hot_label=True, data_dir=data_dir,
                                      download=False)
    assert x2.shape == (N_TRAIN, 1, 28, 28) and x2.dtype == np.uint8
    np.testing.assert_array_equal(x2[:, 0], arrays["train_img"])
    assert t2.shape == (N_TRAIN, 10)
    np.testing.assert_array_equal(t2.argmax(axis=1), arrays["train_label"])


def test_second_mirror_is_tried_when_the_first_fails(mirror, tmp_path):
    src, arrays = mirror
    missing = (tmp_path / "nowhere").as_uri()
    (_, t_train), _ = datasets.load_mnist(data_dir=tmp_path / "d", mirrors=[missing, src.as_uri() + "/"])
    np.testing.assert_array_equal(t_train, arrays["train_label"])


def test_corrupt_download_is_a_checksum_error(mirror, tmp_path):
    src, _ = mirror
    name = datasets.MNIST_FILES["test_img"][0]
    (src / name).write_bytes(b"not the file")
    data_dir = tmp_path / "data"
    with pytest.raises(datasets.ChecksumError, match="sha256"):
        datasets.load_mnist(data_dir=data_dir, mirrors=[src.as_uri()])
    assert not (data_dir / name).exists()  # nothing corrupt is left behind


def test_corrupt_local_file_is_a_checksum_error(mirror, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    name = datasets.MNIST_FILES["train_label"][0]
    (data_dir / name).write_bytes(b"junk")
    with pytest.raises(datasets.ChecksumError, match=name):
        datasets.load_mnist(data_dir=data_dir, mirrors=[])


def test_offline_error_names_the_directory(tmp_path, monkeypatch):
    data_dir = tmp_path / "where-files-go"
    monkeypatch.setenv("FASTDL_DATA", str(data_dir))
    calls = []

    def offline(url, dest, timeout=30.0):
        calls.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets, "_fetch", offline)
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        datasets.load_mnist()
    assert str(data_dir) in str(info.value)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert len(calls) == len(datasets.MNIST_MIRRORS)  # every mirror was tried
    with pytest.raises(datasets.DatasetUnavailableError, match="download=False"):
        datasets.load_mnist(download=False)


def test_mnist_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTDL_DATA", str(tmp_path))
    assert datasets.mnist_dir() == tmp_path
    monkeypatch.delenv("FASTDL_DATA")
    monkeypatch.setenv("FASTDL_CACHE_DIR", str(tmp_path / "cache"))
    assert datasets.mnist_dir() == tmp_path / "cache" / "mnist"


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda b: b[:2] + b"\x09" + b[3:], "unsigned-byte"),    # wrong data type
    (lambda b: b[:-5], "bytes of data"),                     # truncated payload
    (lambda b: b[:6], "ends early"),                         # truncated header
])
def test_parse_idx_checks_the_header(tmp_path, mutate, match):
    good = _idx_bytes(np.arange(12).reshape(3, 4))
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(good))
    np.testing.assert_array_equal(datasets.parse_idx(path), np.arange(12).reshape(3, 4))
    with pytest.raises(ValueError, match="magic"):
        datasets.parse_idx(path, expected_magic=0x801)
    path.write_bytes(gzip.compress(mutate(good)))
    with pytest.raises(ValueError, match=match):
        datasets.parse_idx(path)


def test_load_digits_split_and_forms():
    (x_train, t_train), (x_test, t_test) = datasets.load_digits()
    assert x_train.shape[1] == 64 and x_train.shape[0] + x_test.shape[0] == 1797
    assert x_train.dtype == np.float64 and 0 <= x_train.min() and x_train.max() <= 1.0
    assert abs(x_test.shape[0] - 0.2 * 1797) <= 10
    # stratified: each class is ~20 % of the test set's share
    for c in range(10):
        share = np.sum(t_test == c) / (np.sum(t_test == c) + np.sum(t_train == c))
        assert 0.15 < share < 0.25
    (xa, _), _ = datasets.load_digits(seed=0)
    (xb, _), _ = datasets.load_digits(seed=1)
    np.testing.assert_array_equal(xa, x_train)
    assert not np.array_equal(xa, xb)
    (x_raw, t_oh), _ = datasets.load_digits(normalize=False, one_hot_label=True, flatten=False, dtype=np.float32)
    assert x_raw.shape[1:] == (1, 8, 8) and x_raw.dtype == np.float32 and x_raw.max() == 16
    np.testing.assert_array_equal(t_oh.argmax(axis=1), t_train)


def test_shuffle_and_validation_split():
    x = np.arange(20.0).reshape(10, 2)
    t = np.arange(10)
    xs, ts = datasets.shuffle_dataset(x, t, seed=0)
    np.testing.assert_array_equal(xs[:, 0] // 2, ts)  # rows stay paired
    assert sorted(ts) == list(range(10)) and not np.array_equal(ts, t)
    (x_tr, t_tr), (x_val, t_val) = datasets.train_val_split(x, t, 0.3, seed=0)
    assert len(x_val) == 3 and len(x_tr) == 7
    assert sorted(np.r_[t_tr, t_val]) == list(range(10))
    (x_tr, _), (x_val, _) = datasets.train_val_split(x, t, 0.2, shuffle=False)
    np.testing.assert_array_equal(x_val, x[:2])
    with pytest.raises(ValueError, match="validation_ratio"):
        datasets.train_val_split(x, t, 1.5)
    with pytest.raises(ValueError, match="t must"):
        datasets.shuffle_dataset(x, t[:5])


# --- the mnist.npz cache is checked like the IDX files, rebuilt when bad, written atomically (issue 12) -----

def _cached_dir(mirror, tmp_path):
    """A data directory holding the four IDX files and a good cache built from them."""
    src, arrays = mirror
    data_dir = tmp_path / "data"
    datasets.load_mnist(data_dir=data_dir, mirrors=[src.as_uri()])
    return data_dir, arrays


def _write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _good_cache_arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _mutations():
    def shapes(a):
        a["train_img"] = a["train_img"].reshape(N_TRAIN, 784)
    def labels(a):
        a["test_label"] = a["test_label"].copy()
        a["test_label"][0] = 200
    def floats(a):
        a["train_img"] = a["train_img"].astype(np.float64)
    def counts(a):
        a["train_label"] = a["train_label"][:-1]
    def hashes(a):  # a cache built from other files (another data set, an older download)
        a["sha256_test_img"] = np.array("0" * 64)
    def old_format(a):
        for key in [k for k in a if k.startswith("sha256_")]:
            del a[key]
        a["version"] = np.int64(1)
    return {"shapes": (shapes, "28, 28"), "label 200": (labels, "labels must be in 0-9; got 200"),
            "float64 images": (floats, "uint8"), "counts": (counts, "as many labels as images"),
            "source hashes": (hashes, "sha256"), "format 1": (old_format, "cache format 1")}


@pytest.mark.parametrize("case", list(_mutations()))
def test_bad_cache_contents_are_rebuilt_from_the_idx_files(mirror, tmp_path, case):
    data_dir, arrays = _cached_dir(mirror, tmp_path)
    cache = data_dir / "mnist.npz"
    bad = _good_cache_arrays(cache)
    mutate, why = _mutations()[case]
    mutate(bad)
    _write_npz(cache, **bad)
    with pytest.warns(RuntimeWarning, match=rf"load_mnist: the cache {cache}.*{why}.*rebuilding") as caught:
        (x, t), (x_test, t_test) = datasets.load_mnist(normalize=False, data_dir=data_dir, download=False)
    assert len(caught) == 1
    np.testing.assert_array_equal(x, arrays["train_img"].reshape(N_TRAIN, 784))
    np.testing.assert_array_equal(t_test, arrays["test_label"])
    assert x.dtype == np.uint8
    # rebuilt: the next load reads the (good) cache without a warning, even without the IDX files
    for f in data_dir.glob("*.gz"):
        f.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x2, _), _ = datasets.load_mnist(normalize=False, data_dir=data_dir, download=False)
    np.testing.assert_array_equal(x2, x)


@pytest.mark.parametrize("damage", ["truncated", "crc", "not a zip", "pickled"])
def test_damaged_cache_file_is_named_and_rebuilt(mirror, tmp_path, damage):
    data_dir, arrays = _cached_dir(mirror, tmp_path)
    cache = data_dir / "mnist.npz"
    raw = bytearray(cache.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "crc":  # flip one pixel byte inside the stored train images: the zip CRC no longer matches
        i = raw.find(bytes(arrays["train_img"].reshape(-1)[:64]))
        assert i > 0
        raw[i + 10] ^= 0xFF
    elif damage == "not a zip":
        raw = bytearray(b"hello")
    else:  # an object array: would need pickle to load
        bad = _good_cache_arrays(cache)
        bad["train_label"] = np.array([object()] * N_TRAIN, dtype=object)
        _write_npz(cache, **bad)
        raw = bytearray(cache.read_bytes())
    cache.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match=rf"the cache {cache} is not usable \(unreadable"):
        (_, t), _ = datasets.load_mnist(data_dir=data_dir, download=False)
    np.testing.assert_array_equal(t, arrays["train_label"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.load_mnist(data_dir=data_dir, download=False)  # repaired for good


def test_cache_is_written_atomically(mirror, tmp_path, monkeypatch):
    data_dir, _ = _cached_dir(mirror, tmp_path)
    cache = data_dir / "mnist.npz"
    good = cache.read_bytes()
    cache.write_bytes(b"broken")
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))

    def dying_replace(src, dst):  # the process dies between writing and renaming
        assert os.path.dirname(src) == str(data_dir) and calls  # a temporary file beside it, fsynced first
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.warns(RuntimeWarning, match="not usable"):
        datasets.load_mnist(data_dir=data_dir, download=False)
    assert cache.read_bytes() == b"broken"                       # the old file is untouched ...
    assert sorted(p.name for p in data_dir.iterdir() if "mnist" in p.name) == ["mnist.npz"]  # ... no debris
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.warns(RuntimeWarning, match="not usable"):
        datasets.load_mnist(data_dir=data_dir, download=False)
    assert cache.read_bytes() == good


def test_parse_idx_rejects_sizes_overflowing_int64(tmp_path):
    path = tmp_path / "huge-idx1-ubyte"
    # 2**31 * 2**31 * 4 = 2**64 elements: np.prod wraps it to 0 in int64
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (2**31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big"))
    with pytest.raises(ValueError, match=rf"parse_idx: {path} must announce at most \d+ elements; got shape "
                                         r"\(2147483648, 2147483648, 4\)"):
        datasets.parse_idx(path)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_load_diabetes_standardized_with_training_statistics(dtype):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes as sk_load

    (x, t), (xt, tt) = datasets.load_diabetes(dtype=dtype)
    assert x.shape == (354, 10) and xt.shape == (88, 10) and t.shape == (354, 1) and tt.shape == (88, 1)
    assert x.dtype == xt.dtype == t.dtype == dtype
    # the training part is standardized by its own statistics: mean ~0, std ~1 per feature ...
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(x.std(axis=0), 1, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # ... and the test part by the same (training) statistics, not its own
    assert np.abs(xt.mean(axis=0)).max() > 1e-3
    raw = sk_load(scaled=False)
    (rx, rt), (rxt, rtt) = datasets.load_diabetes(normalize=False)
    mean, std = rx.mean(axis=0), rx.std(axis=0)
    np.testing.assert_allclose(xt, (rxt - mean) / std, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # the target is not scaled; train and test together are the whole data set
    np.testing.assert_array_equal(rt, t.astype(np.float64) if dtype == np.float64 else rt)
    np.testing.assert_array_equal(np.sort(np.r_[rt[:, 0], rtt[:, 0]]), np.sort(raw.target))
    assert rx.shape == (354, 10) and np.isin(rx[:, 1], (1.0, 2.0)).all()  # raw: sex coded 1/2


def test_load_diabetes_split_and_validation():
    (x, _), (xt, _) = datasets.load_diabetes(test_ratio=0.5, seed=3)
    assert x.shape[0] == 221 and xt.shape[0] == 221
    (a, _), _ = datasets.load_diabetes(seed=1)
    (b, _), _ = datasets.load_diabetes(seed=1)
    (c, _), _ = datasets.load_diabetes(seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="load_diabetes: test_ratio must be"):
        datasets.load_diabetes(test_ratio=1.0)
    with pytest.raises(TypeError, match="load_diabetes: dtype must be float32 or float64"):
        datasets.load_diabetes(dtype=np.int32)


def test_digits_read_from_the_bundled_file_equal_scikit_learns():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data, target = datasets._bundled_digits()
    bunch = sklearn_datasets.load_digits()
    np.testing.assert_array_equal(data, bunch.data)
    np.testing.assert_array_equal(target, bunch.target)
    assert data.dtype == np.float64 and target.dtype == np.int64


def test_load_digits_does_not_import_scikit_learn():
    code = ("import sys, fastdl.datasets as d; d.load_digits(); "
            "print(sorted(m for m in sys.modules if m == 'sklearn' or m.startswith('sklearn.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
