"""A stand-in for an external generator (tests/test_command.py, tests/test_plugins.py), run by
method `command`: `command_gen.py MODE CLASS SEEDS_FILE OUT_DIR` writes OUT_DIR/<seed>.png per seed.
MODE: write (a seeded 32 px image per seed), odd (only the even seeds), none (nothing),
sleep (sleeps 30 s first), fail (exits 3)."""

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

mode, label, seeds_file, out_dir = sys.argv[1:5]
if mode == "fail":
    print("model not found", file=sys.stderr)
    sys.exit(3)
if mode == "sleep":
    time.sleep(30)
for line in Path(seeds_file).read_text().split():
    seed = int(line)
    if mode == "none" or (mode == "odd" and seed % 2):
        continue
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(Path(out_dir) / f"{seed}.png")
