"""What each variant trains on; `real_oversampled`, the control, is `balanced` with duplicated real
images (and flips of real images) in place of the synthetic ones, deterministically."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from rebalance.core.errors import RebalanceError
from rebalance.learn.variants import composition, oversampled_rows, training_rows

# real train images per class (imbalanced), synthetic images up to 8, a flip of everything
REAL = {"level0": 7, "level1": 5, "level2": 3, "level3": 2}
TARGET = 8


def fused_manifest() -> pd.DataFrame:
    rows = []
    for label, n in REAL.items():
        real = [f"train/{label}/real_{i}.png" for i in range(n)]
        synth = [f"train/{label}/edit_{i}.png" for i in range(TARGET - n)]
        raw = {p: p.removeprefix("train/") for p in real}  # a real image's source: its raw path
        rows += [(p, "train", label, "real", raw[p]) for p in real]
        rows += [(p, "train", label, "lesion_edit", raw[real[0]]) for p in synth]
        rows += [
            (p.replace(".png", "_flip.png"), "train", label, "flip", raw.get(p, p)) for p in real + synth
        ]
        rows += [
            (f"{s}/{label}/real_{i}.png", s, label, "real", "") for s in ("val", "test") for i in range(2)
        ]
    df = pd.DataFrame(rows, columns=["path", "split", "label", "origin", "source"])
    return df.sample(frac=1, random_state=0).reset_index(drop=True)  # row order must not matter


def differs_only_in_synthetic_rows(balanced: pd.DataFrame, control: pd.DataFrame) -> list[str]:
    """What breaks "the control differs from balanced only in the synthetic images", computed from
    the rows alone: per class, the same total and the same number of flips; every non-synthetic row
    of balanced (real images, flips of real images) kept; the rest of the control duplicates of
    those, one per synthetic row of balanced; no synthetic image."""
    problems = []
    made = ~balanced.origin.isin(["real", "flip"])
    synthetic = set(balanced.path[made])
    is_synthetic = made | ((balanced.origin == "flip") & balanced.source.isin(synthetic))
    kept = Counter(balanced.path[~is_synthetic])
    have = Counter(control.path)
    if set(control.origin) - {"real", "flip"}:
        problems.append("a synthetic image in the control")
    if kept - have:
        problems.append(f"rows of balanced missing: {sorted(kept - have)[:3]}")
    for label in sorted(set(balanced.label)):
        b, c = balanced[balanced.label == label], control[control.label == label]
        if len(b) != len(c):
            problems.append(f"{label}: {len(c)} rows, balanced has {len(b)}")
        if (b.origin == "flip").sum() != (c.origin == "flip").sum():
            problems.append(
                f"{label}: {(c.origin == 'flip').sum()} flips, balanced has {(b.origin == 'flip').sum()}"
            )
        extra = Counter(c.path) - Counter(b.path[~is_synthetic[b.index]])
        if not set(extra) <= set(b.path[~is_synthetic[b.index]]):
            problems.append(f"{label}: the control adds rows that are not real images or their flips")
    return problems


def test_real_oversampled_differs_from_balanced_only_in_its_synthetic_images():
    fused = fused_manifest()
    balanced = training_rows(fused, "balanced")
    control = training_rows(fused, "real_oversampled")
    assert differs_only_in_synthetic_rows(balanced, control) == []
    assert set(control.split) == {"train"} and set(control.label.value_counts()) == {2 * TARGET}
    # the check fails on a control without flips (real images duplicated to balanced's counts)
    real = fused[(fused.split == "train") & (fused.origin == "real")]
    unmatched = oversampled_rows(real, balanced.label.value_counts().to_dict())
    assert any("flips" in p for p in differs_only_in_synthetic_rows(balanced, unmatched))


def test_train_composition_counts_each_variants_rows_by_class_and_origin():
    fused = fused_manifest()
    control = composition(training_rows(fused, "real_oversampled"))
    balanced = composition(training_rows(fused, "balanced"))
    for label, n in REAL.items():  # as many flips as balanced; real images fill the synthetic slots
        assert control[label]["flip"] == balanced[label]["flip"] == TARGET
        assert control[label]["real"] == TARGET and balanced[label] == {
            "real": n,
            "lesion_edit": TARGET - n,
            "flip": TARGET,
        }


def test_real_oversampled_is_deterministic_and_seeded():
    a = training_rows(fused_manifest(), "real_oversampled")
    b = training_rows(fused_manifest().iloc[::-1], "real_oversampled")
    pd.testing.assert_frame_equal(a, b)
    real = a.drop_duplicates("path")
    target = {"level0": 10, "level1": 10, "level2": 10, "level3": 10}
    picks = {tuple(oversampled_rows(real, target, seed=s).path) for s in range(5)}
    assert len(picks) > 1  # the seed chooses which images get the extra copy


def test_oversampling_a_class_without_real_images_is_a_one_line_error():
    real = fused_manifest().query("origin == 'real' and split == 'train' and label != 'level3'")
    with pytest.raises(RebalanceError, match="level3"):
        oversampled_rows(real, {"level0": 8, "level3": 8})


@pytest.mark.parametrize(
    "data, origins", [("real", {"real"}), ("balanced", {"real", "lesion_edit", "flip"}),
                      ("balanced_noflip", {"real", "lesion_edit"})],
)  # fmt: skip
def test_other_variants_train_on_their_origins_of_the_train_split(data, origins):
    rows = training_rows(fused_manifest(), data)
    assert set(rows.origin) == origins and set(rows.split) == {"train"} and rows.path.is_unique


def two_method_manifest() -> pd.DataFrame:
    """Real images (raw paths as flip sources), lesion edits for half of each deficit, diffusion
    images for the other half, a flip of everything."""
    rows = []
    for label, n in REAL.items():
        deficit = TARGET - n
        for i in range(n):
            rows += [(f"train/{label}/real_{i}.png", "train", label, "real", f"{label}/real_{i}.png")]
            rows += [(f"train/{label}/real_{i}_flip.png", "train", label, "flip", f"{label}/real_{i}.png")]
        for method, k in (("lesion_edit", deficit // 2), ("diffusion", deficit - deficit // 2)):
            for i in range(k):
                path = f"train/{label}/{method}_{i}.png"
                rows += [(path, "train", label, method, f"{label}/real_0.png")]
                rows += [(path.replace(".png", "_flip.png"), "train", label, "flip", path)]
    return pd.DataFrame(rows, columns=["path", "split", "label", "origin", "source"])


@pytest.mark.parametrize("method", ["lesion_edit", "diffusion"])
def test_balanced_method_has_balanced_counts_from_real_and_one_generator_only(method):
    fused = two_method_manifest()
    balanced = training_rows(fused, "balanced")
    mine = training_rows(fused, "balanced", method)
    assert mine.label.value_counts().to_dict() == balanced.label.value_counts().to_dict()
    other = "diffusion" if method == "lesion_edit" else "lesion_edit"
    assert other not in set(mine.origin) and not mine.path.str.contains(other).any()  # nor its flips
    assert set(fused.path[fused.origin == "real"]) <= set(mine.path)  # every real image
    assert (mine.path.str.contains(method)).sum() >= 2 * (TARGET - min(REAL.values())) - 2
    pd.testing.assert_frame_equal(mine, training_rows(fused.iloc[::-1], "balanced", method))


def test_every_method_has_a_per_generator_variant_and_a_variant_needs_its_method():
    import yaml
    from conftest import REPO, make_params

    from rebalance import config

    p = make_params({"synthesize": {"methods": {"lesion_edit": 0.5, "diffusion": 0.5}}})
    made = {k: v.method for k, v in p.train.variants.items() if v.method}
    assert made == {"balanced_lesion_edit": "lesion_edit", "balanced_diffusion": "diffusion"}
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    gan = {"data": "balanced", "method": "gan", "augment": True}  # gan makes no image
    raw["train"]["variants"]["balanced_gan"] = gan
    with pytest.raises(config.ParamsError, match="train.variants.balanced_gan.method"):
        config.validate(raw)
