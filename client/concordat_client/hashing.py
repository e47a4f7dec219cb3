"""Hashing media into signals: PDQ with quality for images (``pdqhash``, after trimming black bars
at the edges), vPDQ for videos (``video.py``, after cutting the bars found on its first frames:
``bars.py``), MD5 and SHA-256 for any file. Each result is a record ``{"file", "type", "value",
"quality"?, "transform"?, "frames"?, "crop"?}``, the shape ``submit`` and ``match`` read back
from JSONL or CSV."""

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from concordat_client import frames as framelist
from concordat_client import video
from concordat_client.bars import BAR_LEVEL

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
# pdqhash.compute_dihedral's order of the eight hashes.
DIHEDRAL = video.DIHEDRAL


def files_under(paths: Iterable[Path]) -> list[Path]:
    """Files named, and every file under directories named (recursively, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            found.append(path)
    return found


def bits_to_hex(bits: Any) -> str:
    return int("".join("1" if bit else "0" for bit in bits), 2).to_bytes(32, "big").hex()


def trim_bars(pixels: Any) -> Any:
    """Without the black bars at its edges (letterbox and pillarbox, JPEG noise allowed), which
    would otherwise move the PDQ hash far from the picture's. At most a quarter of each side is
    cut; a picture that is black through and through is kept whole."""
    height, width = pixels.shape[:2]

    def flat(strip: Any) -> bool:
        return int(strip.max()) <= BAR_LEVEL

    if flat(pixels):
        return pixels
    top, bottom, left, right = 0, height, 0, width
    while top < height // 4 and flat(pixels[top]):
        top += 1
    while height - bottom < height // 4 and flat(pixels[bottom - 1]):
        bottom -= 1
    while left < width // 4 and flat(pixels[top:bottom, left]):
        left += 1
    while width - right < width // 4 and flat(pixels[top:bottom, right - 1]):
        right -= 1
    return pixels[top:bottom, left:right]


def _pixels(path: Path, *, bars: bool = True):
    import numpy
    from PIL import Image

    with Image.open(path) as image:
        pixels = numpy.asarray(image.convert("RGB"))
        return numpy.ascontiguousarray(trim_bars(pixels) if bars else pixels)


def pdq(path: Path, *, trim: bool = True) -> tuple[str, int]:
    """The PDQ hash and quality of an image, its black bars trimmed first unless ``trim`` is
    off."""
    import pdqhash

    bits, quality = pdqhash.compute(_pixels(path, bars=trim))
    return bits_to_hex(bits), int(quality)


def pdq_dihedral(path: Path, *, trim: bool = True) -> list[tuple[str, str, int]]:
    """The PDQ hashes of the eight rotations and mirrors, computed at the cost of one."""
    import pdqhash

    hashes, quality = pdqhash.compute_dihedral(_pixels(path, bars=trim))
    return [
        (name, bits_to_hex(bits), int(quality)) for name, bits in zip(DIHEDRAL, hashes, strict=True)
    ]


def digests(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def hash_file(
    path: Path, *, dihedral: bool = False, fps: float = 1.0, trim_bars: bool = True
) -> Iterator[dict[str, Any]]:
    """MD5 and SHA-256 of any file; PDQ of an image (by suffix); vPDQ of a video (by suffix or
    by its first bytes) at ``fps`` hashed frames a second. ``dihedral`` adds the rotations and
    mirrors, each record naming its ``transform``; ``trim_bars`` off hashes images and frames
    whole, black bars and all."""
    md5, sha256 = digests(path)
    yield {"file": str(path), "type": "md5", "value": md5}
    yield {"file": str(path), "type": "sha256", "value": sha256}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        if video.is_video(path):
            yield from video_records(path, dihedral=dihedral, fps=fps, trim_bars=trim_bars)
        return
    if dihedral:
        for name, value, quality in pdq_dihedral(path, trim=trim_bars):
            yield {
                "file": str(path),
                "type": "pdq",
                "value": value,
                "quality": quality,
                "transform": name,
            }
    else:
        value, quality = pdq(path, trim=trim_bars)
        yield {"file": str(path), "type": "pdq", "value": value, "quality": quality}


def video_records(
    path: Path, *, dihedral: bool, fps: float, trim_bars: bool = True
) -> Iterator[dict[str, Any]]:
    """The vpdq record of a video (``{"file", "type": "vpdq", "value", "frames"}``, with
    ``trim_bars`` its ``crop``: the picture kept without black bars, null when it had none),
    then with ``dihedral`` the frame lists of its 7 rotations and mirrors, each naming its
    transform."""
    frames, crop = video.video_frames(path, fps=fps, trim_bars=trim_bars)
    record = {"file": str(path), "type": "vpdq", "value": framelist.digest(frames)}
    if trim_bars:
        record["crop"] = crop.as_json() if crop else None
    if not dihedral:
        yield {**record, "frames": frames}
        return
    yield {**record, "transform": "original", "frames": frames}
    for name, turned in video.dihedral_frame_lists(path, fps=fps, crop=crop).items():
        yield {
            **record,
            "value": framelist.digest(turned),
            "transform": name,
            "frames": turned,
        }
