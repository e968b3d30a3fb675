"""Method `gan` grown progressively (generators.gan.progressive): the phases and fade-in schedule,
a tiny run from 4 to 16 px, its determinism, and the plain `Generator` it saves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_gan import tiny_gan

from rebalance.config.synth import GanTrain
from rebalance.config.types import Rule
from rebalance.synth import gan_core as core

STEPS = 12  # 4 per phase: 4, 8, 16 px


def expected_schedule(steps: int, sizes: list[int]) -> list[tuple[int, float]]:
    """Step by step: the phase is how many phase starts (steps * p // n) the step has reached; alpha
    is 2 * (steps into the phase) / (the phase's length), at most 1, and 1 in the first phase."""
    n = len(sizes)
    starts = [steps * p // n for p in range(n)] + [steps]
    plan = []
    for step in range(steps):
        p = sum(start <= step for start in starts[1:n])
        length = starts[p + 1] - starts[p]
        alpha = 1.0 if p == 0 else min(1.0, 2 * (step - starts[p]) / length)
        plan.append((sizes[p], alpha))
    return plan


def tiny_run(base_resolution: int | None = 4, steps: int = STEPS):
    return tiny_gan(steps, base_resolution)


def same_plan(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    """The same resolutions and (to rounding) the same alphas, step by step."""
    return [r for r, _ in a] == [r for r, _ in b] and np.allclose([x for _, x in a], [x for _, x in b])


@pytest.fixture(scope="module")
def grown():
    return tiny_run()


def test_the_resolutions_double_from_the_base():
    assert core.phases(16, 4) == [4, 8, 16]
    assert core.phases(32, 8) == [8, 16, 32]
    assert core.phases(16, 16) == [16]
    for base in (2, 3, 6, 12, 32):
        with pytest.raises(ValueError, match="base_resolution"):
            core.phases(16, base)


@pytest.mark.parametrize(
    ("steps", "resolution", "base"), [(12, 16, 4), (10, 16, 4), (7, 32, 8), (600, 64, 4)]
)
def test_the_steps_split_evenly_and_each_new_block_fades_in_over_half_its_phase(steps, resolution, base):
    sizes = core.phases(resolution, base)
    plan = core.schedule(steps, resolution, base)
    assert same_plan(plan, expected_schedule(steps, sizes))
    counts = [sum(size == s for size, _ in plan) for s in sizes]
    assert sum(counts) == steps and max(counts) - min(counts) <= 1
    assert plan[-1] == (resolution, 1.0)  # the last steps train the full generator alone


def test_a_small_schedule_by_hand():
    by_hand = [(4, 1), (4, 1), (4, 1), (8, 0), (8, 2 / 3), (8, 1), (16, 0), (16, 0.5), (16, 1), (16, 1)]
    assert same_plan(core.schedule(10, 16, 4), by_hand)
    with pytest.raises(ValueError, match="at least 2 per phase"):
        core.schedule(5, 16, 4)


def test_the_params_check_the_base_and_the_steps():
    assert GanTrain().progressive is False
    assert GanTrain(progressive=True, resolution=32, base_resolution=4).base_resolution == 4
    GanTrain(resolution=32, base_resolution=6)  # ignored unless progressive
    with pytest.raises(Rule, match="base_resolution"):
        GanTrain(progressive=True, resolution=32, base_resolution=6)
    with pytest.raises(Rule, match="base_resolution"):
        GanTrain(progressive=True, resolution=32, base_resolution=64)
    with pytest.raises(Rule, match="steps"):
        GanTrain(progressive=True, resolution=32, base_resolution=4, steps=7)


def test_the_growing_views_blend_the_new_block_with_the_previous_resolution():
    torch.manual_seed(0)
    generator = core.Generator(16, 2, z_dim=8, channels=8).eval()
    disc = core.Discriminator(16, 2, channels=8).eval()
    g, d = core.GrowingGenerator(generator, 4).eval(), core.GrowingDiscriminator(disc, 16, 4).eval()
    z, y = torch.randn(3, 8), torch.tensor([0, 1, 1])
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(z, y), generator(z, y))  # full resolution, alpha 1: the generator itself
        assert torch.equal(d(x, y), disc(x, y))
        sizes = {}
        for level in (0, 1, 2):
            for alpha in (0.0, 0.25, 1.0):
                g.level = d.level = level
                g.alpha = d.alpha = alpha
                sizes[level, alpha] = g(z, y)
                assert d(core.real_at(x, 4 * 2**level, alpha), y).shape == (3,)
        assert sizes[0, 1.0].shape == (3, 3, 4, 4) and sizes[2, 0.25].shape == (3, 3, 16, 16)
        up = torch.nn.functional.interpolate(sizes[1, 1.0], scale_factor=2, mode="nearest")
        assert torch.allclose(sizes[2, 0.0], up)  # alpha 0: the previous resolution, upsampled
        assert torch.allclose(sizes[2, 0.25], 0.25 * sizes[2, 1.0] + 0.75 * up, atol=1e-6)
    pooled = core.real_at(x, 8, 1.0)
    assert torch.allclose(pooled, torch.nn.functional.avg_pool2d(x, 2))
    coarse = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(pooled, 2), scale_factor=2)
    assert torch.allclose(core.real_at(x, 8, 0.5), 0.5 * pooled + 0.5 * coarse)


def test_a_grown_gan_saves_a_plain_generator_at_full_resolution(grown, tmp_path):
    generator, summary = grown
    assert summary["steps"] == STEPS and np.isfinite(summary["d_loss"]) and np.isfinite(summary["g_loss"])
    assert type(generator) is core.Generator
    ckpt = core.save(generator, tmp_path / "gan")
    loaded = core.load(tmp_path / "gan")  # the loader of a non-progressive checkpoint
    assert loaded.config == core.Generator(16, 2, z_dim=8, channels=8).config
    assert core.checkpoint_hash(tmp_path / "gan") == ckpt
    a = core.sample(loaded, [0, 1, 1], [5, 6, 7])
    assert a.shape == (3, 16, 16, 3) and a.dtype == torch.uint8
    assert torch.equal(core.sample(loaded, [1], [6])[0], a[1])  # an image does not depend on its batch
    assert torch.equal(core.sample(generator, [0, 1, 1], [5, 6, 7]), a)


def test_progressive_training_follows_the_schedule_and_is_determined_by_its_seed(grown, monkeypatch):
    seen = []
    forward = core.GrowingGenerator.forward

    def spy(self, z, y):
        out = forward(self, z, y)
        seen.append((out.shape[-1], self.alpha))
        return out

    monkeypatch.setattr(core.GrowingGenerator, "forward", spy)
    again, summary = tiny_run()
    assert same_plan(seen, core.schedule(STEPS, 16, 4))  # one generator pass per step
    assert summary["phases"] == [{"resolution": r, "steps": 4} for r in (4, 8, 16)]
    for (k, v), w in zip(grown[0].state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k
    assert torch.equal(core.sample(grown[0], [0, 1], [3, 4]), core.sample(again, [0, 1], [3, 4]))
