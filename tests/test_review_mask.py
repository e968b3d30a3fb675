"""The review page's edit mask for a synthetic image whose source has another size (a mixed-size
source): the generator worked on the source brought to its output's square side, and the mask is
the pixels it changed there. Served over HTTP by the review app (Flask's test client, no browser)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from conftest import folder_params
from imagegen import smooth_image
from PIL import Image

from rebalance.core import manifest
from rebalance.review import server


def test_a_resized_source_gets_the_mask_the_generator_used(tmp_path):
    root = tmp_path
    source = np.asarray(smooth_image(np.random.default_rng(0), 64).resize((50, 40)))  # 50 x 40, not square
    (root / "data/raw/a").mkdir(parents=True)
    Image.fromarray(source).save(root / "data/raw/a/src.png")
    # the generator's working copy: the source stretched to 32 x 32 with bilinear resampling (dataset.fit)
    working = np.asarray(Image.fromarray(source).resize((32, 32), Image.BILINEAR))
    mask = np.zeros((32, 32), bool)
    mask[8:20, 10:26] = True  # the region it regenerated
    made = working.copy()
    made[mask] = 255 - made[mask]  # every masked pixel changed, every other one kept
    (root / "data/fused/train/a").mkdir(parents=True)
    Image.fromarray(made).save(root / "data/fused/train/a/made.png")
    rows = [
        manifest.row(path="train/a/made.png", split="train", label="a", origin="diffusion",
                     source="a/src.png", root="a/src.png", sha256="0" * 64, seed=1),
        manifest.row(path="train/a/free.png", split="train", label="a", origin="diffusion",
                     sha256="1" * 64, seed=2),
    ]  # fmt: skip
    Image.fromarray(made).save(root / "data/fused/train/a/free.png")
    pd.DataFrame(rows).to_csv(root / "data/fused/manifest.csv", index=False)
    params = folder_params(["a", "b"])
    params["dataset"]["fit"] = "stretch"
    client = server.create_app(root, params, "t0k").test_client()

    got = client.get("/image/0/mask?token=t0k")
    assert got.status_code == 200
    shown = np.asarray(Image.open(io.BytesIO(got.data)))
    assert np.array_equal(shown > 0, mask)  # exactly the regenerated region
    assert client.get("/image/0/source?token=t0k").status_code == 200
    assert client.get("/image/1/mask?token=t0k").status_code == 404  # made from noise: no source, no mask
    assert client.get("/image/0/mask").status_code == 403  # the token still guards it
