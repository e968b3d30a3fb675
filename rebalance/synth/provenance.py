"""Which images a generator was trained on, and the refusal to use one that saw val/test images.

Every generator this project trains writes `training_set.json` beside its weights: the sha256 of
each training image and one hash of the training manifest. `check_generator` compares that
record with the real val/test images before any image is generated. A model without the record
(a Stable Diffusion folder or LoRA from elsewhere, often fine-tuned on a whole dataset) may have
seen test images; it is refused unless `synthesize.allow_external_model: true`, which the data
card then states.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rebalance.core import atomic
from rebalance.core.errors import RebalanceError
from rebalance.core.hashing import sha256_text

RECORD = "training_set.json"


def manifest_hash(rows: pd.DataFrame) -> str:
    """sha256 over the sorted `path:sha256` lines of a set of manifest rows."""
    rows = rows.sort_values("path")
    return sha256_text("".join(f"{p}:{s}\n" for p, s in zip(rows.path, rows.sha256)))


def write_record(folder: Path, train_rows: pd.DataFrame) -> None:
    """Record the training images of the model saved in `folder`."""
    record = {
        "manifest_sha256": manifest_hash(train_rows),
        "n": len(train_rows),
        "sha256": sorted(set(train_rows.sha256)),
    }
    atomic.write_json(Path(folder) / RECORD, record)


def check_generator(folder: str | Path, held_out: pd.DataFrame, allow_external: bool) -> dict:
    """Refuse a model trained on a val/test image; return what the data card says about it."""
    path = Path(folder) / RECORD
    if not path.exists():
        if not allow_external:
            raise RebalanceError(
                f"{folder}: generator has no {RECORD} (which images it was trained on is unknown, "
                "and it may have seen val/test images); set synthesize.allow_external_model: true "
                "to use it anyway (the data card will say so)"
            )
        return {"model": str(folder), "external": True}
    record = json.loads(path.read_text())
    seen = set(record.get("sha256", []))
    leaked = held_out[held_out.sha256.isin(seen)]
    if not leaked.empty:
        first = leaked.iloc[0]
        raise RebalanceError(
            f"{folder}: generator was trained on {len(leaked)} val/test image(s), e.g. {first.path} "
            f"({first.split}); retrain it on the train split (`dvc repro train_generator`)"
        )
    return {"model": str(folder), "external": False, "training_manifest": record["manifest_sha256"]}
