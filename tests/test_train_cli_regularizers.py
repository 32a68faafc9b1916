"""``fastdl train --alpha-dropout R --max-norm C --l1 L``: one-line errors, the network and trainer they build,
and ``--resume`` taking them back from the checkpoint (older checkpoints without them: the defaults)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from fastdl import _archive, checkpoint, nets
from fastdl.cli import build_parser, main
from fastdl.train_cli import _ADDED_RUN_ARGS, _RUN_ARGS

SMALL = ["--hidden", "20,20", "--epochs", "2", "--batch-size", "50", "--quiet", "--no-compare"]


def _run(argv, capsys):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


@pytest.mark.parametrize(("argv", "words"), [
    (["--alpha-dropout", "1"], ["--alpha-dropout", "< 1", "'1'"]),
    (["--alpha-dropout", "-0.1"], ["--alpha-dropout", ">= 0"]),
    (["--l1", "-1"], ["--l1", ">= 0"]),
    (["--l1", "inf"], ["--l1"]),
    (["--max-norm", "0"], ["--max-norm", "> 0"]),
    (["--max-norm", "nan"], ["--max-norm"]),
    (["--dropout", "0.2", "--alpha-dropout", "0.1"], ["--alpha-dropout", "not allowed with argument --dropout"]),
])
def test_bad_values_are_one_line_and_exit_2(argv, words, capsys, tmp_path):
    code, out = _run(["train", *argv, "--out", str(tmp_path)], capsys)
    assert code == 2 and "Traceback" not in out.err
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("fastdl train: error: ")
    assert all(w in last for w in words), last
    assert all(line.startswith(("usage:", " ")) for line in out.err.strip().splitlines()[:-1])


def test_help_and_defaults():
    parser = build_parser()
    args = parser.parse_args(["train"])
    assert (args.alpha_dropout, args.l1, args.max_norm) == (0.0, 0.0, None)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    text = sub.format_help()
    for flag in ("--alpha-dropout RATE", "--l1 LAMBDA", "--max-norm C"):
        assert flag in text
    assert "AlphaDropout" in text and "MaxNorm" in text and "LAMBDA*sign(W)" in text


def test_a_run_with_the_three_builds_them_and_resume_takes_them_back(capsys, tmp_path):
    argv = ["train", *SMALL, "--activation", "selu", "--init", "auto", "--alpha-dropout", "0.1", "--l1", "1e-4",
            "--max-norm", "0.5", "--out", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "ck")]
    code, out = _run(argv, capsys)
    assert code == 0, out.err
    record = json.loads((tmp_path / "o" / "train-digits.json").read_text())
    assert "alpha_dropout=0.1" in record["config"]["network"] and "l1=0.0001" in record["config"]["network"]
    assert "MaxNorm" in json.dumps(record["config"]["weight_constraint"])
    net = nets.load(checkpoint.latest(tmp_path / "ck"))
    assert net.use_alpha_dropout and net.dropout_ration == 0.1 and net.l1_lambda == 1e-4
    for key in ("W1", "W2", "W3"):  # the constraint ran after every update: column norms <= 0.5
        assert np.all(np.linalg.norm(net.params[key], axis=0) <= 0.5 + 1e-12), key
    # --resume takes the run's own arguments: another --l1 is refused
    code, out = _run(["train", "--resume", str(tmp_path / "ck"), "--l1", "0.5"], capsys)
    assert code == 2 and "--l1 must be left out or the run's 0.0001; got 0.5" in out.err


def test_checkpoints_older_than_the_new_arguments_resume_with_their_defaults(capsys, tmp_path):
    code, out = _run(["train", *SMALL, "--out", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "ck")], capsys)
    assert code == 0, out.err
    path = checkpoint.latest(tmp_path / "ck")
    docs, arrays = _archive.read(path, (checkpoint.DOC,))
    extra = _archive.unpack_tree(docs[checkpoint.DOC]["extra"], arrays)
    run = extra["fastdl_train"]
    for key in _ADDED_RUN_ARGS:
        assert key in run
        del run[key]  # as a checkpoint written before these arguments existed
    args = build_parser().parse_args(["train", "--resume", str(tmp_path / "ck")])
    read = checkpoint.read

    def old_read(*a, **k):  # the checkpoint as it would be read, its extra without the new keys
        p, d, arr = read(*a, **k)
        d = {**d, checkpoint.DOC: {**d[checkpoint.DOC], "extra": extra}}
        return p, d, arr

    checkpoint.read = old_read
    try:
        with pytest.raises(ValueError, match="must be a checkpoint directory of `fastdl train`"):
            checkpoint.adopt_run_args(args, _RUN_ARGS)  # without `added`: refused, as before
        checkpoint.adopt_run_args(args, _RUN_ARGS, added=_ADDED_RUN_ARGS)
    finally:
        checkpoint.read = read
    assert (args.alpha_dropout, args.l1, args.max_norm) == (0.0, 0.0, None) and args.epochs == 2
