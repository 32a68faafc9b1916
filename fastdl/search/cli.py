"""The ``fastdl search`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .space import PARAMETERS, SearchSpace, parse_distribution

_DEFAULTS = {"lr": "loguniform:1e-6:1e-2", "weight_decay": "loguniform:1e-8:1e-4"}


def _space_from_args(args: argparse.Namespace) -> SearchSpace:
    params = {}
    for name in PARAMETERS:
        text = getattr(args, name)
        if text is None:
            text = _DEFAULTS.get(name)
        if text is not None:
            params[name] = parse_distribution(name, text)
    return SearchSpace(params)


def _plot_axes(space: SearchSpace) -> tuple[str, str] | None:
    """Two numeric settings for the scatter: lr and weight decay when searched, else the first numeric ones."""
    numeric = [p for p in ("lr", "weight_decay", "dropout", "batch_size") if p in space.searched]
    if {"lr", "weight_decay"} <= set(numeric):
        return "lr", "weight_decay"
    pool = numeric + [p for p in ("lr", "weight_decay") if p not in numeric]
    return (pool[0], pool[1]) if len(pool) >= 2 else None


def _command(args: argparse.Namespace) -> int:
    from .engine import search
    from .report import format_table, plot_curves, plot_scatter
    from .store import read

    out = Path(args.out)
    results = Path(args.resume) if args.resume else out / "search-results.jsonl"
    if args.resume:
        header, _ = read(results)
        if header is None:
            print(f"fastdl search: --resume {results} is not a search results file", file=sys.stderr)
            return 2
        stored = header["spec"]
        space = SearchSpace.from_dict(stored["space"])
        data = stored["data"]["name"]
        if data == "arrays":
            print("fastdl search: this search ran on arrays from Python; resume it with fastdl.search.search(..., "
                  "resume=True)", file=sys.stderr)
            return 2
        kwargs = {"trials": args.trials or stored["trials"], "epochs": stored["epochs"], "seed": stored["seed"],
                  "train_size": stored["data"]["train_size"], "validation_ratio": stored["data"]["validation_ratio"],
                  "dtype": stored["dtype"], "algorithm": stored["algorithm"],
                  "min_epochs": stored.get("min_epochs", 1), "eta": stored.get("eta", 3)}
    else:
        space = _space_from_args(args)
        data = args.dataset
        kwargs = {"trials": args.trials or 100, "epochs": args.epochs, "seed": args.seed,
                  "train_size": args.train_size or None, "validation_ratio": args.validation_ratio,
                  "dtype": args.dtype, "algorithm": args.algorithm, "min_epochs": args.min_epochs,
                  "eta": args.eta}
    print(f"search: {space!r}", file=sys.stderr)
    try:
        result = search(space, data, results=results, resume=bool(args.resume), executor=args.executor,
                        scheduler=args.scheduler, workers=args.workers, retries=args.retries,
                        progress=not args.quiet, **kwargs)
    except FileExistsError as exc:
        print(f"fastdl search: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are in {results}; continue with "
              f"fastdl search --resume {results}", file=sys.stderr)
        return 130
    params = space.searched or ["lr", "weight_decay"]
    trials = result.trials
    n_failed = sum(r.get("status") == "failed" for r in trials)
    print(format_table(trials, params, args.top))
    workers = f"{result.n_workers} worker{'s' * (result.n_workers > 1)}"
    print(f"{len(trials)} trials ({result.jobs_run} jobs this run, {result.epochs_trained} epochs trained, "
          f"{n_failed} failed) in {result.wall_time_s:.1f} s on {workers} "
          f"(workers busy {100 * result.busy_fraction:.0f} % of the time)")
    stem = results.with_suffix("")
    title = (f"{data}: {result.spec['data']['n_train']} train / {result.spec['data']['n_val']} validation samples, "
             f"{kwargs['epochs']} epochs, {kwargs['algorithm']} search")
    curves = plot_curves(trials, params, Path(f"{stem}-curves.png"), best=args.best,
                         title=f"Best {min(args.best, len(trials))} of {len(trials)} trials - {title}")
    del curves
    paths = [f"{stem}-curves.png"]
    axes = _plot_axes(space)
    if axes is not None:
        plot_scatter(trials, *axes, path=Path(f"{stem}-scatter.png"), best=args.best, title=title)
        paths.append(f"{stem}-scatter.png")
    print(f"results: {results}\nfigures: {', '.join(paths)}")
    return 0 if n_failed < len(trials) else 1


def register_cli(subparsers) -> None:
    """Register ``fastdl search`` on ``subparsers``, the ``add_subparsers()`` action of :mod:`fastdl.cli`."""
    p = subparsers.add_parser(
        "search", help="hyper-parameter search on Dask (random or successive halving)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Random search (the book's section 6.5) or asynchronous successive halving over the settings of "
                    "a MultiLayerNetExtend, on an embedded Dask cluster (one single-threaded worker process per "
                    "core) or an existing one. The validation set is split off the training data (never the test "
                    "set). Every finished trial is appended to <out>/search-results.jsonl (fsynced), so an "
                    "interrupted search continues with --resume.",
        epilog="Distributions: loguniform:A:B, uniform:A:B, int:A:B, choice:V1,V2 (or V1,V2), or one fixed value.\n"
               "Hidden layers: 100x6 (six of 100) or 100-50; e.g. --hidden choice:100x6,50x3.\n"
               "Trial k draws its settings and trains from seeds of numpy SeedSequence([seed, k]): its results do "
               "not depend on\nthe number of workers or the order trials run in.\n\n"
               "Cluster: dask scheduler; dask worker tcp://HOST:8786 --nworkers 1 --nthreads 1 (per core);\n"
               "         fastdl search --scheduler tcp://HOST:8786 ... (or set DASK_SCHEDULER_ADDRESS). See "
               "docs/search.md.")
    space = p.add_argument_group("search space (each takes a distribution or a value)")
    space.add_argument("--lr", metavar="DIST", help=f"learning rate (default {_DEFAULTS['lr']})")
    space.add_argument("--weight-decay", dest="weight_decay", metavar="DIST",
                       help=f"L2 strength λ (default {_DEFAULTS['weight_decay']})")
    space.add_argument("--optimizer", metavar="DIST",
                       help="names of fastdl.optim.OPTIMIZERS (sgd, momentum, adam, ...; default sgd)")
    space.add_argument("--activation", metavar="DIST", help="hidden activation (default relu)")
    space.add_argument("--weight-init", dest="weight_init", metavar="DIST",
                       help="relu/he, sigmoid/xavier, glorot, lecun or a std (default relu)")
    space.add_argument("--hidden", metavar="DIST", help="hidden widths, e.g. 100x6 (default) or choice:100x6,50x3")
    space.add_argument("--batchnorm", metavar="DIST", help="yes, no (default) or choice:no,yes")
    space.add_argument("--dropout", metavar="DIST", help="dropout ratio, e.g. uniform:0:0.5 (default 0: none)")
    space.add_argument("--batch-size", dest="batch_size", metavar="DIST", help="mini-batch size (default 100)")
    run = p.add_argument_group("data and budget")
    run.add_argument("--dataset", choices=("digits", "mnist"), default="digits",
                     help="training part of digits (offline, default) or MNIST")
    run.add_argument("--train-size", type=int, default=500,
                     help="first N training samples before the split (the book: 500, default; 0: all)")
    run.add_argument("--validation-ratio", type=float, default=0.2, help="share held out (default 0.2)")
    run.add_argument("--trials", type=int, default=None, help="number of trials (default 100)")
    run.add_argument("--epochs", type=int, default=50, help="epochs per trial (the last rung with asha; default 50)")
    run.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    run.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    algo = p.add_argument_group("algorithm")
    algo.add_argument("--algorithm", choices=("random", "asha"), default="random",
                      help="random: every trial for all epochs (default); asha: successive halving stops poor "
                           "trials at rungs min-epochs * eta**i")
    algo.add_argument("--min-epochs", type=int, default=2, help="first rung of asha (default 2)")
    algo.add_argument("--eta", type=int, default=3, help="asha keeps about 1 in eta trials per rung (default 3)")
    ex = p.add_argument_group("execution and results")
    ex.add_argument("--scheduler", metavar="ADDRESS",
                    help="existing Dask scheduler, e.g. tcp://HOST:8786 (default: $DASK_SCHEDULER_ADDRESS, else an "
                         "embedded cluster)")
    ex.add_argument("--workers", type=int, default=None, help="worker processes of the embedded cluster (default: "
                    "one per core)")
    ex.add_argument("--executor", choices=("dask", "sequential"), default="dask",
                    help="dask (default) or sequential (in this process, no Dask)")
    ex.add_argument("--retries", type=int, default=2, help="re-runs of a trial whose worker died (default 2)")
    ex.add_argument("--resume", metavar="FILE", help="continue the search in FILE (its settings; --trials may grow)")
    ex.add_argument("--out", default="fastdl-out/search", help="directory for the results and figures "
                    "(default fastdl-out/search)")
    ex.add_argument("--top", type=int, default=10, help="rows of the final table (default 10)")
    ex.add_argument("--best", type=int, default=20, help="learning curves drawn (the book: 20, default)")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_command)
