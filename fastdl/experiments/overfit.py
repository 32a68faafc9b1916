"""``overfit``: train and test accuracy on 300 samples: baseline, weight decay, dropout (figures 6-20 to 6-23).

A 6-hidden-layer ReLU network of 100 units trains with SGD (lr 0.01, batch 100) on only 300
samples: the baseline fits the training set perfectly and the test accuracy stays far below (the
gap is overfitting); weight decay λ = 0.1 and dropout (ratio 0.2) narrow the gap.
"""

from __future__ import annotations

import numpy as np

from ..nets import MultiLayerNet, MultiLayerNetExtend
from ..trainer import Trainer
from . import _common

CONFIGS = ("baseline", "weight decay λ=0.1", "dropout 0.2")


def run(dataset: str = "digits", out=None, seed: int = 0, epochs: int = 201, train_size: int = 300,
        weight_decay_lambda: float = 0.1, dropout_ratio: float = 0.2, lr: float = 0.01, backend=None):
    """Train the three set-ups on a small training set and plot train/test accuracy per epoch.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Data; the first ``train_size`` training samples are used.
    out : path-like, optional
        Output directory for ``overfit.png``.
    seed : int
        ``np.random.seed`` before each set-up (same weights draw order, same batches).
    epochs : int
        Epochs (the book: 201 with weight decay, 301 with dropout).
    train_size : int
        Training samples (the book: 300).
    weight_decay_lambda, dropout_ratio, lr : float
        The book's 0.1, 0.2 and 0.01.
    backend : None, str or module
        Layers and optimizer (``None``: fastdl).

    Returns
    -------
    data : dict
        Per set-up: ``train_acc`` and ``test_acc`` per epoch, ``gap`` (final train - test).
    fig : matplotlib.figure.Figure
    """
    where = "overfit"
    epochs = _common.check_count(epochs, "epochs", where)
    (x_train, t_train), (x_test, t_test) = _common.load(dataset, where)
    n = min(_common.check_count(train_size, "train_size", where), x_train.shape[0])
    x_train, t_train = x_train[:n], t_train[:n]
    d = x_train.shape[1]
    builders = {
        CONFIGS[0]: lambda: MultiLayerNet(d, [100] * 6, 10, backend=backend),
        CONFIGS[1]: lambda: MultiLayerNet(d, [100] * 6, 10, weight_decay_lambda=weight_decay_lambda, backend=backend),
        CONFIGS[2]: lambda: MultiLayerNetExtend(d, [100] * 6, 10, use_dropout=True, dropout_ratio=dropout_ratio,
                                                backend=backend),
    }
    results = {}
    for name, build in builders.items():
        np.random.seed(seed)
        net = build()
        trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=epochs, mini_batch_size=100,
                          optimizer="sgd", optimizer_param={"lr": lr}, verbose=False, backend=backend)
        trainer.train()
        train_acc, test_acc = np.array(trainer.train_acc_list), np.array(trainer.test_acc_list)
        results[name] = {"train_acc": train_acc, "test_acc": test_acc, "gap": float(train_acc[-1] - test_acc[-1])}

    fig = _common.figure(figsize=(13, 4.2))
    axes = fig.subplots(1, len(results), sharey=True)
    for ax, (name, r) in zip(axes, results.items()):
        x = np.arange(1, len(r["train_acc"]) + 1)
        every = max(1, len(x) // 20)
        ax.plot(x, r["train_acc"], marker="o", markevery=every, ms=4, label="train")
        ax.plot(x, r["test_acc"], marker="s", markevery=every, ms=4, label="test")
        ax.set(xlabel="epochs", ylim=(0, 1.02), title=f"{name}: gap {r['gap']:.3f}")
        ax.legend(loc="lower right")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"Overfitting on {dataset}: {n} training samples, 6x100 ReLU net, SGD lr={lr}")
    path = _common.save(fig, out, where)
    print(f"{where}: final train/test accuracy: " + ", ".join(
        f"{k} {r['train_acc'][-1]:.3f}/{r['test_acc'][-1]:.3f}" for k, r in results.items()) + f" -> {path}")
    data = {**results, "epochs": epochs, "train_size": n, "png": str(path)}
    return data, fig
