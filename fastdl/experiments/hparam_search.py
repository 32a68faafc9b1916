"""``hparam-search``: random search of learning rate and weight decay on a validation split (figure 6-24).

As the book: 500 training samples, 20 % of them held out for validation; each trial draws
``lr = 10**U(-6, -2)`` and ``weight_decay = 10**U(-8, -4)``, trains a 6-hidden-layer ReLU network of
100 units with SGD for 50 epochs and records validation and training accuracy. The figure shows
the 20 best trials' curves (validation solid, training dashed) and every trial's final validation
accuracy over (lr, weight decay): good runs sit at the high learning rates, weight decay matters little.
"""

from __future__ import annotations

import numpy as np

from ..datasets import train_val_split
from ..nets import MultiLayerNet
from ..trainer import Trainer
from . import _common


def run(dataset: str = "digits", out=None, seed: int = 0, trials: int = 100, epochs: int = 50,
        train_size: int = 500, validation_ratio: float = 0.2, best: int = 20,
        lr_range=(-6, -2), weight_decay_range=(-8, -4), dtype=np.float64, backend=None):
    """Random search; returns every trial's curves and plots the best ones and the (lr, decay) scatter.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Data; the first ``train_size`` training samples are split into training and validation.
    out : path-like, optional
        Output directory for ``hparam-search.png``.
    seed : int
        ``np.random.seed`` before the split and the draws.
    trials, epochs : int
        The book: 100 trials of 50 epochs.
    train_size : int
        Samples before the split (the book: 500).
    validation_ratio : float
        Held-out share (the book: 0.2).
    best : int
        Curves drawn (the book: 20).
    lr_range, weight_decay_range : tuple of float
        Exponent ranges of the log-uniform draws.
    dtype : numpy dtype
        Network dtype (float32 halves the GEMM time; the book uses float64).
    backend : None, str or module
        Layers and optimizer (``None``: fastdl).

    Returns
    -------
    data : dict
        ``trials``: list of dicts (``lr``, ``weight_decay``, ``val_acc``, ``train_acc`` per epoch,
        ``final_val_acc``) sorted best first; ``best_lr``, ``best_weight_decay``.
    fig : matplotlib.figure.Figure
    """
    where = "hparam-search"
    trials = _common.check_count(trials, "trials", where)
    epochs = _common.check_count(epochs, "epochs", where)
    best = _common.check_count(best, "best", where)
    (x_all, t_all), _ = _common.load(dataset, where)
    n = min(_common.check_count(train_size, "train_size", where), x_all.shape[0])
    np.random.seed(seed)
    (x_train, t_train), (x_val, t_val) = train_val_split(x_all[:n], t_all[:n], validation_ratio)
    results = []
    for _ in range(trials):
        weight_decay = 10 ** np.random.uniform(*weight_decay_range)
        lr = 10 ** np.random.uniform(*lr_range)
        net = MultiLayerNet(x_train.shape[1], [100] * 6, 10, weight_decay_lambda=float(weight_decay),
                            dtype=dtype, backend=backend)
        trainer = Trainer(net, x_train, t_train, x_val, t_val, epochs=epochs, mini_batch_size=100, optimizer="sgd",
                          optimizer_param={"lr": float(lr)}, verbose=False, backend=backend)
        trainer.train()
        results.append({"lr": float(lr), "weight_decay": float(weight_decay),
                        "val_acc": np.array(trainer.test_acc_list), "train_acc": np.array(trainer.train_acc_list),
                        "final_val_acc": float(trainer.test_acc_list[-1])})
    results.sort(key=lambda r: r["final_val_acc"], reverse=True)

    shown = results[:best]
    cols = min(5, len(shown))
    rows = int(np.ceil(len(shown) / cols))
    fig = _common.figure(figsize=(17, max(4.5, 1.9 * rows + 1)))
    left, right = fig.subfigures(1, 2, width_ratios=[5, 2.4])
    axes = np.atleast_1d(left.subplots(rows, cols, sharex=True, sharey=True)).ravel()
    for i, ax in enumerate(axes):
        if i >= len(shown):
            ax.axis("off")
            continue
        r = shown[i]
        x = np.arange(1, len(r["val_acc"]) + 1)
        ax.plot(x, r["val_acc"], label="validation")
        ax.plot(x, r["train_acc"], "--", label="train")
        ax.set_ylim(0, 1)
        ax.set_title(f"Best-{i + 1}: val {r['final_val_acc']:.2f}\nlr {r['lr']:.1e}, wd {r['weight_decay']:.1e}",
                     fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("accuracy", fontsize=8)
        if i // cols == rows - 1:
            ax.set_xlabel("epochs", fontsize=8)
    left.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    left.suptitle(f"Best {len(shown)} of {trials} trials")
    ax = right.subplots()
    lrs = np.array([r["lr"] for r in results])
    wds = np.array([r["weight_decay"] for r in results])
    accs = np.array([r["final_val_acc"] for r in results])
    sc = ax.scatter(lrs, wds, c=accs, cmap="viridis", vmin=0, vmax=1, s=30, label="trial")
    ax.scatter(lrs[:len(shown)], wds[:len(shown)], facecolors="none", edgecolors="red", s=80,
               label=f"best {len(shown)}")
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="weight decay λ",
           title="final validation accuracy")
    ax.legend(loc="upper left", fontsize=8)
    right.colorbar(sc, ax=ax, label="validation accuracy")
    fig.suptitle(f"Hyper-parameter random search on {dataset}: {x_train.shape[0]} train / {x_val.shape[0]} "
                 f"validation samples, {epochs} epochs, SGD")
    path = _common.save(fig, out, where)
    top = results[0]
    print(f"{where}: best of {trials}: validation accuracy {top['final_val_acc']:.3f} at lr {top['lr']:.2e}, "
          f"weight decay {top['weight_decay']:.2e} -> {path}")
    data = {"trials": results, "best_lr": top["lr"], "best_weight_decay": top["weight_decay"], "png": str(path)}
    return data, fig
