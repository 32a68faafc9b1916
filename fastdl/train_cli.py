"""The ``fastdl train`` command: the book's networks on a built-in data set, from the command line.

It builds a :class:`~fastdl.nets.MultiLayerNetExtend` (``loss='mse'`` on the regression set diabetes),
runs a :class:`~fastdl.trainer.Trainer` and writes the history (JSON) and a figure (PNG; for regression
also predicted against true values of the test set); ``--checkpoint-dir``/``--resume`` keep and continue a
run (see :mod:`fastdl.checkpoint`); ``--lr auto`` asks :func:`fastdl.lr_find` for the rate.
Before the run it warms the kernels up (compile or load, reported apart from the training time);
after it, it times a few steps of the same network on the NumPy reference (``--no-compare`` skips it;
see ``fastdl._train_report``). User errors print one line and exit 2 (see ``fastdl._cliargs``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import _cliargs, optim
from .trainer import Trainer, make_optimizer, plot_history, plot_predictions

__all__ = ["register_cli"]


# -- the `fastdl train` command ----------------------------------------------------------------------------
def _load(dataset: str, dtype):
    from . import datasets

    if dataset == "digits":
        return datasets.load_digits(normalize=True, dtype=dtype)
    if dataset == "diabetes":
        return datasets.load_diabetes(normalize=True, dtype=dtype)
    try:
        (x_tr, t_tr), (x_te, t_te) = datasets.load_mnist(normalize=True)
    except datasets.DatasetUnavailableError as exc:
        first = str(exc).splitlines()[0].rstrip(".")
        raise _cliargs.UsageError(f"--dataset mnist: {first}; or use --dataset digits, which needs no download") \
            from exc
    return (x_tr.astype(dtype, copy=False), t_tr), (x_te.astype(dtype, copy=False), t_te)


def _lr_value(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _cliargs.positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--lr must be a number such as 0.01 or 'auto' (a rate > 0); "
                                         f"got {text!r}") from None


#: --init names: fastdl.init's rules and 'auto' (the activation's own); a positive number is a fixed std
def _init_names() -> tuple[str, ...]:
    from .init import INIT_NAMES

    return (*INIT_NAMES, "auto")


def _init_value(text: str) -> str | float:
    if text.strip().lower() in _init_names():
        return text.strip().lower()
    try:
        return _cliargs.positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(_init_names())}, "
                                         "or a std > 0 such as 0.01)") from None


def _auto_lr(args: argparse.Namespace, net, x_train, t_train) -> float:
    """``--lr auto``: :func:`fastdl.lr_find`'s suggestion (the network is restored afterwards)."""
    from .lr_finder import lr_find

    found = lr_find(net, x_train, t_train, optimizer=args.optimizer, batch_size=args.batch_size, seed=args.seed,
                    verbose=not args.quiet)
    print(f"lr auto: {found.suggestion:.3g} (lr_find: a tenth of the lowest-loss rate {found.lr_min:.3g}, "
          f"{len(found.lrs)} steps, {found.stop_reason})")
    return found.suggestion


def _schedule(args: argparse.Namespace, lr: float, steps: int):
    """``lr`` itself, or the ``--schedule`` starting from it (``initial_learning_rate``; 1cycle's ``max_lr``).

    The schedule's other arguments come from the options named after Keras' parameters; ``decay_steps``
    and 1cycle's ``total_steps`` default to the run's number of updates.
    """
    if args.schedule is None:
        return lr
    import inspect

    from .schedules import SCHEDULES

    cls = SCHEDULES[args.schedule]
    accepted = inspect.signature(cls).parameters
    kwargs = {"max_lr" if "max_lr" in accepted else "initial_learning_rate": lr}
    for name in accepted:
        value = getattr(args, name, None)
        if value is not None and name not in kwargs:
            kwargs[name] = value
    for name in ("decay_steps", "total_steps"):
        if name in accepted and name not in kwargs:
            kwargs[name] = steps
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        missing = [f"--{n.replace('_', '-')}" for n, p in accepted.items()
                   if p.default is inspect.Parameter.empty and n not in kwargs]
        detail = f"needs {', '.join(missing)}" if missing else str(exc)
        raise _cliargs.UsageError(f"--schedule {args.schedule} {detail}") from exc


def _numbers(kind):
    """An argparse type: comma-separated numbers of ``kind`` (``--boundaries 200,400``)."""
    def parse(text: str) -> list:
        try:
            return [kind(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}") from None
    return parse


#: data sets with real-valued targets: trained with loss='mse', scored by RMSE and R²
_REGRESSION_SETS = ("diabetes",)

#: the arguments that define a `fastdl train` run (kept in its checkpoints; --resume takes them back)
_RUN_ARGS = ("dataset", "hidden", "activation", "init", "optimizer", "lr", "batchnorm", "dropout", "weight_decay",
             "epochs", "batch_size", "patience", "dtype", "backend", "seed", "out", "alpha_dropout", "l1", "max_norm")
#: run arguments added after the first checkpoints: a checkpoint without them ran with their defaults
_ADDED_RUN_ARGS = ("alpha_dropout", "l1", "max_norm")


def _train_command(args: argparse.Namespace) -> int:
    from . import runtime

    if args.resume is not None:  # (first: --out may come from the checkpoint)
        from .checkpoint import adopt_run_args

        with _cliargs.user_input():  # a conflicting argument or a missing/damaged checkpoint: one line, exit 2
            adopt_run_args(args, _RUN_ARGS, added=_ADDED_RUN_ARGS)
    out = Path(args.out)
    problem = runtime.writable_dir_problem(out)  # before training: a bad --out must not cost the run
    if problem:
        print(f"fastdl train: error: --out must be a writable directory; got {str(out)!r} ({problem})",
              file=sys.stderr)
        raise SystemExit(2)
    dtype = np.dtype(args.dtype)
    t0 = time.perf_counter()
    (x_train, t_train), (x_test, t_test) = _load(args.dataset, dtype)
    with _cliargs.user_input():  # the house ValueError/TypeError of the set-up: one line, exit 2
        if args.resume is not None:
            trainer = Trainer.resume(args.resume, x_train, t_train, x_test, t_test, verbose=not args.quiet,
                                     weight_constraint=_constraint(args))
            net, warm_opt = trainer.network, trainer.optimizer
            lr = trainer.history.config.get("optimizer_param", {}).get("lr", trainer.optimizer.lr)
            if isinstance(lr, dict):  # a schedule's config: its starting rate for the figure's title
                lr = next(iter(lr.get("config", {}).values()), float("nan"))
        else:
            np.random.seed(args.seed)
            net = _network(args, x_train.shape[1], _outputs(args, t_train), dtype)
            warm_opt = make_optimizer(args.optimizer, {"lr": 0.01 if args.lr == "auto" else args.lr},
                                      args.backend, "fastdl train")
    warm_s = _warm_up(args, net, warm_opt, x_train[:args.batch_size], t_train[:args.batch_size], x_test, t_test)
    if args.resume is None:
        lr = _auto_lr(args, net, x_train, t_train) if args.lr == "auto" else args.lr
        steps = int(args.epochs * max(x_train.shape[0] / args.batch_size, 1))  # (the Trainer's max_iter)
        with _cliargs.user_input():
            optimizer_param = {"lr": _schedule(args, lr, steps),
                               **{n: getattr(args, n) for n in optim.base.CLIP_OPTIONS if getattr(args, n) is not None}}
            trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                              mini_batch_size=args.batch_size, optimizer=args.optimizer,
                              optimizer_param=optimizer_param, verbose=not args.quiet, patience=args.patience,
                              restore_best_weights=args.patience is not None, backend=args.backend,
                              checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                              weight_constraint=_constraint(args))
        trainer.checkpoint_extra["fastdl_train"] = {key: getattr(args, key) for key in _RUN_ARGS}
    history = trainer.train()
    total = time.perf_counter() - t0
    # seed: the run is seeded above with --seed, not by Trainer(seed=) (which would re-seed after the
    # weights are drawn and so change the mini-batches of every run against earlier releases)
    history.config.update(dataset=args.dataset, dtype=dtype.name, backend=args.backend or "fastdl",
                          total_time_s=total, seed=args.seed)
    stem = f"train-{args.dataset}"
    json_path = history.save_json(out / f"{stem}.json")
    png_path = out / f"{stem}.png"
    plot_history(history, png_path, title=f"{args.dataset}: {net!r}, {args.optimizer} lr={lr:.3g}")
    n_test = x_test.shape[0]
    run = (f"{history.iterations} steps, {history.samples_per_s:,.0f} samples/s in steady-state steps | "
           f"{history.train_time_s:.2f} s in steps, {history.wall_time_s:.2f} s training with evaluation, "
           f"{warm_s:.2f} s kernel warm-up, {total:.2f} s total | stop: {history.stop_reason}")
    # the final score is printed once: by the trainer after its epoch lines, or here with --quiet
    if history.final_test_r2 is None:
        acc = ("" if not args.quiet else
               f"test accuracy {history.final_test_acc:.4f} ({round(history.final_test_acc * n_test)}/{n_test}) | ")
        print(f"{acc}{run}")
        _chance_warning(history.final_test_acc, net.output_size)
        print(f"history: {json_path}\nplot:    {png_path}")
    else:
        y_test = net.predict(x_test)
        rmse = float(np.sqrt(np.mean((y_test.astype(np.float64) - t_test) ** 2)))
        pred_path = out / f"{stem}-pred.png"
        plot_predictions(t_test, y_test, pred_path, title=f"{args.dataset} test set\n{net!r}")
        r2 = "" if not args.quiet else f", R2 {history.final_test_r2:.4f}"
        print(f"test RMSE {rmse:.4g}{r2} ({n_test} samples) | {run}")
        print(f"history: {json_path}\nplot:    {png_path}\npredicted vs true: {pred_path}")
    if args.compare:
        _compare(args, net, trainer.optimizer, lr, x_train, t_train)
    return 0 if history.stop_reason.startswith(("completed", "early stopping")) else 1


def _outputs(args: argparse.Namespace, t_train) -> int:
    return t_train.shape[1] if args.dataset in _REGRESSION_SETS else 10


def _network(args: argparse.Namespace, input_size: int, output_size: int, dtype):
    from .nets import MultiLayerNetExtend

    alpha = args.alpha_dropout > 0
    return MultiLayerNetExtend(input_size, args.hidden, output_size, activation=args.activation,
                               weight_init_std=args.init, weight_decay_lambda=args.weight_decay,
                               use_dropout=args.dropout > 0, use_alpha_dropout=alpha,
                               dropout_ratio=args.alpha_dropout if alpha else args.dropout or 0.5,
                               use_batchnorm=args.batchnorm, dtype=dtype, backend=args.backend,
                               loss="mse" if args.dataset in _REGRESSION_SETS else "cross_entropy",
                               l1_lambda=args.l1)


def _constraint(args: argparse.Namespace):
    """``--max-norm C``: :class:`fastdl.constraints.MaxNorm` (C) applied by the Trainer after each update."""
    if args.max_norm is None:
        return None
    from .constraints import MaxNorm

    return MaxNorm(args.max_norm)


def _warm_up(args: argparse.Namespace, net, optimizer, x_batch, t_batch, x_eval, t_eval) -> float:
    """Compile or load the run's kernels on copies (nothing of the run changes); seconds taken."""
    if args.backend == "reference":
        return 0.0
    from . import _train_report

    if _train_report.kernels_loaded() == 0 and not _kernel_cache_has_entries():
        print("compiling kernels (first run only)...", flush=True)
    seconds, compiled, loaded = _train_report.warm_up(net, optimizer, x_batch, t_batch, x_eval, t_eval)
    if not args.quiet and compiled + loaded:
        print(f"kernels ready in {seconds:.2f} s ({compiled} compiled, {loaded} loaded from the cache; "
              "not counted in samples/s)")
    return seconds


def _kernel_cache_has_entries() -> bool:
    """Whether Numba's cache directory already holds fastdl kernels (an index file of any kernel)."""
    from .runtime import cache_dir

    try:
        return any(Path(cache_dir()).rglob("*.nbi"))
    except OSError:
        return False


def _chance_warning(accuracy: float, classes: int) -> None:
    if accuracy <= 1.5 / classes:
        print(f"warning: test accuracy {accuracy:.4f} is at chance level ({classes} classes: {1 / classes:.2f}); "
              "the network did not learn: try a smaller --lr (or --lr auto) or more --epochs", file=sys.stderr)


def _compare(args: argparse.Namespace, net, optimizer, lr, x_train, t_train) -> None:
    """The trained network's steady-state step against the same network on the NumPy reference."""
    if args.backend == "reference":
        return
    from . import _train_report

    ref = _network(argparse.Namespace(**{**vars(args), "backend": "reference"}), x_train.shape[1],
                   _outputs(args, t_train), net.dtype)
    ref_opt = make_optimizer(args.optimizer, {"lr": lr}, "reference")
    print(_train_report.compare_step(net, optimizer, ref, ref_opt, x_train[:args.batch_size],
                                    t_train[:args.batch_size]))


def register_cli(subparsers) -> None:
    """Add the ``train`` subcommand to the ``fastdl`` command line.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "train", help="train a MultiLayerNetExtend on digits, MNIST or diabetes (regression)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a fully connected network with the book's Trainer; prints test accuracy (regression: "
                    "test RMSE and R2) and samples/s, saves the history JSON and a loss/accuracy plot to --out "
                    "(regression: also a predicted-vs-true plot of the test set). Kernels are compiled (first run) or "
                    "loaded before the run, timed apart from the training steps. At the end it times a few "
                    "steady-state training steps (gradient() + update()) of the trained network against the same "
                    "network, same weights, on the NumPy reference backend, and prints both times and the "
                    "speed-up (about a second; --no-compare skips it).")
    p.add_argument("--dataset", choices=("digits", "mnist", "diabetes"), default="digits",
                   help="digits: scikit-learn's 8x8 digits (offline); mnist: downloaded once; diabetes: "
                        "scikit-learn's diabetes regression set (offline; loss mse)")
    p.add_argument("--hidden", type=_cliargs.int_list, default=[100, 100], metavar="SIZES",
                   help="hidden sizes, comma-separated, e.g. 100,100")
    from . import activations

    p.add_argument("--activation", choices=activations.names(), default="relu",
                   help="hidden activation, any registered in fastdl.activations")
    p.add_argument("--init", type=_init_value, default="relu", metavar="{" + ",".join(_init_names()) + "}|STD",
                   help="weight init: a rule of fastdl.init, auto (the activation's own), or a fixed std > 0")
    p.add_argument("--optimizer", default="adam", type=str.lower, choices=[*optim.OPTIMIZERS, *optim.ALIASES],
                   metavar="NAME", help=f"one of {', '.join(optim.OPTIMIZERS)} (any case)")
    p.add_argument("--lr", type=_lr_value, default=0.01,
                   help="learning rate > 0, or 'auto': fastdl.lr_find's suggestion, printed")
    from .schedules import SCHEDULES

    s = p.add_argument_group("learning-rate schedule (fastdl.schedules; arguments named after Keras' parameters; "
                             "the schedule starts from --lr)")
    s.add_argument("--schedule", choices=list(SCHEDULES), default=None,
                   help="schedule of the learning rate over the updates (default: none, a constant --lr)")
    s.add_argument("--decay-steps", type=int, default=None, metavar="N",
                   help="exponential, inverse-time, power, polynomial, cosine (default: the run's updates)")
    s.add_argument("--decay-rate", type=float, default=None, metavar="R", help="exponential, inverse-time")
    s.add_argument("--staircase", action="store_true", default=None,
                   help="exponential, inverse-time: decay in steps (default: off)")
    s.add_argument("--power", type=float, default=None, help="power, polynomial (default 1.0)")
    s.add_argument("--end-learning-rate", type=float, default=None, metavar="LR", help="polynomial (default 0.0001)")
    s.add_argument("--boundaries", type=_cliargs.int_list, default=None, metavar="B1,B2",
                   help="piecewise: step boundaries, e.g. 200,400")
    s.add_argument("--values", type=_numbers(float), default=None, metavar="V0,V1,V2",
                   help="piecewise: one rate more than --boundaries, e.g. 0.01,0.005,0.001")
    s.add_argument("--alpha", type=float, default=None, help="cosine, cosine-restarts: floor fraction (default 0.0)")
    s.add_argument("--warmup-target", type=float, default=None, metavar="LR",
                   help="cosine: rate reached by a linear warm-up (default: none)")
    s.add_argument("--warmup-steps", type=int, default=None, metavar="N", help="cosine: warm-up length (default 0)")
    s.add_argument("--first-decay-steps", type=int, default=None, metavar="N",
                   help="cosine-restarts: length of the first cycle (required)")
    s.add_argument("--t-mul", type=float, default=None, help="cosine-restarts: cycle length factor (default 2.0)")
    s.add_argument("--m-mul", type=float, default=None, help="cosine-restarts: cycle height factor (default 1.0)")
    s.add_argument("--total-steps", type=int, default=None, metavar="N",
                   help="one-cycle: length of the cycle (default: the run's updates); --lr is its max_lr")
    c = p.add_argument_group("gradient clipping (Keras' semantics; at most one)").add_mutually_exclusive_group()
    c.add_argument("--clipnorm", type=_cliargs.positive_float, default=None, metavar="C",
                   help="rescale each gradient array to L2 norm <= C (default: off)")
    c.add_argument("--clipvalue", type=_cliargs.positive_float, default=None, metavar="V",
                   help="clip each gradient element to [-V, V] (default: off)")
    c.add_argument("--global-clipnorm", type=_cliargs.positive_float, default=None, metavar="C",
                   help="rescale all gradients together to global L2 norm <= C (default: off)")
    p.add_argument("--batchnorm", action="store_true", help="batch normalization after each hidden Affine")
    r = p.add_argument_group("regularization (Hands-On ML ch. 11 beside the book's L2 and dropout)")
    d = r.add_mutually_exclusive_group()
    d.add_argument("--dropout", type=_cliargs.fraction, default=0.0, metavar="RATIO",
                   help="dropout ratio, 0 <= RATIO < 1 (0: no dropout)")
    d.add_argument("--alpha-dropout", type=_cliargs.fraction, default=0.0, metavar="RATE",
                   help="alpha dropout after each activation (Keras' AlphaDropout, for SELU nets: --activation selu "
                        "--init auto), 0 <= RATE < 1 (0: none)")
    r.add_argument("--weight-decay", type=_cliargs.nonnegative_float, default=0.0, metavar="LAMBDA",
                   help="L2 strength: the loss adds 0.5*LAMBDA*sum(W**2)")
    r.add_argument("--l1", type=_cliargs.nonnegative_float, default=0.0, metavar="LAMBDA",
                   help="L1 strength: the loss adds LAMBDA*sum(|W|), the gradient LAMBDA*sign(W)")
    r.add_argument("--max-norm", type=_cliargs.positive_float, default=None, metavar="C",
                   help="max-norm constraint: after each update every weight matrix's column norms are rescaled to "
                        "<= C (fastdl.constraints.MaxNorm; None: off)")
    p.add_argument("--epochs", type=_cliargs.positive_int, default=20, help="passes over the training set")
    p.add_argument("--batch-size", type=_cliargs.positive_int, default=100, help="samples per training step")
    p.add_argument("--patience", type=_cliargs.positive_int, default=None,
                   help="early stopping on test accuracy (regression: test R2) after this many epochs without "
                        "improvement (None: off)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="floating-point type")
    p.add_argument("--backend", choices=("fastdl", "reference"), default=None,
                   help="layers and optimizers: fastdl (compiled; None means fastdl) or reference (plain NumPy)")
    p.add_argument("--seed", type=_cliargs.nonnegative_int, default=0,
                   help="seeds weights, mini-batches and dropout")
    p.add_argument("--out", default="fastdl-out", help="directory for train-<dataset>.json/.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--no-compare", dest="compare", action="store_false",
                   help="skip the closing fastdl-vs-NumPy-reference training-step timing "
                        "(compare=%(default)s: it runs unless this flag is given)")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="write checkpoints to DIR at epoch ends and on Ctrl-C (None: no checkpoints)")
    p.add_argument("--checkpoint-every", type=_cliargs.positive_int, default=1, metavar="N",
                   help="epochs between checkpoints")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (a directory or one ckpt file) with its own arguments")
    p.set_defaults(func=_train_command)
    p.set_defaults(run_defaults=vars(p.parse_args([])))
