"""Method `gan`: a class-conditional GAN trained on train images, sampled from per-image seeds."""

from __future__ import annotations

import numpy as np
import torch

from rebalance.learn.data import TensorSet
from rebalance.synth import gan_core as core


def tiny_gan(steps: int = 30, base_resolution: int | None = None):
    """A GAN trained on 16 tiny images of two classes (class 1 red); grown progressively from
    `base_resolution` when given (tests/test_pggan.py)."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 80, (16, 3, 16, 16), dtype=np.uint8))
    images[8:, 0] += 150  # class 1: red
    labels = torch.tensor([0] * 8 + [1] * 8)
    torch.manual_seed(0)
    generator = core.Generator(16, 2, z_dim=8, channels=8)
    return core.train(
        generator, TensorSet(images), labels, steps=steps, batch_size=8, lr=2e-3, seed=0, channels=8,
        base_resolution=base_resolution,
    )  # fmt: skip


def test_a_trained_gan_saves_loads_and_samples_from_its_seeds(tmp_path):
    generator, summary = tiny_gan()
    assert summary["steps"] == 30 and np.isfinite(summary["d_loss"])
    ckpt = core.save(generator, tmp_path / "gan")
    loaded = core.load(tmp_path / "gan")
    assert core.checkpoint_hash(tmp_path / "gan") == ckpt
    a = core.sample(loaded, [0, 1, 1], [5, 6, 7])
    assert a.shape == (3, 16, 16, 3) and a.dtype == torch.uint8
    alone = core.sample(loaded, [1], [6])  # an image does not depend on its batch
    assert torch.equal(a[1], alone[0])
    assert not torch.equal(a[1], a[2])  # different seeds, different images
    assert torch.equal(core.sample(generator, [0, 1, 1], [5, 6, 7]), a)


def test_gan_training_is_determined_by_its_seed(tmp_path):
    a, _ = tiny_gan(steps=5)
    b, _ = tiny_gan(steps=5)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
