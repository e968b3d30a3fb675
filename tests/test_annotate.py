"""Structured labelling for the SD prompts (`rebalance annotate`): the command exists; without a
browser, the token and the manifest guard every request, a value not among an attribute's choices is
refused, two annotators' rows stay apart and their kappa is scikit-learn's; in a real headless
Chromium (tests/test_review.py's), three images labelled by keyboard survive a reload (the page
resumes at the fourth), a second annotator's labels are kept apart, the page and `--agreement`
report the kappa computed here, and the SD prompt builder reads the annotations file as it is."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_review
from click.testing import CliRunner
from conftest import copy_built, folder_params
from imagegen import smooth_image
from sklearn.metrics import cohen_kappa_score
from test_review import CHROMIUM, DRIVER, shot, wait_for

from rebalance import config
from rebalance.cli import main
from rebalance.config.schema import Annotate
from rebalance.core import manifest
from rebalance.review import annotate, server
from rebalance.synth import prompts

browser = test_review.browser  # headless Chromium (a fixture)
NEEDS_CHROMIUM = pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def test_the_command_exists():
    out = CliRunner().invoke(main, ["annotate", "--help"])
    assert out.exit_code == 0
    for option in ("--annotator", "--host", "--port", "--open", "--agreement", "-C, --repo"):
        assert option in out.output


def tiny_repo(root: Path):
    """Three real train images of class a, one of class b (not annotated) and one real test image
    of class a; the params with annotate.classes [a]."""
    rng = np.random.default_rng(0)
    rows = []
    for split, label, name in [("train", "a", "x"), ("train", "a", "y"), ("train", "a", "z"),
                               ("train", "b", "w"), ("test", "a", "t")]:  # fmt: skip
        (root / "data/fused" / split / label).mkdir(parents=True, exist_ok=True)
        smooth_image(rng, 32).save(root / "data/fused" / split / label / f"{name}.png")
        raw = f"{label}/{name}.png"
        rows.append(manifest.row(path=f"{split}/{raw}", split=split, label=label, origin="real",
                                 source=raw, root=raw, sha256="0" * 64))  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "data/fused/manifest.csv", index=False)
    params = folder_params(["a", "b"])
    return params.model_copy(update={"annotate": Annotate(classes=["a"])})


def test_token_manifest_and_values_guard_every_request(tmp_path):
    params = tiny_repo(tmp_path)
    (tmp_path / "secret.txt").write_text("not for the page")
    client = annotate.create_app(tmp_path, params, "t0k").test_client()
    items = client.get("/api/items?token=t0k").json
    assert [i["path"] for i in items] == ["a/x.png", "a/y.png", "a/z.png"]  # real train images of a only
    assert client.get("/api/items").status_code == 403
    assert client.get("/image/0?token=wrong").status_code == 403
    assert client.get("/", headers={"X-Token": "wrong"}).status_code == 403
    assert client.get("/image/0?token=t0k").status_code == 200
    assert client.get("/image/3?token=t0k").status_code == 404  # b's image and the test image: not served
    assert client.get("/image?path=../secret.txt&token=t0k").status_code == 404
    assert client.get("/image/0/..%2F..%2Fsecret.txt?token=t0k").status_code == 404
    post = lambda url, body: client.post(f"{url}?token=t0k", json=body).status_code  # noqa: E731
    assert post("/api/label", {"id": 0, "values": {"lesion_colour": "green"}}) == 400  # not a choice
    assert post("/api/label", {"id": 0, "values": {"colour_of_sky": "red"}}) == 400  # not an attribute
    assert post("/api/label", {"id": 0, "values": {}}) == 400  # nothing chosen
    assert post("/api/label", {"id": 7, "values": {"border": "irregular"}}) == 404  # not a listed image
    assert post("/api/prompt", {"id": 0, "values": {"skin_tone": "purple"}}) == 400
    assert not (tmp_path / "annotations").exists()  # nothing refused was written

    # two annotators: each keeps their own rows; relabelling replaces only that annotator's row
    given = {
        "ann": [("red", "small round"), ("pink", "large round"), ("brown", "small round")],
        "bob": [("red", "small round"), ("red", "large round"), ("brown", "large irregular")],
    }
    for who, labels in given.items():
        for i, (colour, shape) in enumerate(labels):
            body = {"id": i, "annotator": who, "values": {"lesion_colour": colour, "size_shape": shape}}
            assert post("/api/label", body) == 200
    assert post("/api/label", {"id": 2, "annotator": "ann", "values": {"lesion_colour": "black"}}) == 200
    given["ann"][2] = ("black", "")
    table = pd.read_csv(tmp_path / "annotations/t.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["path", "annotator", *params.annotate.attributes, "time"]
    assert len(table) == 6 and table.groupby("annotator").size().to_dict() == {"ann": 3, "bob": 3}
    for who, labels in given.items():
        mine = table[table.annotator == who].set_index("path")
        assert [mine.loc[f"a/{n}.png", "lesion_colour"] for n in "xyz"] == [c for c, _ in labels]
    assert table.iloc[-1].annotator == "ann"  # the latest label last: the prompt builder's choice
    result = client.get("/api/agreement?token=t0k").json
    assert [(p["a"], p["b"]) for p in result] == [("ann", "bob")]
    colour = cohen_kappa_score([c for c, _ in given["ann"]], [c for c, _ in given["bob"]])
    assert result[0]["attributes"]["lesion_colour"] == {"kappa": pytest.approx(colour, abs=1e-4), "n": 3}
    shape = cohen_kappa_score([s for _, s in given["ann"][:2]], [s for _, s in given["bob"][:2]])
    assert result[0]["attributes"]["size_shape"] == {"kappa": pytest.approx(shape, abs=1e-4), "n": 2}
    assert result[0]["attributes"]["border"] == {"kappa": None, "n": 0}


class Server:
    """`rebalance annotate`'s app on a free port, in a thread."""

    def __init__(self, repo: Path, annotator: str = "ann"):
        self.params = config.load(repo / "params.yaml")
        self.token = server.new_token()
        app = annotate.create_app(repo, self.params, self.token, annotator)
        self.srv = server.serve(app, "127.0.0.1", 0)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.srv.server_port}"
        self.url = f"{self.base}/?token={self.token}"

    def status(self, path: str, body: dict | None = None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            return urllib.request.urlopen(req).status
        except urllib.error.HTTPError as err:
            return err.code

    def stop(self):
        self.srv.shutdown()


# per image, the number keys pressed for lesion_colour, size_shape, border, skin_tone (1: the first value)
KEYS = {"ann": ["1111", "2222", "3333"], "bob": ["1211", "2223", "2133"]}


def chosen(attributes: dict[str, list[str]], keys: str) -> dict[str, str]:
    return {name: values[int(k) - 1] for (name, values), k in zip(attributes.items(), keys)}


@NEEDS_CHROMIUM
@pytest.mark.slow
def test_labels_by_keyboard_survive_reload_and_make_the_prompts(built_repo, browser, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    repo = copy_built(built_repo, tmp_path / "repo")
    srv = Server(repo)
    attrs = srv.params.annotate.attributes
    rows = annotate.images(repo, srv.params)
    generated = json.loads((repo / "metrics/counts.json").read_text())["generated"]
    assert len(rows) >= 4 and set(rows.label) == {c for c, n in generated.items() if sum(n.values())}
    count = lambda: browser.find_element(By.ID, "count").text  # noqa: E731
    text = lambda el: browser.find_element(By.ID, el).text  # noqa: E731
    try:
        browser.get(srv.url)
        wait_for(lambda: f"0 / {len(rows)} labelled" in count())
        body = browser.find_element(By.TAG_NAME, "body")
        for k, keys in enumerate(KEYS["ann"]):
            assert wait_for(lambda: text("path")) == rows.raw[k]
            body.send_keys(*keys)
            words = chosen(attrs, keys)
            wait_for(lambda w=words: all(v in text("prompt") for v in w.values()))  # the live preview
            if k == 0:
                shot(browser, tmp_path, "annotate.png")
            body.send_keys(Keys.ENTER if k != 1 else "n")
            wait_for(lambda k=k: f"{k + 1} / {len(rows)} labelled" in count())

        browser.refresh()  # the labels are on the server: a reload shows them, and resumes at the fourth
        wait_for(lambda: f"3 / {len(rows)} labelled" in count())
        assert wait_for(lambda: text("path")) == rows.raw[3] and text("state") == "not labelled"
        browser.find_element(By.TAG_NAME, "body").send_keys("p")  # the third, with its labels
        wait_for(lambda: text("path") == rows.raw[2])
        buttons = browser.find_elements(By.CSS_SELECTOR, ".attr button.on")
        on = [b.get_attribute("data-value") for b in buttons]
        assert text("state") == "labelled" and on == list(chosen(attrs, KEYS["ann"][2]).values())

        # a second annotator labels the same three images: their own rows, from the first image
        name = browser.find_element(By.ID, "annotator")
        name.clear()
        name.send_keys("bob", Keys.TAB)
        wait_for(lambda: f"0 / {len(rows)} labelled" in count() and text("path") == rows.raw[0])
        browser.execute_script("document.activeElement.blur()")
        body = browser.find_element(By.TAG_NAME, "body")
        for k, keys in enumerate(KEYS["bob"]):
            wait_for(lambda k=k: text("path") == rows.raw[k])
            body.send_keys(*keys, Keys.ENTER)
            wait_for(lambda k=k: f"{k + 1} / {len(rows)} labelled" in count())
        table_text = wait_for(lambda: "ann / bob" in text("agreement") and text("agreement"))

        # security: no token, a wrong token, a path not in the manifest, a value not among the choices
        assert srv.status("/api/items") == 403
        assert srv.status("/image/0?token=wrong") == 403
        assert srv.status(f"/image?path=../../params.yaml&token={srv.token}") == 404
        assert srv.status(f"/image/{len(rows)}?token={srv.token}") == 404  # past the listed images
        assert srv.status(f"/image/0?token={srv.token}") == 200
        bad = {"id": 0, "annotator": "eve", "values": {"border": "zigzag"}}
        assert srv.status(f"/api/label?token={srv.token}", bad) == 400
        assert srv.status("/api/label?token=wrong", {**bad, "values": {"border": "irregular"}}) == 403
    finally:
        srv.stop()

    csv = repo / "annotations" / f"{srv.params.dataset.name}.csv"
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert len(table) == 6 and set(table.annotator) == {"ann", "bob"}
    for who, presses in KEYS.items():
        mine = table[table.annotator == who].set_index("path")
        for k, keys in enumerate(presses):
            assert mine.loc[rows.raw[k], list(attrs)].to_dict() == chosen(attrs, keys)

    # Cohen's kappa per attribute, computed here with scikit-learn from the keys pressed
    result = annotate.agreement(table, "ann", "bob", list(attrs))
    monkeypatch.chdir(repo)
    cli = CliRunner().invoke(main, ["annotate", "--agreement"])
    assert cli.exit_code == 0, cli.output
    for a, name in enumerate(attrs):
        expected = cohen_kappa_score([p[a] for p in KEYS["ann"]], [p[a] for p in KEYS["bob"]])
        assert result[name] == {"kappa": pytest.approx(expected, abs=1e-4), "n": 3}
        assert f"| ann / bob | {name} | {expected:.4f} | 3 |" in cli.output
        assert f"{name} {expected:.4f} 3" in table_text.replace("\t", " ")  # the page's table

    # the SD prompt builder reads the file as it is: the latest label of each image (bob's) makes its prompt
    attributes = prompts.attributes(str(csv))
    sd, classes = srv.params.synthesize.diffusion.sd, srv.params.dataset.classes
    for k, keys in enumerate(KEYS["bob"]):
        text_k = prompts.prompt_for(attributes[rows.raw[k]], rows.label[k], classes, sd.prompt)
        for word in chosen(attrs, keys).values():
            assert word in text_k, (word, text_k)
