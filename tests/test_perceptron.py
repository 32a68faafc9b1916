"""fastdl.Perceptron: the convergence theorem, scikit-learn's updates to the bit, XOR, validation."""

import numpy as np
import pytest

from fastdl import Perceptron


def _separable(n=200, d=5, margin=0.3, seed=0):
    """Points at least ``margin`` from the plane w*.x + b* = 0 (unit w*), labelled by its side."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    b = 0.4
    x = rng.normal(size=(4 * n, d))
    z = x @ w + b
    keep = np.abs(z) >= margin
    x, z = x[keep][:n], z[keep][:n]
    return x, np.where(z > 0, 1, 0), w, b


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_converges_on_separable_data(shuffle, dtype):
    x, y, w, b = _separable()
    x = x.astype(dtype)
    p = Perceptron(max_epochs=1000, shuffle=shuffle, seed=3).fit(x, y)
    assert p.converged_ and p.n_iter_ < 1000
    assert p.errors_[-1] == 0 and all(e > 0 for e in p.errors_[:-1])
    assert p.score(x, y) == 1.0
    assert p.coef_.dtype == dtype and p.coef_.shape == (1, 5) and p.intercept_.shape == (1,)
    # Novikoff's bound on the number of updates, with the bias as a weight on a constant input 1
    xa = np.hstack([x.astype(np.float64), np.ones((x.shape[0], 1))])
    radius = np.linalg.norm(xa, axis=1).max()
    gamma = np.min(np.abs(x @ w + b)) / np.linalg.norm(np.r_[w, b])
    assert sum(p.errors_) <= (radius / gamma) ** 2


def test_lr_scales_weights_not_predictions():
    x, y, _, _ = _separable(seed=1)
    a = Perceptron(lr=1.0, shuffle=False).fit(x, y)
    b = Perceptron(lr=0.25, shuffle=False).fit(x, y)
    np.testing.assert_allclose(b.coef_, 0.25 * a.coef_, rtol=1e-12)
    assert a.errors_ == b.errors_
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_shuffle_is_seeded():
    x, y, _, _ = _separable(seed=2)
    a, b = Perceptron(seed=7).fit(x, y), Perceptron(seed=7).fit(x, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.errors_ == b.errors_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("epochs", [1, 7, 200])
def test_matches_sklearn_without_shuffle_on_iris(dtype, epochs):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import Perceptron as SkPerceptron

    assert sklearn
    x, y = load_iris(return_X_y=True)
    x = x.astype(dtype)
    ours = Perceptron(lr=0.5, max_epochs=epochs, shuffle=False).fit(x, y)
    ref = SkPerceptron(eta0=0.5, max_iter=epochs, shuffle=False, tol=None, penalty=None).fit(x, y)
    # same updates in the same order and arithmetic: the same coefficients, to the bit
    np.testing.assert_array_equal(ours.coef_, ref.coef_)
    np.testing.assert_array_equal(ours.intercept_, ref.intercept_)
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
    np.testing.assert_allclose(ours.decision_function(x), ref.decision_function(x), rtol=1e-5 if dtype == np.float32
                               else 1e-12)
    assert ours.score(x, y) == ref.score(x, y)
    # setosa is linearly separable from the rest: its classifier stops early here (scikit-learn runs on)
    assert ours.n_iter_per_class_[0] < 5 and ref.n_iter_ == epochs
    assert ours.n_iter_ == min(epochs, ours.n_iter_per_class_.max())


def test_matches_sklearn_binary_and_string_labels():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Perceptron as SkPerceptron

    x, y, _, _ = _separable(n=80, seed=4)
    labels = np.array(["no", "yes"])[y]
    ours = Perceptron(shuffle=False).fit(x, labels)
    ref = SkPerceptron(shuffle=False, tol=None, max_iter=ours.n_iter_).fit(x, labels)
    np.testing.assert_array_equal(ours.coef_, ref.coef_)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
    assert set(ours.predict(x)) == {"no", "yes"}


def test_xor_perceptron_cannot_two_layer_net_can():
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    p = Perceptron(max_epochs=100, shuffle=False).fit(x, y)
    assert not p.converged_ and p.n_iter_ == 100
    assert min(p.errors_) > 0 and p.score(x, y) <= 0.75  # no line separates XOR

    from fastdl import MultiLayerNetExtend
    from fastdl.optim import Adam

    np.random.seed(0)
    net = MultiLayerNetExtend(2, [8], 2, activation="relu")
    opt = Adam(lr=0.05)
    for _ in range(300):
        opt.update(net.params, net.gradient(x, y))
    assert net.accuracy(x, y) == 1.0
    assert net.loss(x, y) < 0.1


def test_validation_changes_nothing():
    x, y, _, _ = _separable(n=50, seed=5)
    p = Perceptron(shuffle=False).fit(x, y)
    coef = p.coef_.copy()
    with pytest.raises(TypeError, match="Perceptron.fit: x must be a float32 or float64 array"):
        p.fit(x.astype(np.int64), y)
    with pytest.raises(ValueError, match="Perceptron.fit: y must be 1-D labels with as many samples as x"):
        p.fit(x, y[:-1])
    with pytest.raises(ValueError, match="at least two classes"):
        p.fit(x, np.zeros(50))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        p.fit(bad, y)
    np.testing.assert_array_equal(p.coef_, coef)
    with pytest.raises(ValueError, match="x must be an array with 5 features per sample"):
        p.predict(x[:, :4])
    with pytest.raises(RuntimeError, match="call fit first"):
        Perceptron().predict(x)
    with pytest.raises(ValueError, match="Perceptron: lr must be a finite number > 0"):
        Perceptron(lr=0)
    with pytest.raises(TypeError, match="Perceptron: max_epochs must be an integer >= 1"):
        Perceptron(max_epochs=2.5)
    with pytest.raises(ValueError, match="Perceptron: seed must be an integer >= 0"):
        Perceptron(seed=-1)
