"""The release gate on synthetic quality: each method and class's kept images against thresholds
and the real val images' reference row (metrics/synthesis_quality.json, metrics/filter.json)."""

from __future__ import annotations

from rebalance.config.schema import SyntheticGate
from rebalance.registry.gate import synthetic_rows

QUALITY = {
    "per_method": {
        "real_val": {"level3": {"intended_class_rate": 0.9, "near_copies": 0, "near_copies_of_val_test": 0}},
        "diffusion": {"level3": {"intended_class_rate": 0.5, "real_vs_synthetic_auc": 0.93,
                                 "near_copies": 0, "near_copies_of_val_test": 0}},
        "lesion_edit": {"level3": {"intended_class_rate": 0.04, "real_vs_synthetic_auc": 0.99,
                                   "near_copies": 1, "near_copies_of_val_test": 0}},
    },
    "filter": {"per_method": {"diffusion": {"level3": {"empty_share": 0.05}},
                              "lesion_edit": {"level3": {"empty_share": 0.8}}}},
}  # fmt: skip


def failed(rows):
    return sorted(r["check"].split(" ")[0] + " " + r["check"].split(" ")[1] for r in rows if not r["ok"])


def test_each_method_and_class_is_held_to_its_reference():
    rows = synthetic_rows(SyntheticGate(), QUALITY)
    assert failed(rows) == ["lesion_edit/level3 intended-class", "lesion_edit/level3 near-copies",
                            "lesion_edit/level3 slots"]  # fmt: skip
    assert not [r for r in rows if r["check"].startswith("real_val")]  # the reference is no candidate
    rate = next(r for r in rows if r["check"].startswith("diffusion/level3 intended"))
    assert "0.5 x real val's 0.9" in rate["check"] and rate["value"] == 0.5 and rate["ok"]  # 0.5 >= 0.45


def test_thresholds_move_the_verdict_and_the_auc_is_checked_when_set():
    lenient = SyntheticGate(min_intended_ratio=0.01, max_empty_share=0.9, near_copies=1)
    assert failed(synthetic_rows(lenient, QUALITY)) == []
    strict = SyntheticGate(max_realism_auc=0.9)
    assert "diffusion/level3 real-vs-synthetic" in failed(synthetic_rows(strict, QUALITY))


def test_no_quality_measured_fails_the_gate():
    rows = synthetic_rows(SyntheticGate(), None)
    assert len(rows) == 1 and not rows[0]["ok"]


def test_a_foundation_models_probe_judges_the_intended_class_where_assess_gave_one():
    """The filter's judge says the kept lesion edits are level3 (0.9); a DINOv2 probe the filter
    never saw says 0.1 of them are: the gate holds the probe's rate to the threshold."""
    quality = {
        "per_method": {
            "real_val": {"level3": {"intended_class_rate": 0.9, "foundation": {"intended_class_rate": 0.8}}},
            "lesion_edit": {"level3": {"intended_class_rate": 0.9, "near_copies": 0,
                                       "foundation": {"intended_class_rate": 0.1}}},
        },
    }  # fmt: skip
    rows = synthetic_rows(SyntheticGate(), quality)
    rate = next(r for r in rows if "intended-class" in r["check"])
    assert "foundation-model probe" in rate["check"] and "real val's 0.8" in rate["check"]
    assert rate["value"] == 0.1 and not rate["ok"]
    del quality["per_method"]["real_val"]["level3"]["foundation"]  # no reference: the judge's rate
    rate = next(r for r in synthetic_rows(SyntheticGate(), quality) if "intended-class" in r["check"])
    assert "probe" not in rate["check"] and rate["value"] == 0.9 and rate["ok"]
