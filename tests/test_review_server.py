"""The review app without a browser (Flask's test client): the token and the manifest guard every
request, the edit mask of a source of another size, and the reader study's statistics against
numbers computed here by hand. tests/test_review.py drives the pages in Chromium."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from conftest import folder_params
from imagegen import smooth_image
from PIL import Image

from rebalance.core import manifest
from rebalance.review import server, study


def tiny_app(root):
    """A release with one synthetic image made from a 50 x 40 source (the generator worked on it
    stretched to 32 x 32) and one made from noise; the app and the mask the generator used."""
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
    params = params.model_copy(update={"dataset": params.dataset.model_copy(update={"fit": "stretch"})})
    return server.create_app(root, params, "t0k").test_client(), mask


def test_a_resized_source_gets_the_mask_the_generator_used(tmp_path):
    client, mask = tiny_app(tmp_path)
    got = client.get("/image/0/mask?token=t0k")
    assert got.status_code == 200
    shown = np.asarray(Image.open(io.BytesIO(got.data)))
    assert np.array_equal(shown > 0, mask)  # exactly the regenerated region
    assert client.get("/image/0/source?token=t0k").status_code == 200
    assert client.get("/image/1/mask?token=t0k").status_code == 404  # made from noise: no source, no mask
    assert client.get("/image/0/mask").status_code == 403  # the token still guards it


def test_no_token_or_a_path_in_the_request_gets_nothing(tmp_path):
    client, _ = tiny_app(tmp_path)
    (tmp_path / "secret.txt").write_text("not for the page")
    assert client.get("/api/items").status_code == 403
    assert client.get("/image/0/synthetic?token=wrong").status_code == 403
    assert client.get("/", headers={"X-Token": "wrong"}).status_code == 403
    assert client.get("/image?path=../secret.txt&token=t0k").status_code == 404
    assert client.get("/image/0/..%2F..%2Fsecret.txt?token=t0k").status_code == 404
    assert client.get("/image/99999/synthetic?token=t0k").status_code == 404
    assert client.post("/api/decide?token=t0k", json={"id": 0, "decision": "delete"}).status_code == 400
    assert client.get("/image/0/synthetic?token=t0k").status_code == 200
    assert client.get("/image/0/synthetic", headers={"X-Token": "t0k"}).status_code == 200


def test_cohen_kappa_by_hand():
    # 10 items, two raters: 4 both real, 3 both synthetic, 2 real/synthetic, 1 synthetic/real
    a = ["real"] * 4 + ["synthetic"] * 3 + ["real"] * 2 + ["synthetic"]
    b = ["real"] * 4 + ["synthetic"] * 3 + ["synthetic"] * 2 + ["real"]
    observed = 7 / 10
    expected = (6 / 10) * (5 / 10) + (4 / 10) * (5 / 10)  # P(both real) + P(both synthetic) by chance
    assert study.cohen_kappa(a, b) == pytest.approx((observed - expected) / (1 - expected))
    assert study.cohen_kappa(["real"] * 3, ["real"] * 3) == 1.0


def test_fleiss_kappa_matches_the_textbook_example():
    # 3 raters, 4 items, 2 categories, computed by hand:
    # P_i = [1, 1/3, 1/3, 1], P_bar = 2/3; p_j = [6/12, 6/12], P_e = 0.5; kappa = (2/3 - 1/2) / (1/2) = 1/3
    table = np.array([[3, 0], [2, 1], [1, 2], [0, 3]])
    assert study.fleiss_kappa(table) == pytest.approx(1 / 3)
    assert study.fleiss_kappa(np.array([[3, 0], [3, 0]])) == 1.0


def test_wilson_interval_by_hand():
    k, n, z = 7, 20, 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert study.wilson(k, n) == pytest.approx([centre - half, centre + half], abs=1e-4)
    assert study.wilson(0, 10)[0] == 0.0 and study.wilson(10, 10)[1] == 1.0


def test_pages_are_templates_with_their_values_escaped(tmp_path):
    client, _ = tiny_app(tmp_path)
    page = client.get("/?token=t0k").data.decode()
    assert page.startswith("<!doctype html>") and "{%" not in page and "{{" not in page
    assert '"t0k"' in page  # the token, as a JavaScript string
    assert ".tile.accept" in page  # the style sheet, included
    assert "<option>a</option><option>b</option>" in page.replace("\n", "")  # the classes
    params = folder_params(["<i>a", "b"])
    page = server.create_app(tmp_path, params, "t0k").test_client().get("/?token=t0k").data.decode()
    assert "<i>a" not in page and "&lt;i&gt;a" in page  # escaped
