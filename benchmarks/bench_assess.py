"""assess's near-copy search (quality.near_copies, the chunk index) against comparing every pair
(quality.nearest_words, the brute force it replaced) on the same hashes, same run.

Hashes: perceptual hashes (the one assess uses) of smooth random images (an 8x8 random image
upsampled to 32x32, as the other benchmarks' sources), so that they cluster the way hashes of
real images do, rather than uniform random words. The synthetic set holds `--copies` near-copies
of real images (1 to --bits bits changed) among fresh images. Both searches must report the same
near-copies (checked) before their times are compared:

    speed-up = brute-force seconds / chunk-index seconds

Peak memory of both stays flat (chunked); the point is time: O(n x m) against about
O((n + m) log(n + m)).

    python benchmarks/bench_assess.py [--real 70000] [--synthetic 20000] [--bits 4]
        [--out benchmarks/results/bench_assess.json]
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

# benchmarks/_project.py, beside this script (on sys.path when run as a script)
# isort: split
from _project import RESULTS, cores, write_result

from rebalance.synth import quality


def _hash(seed: int) -> int:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize((32, 32), Image.BICUBIC)
    return int(quality.pack(quality.phash(np.asarray(image)[None]))[0])


def hashes(first_seed: int, n: int) -> np.ndarray:
    with Pool(cores()) as pool:
        out = pool.map(_hash, range(first_seed, first_seed + n), chunksize=max(1, n // (cores() * 8)))
    return np.array(out, dtype=np.uint64)


def run(n_real: int, n_synthetic: int, copies: int, bits: int) -> dict:
    rng = np.random.default_rng(0)
    real = hashes(0, n_real)
    fake = hashes(n_real, n_synthetic)
    sources = rng.choice(n_real, copies, replace=False)
    for i, j in enumerate(sources):  # plant near-copies: 1..bits bits of a real hash changed
        flip = rng.choice(64, rng.integers(1, bits + 1), replace=False).astype(np.uint64)
        fake[i] = real[j] ^ np.bitwise_or.reduce(np.uint64(1) << flip)
    start = time.perf_counter()
    dist, nearest = quality.near_copies(fake, real, bits)
    indexed = time.perf_counter() - start
    start = time.perf_counter()
    all_d, all_j = quality.nearest_words(fake, real)
    brute = time.perf_counter() - start
    hit = all_d <= bits
    if not (np.array_equal(nearest >= 0, hit) and np.array_equal(nearest[hit], all_j[hit])):
        raise SystemExit("the chunk index and the brute force disagree on the near-copies")
    return {
        "real": n_real,
        "synthetic": n_synthetic,
        "bits": bits,
        "planted_copies": copies,
        "near_copies_found": int(hit.sum()),
        "cores": cores(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "seconds": {"chunk_index": round(indexed, 3), "brute_force": round(brute, 3)},
        "speedup": round(brute / indexed, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=int, default=70000, help="real train hashes")
    ap.add_argument("--synthetic", type=int, default=20000, help="synthetic hashes")
    ap.add_argument("--copies", type=int, default=100, help="near-copies planted among the synthetic")
    ap.add_argument("--bits", type=int, default=4, help="assess.near_copy_bits")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_assess.json")
    a = ap.parse_args()
    r = run(a.real, a.synthetic, a.copies, a.bits)
    s = r["seconds"]
    print(f"{r['synthetic']} synthetic vs {r['real']} real hashes, near-copy = at most {r['bits']} bits")
    print(f"near-copies found: {r['near_copies_found']} ({r['planted_copies']} planted), same by both")
    print(f"chunk index {s['chunk_index']:.2f} s, every pair {s['brute_force']:.2f} s: {r['speedup']}x")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(a.out, r)


if __name__ == "__main__":
    main()
