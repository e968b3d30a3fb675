"""The synthesis filter: a real judge (a small CNN trained here on red and blue images) scores every
generated image; images planted with the wrong class, or copied from a real train image, are
rejected and their slots generated again with new sub-seeds; the same run twice keeps the same
bytes; a slot that never passes is left empty and counted."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch
from conftest import make_params
from PIL import Image

from rebalance.config.synth import Filter
from rebalance.learn import classifier as model_mod
from rebalance.learn.backbones import SmallCNN
from rebalance.learn.data import image_set
from rebalance.synth import quality
from rebalance.synth.base import Context, output_path
from rebalance.synth.curate import Curator, contact_sheet
from rebalance.synth.judge import Judge

CLASSES = ["red", "blue"]
COLOUR = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def tile(colour, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array(colour, float) + rng.normal(0, 18, 3)
    img = base + rng.normal(0, 12, (32, 32, 3))
    for _ in range(6):  # a few spots, so that images differ in structure too
        y, x = rng.integers(2, 28, 2)
        img[y - 2 : y + 2, x - 2 : x + 2] *= 0.6
    return np.clip(img, 0, 255).astype(np.uint8)


def write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def train_judge(root: Path) -> Path:
    raw, names, labels = root / "raw", {"train": [], "val": []}, {"train": [], "val": []}
    for split, n in (("train", 40), ("val", 12)):
        for label in CLASSES:
            for i in range(n):
                name = f"{label}/{split}{i}.png"
                write(raw / name, tile(COLOUR[label], zlib.crc32(f"{split}/{label}/{i}".encode())))
                names[split].append(name)
                labels[split].append(CLASSES.index(label))
    x = image_set(raw, names["train"], 32, "stretch", 64)
    torch.manual_seed(0)
    net = SmallCNN(2, 8)
    model_mod.fit(
        net, x, torch.tensor(labels["train"]), steps=40, batch_size=16, lr=0.01, weight_decay=0, seed=0
    )
    judge = Judge(quality.FeatureSpace(net, x), np.array(labels["train"]), CLASSES)
    judge.calibrate(image_set(raw, names["val"], 32, "stretch", 64), np.array(labels["val"]))
    judge.save(root / "judge", image_size=32, fit="stretch", real_val_accuracy=1.0)
    return raw


class Planted:
    """A generator that makes an image of the wrong class (or a copy of a real train image) at the
    planted slots on their first seed, and a right one otherwise; its output depends on the seed."""

    def __init__(self, ctx: Context, wrong: set[int], copies: dict[int, Path], never: set[int] = frozenset()):
        self.ctx, self.wrong, self.copies, self.never = ctx, wrong, copies, never

    def cache_key(self, label: str, index: int) -> str:
        return str(self.ctx.seed(label, "planted", index))

    def generate(self, label: str, indices: list[int]) -> list[dict]:
        rows = []
        for i in indices:
            path = output_path("planted", label, i)
            first = self.ctx.retries.get(path, 0) == 0
            seed = self.ctx.seed(label, "planted", i)
            if (first and i in self.wrong) or i in self.never:
                pixels = tile(COLOUR["blue" if label == "red" else "red"], seed)
            elif first and i in self.copies:
                pixels = np.asarray(Image.open(self.copies[i]).convert("RGB"))
            else:
                pixels = tile(COLOUR[label], seed)
            write(self.ctx.out_dir / path, pixels)
            digest = hashlib.sha256((self.ctx.out_dir / path).read_bytes()).hexdigest()
            rows.append({"path": path, "label": label, "origin": "planted", "source": "", "root": "",
                         "sha256": digest, "seed": str(seed), "cluster": "",
                         "detail": json.dumps({"key": self.cache_key(label, i)})})  # fmt: skip
        return rows


def curated(root: Path, raw: Path, out: Path, never: set[int] = frozenset()):
    params = make_params({})
    ctx = Context(params=params, train_real=None, raw_dir=raw, out_dir=out, retries={})
    train = sorted(str(p.relative_to(raw)) for p in raw.glob("*/train*.png"))
    words = quality.pack(quality.phash_files([raw / p for p in train], "test", 1))
    hashes = dict(zip(train, (int(w) for w in words)))
    judge = Judge.load(root / "judge")
    curator = Curator(judge, root / "judge", Filter(max_tries=3), 4, hashes, ctx)
    method = Planted(ctx, wrong={1, 4}, copies={6: raw / "red/train3.png"}, never=never)
    rows = method.generate("red", list(range(8)))
    return curator.curate(method, "planted", "red", 8, rows, out)


def redness(path: Path) -> float:
    pixels = np.asarray(Image.open(path).convert("RGB"), float)
    return pixels[..., 0].mean() - pixels[..., 2].mean()


def test_wrong_class_and_copied_images_are_rejected_and_their_slots_regenerated(tmp_path):
    raw = train_judge(tmp_path)
    kept, outcome = curated(tmp_path, raw, tmp_path / "out")
    assert outcome.planned == 8 and outcome.kept == 8 and outcome.empty == 0
    assert outcome.reasons["class"] >= 2 and outcome.reasons["near_copy"] == 1
    by_slot = {int(r["path"][-9:-4]): json.loads(r["detail"]) for r in kept}
    for slot, detail in by_slot.items():
        scores = detail["judge"]
        assert {"p", "p_pct", "distance", "distance_pct", "nearest_bits", "tries"} <= set(scores)
        assert redness(tmp_path / "out" / output_path("planted", "red", slot)) > 50  # the kept image is red
        assert scores["tries"] == len(scores["rejected"])
        if slot in (1, 4):
            assert scores["rejected"][0] == "class"
        elif slot == 6:
            assert scores["rejected"][0] == "near_copy"
    seeds = {int(r["path"][-9:-4]): r["seed"] for r in kept}
    first = {slot: str(Context(params=make_params({}), train_real=None, raw_dir=raw, out_dir=raw).seed(
        "red", "planted", slot)) for slot in (1, 4, 6)}  # fmt: skip
    assert all(seeds[s] != first[s] for s in first)  # regenerated with a new sub-seed
    contact_sheet("red", "planted", outcome, tmp_path / "sheet.png")
    assert (tmp_path / "sheet.png").read_bytes()[:4] == b"\x89PNG"

    # the rejected first tries are kept aside, as they were made: the release without the filter
    assert set(outcome.first) >= {output_path("planted", "red", s) for s in (1, 4, 6)}
    assert set(outcome.first) == {p for p, r in by_detail(kept).items() if r["judge"]["tries"] > 0}
    for path, row in outcome.first.items():
        aside = tmp_path / "out" / "unfiltered" / path
        assert hashlib.sha256(aside.read_bytes()).hexdigest() == row["sha256"] != by_path(kept)[path]
        assert json.loads(row["detail"])["judge"]["tries"] == 0
    assert redness(tmp_path / "out/unfiltered" / output_path("planted", "red", 1)) < -50  # a blue image
    copied = tmp_path / "out/unfiltered" / output_path("planted", "red", 6)
    assert np.array_equal(np.asarray(Image.open(copied)), np.asarray(Image.open(raw / "red/train3.png")))

    again, second = curated(tmp_path, raw, tmp_path / "again")  # the same run: the same bytes kept
    assert [r["sha256"] for r in again] == [r["sha256"] for r in kept]
    assert [r["detail"] for r in again] == [r["detail"] for r in kept]
    assert {p: r["sha256"] for p, r in second.first.items()} == {
        p: r["sha256"] for p, r in outcome.first.items()
    }
    # the contact sheet's rejected row: the rejected first tries by path, with their reasons
    first_reasons = [
        json.loads(outcome.first[p]["detail"])["judge"]["rejected"][0] for p in sorted(outcome.first)
    ]
    assert [why for _, why in outcome.rejected_images] == first_reasons[:8]
    assert all(
        np.array_equal(a, b) for (a, _), (b, _) in zip(outcome.rejected_images, second.rejected_images)
    )


def by_detail(rows: list[dict]) -> dict[str, dict]:
    return {r["path"]: json.loads(r["detail"]) for r in rows}


def by_path(rows: list[dict]) -> dict[str, str]:
    return {r["path"]: r["sha256"] for r in rows}


def test_a_reused_slot_keeps_its_first_try_or_starts_again_without_it(tmp_path):
    raw = train_judge(tmp_path)
    kept, outcome = curated(tmp_path, raw, tmp_path / "out")
    old = {r["path"]: r for r in kept}
    ctx = Context(params=make_params({}), train_real=None, raw_dir=raw, out_dir=raw, retries={})
    curator = Curator(Judge.load(tmp_path / "judge"), tmp_path / "judge", Filter(max_tries=3), 4, {}, ctx)
    regenerated = {p for p, r in old.items() if json.loads(r["detail"])["judge"]["tries"] > 0}
    assert set(curator.tries_before(old, set(outcome.first))) == regenerated
    assert curator.tries_before(old, set()) == {}  # without the first tries: every slot from its first seed


def test_a_slot_that_never_passes_is_left_empty_and_counted(tmp_path):
    raw = train_judge(tmp_path)
    kept, outcome = curated(tmp_path, raw, tmp_path / "out", never={2})
    assert outcome.empty == 1 and outcome.kept == 7 and outcome.reasons["class"] >= 2 + 4  # 1 + max_tries
    assert output_path("planted", "red", 2) not in {r["path"] for r in kept}
    assert not (tmp_path / "out" / output_path("planted", "red", 2)).exists()
    assert outcome.report()["empty_share"] == 0.125


def test_a_missing_judge_is_a_one_line_error_naming_the_stage(tmp_path):
    import pytest

    from rebalance.core.errors import RebalanceError

    with pytest.raises(RebalanceError, match=r"judge\.pt missing: run stage judge first"):
        Judge.load(tmp_path / "models/judge")
