"""Test pictures made with Pillow and test videos made with FFmpeg, and the copies a platform
would see of them."""

import random
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps


def picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A seeded picture of overlapping shapes: structure at every scale, as PDQ needs."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(20, size[0] // 2), rng.randrange(20, size[1] // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        else:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(3))  # softer edges, as in a photograph


def letterbox(image: Image.Image) -> Image.Image:
    width, height = image.size
    boxed = Image.new("RGB", (width, int(height * 1.2)), (0, 0, 0))
    boxed.paste(image, (0, int(height * 0.1)))
    return boxed


def crop(image: Image.Image, fraction: float = 0.02) -> Image.Image:
    """``fraction`` of the width and of the height cut off, half on each side."""
    width, height = image.size
    dx, dy = int(width * fraction / 2), int(height * fraction / 2)
    return image.crop((dx, dy, width - dx, height - dy))


# The copies that must match the original within 31 without --rotations, and those that need it.
NEAR_COPIES = {
    "resized": lambda image: image.resize((image.width // 2, image.height // 2)),
    "reencoded": lambda image: image,  # saved as JPEG quality 60 below
    "cropped": crop,
    "letterboxed": letterbox,
}
TURNED_COPIES = {
    "mirrored": ImageOps.mirror,
    "rotated": lambda image: image.transpose(Image.Transpose.ROTATE_90),
}


def write_set(folder: Path, seed: int) -> dict[str, Path]:
    """The original (PNG), its copies, and an unrelated picture; paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    original = picture(seed)
    paths = {"original": folder / "original.png"}
    original.save(paths["original"])
    for name, make in {**NEAR_COPIES, **TURNED_COPIES}.items():
        paths[name] = folder / f"{name}.jpg"
        make(original).save(paths[name], quality=60 if name == "reencoded" else 90)
    paths["unrelated"] = folder / "unrelated.png"
    picture(seed + 1000).save(paths["unrelated"])
    return paths


# Videos: a 320x240 window panning over seeded pink noise with moving shapes and text, the design
# of tests/support/video_media.py (PDQ needs natural-image structure); the "other" design for unrelated
# videos. Short, so the client's end-to-end tests stay quick.
VIDEO_FPS = 15
_DESIGNS = {"original": "original", "other": "unrelated_noise"}
# The copies a platform would see: re-encoded smaller at a low bitrate, and mirrored.
VIDEO_COPIES = {
    "reencoded": ("scale=240:180", ["-b:v", "120k"]),
    "mirrored": ("hflip", []),
}


def write_video(path: Path, *, seed: int, seconds: int = 12, design: str = "original") -> Path:
    from tests.support.video_media import RECIPES, pink_noise_ppm

    still = path.with_name(f"{path.stem}-background.ppm")
    pink_noise_ppm(seed, still)
    video_filter = RECIPES[_DESIGNS[design]][1]
    command = ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", str(VIDEO_FPS)]
    command += ["-i", str(still), "-vf", video_filter, "-t", str(seconds)]
    subprocess.run(
        [*command, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=300
    )
    still.unlink()
    return path


def write_video_copy(original: Path, path: Path, name: str) -> Path:
    video_filter, extra = VIDEO_COPIES[name]
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(original), "-vf", video_filter, *extra]
    subprocess.run(
        [*command, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=300
    )
    return path
