"""A MedMNIST-format `.npz` source: `{train,val,test}_images` and `{split}_labels`, official split kept.

`raw.source: data/pneumoniamnist.npz` with `dataset.classes` naming the label values in order
(PneumoniaMNIST: [normal, pneumonia] for labels 0 and 1). Images are N x H x W (grey),
N x H x W x C or N x C x H x W (C = 1 or 3) arrays, uint8 as MedMNIST ships them (deeper types
are windowed with `raw.window`); labels N or N x 1 integers (whole-number floats and booleans
too). Each image is written to data/raw/<class>/<split>/<split>_<index>.png, its `source` being
`<file>:<split>[<index>]`, and its split is the file's. Multi-label files (ChestMNIST's N x 14)
are refused: one class per image.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from rebalance.config.schema import SPLITS
from rebalance.core import images
from rebalance.core.errors import RebalanceError
from rebalance.core.pool import pmap
from rebalance.core.window import window_8bit, window_8bit_rgb
from rebalance.dataset.ingest import Scan


def _load(npz: Path) -> dict[str, np.ndarray]:
    if not npz.is_file():
        raise RebalanceError(f"{npz}: .npz source not found; fix raw.source in params.yaml")
    try:
        with np.load(npz, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise RebalanceError(f"{npz}: cannot read the .npz ({str(err).splitlines()[0]})") from None


def _split_arrays(npz: Path, data: dict[str, np.ndarray], split: str, classes: list[str]):
    x, y = data[f"{split}_images"], data.get(f"{split}_labels")
    if y is None:
        raise RebalanceError(f"{npz}: has {split}_images but no {split}_labels; MedMNIST files carry both")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)  # channels first (N x C x H x W, as torch keeps them)
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x[..., 0] if x.shape[-1] == 1 else x
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise RebalanceError(
            f"{npz}: {split}_images has shape {x.shape}; expected N x H x W, N x H x W x 3 or "
            "N x 3 x H x W (2-D grey or RGB images)"
        )
    y = np.asarray(y)
    if y.dtype == bool or (
        np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y % 1 == 0).all()
    ):
        y = y.astype(np.int64)  # labels saved as floats (0.0, 1.0) or booleans
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise RebalanceError(
            f"{npz}: {split}_labels has shape {y.shape} (multi-label?); one class per image is needed"
        )
    if len(y) != len(x):
        raise RebalanceError(f"{npz}: {len(x)} {split}_images but {len(y)} {split}_labels")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= len(classes))):
        raise RebalanceError(
            f"{npz}: {split}_labels hold values {sorted(set(np.unique(y).tolist()))[:10]}; dataset.classes "
            f"names {len(classes)} ({', '.join(classes)}): list one class per label value 0, 1, ..., in order"
        )
    return x, y


def _encode(args: tuple[np.ndarray, str]) -> bytes:
    """One image array as deterministic 8-bit PNG bytes (deeper types windowed)."""
    array, window = args
    if array.dtype != np.uint8:
        array = window_8bit(array, window) if array.ndim == 2 else window_8bit_rgb(array, window)
    return images.encode_array_png(array)


def extract(npz: Path, classes: list[str], out_dir: Path, window: str, processes: int | None = None) -> Scan:
    """Write every image of the .npz to out_dir (see the module doc); the Scan of what was written."""
    npz = Path(npz)
    data = _load(npz)
    present = [s for s in SPLITS if f"{s}_images" in data]
    if "train" not in present:
        raise RebalanceError(
            f"{npz}: no train_images array (arrays: {', '.join(sorted(data))}); expected MedMNIST's "
            "train_images, train_labels, val_images, val_labels, test_images, test_labels"
        )
    result = Scan()
    for split in present:
        x, y = _split_arrays(npz, data, split, classes)
        width = max(6, len(str(len(x) - 1)))
        names = [f"{classes[int(label)]}/{split}/{split}_{i:0{width}d}.png" for i, label in enumerate(y)]
        encoded = pmap(_encode, [(a, window) for a in x], f"extract {split}", processes)
        for i, (name, data_png) in enumerate(zip(names, encoded)):
            dst = out_dir / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data_png)
            result.images.append((name, classes[int(y[i])]))
            result.source[name] = f"{npz.name}:{split}[{i}]"
            result.official[name] = split
            if x.dtype != np.uint8:
                result.windowed.add(name)
    for label in classes:
        if not any(c == label for _, c in result.images):
            raise RebalanceError(f"{npz}: no image has the label of class {label!r}; check dataset.classes")
    result.images.sort()
    return result
