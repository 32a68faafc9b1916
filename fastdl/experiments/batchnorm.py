"""``batchnorm``: training accuracy with and without batch norm over 16 weight scales (the book's figure 6-19).

For each initial weight std in ``np.logspace(0, -4, 16)`` a 5-hidden-layer ReLU network of 100 units
trains with plain SGD (lr 0.01) on 1,000 samples for 20 epochs, once with batch normalization and
once without, on the same mini-batches. With batch norm, learning starts fast at almost every
scale; without it, most scales (too large or too small) barely learn.
"""

from __future__ import annotations

import numpy as np

from ..nets import MultiLayerNetExtend
from ..runtime import errstate
from ..trainer import make_optimizer
from . import _common


def run(dataset: str = "digits", out=None, seed: int = 0, n_scales: int = 16, epochs: int = 20,
        train_size: int = 1000, batch_size: int = 100, lr: float = 0.01, backend=None):
    """Train with and without batch norm at each weight scale and plot the training accuracy per epoch.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data (the first ``train_size`` samples).
    out : path-like, optional
        Output directory for ``batchnorm.png``.
    seed : int
        ``np.random.seed`` before the weights and batches are drawn.
    n_scales : int
        Weight scales, log-spaced from 1 to 1e-4 (the book: 16).
    epochs : int
        Epochs per run (the book: 20).
    train_size, batch_size : int
        Training samples and mini-batch size (the book: 1000, 100).
    lr : float
        SGD learning rate (the book: 0.01).
    backend : None, str or module
        Layers and optimizer (``None``: fastdl).

    Returns
    -------
    data : dict
        ``scales``; ``bn_train_acc`` and ``train_acc``: ``(n_scales, epochs)`` training accuracy with and
        without batch norm (epoch 1 is taken after the first step, as the book does).
    fig : matplotlib.figure.Figure
    """
    where = "batchnorm"
    n_scales = _common.check_count(n_scales, "n_scales", where)
    epochs = _common.check_count(epochs, "epochs", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    (x_train, t_train), _ = _common.load(dataset, where)
    train_size = min(_common.check_count(train_size, "train_size", where), x_train.shape[0])
    x_train, t_train = x_train[:train_size], t_train[:train_size]
    scales = np.logspace(0, -4, num=n_scales)
    np.random.seed(seed)
    bn_acc = np.zeros((n_scales, epochs))
    plain_acc = np.zeros((n_scales, epochs))
    with np.errstate(all="ignore"), errstate("ignore"):  # large scales diverge without batch norm: expected
        _train_all(x_train, t_train, scales, epochs, batch_size, lr, backend, bn_acc, plain_acc, where)

    cols = int(np.ceil(np.sqrt(n_scales)))
    rows = int(np.ceil(n_scales / cols))
    fig = _common.figure(figsize=(3 * cols, 2.4 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True)).ravel()
    x = np.arange(1, epochs + 1)
    for s, ax in enumerate(axes):
        if s >= n_scales:
            ax.axis("off")
            continue
        ax.plot(x, bn_acc[s], label="Batch Normalization", markevery=2)
        ax.plot(x, plain_acc[s], linestyle="--", label="Normal (without BatchNorm)", markevery=2)
        ax.set_title(f"W std: {scales[s]:.3g}", fontsize=9)
        ax.set_ylim(0, 1)
        if s % cols == 0:
            ax.set_ylabel("train accuracy")
        if s // cols == rows - 1:
            ax.set_xlabel("epochs")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    fig.suptitle(f"Batch normalization on {dataset}: 5x100 ReLU net, SGD lr={lr}, {train_size} samples")
    path = _common.save(fig, out, where)
    wins = int(np.sum(bn_acc[:, -1] > plain_acc[:, -1]))
    print(f"{where}: final training accuracy higher with batch norm at {wins}/{n_scales} scales; "
          f"mean {bn_acc[:, -1].mean():.3f} with vs {plain_acc[:, -1].mean():.3f} without -> {path}")
    data = {"scales": scales, "bn_train_acc": bn_acc, "train_acc": plain_acc, "epochs": epochs, "png": str(path)}
    return data, fig


def _train_all(x_train, t_train, scales, epochs, batch_size, lr, backend, bn_acc, plain_acc, where) -> None:
    train_size = x_train.shape[0]
    iter_per_epoch = max(train_size / batch_size, 1)
    for s, w in enumerate(scales):
        nets = [MultiLayerNetExtend(x_train.shape[1], [100] * 5, 10, weight_init_std=float(w), use_batchnorm=bn,
                                    backend=backend) for bn in (True, False)]
        optimizer = make_optimizer("sgd", {"lr": lr}, backend, where)  # stateless: one for both, as the book
        epoch = 0
        i = 0
        while epoch < epochs:
            batch_mask = np.random.choice(train_size, batch_size)
            x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
            for net in nets:
                optimizer.update(net.params, net.gradient(x_batch, t_batch))
            if i == 0 or np.floor(i / iter_per_epoch) > np.floor((i - 1) / iter_per_epoch):
                bn_acc[s, epoch] = nets[0].accuracy(x_train, t_train)
                plain_acc[s, epoch] = nets[1].accuracy(x_train, t_train)
                epoch += 1
            i += 1
