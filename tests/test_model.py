"""The classifier trains, is evaluated at the same optimizer steps whatever the data size, and the
class weights counter imbalance."""

from __future__ import annotations

import pytest
import torch

from rebalance.learn import classifier as model
from rebalance.learn.variants import BestOnVal


def toy_data(n: int = 96, size: int = 16):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randint(0, 60, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    x[y == 1, 0] += 120  # class 1 is red
    return x, y


def test_fit_learns_a_separable_toy_task_and_reports_every_eval_step():
    x, y = toy_data()
    calls = []
    net = model.SmallCNN(2, width=4)
    model.fit(net, x, y, steps=30, batch_size=32, lr=0.01, weight_decay=0.0, seed=0, eval_every=4,
              on_eval=lambda s, e, loss, m: calls.append((s, e)))  # fmt: skip
    accuracy = (model.predict_proba(net, x).argmax(1) == y.numpy()).mean()
    assert accuracy > 0.9
    assert [s for s, _ in calls] == [4, 8, 12, 16, 20, 24, 28, 30]  # every 4 steps and the last
    assert calls[-1][1] == pytest.approx(10.0)  # 30 steps x 32 images / 96 images


@pytest.mark.parametrize("eval_every, expected", [(20, [20, 40, 50]), (50, [50]), (80, [50]), (None, [50])])
def test_checkpoints_are_chosen_at_the_same_steps_for_data_of_any_size(eval_every, expected):
    """A variant with 3x the images gets the same checkpoint choices (not a third as many epochs)."""
    x_small, y_small = toy_data(32)
    x_big, y_big = toy_data(96)
    x_val, y_val = toy_data(16)
    seen = []
    for x, y in ((x_small, y_small), (x_big, y_big)):
        torch.manual_seed(0)
        net = model.SmallCNN(2, width=4)
        best = BestOnVal(None, x_val, y_val.tolist())
        model.fit(net, x, y, steps=50, batch_size=16, lr=0.01, weight_decay=0.0, seed=0,
                  eval_every=eval_every, on_eval=best)  # fmt: skip
        assert best.best_step in best.steps and best.state is not None
        seen.append(best.steps)
    assert seen[0] == seen[1] == expected


def test_fit_rejects_a_non_positive_eval_interval():
    x, y = toy_data()
    with pytest.raises(ValueError, match="eval_every"):
        model.fit(model.SmallCNN(2, width=4), x, y, steps=2, batch_size=32, lr=0.01, weight_decay=0.0,
                  seed=0, eval_every=0, on_eval=lambda *a: None)  # fmt: skip


def test_fit_is_deterministic_for_a_seed():
    x, y = toy_data()
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = model.SmallCNN(2, width=4)
        model.fit(net, x, y, steps=5, batch_size=32, lr=0.01, weight_decay=0.0, seed=3)
        outs.append(model.predict_proba(net, x))
    assert (outs[0] == outs[1]).all()


def test_class_weights_favour_the_rare_class():
    w = model.class_weights(torch.tensor([0] * 30 + [1] * 10), 2)
    assert w[1] > w[0] and abs(float(w.mean()) - 1) < 1e-6


def test_dvclive_logs_each_evaluation_at_its_optimizer_step(tmp_path):
    from dvclive import Live

    x, y = toy_data(40)
    with Live(dir=str(tmp_path / "live"), save_dvc_exp=False, dvcyaml=False) as live:
        best = BestOnVal(live, x[:8], y[:8].tolist())
        model.fit(model.SmallCNN(2, width=4), x, y, steps=25, batch_size=16, lr=0.01, weight_decay=0.0,
                  seed=0, eval_every=10, on_eval=best)  # fmt: skip
    for name in ("train/loss", "train/epoch", "val/balanced_accuracy", "val/macro_f1"):
        tsv = (tmp_path / "live/plots/metrics" / f"{name}.tsv").read_text().splitlines()
        assert [line.split("\t")[0] for line in tsv[1:]] == ["10", "20", "25"]
