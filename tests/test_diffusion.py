"""The diffusion method: tiny class-conditional training + sampling, determinism, locality, the
offline Stable Diffusion inpainting path, quality metrics. Tiny models, 16 px, few steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import folder_params
from sdgen import tiny_sd_pipeline

from rebalance.config.synth import Diffusion
from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array, save_png
from rebalance.synth import diffusion, diffusion_core as core, provenance, quality
from rebalance.synth.base import Context, image_seed

RES = 16
CLASSES = ["dark", "bright"]


def make_raw(folder: Path, n: int = 6, size: int = RES) -> pd.DataFrame:
    """Dark and bright noisy patches, `n` per class, as a train_real frame."""
    rows = []
    rng = np.random.default_rng(0)
    for label, level in zip(CLASSES, (50, 200)):
        for i in range(n):
            path = f"{label}/{label}_{i}.png"
            img = np.clip(level + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            sha = save_png(img, folder / path)
            rows.append(
                {
                    "path": path,
                    "label": label,
                    "root": path,
                    "split": "train",
                    "origin": "real",
                    "sha256": sha,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny class-conditional UNet trained briefly on dark vs bright patches, saved."""
    root = tmp_path_factory.mktemp("diff")
    train_real = make_raw(root / "raw")
    images = torch.from_numpy(np.stack([load_array(root / "raw" / p) for p in train_real.path]))
    labels = torch.tensor([CLASSES.index(c) for c in train_real.label])
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from threads on a shared CPU
    try:
        unet = core.build_unet(RES, len(CLASSES), channels=(16, 32), attention=False)
        summary = core.train(unet, images, labels, steps=120, batch_size=16, lr=3e-3, seed=0, ema_decay=0.9)
    finally:
        torch.set_num_threads(threads)
    ckpt = core.save(unet, root / "model")
    provenance.write_record(root / "model", train_real)
    return root, train_real, ckpt, summary


def context(root: Path, train_real: pd.DataFrame, out: Path, **diff) -> Context:
    params = folder_params(
        CLASSES, {"diffusion": {"model_dir": str(root / "model"), "steps": 6, "batch_size": 4, **diff}}
    )
    return Context(params=params, train_real=train_real, raw_dir=root / "raw", out_dir=out)


def test_class_conditional_training_and_sampling(trained):
    root, _, ckpt, summary = trained
    assert summary["steps"] == 120 and np.isfinite(summary["loss"])
    unet, config = core.load(root / "model")
    assert unet.config.num_class_embeds == len(CLASSES) + 1 and len(ckpt) == 16
    out = core.sample(unet, core.sampler(config, "ddim"), [0] * 4 + [1] * 4, list(range(8)), steps=8)
    assert out.shape == (8, RES, RES, 3) and out.dtype == torch.uint8
    dark, bright = out[:4].float().mean(), out[4:].float().mean()
    assert bright - dark > 40, f"class conditioning not learnt: dark {dark:.0f}, bright {bright:.0f}"


def test_unet_evaluations_per_image(trained):
    root, *_ = trained
    unet, config = core.load(root / "model")
    calls = []
    unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    core.sample(unet, core.sampler(config, "dpm"), [0, 1, 0], [1, 2, 3], steps=5)
    assert calls == [3] * 5  # one batched call per step
    calls.clear()
    core.sample(unet, core.sampler(config, "ddim"), [0, 1, 0], [1, 2, 3], steps=5, guidance=2.0)
    assert calls == [6] * 5  # cond + uncond in one call: 2 evaluations per image and step
    assert diffusion.evaluations_per_image(Diffusion(steps=5, guidance=2.0)) == 10


def test_generate_full_is_deterministic_and_recorded(trained, tmp_path):
    root, train_real, ckpt, _ = trained
    full_a = diffusion.DiffusionSampler(context(root, train_real, tmp_path / "a", mode="full"))
    full_b = diffusion.DiffusionSampler(context(root, train_real, tmp_path / "b", mode="full"))
    rows_a = full_a.generate("bright", [0, 1, 2, 5])
    rows_b = full_b.generate("bright", [5, 0])
    bytes_a = {r["path"]: (tmp_path / "a" / r["path"]).read_bytes() for r in rows_a}
    for r in rows_b:  # same seed -> identical bytes, whatever else is generated in the same call
        assert (tmp_path / "b" / r["path"]).read_bytes() == bytes_a[r["path"]]
    assert len(set(bytes_a.values())) == 4  # different indices, different images
    row = rows_a[0]
    assert row["origin"] == "diffusion" and row["source"] == "" and row["root"] == ""
    assert int(row["seed"]) == image_seed("t", 0, "bright", "diffusion", 0)
    detail = json.loads(row["detail"])
    assert detail["checkpoint"] == ckpt and detail["steps"] == 6 and detail["scheduler"] == "ddim"
    assert detail["mode"] == "full"


def test_local_mode_keeps_unmasked_pixels(trained, tmp_path):
    root, train_real, _, _ = trained
    ctx = context(root, train_real, tmp_path, mode="local", mask={"blobs": 2, "fraction": 0.3})
    rows = diffusion.DiffusionSampler(ctx).generate("dark", [0, 1, 2])
    changed = 0
    for r in rows:
        assert r["source"] in set(train_real.path) and r["root"] == r["source"]
        assert train_real.set_index("path").label[r["source"]] == "dark"
        original = load_array(root / "raw" / r["source"])
        made = load_array(tmp_path / r["path"])
        mask = diffusion.blob_mask(np.random.default_rng(int(r["seed"])), RES, 2, 0.3)
        assert 0 < mask.mean() < 0.6
        assert np.array_equal(made[~mask], original[~mask]), "pixels outside the mask changed"
        changed += int((made[mask] != original[mask]).any())
    assert changed == len(rows)


def test_cache_key_tracks_what_determines_the_image(trained, tmp_path):
    root, train_real, _, _ = trained
    key = diffusion.DiffusionSampler(context(root, train_real, tmp_path)).cache_key("dark", 3)
    assert key == diffusion.DiffusionSampler(context(root, train_real, tmp_path)).cache_key("dark", 3)
    assert key != diffusion.DiffusionSampler(context(root, train_real, tmp_path)).cache_key("dark", 4)
    assert key != diffusion.DiffusionSampler(context(root, train_real, tmp_path, steps=7)).cache_key(
        "dark", 3
    )
    assert json.loads(key)["checkpoint"] == trained[2]


def test_settings_errors_name_the_key():
    with pytest.raises(RebalanceError, match="synthesize.diffusion.mode"):
        folder_params(CLASSES, {"diffusion": {"mode": "everywhere"}})
    with pytest.raises(RebalanceError, match="did you mean `steps`"):
        folder_params(CLASSES, {"diffusion": {"stepz": 3}})


def test_generator_trained_on_a_test_image_is_refused(trained, tmp_path):
    root, train_real, _, _ = trained
    held_out = train_real.iloc[[0]].assign(split="test")  # pretend one training image is a test image
    ctx = context(root, train_real, tmp_path)
    ctx.held_out = held_out
    with pytest.raises(RebalanceError, match="trained on 1 val/test image") as err:
        diffusion.DiffusionSampler(ctx)
    assert held_out.path.iloc[0] in str(err.value) and "\n" not in str(err.value)
    ctx.held_out = held_out.iloc[0:0]
    detail = diffusion.DiffusionSampler(ctx).description["generator"]
    assert detail["external"] is False and len(detail["training_manifest"]) == 64


def test_external_generator_needs_allow_external_model(trained, tmp_path):
    root, train_real, _, _ = trained
    model = tmp_path / "model"
    shutil.copytree(root / "model", model)
    (model / provenance.RECORD).unlink()  # a model from elsewhere: no record of what it saw
    ctx = context(root, train_real, tmp_path / "out", model_dir=str(model))
    with pytest.raises(RebalanceError, match="allow_external_model"):
        diffusion.DiffusionSampler(ctx)
    ctx.params.synthesize.allow_external_model = True
    assert diffusion.DiffusionSampler(ctx).description["generator"]["external"] is True


def test_missing_model_is_a_clear_error(tmp_path):
    train_real = make_raw(tmp_path / "raw", n=2)
    ctx = Context(
        params=folder_params(CLASSES, {"diffusion": {"model_dir": str(tmp_path / "nope")}}),
        train_real=train_real,
        raw_dir=tmp_path / "raw",
        out_dir=tmp_path / "out",
    )
    with pytest.raises(RebalanceError, match="train_generator@diffusion"):
        diffusion.DiffusionSampler(ctx).generate("dark", [0])


# --- the local Stable Diffusion inpainting path, on a tiny random pipeline built here ---------


def test_sd_inpaint_offline_with_attribute_prompts(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd_dir = tiny_sd_pipeline(tmp_path / "pipe")
    train_real = make_raw(tmp_path / "raw", n=3, size=32)
    attrs = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "path": train_real.path,
            "skin_tone": [0.05, 0.95, 0.5] * 2,
            "papules": [0, 0, 9] * 2,
            "pustules": [0] * 6,
            "nodules": [5, 5, 0] * 2,
        }
    ).to_csv(attrs, index=False)
    sd = {"model_dir": str(sd_dir), "attributes": str(attrs), "resolution": 16, "steps": 3, "guidance": 2.0}
    params = folder_params(
        CLASSES,
        {
            "allow_external_model": True,  # a folder from elsewhere: no record of its training images
            "diffusion": {"backend": "sd_inpaint", "mask": {"blobs": 2, "fraction": 0.3}, "sd": sd},
        },
    )
    ctx = Context(params=params, train_real=train_real, raw_dir=tmp_path / "raw", out_dir=tmp_path / "out")
    rows = diffusion.DiffusionSampler(ctx).generate("bright", [0, 1, 2])
    prompts = set()
    for r in rows:
        detail = json.loads(r["detail"])
        prompts.add(detail["prompt"])
        assert detail["backend"] == "sd" and detail["mode"] == "inpaint" and len(detail["checkpoint"]) == 16
        original = load_array(tmp_path / "raw" / r["source"])
        made = load_array(tmp_path / "out" / r["path"])
        mask = diffusion.blob_mask(np.random.default_rng(int(r["seed"])), 32, 2, 0.3)
        assert np.array_equal(made[~mask], original[~mask]), "pixels outside the mask changed"
        assert (made[mask] != original[mask]).any()
    assert len(prompts) == 3 and any("dark brown skin" in p for p in prompts)
    assert any("very light skin" in p and "nodules" in p for p in prompts)
    again_ctx = Context(
        params=params, train_real=train_real, raw_dir=tmp_path / "raw", out_dir=tmp_path / "again"
    )
    again = diffusion.DiffusionSampler(again_ctx).generate("bright", [1])
    assert again[0]["sha256"] == rows[1]["sha256"]


def test_sd_inpaint_missing_folder_is_a_clear_error(tmp_path):
    params = folder_params(
        CLASSES, {"diffusion": {"backend": "sd_inpaint", "sd": {"model_dir": str(tmp_path / "nowhere")}}}
    )
    ctx = Context(
        params=params,
        train_real=make_raw(tmp_path / "raw", n=1),
        raw_dir=tmp_path / "raw",
        out_dir=tmp_path / "out",
    )
    with pytest.raises(RebalanceError, match="nowhere"):
        diffusion.DiffusionSampler(ctx).generate("dark", [0])


# --- quality metrics --------------------------------------------------------------------------


def test_quality_metrics_separate_identical_from_disjoint_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200, 8))
    p, r = quality.precision_recall(a, a.copy())
    assert p == 1.0 and r == 1.0
    assert quality.frechet_distance(a, a.copy()) < 1e-3
    b = rng.normal(6, 1, (200, 8))
    p, r = quality.precision_recall(a, b)
    assert p < 0.05 and r < 0.05
    assert quality.frechet_distance(a, b) > 100
    assert quality.real_vs_synthetic_auc(a, b) > 0.95
    c = rng.normal(0, 1, (200, 8))  # same distribution, new samples
    assert abs(quality.real_vs_synthetic_auc(a, c) - 0.5) < 0.15
    p, r = quality.precision_recall(a, c)
    assert p > 0.7 and r > 0.7


def brute_density_coverage(real, fake, k):
    """Naeem et al. 2020 from the full distance matrices (scipy), as their reference code computes it."""
    from scipy.spatial.distance import cdist

    real_real = cdist(real, real)
    radii = np.sort(real_real, axis=1)[:, k]  # column 0 is the point itself
    inside = cdist(real, fake) <= radii[:, None]  # real ball i holds fake j
    return inside.sum() / (k * len(fake)), inside.any(1).mean()


def test_density_and_coverage_equal_the_reference_and_read_as_the_paper_says():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (150, 6))
    for fake in (rng.normal(0, 1, (120, 6)), rng.normal(0.5, 0.5, (90, 6)), a[:40] + 0.01):
        got = quality.density_coverage(a, fake, 5)
        assert got == pytest.approx(brute_density_coverage(a, fake, 5), abs=1e-9)
    same = quality.density_coverage(a, rng.normal(0, 1, (150, 6)), 5)
    assert 0.7 < same[0] < 1.3 and same[1] > 0.8  # a second sample of the real distribution
    crowded = quality.density_coverage(a, np.repeat(a[:3], 50, axis=0), 5)
    assert crowded[1] < 0.1  # a few modes, copied: the coverage says so (recall on outliers may not)
    far = quality.density_coverage(a, rng.normal(6, 1, (150, 6)), 5)
    assert far == (0.0, 0.0)


def test_memorisation_check_finds_near_copies():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    fake = np.concatenate([real[2:3] // 2 + 60, rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)])
    dist, nearest = quality.nearest_words(
        quality.pack(quality.phash(fake)), quality.pack(quality.phash(real))
    )
    assert nearest[0] == 2 and dist[0] <= 4 and dist[1] > 10


def test_memorisation_check_skips_only_the_edit_own_source():
    rng = np.random.default_rng(2)
    real = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    fake = np.stack([real[1], real[3]])  # an edit of 1 (excluded), and a copy of 3 (not its source)
    own = np.array([1, 0])  # each fake image's own source
    dist, nearest = quality.nearest_words(
        quality.pack(quality.phash(fake)), quality.pack(quality.phash(real)), own
    )
    assert dist[0] > 10  # its own source does not count
    assert nearest[1] == 3 and dist[1] == 0  # a copy of another train image is still caught


def test_quality_comparisons_do_not_depend_on_the_chunk_size(monkeypatch):
    """Memory is bounded by comparing a few rows at a time; the answers must not change with how
    many (a wrong offset between chunks, e.g. in the self-exclusion or the `exclude` skip, would)."""
    rng = np.random.default_rng(3)
    real, fake = rng.normal(0, 1, (90, 5)), rng.normal(0.3, 1, (70, 5))
    h_real = rng.integers(0, 2, (90, 64)).astype(bool)
    h_fake = np.concatenate([h_real[:20], rng.integers(0, 2, (50, 64)).astype(bool)])
    own = np.r_[np.arange(20), -np.ones(50, int)]  # each of the first 20 is an edit of its source
    h_fake, h_real = quality.pack(h_fake), quality.pack(h_real)
    whole = quality.precision_recall(real, fake), quality.nearest_words(h_fake, h_real, own)
    monkeypatch.setattr(quality, "CHUNK_CELLS", 7 * 90)  # 7 rows at a time
    chunked = quality.precision_recall(real, fake), quality.nearest_words(h_fake, h_real, own)
    assert whole[0] == chunked[0]
    assert all(np.array_equal(a, b) for a, b in zip(whole[1], chunked[1]))
    assert (chunked[1][0][:20] > 0).all()  # own sources skipped in every chunk


def test_tsne_map_draws_a_bounded_sample_of_every_group():
    from rebalance.synth.quality_plots import tsne_sample

    groups = ["real/a"] * 5000 + ["diffusion/a"] * 30 + ["real/b"] * 1200
    keep = tsne_sample(groups, 1000, seed=0)
    drawn = [groups[i] for i in keep]
    assert drawn.count("real/a") == 1000 and drawn.count("real/b") == 1000
    assert drawn.count("diffusion/a") == 30  # a small group is kept whole
    assert np.array_equal(keep, tsne_sample(groups, 1000, seed=0))  # the same seed, the same map


def test_near_copy_search_finds_what_every_pair_compared_finds():
    """near_copies compares only hashes that share a chunk; it must find exactly the near-copies
    (and the closest of each) that comparing every pair finds, own sources skipped."""
    rng = np.random.default_rng(4)
    real = rng.integers(0, 2**64, 3000, dtype=np.uint64)
    sources, n_bits = np.arange(0, 600, 3), np.tile([0, 1, 2, 3, 4, 5, 6, 9], 25)
    one = np.uint64(1)
    masks = [np.bitwise_or.reduce(one << rng.choice(64, n, replace=False).astype(np.uint64)) for n in n_bits]
    planted = real[sources] ^ np.array(masks, dtype=np.uint64)  # copies with n_bits bits changed
    fake = np.concatenate([planted, rng.integers(0, 2**64, 500, dtype=np.uint64)])
    own = np.full(len(fake), -1)
    own[:40:4] = sources[:40:4]  # ten edits of their own source: not copies of it
    for bits in (0, 4, 8, 13):  # 13: past INDEXED_UP_TO_BITS, the brute-force path
        dist, nearest = quality.near_copies(fake, real, bits, exclude=own)
        all_d, all_j = quality.nearest_words(fake, real, own)
        hit = all_d <= bits
        assert np.array_equal(nearest >= 0, hit)
        assert np.array_equal(dist[hit], all_d[hit]) and np.array_equal(nearest[hit], all_j[hit])
        assert (nearest[:40:4] != own[:40:4]).all()
    dist, nearest = quality.near_copies(fake, real, 4)  # no exclusion: every planted copy within 4 bits
    close = n_bits <= 4
    assert np.array_equal(nearest[:200][close], sources[close])
    assert np.array_equal(dist[:200][close], n_bits[close])
    assert (nearest[200:] == -1).all()  # random hashes are never within 4 bits of 3,000 others


def test_assess_sample_is_seeded_and_bounded():
    assert np.array_equal(quality.sample(5, 10, 0), np.arange(5))
    a, b = quality.sample(1000, 100, 3), quality.sample(1000, 100, 3)
    assert len(a) == 100 and np.array_equal(a, b) and (np.diff(a) > 0).all()
