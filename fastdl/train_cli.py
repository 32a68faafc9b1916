"""The ``fastdl train`` command: the book's networks on a built-in data set, from the command line.

It builds a :class:`~fastdl.nets.MultiLayerNetExtend` (``loss='mse'`` on the regression set diabetes),
runs a :class:`~fastdl.trainer.Trainer` and writes the history (JSON) and a figure (PNG; for regression
also predicted against true values of the test set); ``--checkpoint-dir``/``--resume`` keep and continue a
run (see :mod:`fastdl.checkpoint`); ``--lr auto`` asks :func:`fastdl.lr_find` for the rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import optim
from .trainer import Trainer, plot_history, plot_predictions

__all__ = ["register_cli"]


# -- the `fastdl train` command ----------------------------------------------------------------------------
def _hidden_list(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        msg = f"--hidden must be comma-separated integers such as 100,100; got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--hidden must list positive sizes such as 100,100; got {text!r}")
    return sizes


def _load(dataset: str, dtype):
    from . import datasets

    if dataset == "digits":
        return datasets.load_digits(normalize=True, dtype=dtype)
    if dataset == "diabetes":
        return datasets.load_diabetes(normalize=True, dtype=dtype)
    (x_tr, t_tr), (x_te, t_te) = datasets.load_mnist(normalize=True)
    return (x_tr.astype(dtype, copy=False), t_tr), (x_te.astype(dtype, copy=False), t_te)


def _lr_value(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr must be a number such as 0.01 or 'auto'; got {text!r}") from None


def _auto_lr(args: argparse.Namespace, net, x_train, t_train) -> float:
    """``--lr auto``: :func:`fastdl.lr_find`'s suggestion (the network is restored afterwards)."""
    from .lr_finder import lr_find

    found = lr_find(net, x_train, t_train, optimizer=args.optimizer, batch_size=args.batch_size, seed=args.seed,
                    verbose=not args.quiet)
    print(f"lr auto: {found.suggestion:.3g} (lr_find: a tenth of the lowest-loss rate {found.lr_min:.3g}, "
          f"{len(found.lrs)} steps, {found.stop_reason})")
    return found.suggestion


#: data sets with real-valued targets: trained with loss='mse', scored by RMSE and R²
_REGRESSION_SETS = ("diabetes",)

#: the arguments that define a `fastdl train` run (kept in its checkpoints; --resume takes them back)
_RUN_ARGS = ("dataset", "hidden", "activation", "init", "optimizer", "lr", "batchnorm", "dropout", "weight_decay",
             "epochs", "batch_size", "patience", "dtype", "backend", "seed", "out")


def _train_command(args: argparse.Namespace) -> int:
    from . import runtime
    from .nets import MultiLayerNetExtend

    if args.resume is not None:  # (first: --out may come from the checkpoint)
        from .checkpoint import adopt_run_args

        adopt_run_args(args, _RUN_ARGS)
    out = Path(args.out)
    problem = runtime.writable_dir_problem(out)  # before training: a bad --out must not cost the run
    if problem:
        print(f"fastdl train: error: --out must be a writable directory; got {str(out)!r} ({problem})",
              file=sys.stderr)
        raise SystemExit(2)
    dtype = np.dtype(args.dtype)
    t0 = time.perf_counter()
    (x_train, t_train), (x_test, t_test) = _load(args.dataset, dtype)
    if args.resume is not None:
        trainer = Trainer.resume(args.resume, x_train, t_train, x_test, t_test, verbose=not args.quiet)
        net = trainer.network
        lr = trainer.history.config.get("optimizer_param", {}).get("lr", trainer.optimizer.lr)
    else:
        np.random.seed(args.seed)
        regression = args.dataset in _REGRESSION_SETS
        net = MultiLayerNetExtend(x_train.shape[1], args.hidden, t_train.shape[1] if regression else 10,
                                  activation=args.activation,
                                  weight_init_std=args.init, weight_decay_lambda=args.weight_decay,
                                  use_dropout=args.dropout > 0, dropout_ratio=args.dropout or 0.5,
                                  use_batchnorm=args.batchnorm, dtype=dtype, backend=args.backend,
                                  loss="mse" if regression else "cross_entropy")
        lr = _auto_lr(args, net, x_train, t_train) if args.lr == "auto" else args.lr
        trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                          mini_batch_size=args.batch_size, optimizer=args.optimizer, optimizer_param={"lr": lr},
                          verbose=not args.quiet, patience=args.patience,
                          restore_best_weights=args.patience is not None, backend=args.backend,
                          checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every)
        trainer.checkpoint_extra["fastdl_train"] = {key: getattr(args, key) for key in _RUN_ARGS}
    history = trainer.train()
    total = time.perf_counter() - t0
    history.config.update(dataset=args.dataset, dtype=dtype.name, backend=args.backend or "fastdl",
                          total_time_s=total)
    stem = f"train-{args.dataset}"
    json_path = history.save_json(out / f"{stem}.json")
    png_path = out / f"{stem}.png"
    plot_history(history, png_path, title=f"{args.dataset}: {net!r}, {args.optimizer} lr={lr:.3g}")
    n_test = x_test.shape[0]
    run = (f"{history.iterations} steps, {history.samples_per_s:,.0f} samples/s in training steps | "
           f"{history.wall_time_s:.2f} s training, {total:.2f} s total | stop: {history.stop_reason}")
    if history.final_test_r2 is None:
        print(f"test accuracy {history.final_test_acc:.4f} ({round(history.final_test_acc * n_test)}/{n_test}) | {run}")
        print(f"history: {json_path}\nplot:    {png_path}")
    else:
        y_test = net.predict(x_test)
        rmse = float(np.sqrt(np.mean((y_test.astype(np.float64) - t_test) ** 2)))
        pred_path = out / f"{stem}-pred.png"
        plot_predictions(t_test, y_test, pred_path, title=f"{args.dataset} test set\n{net!r}")
        print(f"test RMSE {rmse:.4g}, R2 {history.final_test_r2:.4f} ({n_test} samples) | {run}")
        print(f"history: {json_path}\nplot:    {png_path}\npredicted vs true: {pred_path}")
    return 0 if history.stop_reason.startswith(("completed", "early stopping")) else 1


def register_cli(subparsers) -> None:
    """Add the ``train`` subcommand to the ``fastdl`` command line.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "train", help="train a MultiLayerNetExtend on digits, MNIST or diabetes (regression)",
        description="Train a fully connected network with the book's Trainer; prints test accuracy (regression: "
                    "test RMSE and R2) and samples/s, saves the history JSON and a loss/accuracy plot to --out "
                    "(regression: also a predicted-vs-true plot of the test set).")
    p.add_argument("--dataset", choices=("digits", "mnist", "diabetes"), default="digits",
                   help="digits: scikit-learn's 8x8 digits (offline); mnist: downloaded once; diabetes: scikit-learn's "
                        "diabetes regression set (offline; loss mse) (default: digits)")
    p.add_argument("--hidden", type=_hidden_list, default=[100, 100], help="hidden sizes, e.g. 100,100 (default)")
    from . import activations

    p.add_argument("--activation", choices=activations.names(), default="relu",
                   help="hidden activation, any registered in fastdl.activations (default relu)")
    p.add_argument("--init", default="relu",
                   help="weight init: relu/he, sigmoid/xavier, glorot, lecun, auto (the activation's own), or a std")
    p.add_argument("--optimizer", default="adam", type=str.lower, choices=[*optim.OPTIMIZERS, *optim.ALIASES],
                   metavar="NAME", help=f"one of {', '.join(optim.OPTIMIZERS)} (any case; default adam)")
    p.add_argument("--lr", type=_lr_value, default=0.01,
                   help="learning rate (default 0.01), or 'auto': fastdl.lr_find's suggestion, printed")
    p.add_argument("--batchnorm", action="store_true", help="batch normalization after each hidden Affine")
    p.add_argument("--dropout", type=float, default=0.0, metavar="RATIO", help="dropout ratio (default 0: none)")
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="LAMBDA", help="L2 strength (default 0)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping on test accuracy (regression: test R2) (default: off)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--backend", choices=("fastdl", "reference"), default=None,
                   help="layers and optimizers: fastdl (compiled, default) or reference (plain NumPy)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, mini-batches and dropout (default 0)")
    p.add_argument("--out", default="fastdl-out", help="directory for train-<dataset>.json/.png (default fastdl-out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="write checkpoints to DIR at epoch ends and on Ctrl-C (default: none)")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N", help="epochs between checkpoints (1)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (a directory or one ckpt file) with its own arguments")
    p.set_defaults(func=_train_command)
    p.set_defaults(run_defaults=vars(p.parse_args([])))
