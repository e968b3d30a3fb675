"""What each variant trains on; `real_oversampled`, the control, has `balanced`'s per-class counts
from duplicated real images alone, deterministically."""

from __future__ import annotations

import pandas as pd
import pytest

from rebalance.core.errors import RebalanceError
from rebalance.learn.variants import oversampled_rows, training_rows

# real train images per class (imbalanced), synthetic images up to 8, a flip of everything
REAL = {"level0": 7, "level1": 5, "level2": 3, "level3": 2}
TARGET = 8


def fused_manifest() -> pd.DataFrame:
    rows = []
    for label, n in REAL.items():
        real = [f"train/{label}/real_{i}.png" for i in range(n)]
        synth = [f"train/{label}/edit_{i}.png" for i in range(TARGET - n)]
        rows += [(p, "train", label, "real") for p in real]
        rows += [(p, "train", label, "lesion_edit") for p in synth]
        rows += [(p.replace(".png", "_flip.png"), "train", label, "flip") for p in real + synth]
        rows += [(f"{s}/{label}/real_{i}.png", s, label, "real") for s in ("val", "test") for i in range(2)]
    df = pd.DataFrame(rows, columns=["path", "split", "label", "origin"])
    return df.sample(frac=1, random_state=0).reset_index(drop=True)  # row order must not matter


def test_real_oversampled_has_exactly_the_balanced_per_class_counts_from_real_images_only():
    fused = fused_manifest()
    balanced = training_rows(fused, "balanced")
    over = training_rows(fused, "real_oversampled")
    assert over.label.value_counts().to_dict() == balanced.label.value_counts().to_dict()
    assert set(over.label.value_counts()) == {2 * TARGET}  # + synthetic + flips
    assert set(over.origin) == {"real"} and set(over.split) == {"train"}
    real = fused[(fused.split == "train") & (fused.origin == "real")]
    assert set(over.path) == set(real.path)  # every real train image, nothing else
    copies = over.groupby("label").path.value_counts()
    for label, n in REAL.items():  # duplicates spread evenly: floor or ceil of target / n each
        k = copies[label]
        assert set(k) <= {2 * TARGET // n, -(-2 * TARGET // n)} and k.sum() == 2 * TARGET


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


def test_every_method_gets_a_generated_variant_and_names_cannot_collide():
    from conftest import make_params

    from rebalance.core import params

    p = make_params({"synthesize": {"methods": {"lesion_edit": 0.5, "diffusion": 0.5}}})
    made = {k: v["method"] for k, v in params.variants(p).items() if v["method"]}
    assert made == {"balanced_lesion_edit": "lesion_edit", "balanced_diffusion": "diffusion"}
    with pytest.raises(params.ParamsError, match="balanced_<method> variants are made from"):
        make_params({"train": {"variants": {"balanced_diffusion": {"data": "balanced"}}}})
