"""Foundation-model features (`assess.features`): a local DINOv2 or CLIP folder, built here as a tiny
random model (nothing is downloaded), embeds images as the model itself does with the family's
normalisation, and stage assess reports the sample-quality measures in that embedding; the
Fréchet distance is checked against one computed here with scipy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from conftest import commit_all, copy_built, run, set_params

from rebalance.core.errors import RebalanceError
from rebalance.core.images import load_array
from rebalance.dataset import shards
from rebalance.synth.foundation import Embedder

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY |= {"image_size": 32, "patch_size": 8}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def tiny_dinov2(folder: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(**TINY)
    Dinov2Model(config).save_pretrained(folder)
    return folder


def tiny_clip(folder: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(**TINY, projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    return folder


def by_hand(folder: Path, images: torch.Tensor, stats) -> np.ndarray:
    from transformers import AutoModel, CLIPVisionModelWithProjection

    config = json.loads((folder / "config.json").read_text())
    if config["model_type"] == "dinov2":
        model, take = AutoModel.from_pretrained(folder), lambda out: out.pooler_output
    else:
        model, take = CLIPVisionModelWithProjection.from_pretrained(folder), lambda out: out.image_embeds
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in stats)
    with torch.no_grad():
        return take(model.eval()(pixel_values=(images.float() / 255 - mean) / std)).numpy()


@pytest.mark.parametrize("make, stats", [(tiny_dinov2, IMAGENET), (tiny_clip, OPENAI_CLIP)])
def test_embeddings_are_the_models_own_with_its_familys_normalisation(tmp_path, make, stats):
    folder = make(tmp_path / "model")
    images = torch.randint(
        0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    embedder = Embedder.load(folder)
    got = embedder.embed(images, batch_size=4)
    assert got.shape[0] == 10 and embedder.describe["image_size"] == 32
    np.testing.assert_allclose(got, by_hand(folder, images, stats), rtol=1e-4, atol=1e-5)
    assert embedder.describe["weights_sha256"]  # the report names the weights it measured with


def test_a_folder_that_is_not_a_dinov2_or_clip_model_is_one_line(tmp_path):
    with pytest.raises(RebalanceError, match=r"^assess\.features: .* has no config\.json"):
        Embedder.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(RebalanceError, match=r"is a bert; use a DINOv2 or CLIP model"):
        Embedder.load(tmp_path)


def frechet(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), each covariance offset by eps I."""
    mu = a.mean(0) - b.mean(0)
    s_a, s_b = (np.cov(x, rowvar=False) + eps * np.eye(a.shape[1]) for x in (a, b))
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(mu @ mu + np.trace(s_a + s_b - 2 * root) - 2 * a.shape[1] * eps)


@pytest.mark.slow
def test_assess_reports_the_measures_in_the_foundation_models_embedding(built_repo, tmp_path):
    repo = copy_built(built_repo, tmp_path / "repo")
    folder = tiny_dinov2(tmp_path / "dinov2")
    params = set_params(repo, {"assess": {"features": str(folder)}})
    commit_all(repo, "foundation features")
    run(["dvc", "repro", "--single-item", "assess"], repo)
    report = json.loads((repo / "metrics/synthesis_quality.json").read_text())
    assert report["foundation"]["model_type"] == "dinov2" and report["foundation"]["dim"] == 32
    for per_class in report["per_method"].values():
        for measures in per_class.values():
            assert set(measures["foundation"]) == {
                "intended_class_rate", "precision", "recall", "density", "coverage", "frechet"}  # fmt: skip

    fit = params["dataset"]["fit"]
    real = pd.read_csv(repo / "data/counted/manifest.csv", dtype=str, keep_default_na=False)
    synth = pd.read_csv(repo / "data/synthesized/manifest.csv", dtype=str, keep_default_na=False)
    method, label = sorted(set(synth.origin))[0], sorted(set(synth.label))[-1]
    rows = synth[(synth.origin == method) & (synth.label == label)].sort_values("path")
    train = real[(real.split == "train") & (real.label == label)].sort_values("path")
    made = np.stack([load_array(r.path, 32, fit, data=shards.read_bytes(repo / "data/synthesized", r))
                     for r in rows.itertuples()])  # fmt: skip
    own = np.stack([load_array(repo / "data/raw" / p, 32, fit) for p in train.path])
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    expected = frechet(by_hand(folder, as_tensor(own), IMAGENET), by_hand(folder, as_tensor(made), IMAGENET))
    assert report["per_method"][method][label]["foundation"]["frechet"] == pytest.approx(
        expected, rel=1e-3, abs=1e-3
    )
