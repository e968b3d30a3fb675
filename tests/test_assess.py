"""Stage assess on a build whose generator copied: synthetic images that are near-copies of real
train images (other than their own source) are found and named in metrics/synthesis_quality.json."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_built, run
from PIL import Image


@pytest.mark.slow
def test_planted_near_copies_of_train_images_are_reported(built_repo: Path, tmp_path: Path):
    repo = copy_built(built_repo, tmp_path / "repo")
    synth = pd.read_csv(repo / "data/synthesized/manifest.csv", dtype=str, keep_default_na=False)
    counted = pd.read_csv(repo / "data/counted/manifest.csv", dtype=str, keep_default_na=False)
    train = counted[counted.split == "train"]
    label = sorted(set(synth.label))[-1]  # the last class: its rows' labels are not their positions
    assert len(set(synth.label)) > 1
    rows = synth[synth.label == label].iloc[1::2].head(3)
    planted = {}
    others = sorted(set(train[train.label == label].path) - set(rows.source))
    shard = "shards/planted-000000.tar"  # the near-copies packed as the stage packs its images
    with tarfile.open(repo / "data/synthesized" / shard, "w") as tar:
        for (i, r), copied in zip(rows.iterrows(), others):
            image = np.asarray(Image.open(repo / "data/raw" / copied).convert("RGB")).astype(np.int16)
            near = np.clip(image + 3, 0, 255).astype(np.uint8)  # every pixel a little brighter
            buf = io.BytesIO()
            Image.fromarray(near).save(buf, format="PNG")
            info = tarfile.TarInfo(f"{i:08d}.png")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
            planted[r.path] = copied
    with tarfile.open(repo / "data/synthesized" / shard) as tar:
        for member in tar.getmembers():
            synth.loc[int(member.name[:8]), ["shard", "offset", "size"]] = [
                shard,
                str(member.offset_data),
                str(member.size),
            ]
    synth.to_csv(repo / "data/synthesized/manifest.csv", index=False)
    proc = run(["dvc", "repro", "--single-item", "assess"], repo)  # upstream kept as planted
    assert "Traceback" not in proc.stderr
    report = json.loads((repo / "metrics/synthesis_quality.json").read_text())
    found = {}
    for method in report["per_method"].values():
        cls = method.get(label, {})
        found |= {e["image"]: e["nearest_train"] for e in cls.get("near_copy_examples", [])}
    assert found == planted, (found, planted)
    assert sum(m.get(label, {}).get("near_copies", 0) for m in report["per_method"].values()) == 3
