"""The one image helper on real users' files: 16-bit and float images, decompression bombs, odd errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rebalance.core import images, window
from rebalance.core.images import BadImageError, open_rgb


@pytest.fixture(autouse=True)
def default_window():
    window.set_window("percentile")
    yield
    window.set_window("percentile")


def gradient(dtype, lo: int = 0, hi: int = 65535) -> np.ndarray:
    """A 64 x 256 horizontal-and-vertical ramp over lo..hi: 16,384 distinct values."""
    return np.linspace(lo, hi, 64 * 256).reshape(64, 256).astype(dtype)


def save_high_depth(values: np.ndarray, path: Path, mode: str) -> Path:
    """`values` as a PIL `mode` image (I;16, I;16B, I, F) saved to `path` (PNG or TIFF)."""
    if mode == "I;16B":
        im = Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes())
    else:
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        im = Image.fromarray(values.astype(dtype))  # uint16 -> I;16, int32 -> I, float32 -> F
    im.save(path)
    assert Image.open(path).mode == mode  # the file really is what the case names
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A 100-byte PNG whose header declares width x height RGB pixels (no pixel data to speak of)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0")) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


HIGH_DEPTH = [("I;16", "png"), ("I;16", "tif"), ("I;16B", "tif"), ("I", "tif"), ("F", "tif")]


@pytest.mark.parametrize("mode,ext", HIGH_DEPTH)
def test_a_16_bit_gradient_keeps_its_grey_levels(tmp_path, mode, ext):
    values = gradient(np.float64)
    path = save_high_depth(values, tmp_path / f"ramp.{ext}", mode)
    rgb = np.asarray(open_rgb(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 256, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    grey = rgb[..., 0].reshape(-1)[np.argsort(values.reshape(-1), kind="stable")]
    assert (np.diff(grey.astype(int)) >= 0).all()  # monotone in the original values
    assert grey.min() == 0 and grey.max() == 255
    assert len(np.unique(grey)) == 256  # not ~99% white with 5 grey levels (PIL's clip)
    assert (grey == 255).mean() < 0.02  # percentile window: only the top 0.5% saturate


def test_percentile_ignores_outliers_and_minmax_keeps_them(tmp_path):
    values = gradient(np.float64, 1000, 2000)
    values[0, 0] = 65000  # one hot pixel (a burnt-in marker)
    path = save_high_depth(values, tmp_path / "marker.png", "I;16")
    spread = np.asarray(open_rgb(path))[1:, :, 0]
    assert spread.max() - spread.min() >= 250  # the tissue spans the grey range
    window.set_window("minmax")
    squeezed = np.asarray(open_rgb(path))[..., 0]
    assert squeezed[0, 0] == 255 and squeezed[1:].max() <= 5  # the full range: tissue near black
    assert (window.window_8bit(values.astype(np.uint16), "minmax") == squeezed).all()


def test_window_edge_cases():
    assert (window.window_8bit(np.full((4, 4), 300.0)) == 0).all()  # flat: black, no division by zero
    odd = np.array([[np.nan, -np.inf, 0.0, 1.0, np.inf]])
    assert window.window_8bit(odd, "minmax").tolist() == [[0, 0, 0, 255, 255]]
    few = np.zeros((100, 100))
    few[0, :3] = 7.0  # percentiles meet (both 0): widen to the full range instead of a flat image
    assert window.window_8bit(few)[0, :3].tolist() == [255, 255, 255]
    with pytest.raises(ValueError):
        window.set_window("auto")


def test_window_png_holds_what_open_rgb_decodes(tmp_path):
    path = save_high_depth(gradient(np.float64), tmp_path / "ramp.tif", "I;16")
    png = tmp_path / "ramp.png"
    png.write_bytes(images.encode_png(images.decode(path)[0]))  # what stage raw writes
    assert Image.open(png).mode == "L"
    assert (np.asarray(open_rgb(png)) == np.asarray(open_rgb(path))).all()
    assert images.decode(path)[1] is True and images.decode(png)[1] is False  # windowed or not
    small = images.load_array(path, 16, "stretch")
    assert small.max() > 200 and small.min() < 50


def test_8_bit_images_decode_as_before(tmp_path):
    rng = np.random.default_rng(0)
    for mode, shape in (("RGB", (9, 7, 3)), ("L", (9, 7))):
        path = tmp_path / f"{mode}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
        assert (np.asarray(open_rgb(path)) == np.asarray(Image.open(path).convert("RGB"))).all()
        assert images.decode(path)[1] is False  # not windowed


@pytest.mark.parametrize("side", [40000, 12000, 9000])  # PIL's error, PIL's warning, our own limit
def test_a_decompression_bomb_is_a_bad_image(tmp_path, side):
    path = bomb_png(tmp_path / "bomb.png", side, side)
    if side == 40000:
        with pytest.raises(Image.DecompressionBombError):  # what PIL itself does: not an OSError
            Image.open(path)
    with pytest.raises(BadImageError) as err:
        open_rgb(path)
    assert f"{side * side:,} pixels" in err.value.reason or f"{side}x{side}" in err.value.reason
    assert "over" in err.value.reason and "64,000,000" in err.value.reason
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))


@pytest.mark.parametrize("error", [KeyError("tile"), struct.error("unpack"), MemoryError(), IndexError()])
def test_every_decoder_error_is_a_bad_image(tmp_path, monkeypatch, error):
    path = tmp_path / "odd.png"
    Image.new("RGB", (4, 4)).save(path)

    def broken_open(*args, **kwargs):
        raise error

    monkeypatch.setattr(images.Image, "open", broken_open)
    with pytest.raises(BadImageError, match="cannot read image") as err:
        open_rgb(path)
    assert err.value.reason.startswith("cannot read image (")


def test_a_large_jpeg_is_decoded_at_reduced_scale_only_when_brought_to_a_small_size(tmp_path):
    """load_array(path, size) lets libjpeg decode at 1/2..1/8 scale (both sides kept >= size):
    close to the full decode resized, and PNGs (every demo and synthetic image) exactly as before."""
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    small.resize((1280, 960), Image.BICUBIC).save(tmp_path / "photo.jpg", quality=92)
    small.resize((1280, 960), Image.BICUBIC).save(tmp_path / "photo.png")
    for fit in ("stretch", "crop", "pad"):
        full = np.asarray(images.fit_square(open_rgb(tmp_path / "photo.jpg"), 64, fit), dtype=int)
        fast = images.load_array(tmp_path / "photo.jpg", 64, fit)
        assert fast.shape == (64, 64, 3) and 0 < np.abs(fast - full).mean() < 2  # the reduced decode
        png = np.asarray(images.fit_square(open_rgb(tmp_path / "photo.png"), 64, fit))
        assert np.array_equal(images.load_array(tmp_path / "photo.png", 64, fit), png)
    with Image.open(tmp_path / "photo.jpg") as im:
        im.draft(None, (64, 64))
        assert im.size == (160, 120)  # what the fast path decodes: 1/8 scale, both sides >= 64
    assert open_rgb(tmp_path / "photo.jpg").size == (1280, 960)  # without a size: every pixel
