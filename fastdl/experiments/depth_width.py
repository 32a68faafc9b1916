"""``depth-width``: validation accuracy against parameter count for 1-6 hidden layers of 16-512 units (Géron ch. 10).

Every (depth, width) network (ReLU, He init, all hidden layers of one width) trains with Adam and
early stopping on a validation split of the training data (the test set is never used): it stops
once validation accuracy has not improved for ``patience`` epochs and keeps its best weights. Left:
the best validation accuracy against the number of parameters (log x), one line per depth, points
along a line for growing width. Right: the same numbers as a depth x width table.
"""

from __future__ import annotations

import numpy as np

from ..datasets import train_val_split
from ..nets import MultiLayerNetExtend
from ..trainer import Trainer
from . import _common

DEPTHS = (1, 2, 3, 4, 5, 6)
WIDTHS = (16, 32, 64, 128, 256, 512)


def run(dataset: str = "digits", out=None, seed: int = 0, depths=DEPTHS, widths=WIDTHS, max_epochs: int = 40,
        patience: int = 4, lr: float = 1e-3, batch_size: int = 100, validation_ratio: float = 0.2,
        dtype=np.float32):
    """Train every (depth, width) net with early stopping; plot validation accuracy against parameters.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data, split into training and validation parts.
    out : path-like, optional
        Output directory for ``depth-width.png``.
    seed : int
        Seed of the split, the weights and the batches.
    depths, widths : sequence of int
        Hidden layer counts and units per hidden layer.
    max_epochs : int
        Epoch limit of each run.
    patience : int
        Epochs without a better validation accuracy before a run stops (best weights restored).
    lr : float
        Adam's learning rate.
    batch_size : int
        Mini-batch size.
    validation_ratio : float
        Share of the training data held out for validation.
    dtype : numpy dtype
        Network dtype (float32 by default: a study of shapes, not of the book's numbers).

    Returns
    -------
    data : dict
        ``val_acc`` and ``params`` (arrays depths x widths), ``epochs`` (epochs run per net),
        ``best`` ((depth, width) of the highest validation accuracy).
    fig : matplotlib.figure.Figure
    """
    where = "depth-width"
    depths = [_common.check_count(d, "depths entries", where) for d in depths]
    widths = [_common.check_count(w, "widths entries", where) for w in widths]
    if not depths or not widths:
        raise ValueError(f"{where}: depths and widths must each list at least one size; got {depths!r}, {widths!r}")
    max_epochs = _common.check_count(max_epochs, "max_epochs", where)
    patience = _common.check_count(patience, "patience", where)
    (x_all, t_all), _ = _common.load(dataset, where)
    (x_train, t_train), (x_val, t_val) = train_val_split(x_all, t_all, validation_ratio, seed=seed)
    n_in, n_out = x_train.shape[1], 10
    val_acc = np.zeros((len(depths), len(widths)))
    n_params = np.zeros((len(depths), len(widths)), dtype=np.int64)
    epochs_run = np.zeros((len(depths), len(widths)), dtype=np.int64)
    for i, depth in enumerate(depths):
        for j, width in enumerate(widths):
            np.random.seed(seed)
            net = MultiLayerNetExtend(n_in, [width] * depth, n_out, dtype=dtype)
            trainer = Trainer(net, x_train, t_train, x_val, t_val, epochs=max_epochs, mini_batch_size=batch_size,
                              optimizer="adam", optimizer_param={"lr": lr}, verbose=False, seed=seed,
                              evaluate_sample_num_per_epoch=x_val.shape[0],  # (all of the validation part)
                              patience=patience, monitor="test_acc", restore_best_weights=True)
            history = trainer.train()
            val_acc[i, j] = history.final_test_acc  # the validation part, after restoring the best weights
            n_params[i, j] = sum(p.size for p in net.params.values())
            epochs_run[i, j] = len(history.epochs)

    fig = _common.figure(figsize=(14, 5.5))
    ax, ax_table = fig.subplots(1, 2, width_ratios=[1.35, 1])
    cmap = _cmap()
    for i, depth in enumerate(depths):
        color = cmap(i / max(1, len(depths) - 1))
        ax.plot(n_params[i], val_acc[i], "o-", color=color, label=f"{depth} hidden layer{'s' if depth > 1 else ''}")
    for j, width in enumerate(widths):  # width labels along the shallowest line
        ax.annotate(f"{width}", (n_params[0, j], val_acc[0, j]), textcoords="offset points", xytext=(0, -14),
                    ha="center", fontsize=8, color="0.3")
    ax.set_xscale("log")
    lo = float(val_acc.min())
    ax.set_ylim(max(0.0, lo - 0.05 * (1 - lo) - 0.02), 1.0)
    ax.set(xlabel="parameters (log scale)", ylabel="best validation accuracy",
           title="validation accuracy against size\n(numbers: units per hidden layer, shallowest net)")
    ax.legend(title="depth", fontsize=8, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    im = ax_table.imshow(val_acc, cmap="viridis", aspect="auto", vmin=lo, vmax=float(val_acc.max()))
    ax_table.set_xticks(range(len(widths)), [str(w) for w in widths])
    ax_table.set_yticks(range(len(depths)), [str(d) for d in depths])
    ax_table.set(xlabel="units per hidden layer", ylabel="hidden layers", title="best validation accuracy")
    mid = (lo + float(val_acc.max())) / 2
    for i in range(len(depths)):
        for j in range(len(widths)):
            ax_table.text(j, i, f"{val_acc[i, j]:.3f}", ha="center", va="center", fontsize=8,
                          color="white" if val_acc[i, j] < mid else "black")
    fig.colorbar(im, ax=ax_table, label="validation accuracy")
    fig.suptitle(f"Depth and width on {dataset}: {x_train.shape[0]} training / {x_val.shape[0]} validation samples, "
                 f"Adam lr {lr:g}, early stopping (patience {patience}, at most {max_epochs} epochs), "
                 f"{np.dtype(dtype).name}")
    path = _common.save(fig, out, where)
    bi, bj = np.unravel_index(int(np.argmax(val_acc)), val_acc.shape)
    best = (depths[bi], widths[bj])
    print(f"{where}: best validation accuracy {val_acc[bi, bj]:.3f} with {best[0]} x {best[1]} units "
          f"({n_params[bi, bj]:,} parameters) -> {path}")
    data = {"depths": depths, "widths": widths, "val_acc": val_acc, "params": n_params, "epochs": epochs_run,
            "best": best, "png": str(path)}
    return data, fig


def _cmap():
    from matplotlib import colormaps

    return colormaps["viridis"].resampled(256)
