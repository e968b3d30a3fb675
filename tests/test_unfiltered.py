"""Curation's control, `balanced_unfiltered`: every planned slot's first try, as the release would
be without the filter. With the filter off it is exactly `balanced` (the same images, the mirrors
made when read equal to stage flip's flips); with the filter on, the rejected first tries are
kept in data/synthesized (stage fuse reads only its manifest.csv), each slot once, and a re-run
keeps the same bytes."""

from __future__ import annotations

import json
from collections import Counter
from hashlib import sha256

import pandas as pd
import pytest
from conftest import commit_all, copy_built, run, set_params

from rebalance import config
from rebalance.core import manifest, paths
from rebalance.learn import variants
from rebalance.learn.data import training_set


def _read(repo, rel: str) -> pd.DataFrame:
    return pd.read_csv(repo / rel, dtype=str, keep_default_na=False)


def test_without_the_filter_the_unfiltered_variant_trains_on_balanceds_very_images(built_repo, monkeypatch):
    monkeypatch.chdir(built_repo)
    params = config.load()
    assert params.synthesize.filter is None
    synthesized = _read(built_repo, f"data/synthesized/{manifest.FILENAME}")
    unfiltered = _read(built_repo, f"data/synthesized/{paths.UNFILTERED_MANIFEST}")
    assert list(unfiltered.path) == sorted(synthesized.path)
    assert set(unfiltered.sha256) == set(synthesized.sha256)

    fused = manifest.read(paths.FUSED / manifest.FILENAME)
    spec = params.train.variants
    balanced = variants.variant_rows(fused, spec["balanced"], params.flip)
    mine = variants.variant_rows(fused, spec["balanced_unfiltered"], params.flip)
    assert variants.composition(mine) == variants.composition(balanced)

    def pixels(rows):  # each image's decoded pixels, as a multiset, with its label
        x = training_set(rows, params.train.image_size, params.dataset.fit, 512)
        return Counter(
            (sha256(x[i].numpy().tobytes()).hexdigest(), label) for i, label in enumerate(rows.label)
        )

    assert pixels(mine) == pixels(balanced)  # the mirrors made when read are stage flip's flips

    summary = json.loads((built_repo / "metrics/summary.json").read_text())
    assert summary["train_composition"]["balanced_unfiltered"] == summary["train_composition"]["balanced"]
    assert "balanced_unfiltered" in summary["variants"]["balanced"]["paired"]
    assert "balanced_unfiltered" not in summary["variants"]["real"]["paired"]  # the headline's control only
    asked = [a["baseline"] for a in summary["verdict"]]
    assert "balanced_unfiltered" in asked


@pytest.mark.slow
def test_the_filters_rejected_first_tries_are_kept_aside_once_per_slot(built_repo, tmp_path):
    repo = copy_built(built_repo, tmp_path / "repo")
    # a strict filter: most images lie farther from their class than 20% of real val images
    strict = {"max_distance_percentile": 20, "min_class_percentile": 0, "max_tries": 1}
    set_params(repo, {"synthesize": {"filter": strict}})
    commit_all(repo, "strict filter")
    run(["dvc", "repro", "-s", "synthesize"], repo)

    kept = _read(repo, f"data/synthesized/{manifest.FILENAME}")
    first = _read(repo, f"data/synthesized/{paths.UNFILTERED_MANIFEST}")
    planned = json.loads((repo / "data/counted/plan.json").read_text())["generated"]
    assert len(first) == sum(n for per in planned.values() for n in per.values())  # every slot, once
    assert first.path.is_unique
    tries = {p: json.loads(d)["judge"]["tries"] for p, d in zip(kept.path, kept.detail)}
    regenerated = {p for p, t in tries.items() if t > 0}
    assert regenerated, "the strict filter should have rejected some first tries"
    theirs = first.set_index("path")
    for path in regenerated:  # a different image stood in that slot first, rejected for its distance
        assert theirs.sha256[path] != kept.set_index("path").sha256[path]
        assert json.loads(theirs.detail[path])["judge"]["rejected"] == ["distance"]
    for path in set(kept.path) - regenerated:  # passed at once: its own first try
        assert theirs.sha256[path] == kept.set_index("path").sha256[path]
    empty = set(first.path) - set(kept.path)
    assert all(json.loads(theirs.detail[p])["judge"]["rejected"] for p in empty)
    assert all(s.startswith("shards/") for s in first.shard)  # packed, as the kept images are

    before = (repo / "data/synthesized" / paths.UNFILTERED_MANIFEST).read_bytes()
    run(["dvc", "repro", "-s", "-f", "synthesize"], repo)  # reused, first tries restored from the tars
    assert (repo / "data/synthesized" / paths.UNFILTERED_MANIFEST).read_bytes() == before
