"""``fastdl experiment mc-dropout`` with tiny settings: its numbers, its figure, its command line."""

import matplotlib.image
import numpy as np

from fastdl import experiments


def test_mc_dropout_experiment(tmp_path, capsys):
    data, fig = experiments.run("mc-dropout", out=tmp_path, epochs=4, n_samples=8, hidden=32, lr=0.01, verbose=False)
    path = tmp_path / "mc-dropout.png"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 800
    titles = [ax.get_title() for ax in fig.axes]
    assert "test accuracy: one pass vs MC mean" in titles
    assert sum(t.startswith("sure: true") for t in titles) == 3
    assert sum(t.startswith("unsure: true") for t in titles) == 3
    assert any(ax.get_legend() is not None for ax in fig.axes)
    for name in ("ReLU + dropout", "SELU + alpha dropout"):
        r = data[name]
        assert 0.5 < r["acc_one_pass"] <= 1 and 0.5 < r["acc_mc"] <= 1  # 4 epochs already learn digits
        assert np.isfinite(r["loss_one_pass"]) and np.isfinite(r["loss_mc"])
    assert len(set(data["examples"])) == 6 and data["n_samples"] == 8
    out = capsys.readouterr().out
    assert "one pass -> MC mean" in out and str(path) in out
    # the same seed, the same numbers
    again, _ = experiments.run("mc-dropout", out=tmp_path, epochs=4, n_samples=8, hidden=32, lr=0.01, verbose=False)
    assert again["ReLU + dropout"] == data["ReLU + dropout"]
