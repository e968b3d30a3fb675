"""Every source image in one pass, on every core: read once, decoded (the check that it is usable),
fingerprinted for stage count's duplicate check and, for stage raw, written to data/raw.

Used by the folder (ingest.py) and CSV (csv_source.py) sources; `rebalance plan` verifies and
fingerprints without writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rebalance.core import images
from rebalance.core.hashing import sha256_bytes
from rebalance.core.pool import pmap
from rebalance.dataset import duplicates


def windowed_name(name: str) -> str:
    """A 16-bit or float image's name in data/raw: `x.png` keeps it, `x.tif` becomes `x.tif.png`."""
    return name if name.lower().endswith(".png") else name + ".png"


def ingest_files(
    files: list[tuple[Path, str]],
    copy_to: Path | None,
    window: str,
    processes: int | None,
    frame: int | str = 0,
) -> list[Ingested]:
    """Verify source images (file, name in data/raw) on every core, each decoded once from the
    bytes read once, fingerprinted (for stage count's duplicate check) and, with `copy_to`,
    written to `copy_to/name` by the same worker. One Ingested per file, in order; a file found
    unusable is not written. `frame`: a multi-frame DICOM file's frame (raw.dicom_frame)."""
    if copy_to is not None:
        for parent in {(copy_to / name).parent for _, name in files}:
            parent.mkdir(parents=True, exist_ok=True)
    jobs = [(path, None if copy_to is None else copy_to / name, window, frame) for path, name in files]
    return pmap(ingest_file, jobs, "verify" if copy_to is None else "ingest", processes)


@dataclass(frozen=True)
class Ingested:
    problem: str = ""  # why the file is unusable ("" when usable)
    windowed: bool = False  # a 16-bit or float image, written as an 8-bit PNG
    sha256: str = ""  # of the bytes data/raw holds (the file's, or the windowed PNG's)
    pixels: str = ""  # duplicates.Fingerprint of the decoded image
    phash: str = ""

    @property
    def fingerprint(self) -> duplicates.Fingerprint:
        return duplicates.Fingerprint(self.pixels, int(self.phash, 16))


def ingest_file(job: tuple[Path, Path | None, str, int | str]) -> Ingested:
    """One file of ingest_files (never raises for a file it cannot use, for the process pool: any
    error reading or decoding it, whichever library raised it, is its `problem`). Written byte
    for byte, or, for a 16-bit or float image, windowed to 8 bit as PNG at windowed_name(dst).
    `dst` lies in stage raw's temporary output folder, renamed into place when every file is
    written. The fingerprint is that of the image data/raw holds, as duplicates.of_file gives it."""
    src, dst, window, frame = job
    try:
        data = src.read_bytes()
        im, windowed = images.decode(src, window, data=data, frame=frame)
        rgb = im.convert("RGB")
    except images.BadImageError as err:
        return Ingested(problem=err.reason)
    except OSError as err:
        return Ingested(problem=f"cannot read file ({err.strerror or err})")
    except MemoryError:
        raise
    except Exception as err:  # a decoder's own error that no check above foresaw: this file only
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return Ingested(problem=f"cannot decode ({type(err).__name__}{': ' + text if text else ''})")
    if windowed:
        data = images.encode_png(im)
    if dst is not None:  # a failed write (disk full) is no skip: it stops the stage
        (dst.with_name(windowed_name(dst.name)) if windowed else dst).write_bytes(data)
    fp = duplicates.of_image(rgb)
    return Ingested("", windowed, sha256_bytes(data), fp.pixels, duplicates.phash_hex(fp.phash))
