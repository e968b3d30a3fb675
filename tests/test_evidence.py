"""The experiment matrix: honest evidence on a real-only test set (paired differences against the
baselines, with intervals and p-values), with guard rails against leakage."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import TINY, commit_all, copy_repo, deep_update, run, set_params

from rebalance.core import manifest
from rebalance.learn.variants import training_rows

pytestmark = pytest.mark.slow

CHANCE = 0.25  # four demo grades
MEDIUM = deep_update(
    json.loads(json.dumps(TINY)),
    {
        "raw": {"demo": {"scale": 0.2}},
        "count": {"target": {"strategy": "fixed", "n": 60}},
        "train": {
            "steps": 120,
            "seeds": [0, 1],
            "headline": "balanced",
            "variants": {
                "real": {"data": "real"},
                "real_weighted": {"data": "real", "weighted": True},
                "real_oversampled": {"data": "real_oversampled"},
                "balanced": {"data": "balanced"},
                "shuffled": {"data": "balanced", "shuffle_labels": True},
                # one row per generator of the default methods
                "balanced_lesion_edit": {"data": "balanced", "method": "lesion_edit"},
                "balanced_diffusion": {"data": "balanced", "method": "diffusion"},
            },
        },
        "evaluate": {"bootstrap": 200},
    },
)


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("evidence") / "repo")
    set_params(repo, MEDIUM)
    commit_all(repo)
    run([sys.executable, "-m", "dvc", "repro"], repo)
    return repo


def test_table_has_every_variant_with_spread_and_intervals(evidence):
    summary = json.loads((evidence / "metrics/summary.json").read_text())
    methods = yaml.safe_load((evidence / "params.yaml").read_text())["synthesize"]["methods"]
    generated = {f"balanced_{m}" for m in methods}  # one evidence row per synthesis method
    assert summary["generators"] == {m: f"balanced_{m}" for m in methods}
    assert (
        set(summary["variants"])
        == {"real", "real_weighted", "real_oversampled", "balanced", "shuffled"} | generated
    )
    assert summary["minority"] == ["level2", "level3"]
    for v in summary["variants"].values():
        for metric in ("balanced_accuracy", "macro_f1", "recall_level2", "recall_level3"):
            lo, hi = v["ci95"][metric]
            assert 0 <= lo <= v["pooled"][metric] <= hi <= 1  # the interval of the pooled predictions
        assert "std" in v["mean_std"]["macro_f1"]
    header = next(line for line in (evidence / "metrics/summary.md").read_text().splitlines()
                  if line.startswith("| variant |"))  # fmt: skip
    minority_first = header.split("|")[2:4]
    assert [c.strip() for c in minority_first] == ["recall_level2", "recall_level3"]


@pytest.mark.parametrize("build", ["evidence", "built_repo"])
def test_every_variant_has_paired_differences_against_every_baseline(build, request):
    repo = request.getfixturevalue(build)
    summary = json.loads((repo / "metrics/summary.json").read_text())
    baselines = ["real_oversampled", "real", "real_weighted", "balanced_unfiltered"]
    baselines = [b for b in baselines if b in summary["variants"]]  # those the build trained
    assert summary["baselines"] == baselines
    test = manifest.read(repo / "data/fused/manifest.csv").query("split == 'test'")
    unmeasured = sorted(set(summary["minority"]) - set(test.label))  # no test image: no recall
    assert summary["not_measured"] == unmeasured
    recalls = [f"recall_{c}" for c in summary["minority"] if c not in unmeasured]
    metrics = [*recalls, "balanced_accuracy", "macro_f1"]
    for name, v in summary["variants"].items():
        assert not {f"recall_{c}" for c in unmeasured} & set(v["ci95"])
        # balanced_unfiltered, curation's control, is the headline's baseline only
        mine = [
            b for b in baselines if b != name and (b != "balanced_unfiltered" or name == summary["headline"])
        ]
        assert list(v["paired"]) == mine
        for base, diffs in v["paired"].items():
            for m in metrics:
                d = diffs[m]
                lo, hi = d["ci95"]
                assert -1 <= lo <= hi <= 1 and 0 < d["p"] <= 1
                assert d["delta"] == pytest.approx(v["pooled"][m] - summary["variants"][base]["pooled"][m])
    md = (repo / "metrics/summary.md").read_text()
    assert md.startswith("## Verdict\n\n- Did the synthetic images beat the matched control? **")  # leads
    for base in baselines:
        assert f"| {summary['headline']} | {base} |" in md
    for c in unmeasured:
        assert f"recall_{c}" not in md and f"Not measured: {c}" in md
    assert "two-level bootstrap" in md


@pytest.mark.parametrize("build", ["evidence", "built_repo"])
def test_small_samples_get_honest_intervals_adjusted_p_and_a_detectable_difference(build, request):
    repo = request.getfixturevalue(build)
    summary = json.loads((repo / "metrics/summary.json").read_text())
    test = manifest.read(repo / "data/fused/manifest.csv").query("split == 'test'")
    n_test = test.label.value_counts().to_dict()
    seeds = len(summary["seeds"])
    for v in summary["variants"].values():
        for c, n in n_test.items():  # never [x, x] for a class with fewer than 30 test images
            lo, hi = v["ci95"][f"recall_{c}"]
            assert n >= 30 or lo < hi
        for diffs in v["paired"].values():
            for name, d in diffs.items():
                assert 0 < d["p"] <= d["p_holm"] <= 1 and d["mdd"] > 0 and len(d["per_seed"]) == seeds
                if name.startswith("recall_") and n_test[name.removeprefix("recall_")] < 30:
                    assert d["ci95"][0] < d["ci95"][1]
    assert set(summary["minimal_detectable_difference"]) >= {"balanced_accuracy", "macro_f1"}
    asked = [(a["variant"], a["baseline"]) for a in summary["verdict"]]
    assert (summary["headline"], "real_oversampled") == asked[0]
    curated = int("balanced_unfiltered" in summary["variants"])  # and curation, where its control trained
    assert len(asked) == 2 + curated + len(
        summary["generators"]
    )  # the control, the weighted loss, each generator
    for png in ("evidence.png", "recall_by_variant.png"):
        assert (repo / "metrics/plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_json_is_the_headline_mean_over_seeds(evidence):
    ev = json.loads((evidence / "metrics/eval.json").read_text())
    summary = json.loads((evidence / "metrics/summary.json").read_text())
    assert (
        ev["variant"] == "balanced" and ev["seeds"] == [0, 1] and list(ev["per_seed"]) == ["seed0", "seed1"]
    )
    for m in ("accuracy", "balanced_accuracy", "macro_f1"):
        seeds = [ev["per_seed"][s][m] for s in ev["per_seed"]]
        assert ev[m] == pytest.approx(sum(seeds) / 2)
        assert ev[m] == pytest.approx(summary["variants"]["balanced"]["mean_std"][m]["mean"])
        assert ev["ci95"][m] == summary["variants"]["balanced"]["ci95"][m]
    recall = [ev["per_seed"][s]["per_class"]["level3"]["recall"] for s in ev["per_seed"]]
    assert ev["per_class"]["level3"]["recall"] == pytest.approx(sum(recall) / 2)


def test_shuffled_labels_score_at_chance_and_real_labels_do_not(evidence):
    variants = json.loads((evidence / "metrics/summary.json").read_text())["variants"]
    lo, hi = variants["shuffled"]["ci95"]["balanced_accuracy"]
    assert lo <= CHANCE + 0.05 and variants["shuffled"]["mean_std"]["balanced_accuracy"]["mean"] < 0.4
    assert variants["balanced"]["ci95"]["balanced_accuracy"][0] > CHANCE


def test_no_val_or_test_image_or_flip_is_ever_trained_on(evidence):
    fused = manifest.read(evidence / "data/fused/manifest.csv")
    held_out = fused[fused.split != "train"]
    for data in ("real", "balanced", "balanced_noflip", "real_oversampled"):
        rows = training_rows(fused, data)
        assert (rows.split == "train").all()
        assert not set(rows.root) & set(held_out.root)
        assert not set(rows.sha256) & set(held_out.sha256)  # not even a byte-identical copy


def test_every_variant_is_scored_on_the_same_real_test_set(evidence):
    fused = manifest.read(evidence / "data/fused/manifest.csv")
    test = fused[fused.split == "test"]
    assert set(test.origin) == {"real"}
    ev = json.loads((evidence / "metrics/eval.json").read_text())
    summary = json.loads((evidence / "metrics/summary.json").read_text())
    assert ev["n_test"] == summary["n_test"] == len(test)
    assert ev["test_set"] == summary["test_set"]
    assert {c: m["support"] for c, m in ev["per_class"].items()} == test.label.value_counts().to_dict()


def test_the_control_matches_balanced_in_flips_and_totals(evidence):
    """summary.json's train_composition: real_oversampled has balanced's per-class total and flips,
    and no synthetic image (duplicated real images fill the synthetic images' places)."""
    composition = json.loads((evidence / "metrics/summary.json").read_text())["train_composition"]
    for label, balanced in composition["balanced"].items():
        control = composition["real_oversampled"][label]
        assert sum(control.values()) == sum(balanced.values())
        assert control.get("flip", 0) == balanced.get("flip", 0) > 0
        assert set(control) <= {"real", "flip"}
