"""The classifier trains, logs once per epoch, and the class weights counter imbalance."""

from __future__ import annotations

import torch

from stages.learn import classifier as model


def toy_data(n: int = 96, size: int = 16):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randint(0, 60, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    x[y == 1, 0] += 120  # class 1 is red
    return x, y


def test_fit_learns_a_separable_toy_task_and_reports_each_epoch():
    x, y = toy_data()
    calls = []
    net = model.SmallCNN(2, width=4)
    model.fit(net, x, y, steps=30, batch_size=32, lr=0.01, weight_decay=0.0, seed=0,
              on_epoch=lambda e, s, loss, m: calls.append((e, s)))  # fmt: skip
    accuracy = (model.predict_proba(net, x).argmax(1) == y.numpy()).mean()
    assert accuracy > 0.9
    assert [e for e, _ in calls] == list(range(10))  # 96 images / 32 per batch = 3 steps per epoch
    assert calls[-1][1] == 30


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
