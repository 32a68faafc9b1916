"""``lr-finder``: the learning-rate range test per optimizer, and whether its suggestion trains well.

Left: :func:`fastdl.lr_find` on a 2x100 ReLU network (He init) for SGD, Momentum and Adam: the
smoothed training loss over an exponential lr sweep (log x), each suggestion (a tenth of the rate
at the lowest loss, Géron's rule) marked with a dot, the lowest-loss rate with a dotted line.
Right: the check: the same network trained for a few epochs at fixed rates across the sweep,
accuracy on a validation split of the training data (the test set is not used), the suggestions
marked again. A good suggestion sits on the plateau of high accuracy, left of the cliff.
"""

from __future__ import annotations

import numpy as np

from ..datasets import train_val_split
from ..lr_finder import lr_find
from ..nets import MultiLayerNetExtend
from ..trainer import Trainer
from . import _common

OPTIMIZERS = ("SGD", "Momentum", "Adam")


def run(dataset: str = "digits", out=None, seed: int = 0, steps: int = 100, start_lr: float = 1e-6,
        end_lr: float = 10.0, batch_size: int = 100, check_lrs: int = 9, check_epochs: int = 5,
        hidden=(100, 100), optimizers=OPTIMIZERS, dtype=np.float64):
    """Run the range test per optimizer and the fixed-rate check; plot both.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data (split 80/20 into training and validation).
    out : path-like, optional
        Output directory for ``lr-finder.png``.
    seed : int
        Seed of the weights (``np.random.seed``), the split and the sweeps' batches.
    steps, start_lr, end_lr, batch_size : int, float, float, int
        :func:`fastdl.lr_find` settings.
    check_lrs : int
        Fixed rates of the check, log-spaced over ``[start_lr * 1e3, end_lr]`` (0: no check).
    check_epochs : int
        Epochs of each check run.
    hidden : sequence of int
        Hidden layer sizes.
    optimizers : sequence of str
        Optimizer names.
    dtype : numpy dtype
        Network dtype.

    Returns
    -------
    data : dict
        ``results`` (name -> :class:`fastdl.lr_finder.LRFinderResult`), ``suggestion`` (name -> lr),
        ``check`` (name -> validation accuracy per rate in ``check_lr``), ``check_lr``.
    fig : matplotlib.figure.Figure
    """
    where = "lr-finder"
    steps = _common.check_count(steps, "steps", where, minimum=2)
    check_lrs = _common.check_count(check_lrs, "check_lrs", where, minimum=0)
    check_epochs = _common.check_count(check_epochs, "check_epochs", where)
    (x_all, t_all), _ = _common.load(dataset, where)
    (x_train, t_train), (x_val, t_val) = train_val_split(x_all, t_all, 0.2, seed=seed)

    def network():
        np.random.seed(seed)
        return MultiLayerNetExtend(x_train.shape[1], list(hidden), 10, dtype=dtype)

    results = {name: lr_find(network(), x_train, t_train, optimizer=name, start_lr=start_lr, end_lr=end_lr,
                             steps=steps, batch_size=batch_size, seed=seed, verbose=False) for name in optimizers}
    check_lr = np.geomspace(start_lr * 1e3, end_lr, check_lrs) if check_lrs else np.array([])
    check = {}
    for name in optimizers:
        accs = []
        for lr in check_lr:
            trainer = Trainer(network(), x_train, t_train, x_val, t_val, epochs=check_epochs,
                              mini_batch_size=batch_size, optimizer=name, optimizer_param={"lr": float(lr)},
                              verbose=False, seed=seed)
            trainer.train()
            accs.append(trainer.history.final_test_acc)
        check[name] = np.array(accs)

    fig = _common.figure(figsize=(13, 5))
    ax, ax_check = fig.subplots(1, 2, width_ratios=[1.25, 1])
    colors = {name: f"C{i}" for i, name in enumerate(optimizers)}
    top = 0.0
    for name, r in results.items():
        r.plot(ax, label=name, color=colors[name])
        top = max(top, float(r.losses[0]))
    ax.set_ylim(0, 2.0 * top)
    ax.set_title(f"lr range test: {steps} steps from {start_lr:g} to {end_lr:g}, batch {batch_size}\n"
                 "dot: suggestion (lr at the lowest loss / 10); dotted line: lowest loss")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="major", alpha=0.3)
    if check_lrs:
        for name in optimizers:
            ax_check.plot(check_lr, check[name], "o-", color=colors[name], label=name)
            ax_check.axvline(results[name].suggestion, color=colors[name], ls="--", lw=1.2)
        ax_check.set_xscale("log")
        ax_check.set(xlabel="learning rate (log scale, fixed for the run)", ylabel="validation accuracy",
                     ylim=(0, 1.02), title=f"check: {check_epochs} epochs at a fixed rate\n"
                                           "dashed: the suggested rate")
        ax_check.legend(fontsize=8, loc="lower left")
        ax_check.grid(True, which="major", alpha=0.3)
    else:
        ax_check.axis("off")
    sizes = "-".join(map(str, [x_train.shape[1], *hidden, 10]))
    fig.suptitle(f"Learning-rate finder on {dataset} ({x_train.shape[0]} training samples): {sizes} ReLU net, "
                 f"{np.dtype(dtype).name}")
    path = _common.save(fig, out, where)
    suggestion = {name: r.suggestion for name, r in results.items()}
    print(f"{where}: suggested lr " + ", ".join(f"{k} {v:.3g}" for k, v in suggestion.items()) + f" -> {path}")
    data = {"results": results, "suggestion": suggestion, "check": check, "check_lr": check_lr, "png": str(path)}
    return data, fig
