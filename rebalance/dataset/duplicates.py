"""Duplicate images by content: exact (same decoded pixels) and near (perceptual hash).

A fingerprint is computed from the decoded image (EXIF orientation applied, RGB), so a PNG and a
BMP of the same pixels share `pixels`, and a JPEG re-encode lands within a few bits on `phash`
(imagehash's 64-bit DCT hash). Near pairs are found without comparing all pairs: multi-index
hashing splits the 64 bits into d + 1 chunks; two hashes within d bits agree exactly on at least
one chunk (pigeonhole), so only hashes sharing a chunk value are compared. Stage count uses this
to keep duplicates in one split; stage fuse to refuse a val/test image with a copy in train.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from rebalance.core.images import open_rgb

BLOCK = 2048  # hashes compared at once inside one bucket (bounds memory on degenerate buckets)


@dataclass(frozen=True)
class Fingerprint:
    pixels: str  # sha256 of "<width>x<height>\n" + the RGB bytes of the decoded image
    phash: int  # 64-bit perceptual hash


def of_image(im: Image.Image) -> Fingerprint:
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    data = f"{rgb.width}x{rgb.height}\n".encode() + rgb.tobytes()
    bits = imagehash.phash(rgb).hash.reshape(-1)  # first bit most significant
    return Fingerprint(hashlib.sha256(data).hexdigest(), int.from_bytes(np.packbits(bits).tobytes(), "big"))


def of_file(path: str | Path) -> Fingerprint:
    """Fingerprint of one image file (a BadImageError when it cannot be decoded)."""
    return of_image(open_rgb(path))


def of_files(paths: Sequence[str | Path], workers: int | None = None) -> list[Fingerprint]:
    """Fingerprints of many files, decoded on a few threads (PIL and hashlib release the GIL)."""
    workers = workers or min(8, os.cpu_count() or 1)
    if workers == 1 or len(paths) < 64:
        return [of_file(p) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(of_file, paths, chunksize=32))


TABLE_COLUMNS = ["path", "sha256", "pixels", "phash"]  # every fingerprints.csv (raw, counted, flipped)


def write_table(rows: list[dict[str, str]], path: str | Path) -> None:
    """A fingerprints.csv: one row per image (TABLE_COLUMNS; phash as 16 hex digits)."""
    import pandas as pd

    from rebalance.core.atomic import write_text

    write_text(path, pd.DataFrame(rows, columns=TABLE_COLUMNS).to_csv(index=False, lineterminator="\n"))


def read_table(path: str | Path) -> dict[str, tuple[str, Fingerprint]]:
    """A fingerprints.csv as {path: (file sha256, Fingerprint)}."""
    import pandas as pd

    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {r.path: (r.sha256, Fingerprint(r.pixels, int(r.phash, 16))) for r in table.itertuples()}


def phash_hex(value: int) -> str:
    return f"{value:016x}"


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _chunks(bits: int) -> list[tuple[int, int]]:
    """(shift, mask) of the d + 1 chunks the 64 bits are cut into (sizes differ by at most 1)."""
    n = bits + 1
    sizes = [64 // n + (1 if i < 64 % n else 0) for i in range(n)]
    out, shift = [], 0
    for size in sizes:
        out.append((shift, (1 << size) - 1))
        shift += size
    return out


def near_pairs(hashes: Iterable[int], bits: int, codes: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose hashes differ in at most `bits` bits, sorted.

    With `codes` (e.g. a split per hash), only pairs with different codes are returned: a leak
    check never builds the (possibly many) pairs inside one split.
    """
    h = np.fromiter(hashes, dtype=np.uint64)
    code = None if codes is None else np.asarray(codes)
    if len(h) < 2:
        return []
    if not 0 <= bits < 64:
        raise ValueError(f"near-duplicate bits must be in [0, 63], got {bits}")
    found: list[np.ndarray] = []
    for shift, mask in _chunks(bits):
        keys = (h >> np.uint64(shift)) & np.uint64(mask)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            found += _bucket_pairs(np.sort(order[s:e]), h, bits, code)
    if not found:
        return []
    pairs = np.unique(np.concatenate(found), axis=0)
    return [(int(i), int(j)) for i, j in pairs]


def _bucket_pairs(idx: np.ndarray, h: np.ndarray, bits: int, code: np.ndarray | None) -> list[np.ndarray]:
    """Pairs within one bucket (indices ascending), compared block by block."""
    out = []
    for a in range(0, len(idx), BLOCK):
        rows = idx[a : a + BLOCK]
        for b in range(a, len(idx), BLOCK):
            cols = idx[b : b + BLOCK]
            close = np.bitwise_count(h[rows][:, None] ^ h[cols][None, :]) <= bits
            close &= rows[:, None] < cols[None, :]
            if code is not None:
                close &= code[rows][:, None] != code[cols][None, :]
            i, j = np.nonzero(close)
            if len(i):
                out.append(np.stack([rows[i], cols[j]], axis=1))
    return out


def components(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    """The component (its smallest index) of each of n items joined by `pairs` (scipy's
    connected components of the pairs' graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
    if n == 0:
        return []
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, n)
    np.minimum.at(smallest, labels, np.arange(n))
    return smallest[labels].tolist()


def groups(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The components with more than one member, each sorted, ordered by first member."""
    by_root: dict[int, list[int]] = {}
    for i, root in enumerate(components(n, pairs)):
        by_root.setdefault(root, []).append(i)
    return sorted((m for m in by_root.values() if len(m) > 1), key=lambda m: m[0])


def duplicate_pairs(prints: Sequence[Fingerprint], bits: int) -> list[tuple[int, int]]:
    """Exact (same pixels) and near (phash within `bits`) duplicate pairs among `prints`."""
    pairs = set(near_pairs((p.phash for p in prints), bits))
    first: dict[str, int] = {}
    for i, p in enumerate(prints):  # same pixels give the same phash; kept explicit for clarity
        if p.pixels in first:
            pairs.add((first[p.pixels], i))
        else:
            first[p.pixels] = i
    return sorted(pairs)


def describe(a: Fingerprint, b: Fingerprint) -> str:
    """`exact duplicate` or `near-duplicate (k bits)`."""
    if a.pixels == b.pixels:
        return "exact duplicate (same decoded pixels)"
    return f"near-duplicate (perceptual hash {distance(a.phash, b.phash)} bits apart)"
