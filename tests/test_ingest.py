"""A user's folder with bad files: one-line errors or reported skips, and the folder untouched."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, deep_update, run
from imagegen import one_line_error
from PIL import Image

from stages import raw as raw_module


def tree_digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workdir(tmp_path):
    """A folder dataset with a corrupt image, a non-image file and an empty class, plus params."""
    src = tmp_path / "source"
    rng = np.random.default_rng(0)
    for label, n in {"healthy": 8, "lesion": 6, "rare": 0}.items():
        (src / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                src / label / f"img{i}.jpg"
            )
    (src / "lesion" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    (src / "healthy" / "notes.txt").write_text("patient list")
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="toy", classes=["healthy", "lesion", "rare"], lesion_bins=None)
    params["raw"]["source"] = str(src)
    # lesion edits need lesion-count grades (their variant goes with them)
    params = deep_update(params, {"synthesize": {"methods": {"diffusion": 1.0}}})
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work, src


def raw_stage(work: Path, check: bool):
    return run([sys.executable, "-m", "stages.raw"], work, check=check, env={"PYTHONPATH": str(REPO)})


def set_param(work: Path, **raw):
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["raw"].update(raw)
    (work / "params.yaml").write_text(yaml.safe_dump(params))


def test_empty_class_is_a_one_line_error(workdir):
    work, src = workdir
    before = tree_digest(src)
    proc = raw_stage(work, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rare" in lines[0] and "no usable images" in lines[0]
    assert tree_digest(src) == before
    assert not (work / "data/raw").exists()  # nothing half-written


def test_bad_files_are_skipped_and_reported(workdir):
    work, src = workdir
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())
    before = tree_digest(src)
    proc = raw_stage(work, check=True)
    assert "broken.png" in proc.stdout and "notes.txt" in proc.stdout
    report = json.loads((work / "metrics/raw.json").read_text())
    assert report["images"] == {"healthy": 8, "lesion": 6, "rare": 1}
    assert {s["path"] for s in report["skipped"]} == {"lesion/broken.png", "healthy/notes.txt"}
    ingested = {
        p.relative_to(work / "data/raw").as_posix() for p in (work / "data/raw").rglob("*") if p.is_file()
    }
    assert "lesion/broken.png" not in ingested and "healthy/img0.jpg" in ingested
    assert (work / "data/raw/healthy/img0.jpg").read_bytes() == (src / "healthy/img0.jpg").read_bytes()
    assert tree_digest(src) == before


def test_strict_mode_stops_at_the_first_bad_file(workdir):
    work, src = workdir
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())
    set_param(work, on_bad_file="error")
    proc = raw_stage(work, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and ("notes.txt" in line or "broken.png" in line) and "on_bad_file" in line


def test_missing_source_folder(workdir, tmp_path):
    work, _ = workdir
    set_param(work, source=str(tmp_path / "nowhere"))
    proc = raw_stage(work, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "nowhere" in proc.stderr


# ---- real users' folders: 16-bit images, decompression bombs, symlinks, stale temp folders ----


def ingested(work: Path) -> set[str]:
    raw = work / "data/raw"
    return {p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file() and p.parent != raw}


def fill_rare(src: Path) -> None:
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())


def xray16(path: Path, lo: int = 0, hi: int = 65535) -> Path:
    """A 16-bit greyscale ramp (PIL mode I;16) saved as PNG or TIFF."""
    Image.fromarray(np.linspace(lo, hi, 32 * 32).reshape(32, 32).astype(np.uint16)).save(path)
    return path


def bomb_png(path: Path, side: int = 40000) -> None:
    """A tiny PNG whose header declares side x side RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_16_bit_images_are_windowed_to_8_bit_pngs(workdir):
    work, src = workdir
    fill_rare(src)
    xray16(src / "lesion" / "chest.png", 1000, 4000)  # 12 bits used of 16: PIL alone shows it white
    xray16(src / "lesion" / "knee.tif")
    before = tree_digest(src)
    proc = raw_stage(work, check=True)
    assert "windowed 2 DICOM, 16-bit or float images" in proc.stdout
    raw = work / "data/raw"
    assert {"lesion/chest.png", "lesion/knee.tif.png"} <= ingested(work)
    for name in ("lesion/chest.png", "lesion/knee.tif.png"):
        im = Image.open(raw / name)
        assert im.format == "PNG" and im.mode == "L"
        grey = np.asarray(im).reshape(-1)
        assert (np.diff(grey.astype(int)) >= 0).all() and grey.min() == 0 and grey.max() == 255
    index = {r["path"]: r["source"] for r in csv.DictReader(open(raw / "images.csv"))}
    assert (
        index["lesion/knee.tif.png"] == "lesion/knee.tif" and index["lesion/chest.png"] == "lesion/chest.png"
    )
    assert (raw / "healthy/img0.jpg").read_bytes() == (src / "healthy/img0.jpg").read_bytes()  # 8 bit: copied
    report = json.loads((work / "metrics/raw.json").read_text())
    assert report["windowed"] == {"n": 2, "window": "percentile"} and report["images"]["lesion"] == 8
    assert tree_digest(src) == before  # the user's files are never modified

    percentile = (raw / "lesion/chest.png").read_bytes()
    set_param(work, window="minmax")
    raw_stage(work, check=True)
    assert (raw / "lesion/chest.png").read_bytes() != percentile  # raw.window reaches the ingest


def test_a_decompression_bomb_is_a_reported_skip_or_a_one_line_error(workdir):
    work, src = workdir
    fill_rare(src)
    bomb_png(src / "lesion" / "huge.png")
    proc = raw_stage(work, check=True)
    assert "Traceback" not in proc.stderr
    report = json.loads((work / "metrics/raw.json").read_text())
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert (
        "decompression bomb" in reasons["lesion/huge.png"] and "1,600,000,000" in reasons["lesion/huge.png"]
    )
    assert "skipped lesion/huge.png" in proc.stdout and "lesion/huge.png" not in ingested(work)

    (src / "lesion" / "broken.png").unlink()
    (src / "healthy" / "notes.txt").unlink()
    set_param(work, on_bad_file="error")
    line = one_line_error(raw_stage(work, check=False))
    assert "huge.png" in line and "decompression bomb" in line and "on_bad_file" in line


def test_symlinks_out_of_the_source_are_refused_and_broken_ones_reported(workdir, tmp_path):
    work, src = workdir
    fill_rare(src)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes((src / "healthy/img1.jpg").read_bytes())
    (outside / "more").mkdir()
    (outside / "more" / "x.jpg").write_bytes((src / "healthy/img2.jpg").read_bytes())
    (src / "healthy" / "leak.jpg").symlink_to(outside / "secret.jpg")  # a file out of the source
    (src / "healthy" / "more").symlink_to(outside / "more")  # a folder out of the source
    (src / "healthy" / "gone.jpg").symlink_to(src / "healthy" / "nowhere.jpg")  # dangling
    (src / "lesion" / "alias.jpg").symlink_to(src / "healthy" / "img3.jpg")  # inside: followed
    (src / "lesion" / "same").symlink_to(src / "lesion", target_is_directory=True)  # a loop
    before = tree_digest(src)
    proc = raw_stage(work, check=True)
    reasons = {s["path"]: s["reason"] for s in json.loads((work / "metrics/raw.json").read_text())["skipped"]}
    assert "outside the source folder" in reasons["healthy/leak.jpg"]
    assert "outside the source folder" in reasons["healthy/more/"]
    assert "broken symlink" in reasons["healthy/gone.jpg"]
    assert "symlink loop" in reasons["lesion/same/"]
    assert all(
        f"skipped {p}" in proc.stdout
        for p in ("healthy/leak.jpg", "healthy/more/", "healthy/gone.jpg", "lesion/same/")
    )
    names = ingested(work)
    assert "lesion/alias.jpg" in names and not {"healthy/leak.jpg", "healthy/more/x.jpg"} & names
    assert (work / "data/raw/lesion/alias.jpg").read_bytes() == (src / "healthy/img3.jpg").read_bytes()
    assert tree_digest(src) == before

    set_param(work, on_bad_file="error")  # strict: the first of them stops the run
    (src / "lesion" / "broken.png").unlink()
    (src / "healthy" / "notes.txt").unlink()
    line = one_line_error(raw_stage(work, check=False))
    assert "gone.jpg: broken symlink" in line and "on_bad_file" in line  # gone < img* < leak < more


def test_a_symlinked_class_folder_out_of_the_source_is_a_one_line_error(workdir, tmp_path):
    work, src = workdir
    fill_rare(src)
    moved = tmp_path / "archive" / "rare"
    moved.parent.mkdir()
    (src / "rare").rename(moved)
    (src / "rare").symlink_to(moved, target_is_directory=True)
    line = one_line_error(raw_stage(work, check=False))
    assert "rare: class folder is a symlink to" in line and "outside the source folder" in line
    (src / "rare").unlink()
    (src / "rare").symlink_to(tmp_path / "archive" / "missing", target_is_directory=True)
    line = one_line_error(raw_stage(work, check=False))
    assert "rare: class folder is a broken symlink" in line
    (src / "rare").unlink()
    (src / "inside").mkdir()
    moved.rename(src / "inside" / "rare")
    (src / "rare").symlink_to(Path("inside") / "rare", target_is_directory=True)  # within: followed
    raw_stage(work, check=True)
    assert "rare/one.png" in ingested(work)


def test_stale_temp_folders_of_a_killed_run_are_removed(workdir, monkeypatch):
    work, src = workdir
    fill_rare(src)
    data = work / "data"
    stale = data / ".raw.k1ll3d_x.tmp"
    (stale / "healthy").mkdir(parents=True)
    (stale / "healthy" / "half.jpg").write_bytes(b"half")
    keep = [data / ".raw.json.abcdefgh.tmp", data / ".raw.old.tmp", data / ".rawer.abcdefgh.tmp"]
    keep[0].write_text("a write_bytes temporary file, not output_dir's")
    keep[1].mkdir()
    keep[2].mkdir()
    monkeypatch.chdir(work)
    raw_module.main()  # the stage function itself
    assert not stale.exists() and all(p.exists() for p in keep)
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".raw.")) == sorted(
        p.name for p in keep if p.name.startswith(".raw.")
    )


def test_output_dir_after_sigkill(tmp_path):
    """A process killed inside atomic.output_dir leaves its temporary folder; the next run removes it."""
    code = (
        "import sys, time\n"
        "from rebalance.core import atomic\n"
        "with atomic.output_dir('data/raw') as out:\n"
        "    (out / 'part.png').write_bytes(b'x')\n"
        "    print(out.name, flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env
    )
    name = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "data" / name / "part.png").is_file()  # SIGKILL: no cleanup ran
    from rebalance.core import atomic

    with atomic.output_dir(tmp_path / "data/raw") as out:
        (out / "new.png").write_bytes(b"y")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]


def _csv_source(folder: Path) -> list[tuple[str, str]]:
    """Six images under folder/imgs and their (path, label) rows."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(6):
        path = folder / "imgs" / f"sub{i % 2}" / f"im{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
        rows.append((f"imgs/sub{i % 2}/im{i}.png", ("benign", "malignant")[i % 2]))
    return rows


@pytest.mark.parametrize(
    "form", ["comma", "semicolon", "tab", "bom_crlf", "backslashes", "absolute", "capitalised", "blanks"]
)
def test_a_csv_as_spreadsheets_write_it_is_read_the_same(tmp_path, form):
    from rebalance.dataset import csv_read, csv_source

    rows = _csv_source(tmp_path)
    sep, head, end, bom = {"semicolon": ";", "tab": "\t"}.get(form, ","), "path,label", "\n", ""
    if form == "bom_crlf":
        bom, end = "\ufeff", "\r\n"
    if form == "capitalised":
        head = "Path,Label"
    lines = []
    for rel, label in rows:
        if form == "backslashes":
            rel = rel.replace("/", "\\")
        if form == "absolute":
            rel = str((tmp_path / rel).resolve())
        lines.append(f"{rel}{sep}{' ' if form == 'blanks' else ''}{label}")
    header = head.replace(",", sep) if form != "blanks" else "path, label"
    (tmp_path / "labels.csv").write_text(bom + end.join([header, *lines]) + end, encoding="utf-8", newline="")
    found = csv_source.scan(tmp_path / "labels.csv", ["benign", "malignant"], None)
    assert sorted(found.images) == sorted((f"{label}/{rel}", label) for rel, label in rows)
    assert sorted(csv_read.listed(tmp_path / "labels.csv")) == sorted(rel for rel, _ in rows)


def test_a_csv_row_written_twice_is_read_once_and_an_empty_path_is_a_reported_skip(tmp_path):
    from rebalance.core.errors import RebalanceError
    from rebalance.dataset import csv_source

    rows = _csv_source(tmp_path)
    lines = [
        "path,label",
        *[f"{rel},{label}" for rel, label in rows],
        f"{rows[0][0]},{rows[0][1]}",
        ",benign",
    ]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    found = csv_source.scan(tmp_path / "labels.csv", ["benign", "malignant"], None)
    assert len(found.images) == 6
    assert found.skipped == [
        {"path": "(empty)", "reason": "a row with label 'benign' has an empty path cell"}
    ]
    (tmp_path / "labels.csv").write_text("\n".join([*lines[:-2], f"{rows[0][0]},malignant"]) + "\n")
    with pytest.raises(
        RebalanceError, match=f"{rows[0][0]} has rows that differ in label; keep one label per image"
    ):
        csv_source.scan(tmp_path / "labels.csv", ["benign", "malignant"], None)


def test_a_csv_of_paths_outside_its_folder_says_why_no_image_was_usable(tmp_path):
    from rebalance.core.errors import RebalanceError
    from rebalance.dataset import csv_source

    _csv_source(tmp_path / "inside")
    (tmp_path / "inside/labels.csv").write_text(f"path,label\n{tmp_path}/elsewhere.png,benign\n")
    with pytest.raises(RebalanceError, match="first file skipped: .*elsewhere.png: path leads out of"):
        csv_source.scan(tmp_path / "inside/labels.csv", ["benign"], None)


def test_empty_and_unidentifiable_files_are_skipped_with_a_plain_reason(workdir):
    work, src = workdir
    (src / "healthy" / "empty.png").write_bytes(b"")
    (src / "healthy" / "words.jpg").write_text("not an image at all")
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())
    raw_stage(work, check=True)
    reasons = {s["path"]: s["reason"] for s in json.loads((work / "metrics/raw.json").read_text())["skipped"]}
    assert reasons["healthy/empty.png"] == "empty file (0 bytes)"
    assert reasons["healthy/words.jpg"] == "cannot read image (not a format PIL can identify)"
    assert reasons["healthy/notes.txt"].startswith("not an image file (file types read: .bmp")
    assert not (work / "data/raw/healthy/empty.png").exists()


def test_raw_fingerprints_are_those_of_the_files_it_wrote(workdir):
    """Stage count trusts data/raw/fingerprints.csv instead of decoding: each row must be what
    duplicates.of_file and a sha256 of data/raw's file give, for a windowed 16-bit image and an
    EXIF-rotated JPEG too."""
    from rebalance.dataset import duplicates

    work, src = workdir
    (src / "rare" / "one.png").write_bytes((src / "healthy" / "img0.jpg").read_bytes())
    Image.fromarray(np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)).save(src / "rare" / "deep.png")
    rotated = Image.fromarray(np.random.default_rng(1).integers(0, 255, (12, 20, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated.save(src / "lesion" / "rotated.jpg", exif=exif)
    raw_stage(work, check=True)
    table = duplicates.read_table(work / "data/raw/fingerprints.csv")
    files = sorted(p.relative_to(work / "data/raw").as_posix() for p in (work / "data/raw").rglob("*/*"))
    assert sorted(table) == files and "rare/deep.png" in table and "lesion/rotated.jpg" in table
    for name, (sha, fp) in table.items():
        assert sha == hashlib.sha256((work / "data/raw" / name).read_bytes()).hexdigest()
        assert fp == duplicates.of_file(work / "data/raw" / name), name


def test_a_csv_is_parsed_once_while_unchanged_and_again_when_edited(tmp_path):
    from rebalance.dataset import metadata

    rows = _csv_source(tmp_path)
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(["path,label", *[f"{r},{c}" for r, c in rows]]) + "\n")
    first = metadata.read(csv, None)
    first.drop(columns=["label"], inplace=True)  # a caller's change stays its own
    assert list(metadata.read(csv, None).columns) == ["label"]
    assert metadata.read(csv, None) is not metadata.read(csv, None)
    csv.write_text("\n".join(["path,label", *[f"{r},{c}" for r, c in rows[:3]]]) + "\n")
    assert len(metadata.read(csv, None)) == 3
