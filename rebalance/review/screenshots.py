"""The documentation's pictures of the review, reader-study and annotate pages, taken on this
repository's build in headless Chromium (Debian's `chromium` + `chromium-driver`, through selenium).

    python -m rebalance.review.screenshots [OUT]     # default docs/img: review.png, reader_study.png,
                                                     # annotate.png

Read-only: the pages are opened and shown, no decision, answer or label is sent, so reviews/,
metrics/ and annotations/ stay as they are. The review page shows the first synthetic image of the
smallest class; the annotate page, its first image with values chosen by keyboard (unsaved) and the
prompt they would make.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from rebalance import config
from rebalance.core.errors import RebalanceError, run_main
from rebalance.review import annotate, server

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WINDOW = "1200,760"


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", f"--user-data-dir={profile}",
                f"--window-size={WINDOW}"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(str(DRIVER)), options=opts)


def _wait(predicate, timeout: float = 20.0):
    end = time.time() + timeout
    while time.time() < end:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise RebalanceError("screenshots: the page did not finish loading in 20 s")


def show(driver, mode: str, smallest: str) -> None:
    """Bring `mode`'s page to what the picture shows: the review of `smallest`'s first synthetic
    image, a reader's first image, unanswered, or the first image to label with a value of each
    attribute chosen, unsaved."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    if mode == "annotate":
        _wait(lambda: driver.find_element(By.ID, "main").get_attribute("src"))
        driver.find_element(By.TAG_NAME, "body").send_keys("2", "1", "3", "1")  # no Enter: nothing saved
        _wait(lambda: driver.find_element(By.ID, "prompt").text)
    elif mode == "review":
        _wait(lambda: "seed" in driver.find_element(By.ID, "info").text)
        Select(driver.find_element(By.ID, "filter-class")).select_by_visible_text(smallest)
        _wait(lambda: smallest in driver.find_element(By.ID, "info").text)
    else:
        driver.find_element(By.ID, "reader").send_keys("reader 1")
        driver.find_element(By.ID, "start").click()
        _wait(lambda: driver.find_element(By.ID, "study-image").get_attribute("data-item"))
    time.sleep(0.5)  # the image's pixels


def take(root: Path, out: Path) -> list[Path]:
    if not (CHROMIUM.exists() and DRIVER.exists()):
        raise RebalanceError(
            "screenshots: needs chromium and chromedriver (apt install chromium chromium-driver)"
        )
    if not (root / "data/fused/manifest.csv").is_file():
        raise RebalanceError(f"{root}/data/fused/manifest.csv not found; run `dvc repro` or `dvc pull` first")
    params = config.load(root / "params.yaml")
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    for mode, name in (("review", "review.png"), ("study", "reader_study.png"), ("annotate", "annotate.png")):
        token = server.new_token()
        if mode == "annotate":
            app = annotate.create_app(root, params, token, "annotator 1")
        else:
            app = server.create_app(root, params, token, mode, "reviewer")
        srv = server.serve(app, "127.0.0.1", 0)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        with tempfile.TemporaryDirectory() as profile:
            driver = _browser(Path(profile))
            try:
                driver.get(f"http://127.0.0.1:{srv.server_port}/?token={token}")
                show(driver, mode, params.dataset.classes[-1])
                driver.save_screenshot(str(out / name))
                shots.append(out / name)
            finally:
                driver.quit()
                srv.shutdown()
    return shots


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img")
    for path in take(Path(".").resolve(), out):
        print(f"{path}: taken")


if __name__ == "__main__":
    run_main(main)
