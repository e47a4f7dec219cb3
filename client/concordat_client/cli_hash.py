"""``concordat hash`` and the records it writes: hashing files (MD5, SHA-256, PDQ, vPDQ), reading
JSONL or CSV hash files (or media files) back for ``submit`` and ``match``, a vpdq record's
canonical signal, and ``TYPE:HEX`` signals given as arguments."""

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from concordat_client import frames as framelist
from concordat_client import hashing, video
from concordat_client.cli_context import Context, err, pass_context

SIGNAL = re.compile(r"(pdq|md5|sha256|vpdq):([0-9a-fA-F]+)")
CSV_FIELDS = ["file", "type", "value", "quality", "transform", "frames", "crop"]
FPS_HELP = "Video frames hashed per second (vPDQ's default 1; 0: every frame)."
# Shared by hash, submit, match and live.
trim_bars_option = click.option(
    "--trim-bars/--keep-bars",
    default=True,
    show_default=True,
    help="Cut black bars (letterbox, pillarbox) from images and video frames before PDQ; a "
    "video's are found on its first frames, and the crop is reported.",
)


@click.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--dihedral", is_flag=True, help="PDQ of the 8 rotations and mirrors too.")
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0), help=FPS_HELP)
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), default=None, help="Default: stdout."
)
@trim_bars_option
@pass_context
def hash_command(
    context: Context,
    paths: tuple[Path, ...],
    dihedral: bool,
    fps: float,
    output_format: str,
    output: Path | None,
    trim_bars: bool,
) -> None:
    """Hash files and directories (recursively): MD5 and SHA-256 of every file, PDQ with quality of
    images, vPDQ of videos (by suffix or content). Writes JSONL or CSV that submit and match
    read."""
    if dihedral and fps == 0:
        raise click.UsageError("--dihedral samples video frames with FFmpeg: give --fps above 0")
    files = hashing.files_under(paths)
    stream = output.open("w", newline="") if output else sys.stdout
    writer = None
    if output_format == "csv":
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("hashing", total=len(files))
        for path in files:
            for record in hashed(path, dihedral=dihedral, fps=fps, trim_bars=trim_bars):
                if writer:
                    # Frame lists and crops as compact JSON; a video without bars, an empty crop.
                    writer.writerow({
                        **record,
                        **{k: _compact(record[k]) if record[k] else "" for k in ("frames", "crop")
                           if k in record},
                    })  # fmt: skip
                else:
                    stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            progress.advance(task)
    if output:
        stream.close()
        err.print(f"{len(files)} files hashed into {output}")


def _compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def hashed(
    path: Path, *, dihedral: bool = False, fps: float = 1.0, trim_bars: bool = True
) -> Iterator[dict]:
    """``hashing.hash_file``, a video that cannot be hashed reported (its digests still
    given); a missing package or program stops everything (``video.MissingTool``)."""
    try:
        yield from hashing.hash_file(path, dihedral=dihedral, fps=fps, trim_bars=trim_bars)
    except video.MissingTool:
        raise
    except video.VideoError as exc:
        err.print(f"warning: {exc}")


def read_records(
    paths: tuple[Path, ...], *, fps: float = 1.0, trim_bars: bool = True
) -> Iterator[dict]:
    """Records from JSONL or CSV files (by suffix), or hashed from media files."""
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            for line in path.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)
        elif suffix == ".csv":
            for row in csv.DictReader(io.StringIO(path.read_text())):
                record = {k: v for k, v in row.items() if v not in ("", None)}
                for field in ("frames", "crop"):
                    if field in record:
                        record[field] = json.loads(record[field])
                yield record
        else:
            for file in hashing.files_under([path]):
                yield from hashed(file, fps=fps, trim_bars=trim_bars)


def video_signal(record: dict) -> dict:
    """The signal of a vpdq record, its frames brought to the canonical form and its value
    their digest (a record whose value is another digest is refused: exit 2)."""
    try:
        frames = framelist.normalise_frames(record.get("frames") or [])
    except framelist.FrameListError as exc:
        raise click.UsageError(f"{record.get('file', 'a vpdq record')}: frames: {exc}") from None
    value = framelist.digest(frames)
    if record.get("value") and record["value"].lower() != value:
        raise click.UsageError(
            f"{record.get('file', 'a vpdq record')}: value {record['value']} is not the digest "
            f"of its frames ({value})"
        )
    return {"type": "vpdq", "value": value, "frames": frames}


def parse_signal(text: str) -> dict[str, str]:
    found = SIGNAL.fullmatch(text.strip())
    if not found:
        raise click.UsageError(
            f"{text!r} is not TYPE:HEX (pdq:…, md5:…, sha256:…, vpdq:…) nor a file"
        )
    return {"type": found.group(1), "value": found.group(2).lower()}
