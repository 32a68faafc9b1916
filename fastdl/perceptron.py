"""Rosenblatt's perceptron (Géron's threshold logic unit) with scikit-learn's ``fit``/``predict``/``score``.

A linear threshold unit per class, trained one-vs-rest with the perceptron learning rule::

    z = w . x + b                      y in {-1, +1}  (+1: the sample is of this classifier's class)
    if y * z <= 0:                     a mistake (a sample on the boundary counts as one)
        w <- w + lr * y * x
        b <- b + lr * y

The epoch loop runs in a compiled kernel (:mod:`fastdl.kernels.perceptron`); epochs stop as soon as
a whole epoch makes no mistake (then no later epoch can change anything) or after ``max_epochs``.
On linearly separable data that happens after finitely many updates (the perceptron convergence
theorem: at most ``(R / gamma)**2`` mistakes for radius ``R`` and margin ``gamma``).

Relation to scikit-learn and to Géron
    ``Perceptron(lr=a, shuffle=False)`` makes exactly the updates of
    ``sklearn.linear_model.Perceptron(eta0=a, shuffle=False, tol=None, penalty=None)`` (its defaults
    otherwise: ``alpha`` unused without a penalty, ``fit_intercept=True``, one-vs-rest for three or
    more classes, one classifier for two): same order, same arithmetic (the dot product summed in
    float64 from the left, then the bias added), so float64 coefficients agree to the bit while both
    run the same number of epochs. Differences: scikit-learn stops on ``tol``/``n_iter_no_change``
    (the summed perceptron loss stalled for 5 epochs; with ``tol=None`` it always runs ``max_iter``
    epochs), this class on an epoch without mistakes, so ``n_iter_`` differs while the coefficients
    of a converged classifier do not (an epoch without mistakes changes nothing); shuffling draws
    other permutations (NumPy's ``default_rng(seed)`` here, one permutation per epoch shared by the
    classifiers; scikit-learn's own generator per classifier there). Prediction is scikit-learn's:
    the class of the largest score; with two classes the second class where ``z > 0``. Géron's TLU
    writes the rule with labels in {0, 1} and a Heaviside step (``z >= 0`` is positive); this is the
    same rule except that a positive sample exactly on the boundary (``z == 0``, such as the first
    sample seen from zero weights) is a mistake here and not there.
"""

from __future__ import annotations

import numpy as np

from . import _checks, runtime
from .kernels import perceptron as _k

__all__ = ["Perceptron"]


class Perceptron:
    """Linear perceptron classifier trained with the perceptron learning rule (one-vs-rest).

    Parameters
    ----------
    lr : float
        Learning rate η (scikit-learn's ``eta0``); from zero weights it only scales ``coef_`` and
        ``intercept_``, not the predictions.
    max_epochs : int
        Passes over the training data at most (scikit-learn's ``max_iter``).
    shuffle : bool
        Visit the samples in a new random order every epoch.
    seed : int, optional
        Seed of the shuffling (``np.random.default_rng(seed)``; the global generator is not used).

    Attributes
    ----------
    classes_ : numpy.ndarray
        The sorted distinct labels seen by :meth:`fit`.
    coef_ : numpy.ndarray
        ``(1, n_features)`` for two classes, else ``(n_classes, n_features)``; the dtype of ``x``.
    intercept_ : numpy.ndarray
        ``(1,)`` or ``(n_classes,)``.
    n_iter_ : int
        Epochs run (the most of any classifier).
    n_iter_per_class_ : numpy.ndarray
        Epochs run by each classifier (the last one without mistakes when it converged).
    converged_ : bool
        Every classifier finished an epoch without a mistake.
    errors_ : list of int
        Mistakes (updates) of all classifiers together, per epoch.
    n_features_in_ : int
    """

    _where = "Perceptron"

    def __init__(self, lr: float = 1.0, max_epochs: int = 1000, shuffle: bool = True, seed: int | None = None):
        where = self._where
        self.lr = _checks.positive_number(lr, "lr", where)
        self.max_epochs = _checks.count(max_epochs, "max_epochs", where)
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else _checks.count(seed, "seed", where, minimum=0)
        self.coef_ = None

    # -- validation ---------------------------------------------------------------------------------------
    def _x(self, x, where: str) -> np.ndarray:
        x = _checks.float_array(x, "x", where, ndim=2)
        if x.shape[0] == 0:
            _checks.fail(where, "x", "a non-empty (n_samples, n_features) array", f"shape {x.shape}")
        if not np.all(np.isfinite(x)):
            _checks.fail(where, "x", "finite (no NaN or Inf)", f"{np.count_nonzero(~np.isfinite(x))} non-finite values")
        return _checks.contiguous(x)

    def _fitted_x(self, x, where: str) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError(f"{where}: call fit first; this Perceptron has not been fitted")
        x = self._x(x, where)
        if x.shape[1] != self.n_features_in_:
            _checks.fail(where, "x", f"an array with {self.n_features_in_} features per sample (as in fit)",
                         f"shape {x.shape}")
        return x

    # -- scikit-learn's API -----------------------------------------------------------------------------
    def fit(self, x, y) -> Perceptron:
        """Train from zero weights until an epoch makes no mistake or ``max_epochs`` have run.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n_samples, n_features)``, float32 or float64 (the coefficients take its dtype).
        y : array-like
            ``(n_samples,)`` labels of any sortable type, at least two distinct values.

        Returns
        -------
        Perceptron
            ``self``.
        """
        where = f"{self._where}.fit"
        x = self._x(x, where)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            _checks.fail(where, "y", f"1-D labels with as many samples as x ({x.shape[0]})", f"shape {y.shape}")
        classes, codes = np.unique(y, return_inverse=True)
        if classes.size < 2:
            _checks.fail(where, "y", "labels of at least two classes", f"{classes.size} class")
        codes = codes.astype(np.int64).reshape(-1)
        n, d = x.shape
        pos = np.array([1], dtype=np.int64) if classes.size == 2 else np.arange(classes.size, dtype=np.int64)
        k = pos.size
        W = np.zeros((k, d), dtype=x.dtype)
        b = np.zeros(k, dtype=x.dtype)
        lr = x.dtype.type(self.lr)
        active = np.ones(k, dtype=np.bool_)
        mistakes = np.zeros(k, dtype=np.int64)
        n_iter = np.zeros(k, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        order = np.arange(n, dtype=np.int64)
        errors = []
        for _ in range(self.max_epochs):
            if self.shuffle:
                order = rng.permutation(n).astype(np.int64)
            _k.epoch(x, codes, order, pos, W, b, lr, active, mistakes)
            n_iter[active] += 1
            errors.append(int(mistakes.sum()))
            active &= mistakes > 0
            if not active.any():
                break
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            runtime.report_nonfinite(where, "the weights overflowed to non-finite values (lower lr or scale x)")
        self.classes_, self.coef_, self.intercept_ = classes, W, b
        self.n_iter_per_class_ = n_iter
        self.n_iter_ = int(n_iter.max())
        self.converged_ = not bool(active.any())
        self.errors_ = errors
        self.n_features_in_ = d
        return self

    def decision_function(self, x) -> np.ndarray:
        """Scores ``x @ coef_.T + intercept_``: ``(n_samples,)`` for two classes, else ``(n_samples, n_classes)``.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n_samples, n_features)``.

        Returns
        -------
        numpy.ndarray
        """
        x = self._fitted_x(x, f"{self._where}.decision_function")
        scores = x.astype(self.coef_.dtype, copy=False) @ self.coef_.T + self.intercept_
        return scores[:, 0] if self.classes_.size == 2 else scores

    def predict(self, x) -> np.ndarray:
        """Labels: the class of the largest score; with two classes ``classes_[1]`` where ``z > 0``.

        Parameters
        ----------
        x : numpy.ndarray
            Samples to classify, one per row.

        Returns
        -------
        numpy.ndarray
            ``(n_samples,)`` of ``classes_``' type.
        """
        scores = self.decision_function(x)
        idx = (scores > 0).astype(np.int64) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[idx]

    def score(self, x, y) -> float:
        """Mean accuracy of :meth:`predict` on ``(x, y)``.

        Parameters
        ----------
        x : numpy.ndarray
            Samples.
        y : array-like
            True labels ``(n_samples,)``.

        Returns
        -------
        float
        """
        pred = self.predict(x)
        y = np.asarray(y)
        if y.shape != pred.shape:
            _checks.fail(f"{self._where}.score", "y", f"labels of shape {pred.shape}", f"shape {y.shape}")
        return float(np.mean(pred == y))

    def __repr__(self) -> str:
        return f"Perceptron(lr={self.lr}, max_epochs={self.max_epochs}, shuffle={self.shuffle}, seed={self.seed})"
