"""DICOM as PACS exports hold it: compressed transfer syntaxes decoded to the pixels they were
written from, files without the file meta header, multi-frame files, colour, and malformed files
that are reported one by one while the rest of the folder is ingested.

The files are written here by pydicom and its encoders (RLE, JPEG-LS, JPEG 2000), by Pillow
(JPEG baseline), or kept in tests/data/dicom (JPEG lossless and extended, made once with GDCM by
make_samples.py there). Expected 8-bit images are computed here from the written values with
plain numpy (raw.window `minmax`: the values' range stretched to 0..255)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from dicomgen import dataset, write
from imagegen import smooth_image, stage, workdir
from PIL import Image

from rebalance.core import images

SAMPLES = Path(__file__).resolve().parent / "data" / "dicom"
sys.path.insert(0, str(SAMPLES))
from make_samples import pattern  # noqa: E402


def stretched(values: np.ndarray) -> np.ndarray:
    """The minmax window, computed independently: min..max to 0..255, rounded."""
    v = values.astype(np.float64)
    return np.rint((v - v.min()) * 255.0 / (v.max() - v.min())).astype(np.uint8)


def compressed(path: Path, values: np.ndarray, syntax) -> Path:
    """`values` written in a compressed syntax by pydicom's encoders."""
    ds = dataset(values)
    ds.compress(syntax, values)
    return write(path, ds)


def jpeg_baseline(path: Path, values: np.ndarray) -> np.ndarray:
    """8-bit grey or RGB values as JPEG baseline (Pillow's encoder), encapsulated; RGB is stored
    as YBR_FULL_422, as JPEG holds it. Returns what Pillow decodes from the JPEG bytes."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="JPEG", quality=95)
    colour = values.ndim == 3
    ds = dataset(values, "YBR_FULL_422" if colour else "MONOCHROME2")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    write(path, ds)
    return np.asarray(Image.open(buf))


def decoded(path: Path, frame: int | str = 0) -> np.ndarray:
    im, windowed = images.decode(path, "minmax", frame=frame)
    assert windowed
    return np.asarray(im)


RNG = np.random.default_rng(3)
GREY16 = np.asarray(smooth_image(RNG, 40).convert("L"), np.uint16) * 13  # 0..3315: 12 significant bits
GREY16 = (GREY16 + RNG.integers(0, 9, GREY16.shape)).astype(np.uint16)  # smooth, with noise
GREY8 = np.asarray(smooth_image(RNG, 40).convert("L"))


@pytest.mark.parametrize(
    "syntax, values",
    [
        ("RLELossless", GREY16),
        ("RLELossless", GREY8),
        ("JPEGLSLossless", GREY16),
        ("JPEGLSLossless", GREY8),
        ("JPEG2000Lossless", GREY16),  # 16-bit JPEG 2000 once failed ("Invalid mode for data type")
        ("JPEG2000Lossless", GREY8),
    ],
)
def test_compressed_syntaxes_decode_to_the_pixels_they_were_written_from(tmp_path, syntax, values):
    import pydicom
    import pydicom.uid

    uid = getattr(pydicom.uid, syntax)
    path = compressed(tmp_path / f"{syntax}.dcm", values, uid)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == uid  # really written compressed
    assert np.array_equal(decoded(path), stretched(values))  # lossless: exactly


@pytest.mark.parametrize(
    "name, bits, tolerance",
    [("jpeg_lossless_sv1_12bit.dcm", 12, 0), ("jpeg_extended_8bit.dcm", 8, 2)],
)
def test_jpeg_lossless_and_extended_samples_decode(name, bits, tolerance):
    out = decoded(SAMPLES / name).astype(int)
    assert np.abs(out - stretched(pattern(bits)).astype(int)).max() <= tolerance


def test_jpeg_baseline_grey_and_colour_decode_within_the_codec_tolerance(tmp_path):
    jpeg_baseline(tmp_path / "grey.dcm", GREY8)
    assert np.abs(decoded(tmp_path / "grey.dcm").astype(int) - stretched(GREY8).astype(int)).mean() < 3
    rgb = np.asarray(smooth_image(np.random.default_rng(4), 48))
    by_pillow = jpeg_baseline(tmp_path / "colour.dcm", rgb)
    im, _ = images.decode(tmp_path / "colour.dcm", "minmax")
    assert im.mode == "RGB"  # YBR_FULL_422 converted once (twice would shift every colour by ~50)
    assert np.abs(np.asarray(im).astype(int) - by_pillow.astype(int)).mean() < 1.5  # another libjpeg
    assert np.abs(np.asarray(im).astype(int) - rgb.astype(int)).mean() < 6  # the codec's own loss


def test_a_file_without_the_file_meta_header_is_read(tmp_path):
    from pydicom.filewriter import dcmwrite

    ds = dataset(GREY16)
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "IM0002"  # no extension, no preamble: found by its first element
    with open(path, "wb") as f:
        dcmwrite(f, ds, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[:2] == b"\x08\x00" and b"DICM" not in path.read_bytes()[:200]
    assert images.is_dicom(path)
    assert np.array_equal(decoded(path), stretched(GREY16))


def test_a_multi_frame_file_gives_the_frame_asked_for(tmp_path):
    frames = np.stack([GREY8 // 4 + 60 * k for k in range(3)]).astype(np.uint8)  # three distinct frames
    frames[:, 0, 0] = 0
    frames[:, 0, 1] = 255  # every frame spans 0..255: minmax leaves it as it is
    path = write(tmp_path / "cine.dcm", dataset(frames, frames=3))
    for frame, k in [(0, 0), (-1, 2), ("middle", 1), (1, 1)]:
        assert np.array_equal(decoded(path, frame), frames[k]), frame
    with pytest.raises(images.BadImageError, match="3 frames"):
        decoded(path, 5)


def test_undecodable_pixel_data_names_the_syntax_and_what_decodes_it(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds = dataset(GREY8)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 40])  # a J2K start, then nothing
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path = write(tmp_path / "broken.dcm", ds)
    with pytest.raises(images.BadImageError) as err:
        images.decode(path)
    assert "JPEG 2000" in err.value.reason and "pylibjpeg-openjpeg" in err.value.reason


def malformed_frames(path: Path) -> Path:
    """A single-frame file whose NumberOfFrames reads '1A' (an invalid IS value): written as '1 ',
    then the two bytes patched, as a faulty exporter leaves it."""
    ds = dataset(GREY16)
    ds.NumberOfFrames = 1
    write(path, ds)
    data = path.read_bytes()
    element = b"\x28\x00\x08\x00IS\x02\x001 "  # (0028,0008) IS, length 2, "1 "
    assert data.count(element) == 1
    path.write_bytes(data.replace(element, element[:-2] + b"1A"))
    return path


def test_one_malformed_dicom_file_is_reported_and_the_rest_ingested(tmp_path):
    from pydicom.uid import JPEG2000Lossless

    src = tmp_path / "src"
    write(src / "a" / "good.dcm", dataset(GREY16))
    compressed(src / "a" / "j2k.dcm", GREY16, JPEG2000Lossless)
    malformed_frames(src / "a" / "bad_frames.dcm")
    (src / "b").mkdir()
    for i in range(3):
        smooth_image(np.random.default_rng(i)).save(src / "b" / f"{i}.png")
    work = workdir(tmp_path, src, ["a", "b"])
    proc = stage(work, "raw")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (work / "data/raw/a").iterdir()) == ["good.dcm.png", "j2k.dcm.png"]
    report = json.loads((work / "metrics/raw.json").read_text())
    assert report["images"] == {"a": 2, "b": 3}
    assert [s["path"] for s in report["skipped"]] == ["a/bad_frames.dcm"]
    assert "NumberOfFrames is '1A'" in report["skipped"][0]["reason"]
    assert "skipped a/bad_frames.dcm: NumberOfFrames" in proc.stdout
