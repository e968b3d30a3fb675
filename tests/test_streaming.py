"""Streaming training data: the diffusion UNet trained from files batch by batch (DataLoader
workers) equals the one trained from the same pixels in memory."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from rebalance.core.device import Runtime
from rebalance.learn.data import ImageSet, TensorSet
from rebalance.synth import diffusion_core as core


def trained(images, workers: int) -> dict:
    torch.manual_seed(0)
    unet = core.build_unet(16, 2, [16, 32], 1, False)
    runtime = Runtime(torch.device("cpu"), None, workers)
    labels = torch.arange(12) % 2
    core.train(unet, images, labels, steps=3, batch_size=4, lr=1e-3, seed=0, runtime=runtime)
    return unet.state_dict()


def test_streamed_and_in_memory_diffusion_training_give_the_same_model(tmp_path):
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    names = []
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
        names.append(f"{i}.png")
    memory = trained(TensorSet(torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()), 0)
    streamed = trained(ImageSet(tmp_path, names, 16, "stretch"), 2)
    legacy = trained(torch.from_numpy(arrays), 0)  # N x H x W x 3 tensors still work
    for key, value in memory.items():
        assert torch.equal(value, streamed[key]), key
        assert torch.equal(value, legacy[key]), key


def test_img2img_starts_from_the_source_noised_to_strength():
    torch.manual_seed(0)
    unet = core.build_unet(16, 2, [16, 32], 1, False).eval()
    start = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))

    def run(strength: float, seeds=(1, 2)) -> torch.Tensor:
        scheduler = core.sampler(core.noise_scheduler().config, "ddim")
        return core.sample(unet, scheduler, [0, 1], list(seeds), steps=10, start=start, strength=strength)

    def distance(a: torch.Tensor) -> float:
        return float((a.float() - start.float()).abs().mean())

    near, far = run(0.1), run(1.0)
    assert distance(near) < distance(far) / 2  # a light touch keeps the source, a full run does not
    assert torch.equal(run(0.3), run(0.3))  # determined by the seeds
    assert not torch.equal(run(0.3), run(0.3, seeds=(3, 4)))


def test_quota_spreads_over_clusters_in_proportion_or_evenly():
    from rebalance.synth.sources import spread_order

    clusters = np.array([0] * 8 + [1] * 2)  # one big cluster, one small
    proportional = spread_order(clusters, seed=0)
    assert sorted(proportional) == list(range(10))  # every source once before any twice
    first_five = clusters[proportional[:5]]
    assert (first_five == 1).sum() == 1  # the small cluster gets its share: 1 in 5
    even = spread_order(clusters, seed=0, spread="even")
    assert len(even) == 16 and (clusters[even] == 1).sum() == 8  # half of the quota each
    assert clusters[even[0]] != clusters[even[1]]  # alternating
