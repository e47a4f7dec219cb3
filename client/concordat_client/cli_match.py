"""``concordat sync`` and ``concordat match``: the local copy of the shared set, and matching
files, hash files and ``TYPE:HEX`` signals against the hub or (``--offline``) that copy by the
hub's rules; how a match is shown (its moments and its entry) is shared with ``live``."""

import time
from pathlib import Path

import click
from rich.progress import Progress

from concordat_client import frames as framelist
from concordat_client import hashing
from concordat_client.cli_context import Context, err, pass_context, shared_set
from concordat_client.cli_hash import (
    FPS_HELP,
    hashed,
    parse_signal,
    read_records,
    trim_bars_option,
    video_signal,
)
from concordat_client.hub import Hub
from concordat_client.local import DistinctFrames, SharedSet, entry_fields


@click.command()
@click.option("--follow", is_flag=True, help="Keep following the cursor.")
@click.option(
    "--interval", default=5.0, show_default=True, help="Seconds between polls with --follow."
)
@pass_context
def sync(context: Context, follow: bool, interval: float) -> None:
    """Copy the shared set into a local SQLite file: the export, then the delta cursor. Resumable
    after any interruption; a stale cursor re-exports."""
    context.need("hub", "token")
    hub, local = context.hub(), shared_set(context)
    started = time.monotonic()
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("syncing", total=None)
        while True:
            applied = local.sync(hub, progress=lambda n: progress.update(task, completed=n))
            context.emit(
                {
                    "applied": applied,
                    "entries": local.count(),
                    "video_frame_lists": local.video_count(),
                    "seconds": round(time.monotonic() - started, 3),
                },
                f"{applied} changes applied; {local.count()} entries held "
                f"({local.video_count()} video frame lists)",
            )
            if not follow:
                return
            time.sleep(interval)


def _query(source: str, record: dict) -> dict:
    """One query: the ``signal`` sent, the ``shown`` query (a vpdq one by its value and frame
    count, not its frames), the ``transform`` of the image or video that gave it and the
    ``crop`` that cut a video's black bars."""
    if record["type"] == "vpdq":
        signal = video_signal(record)
        shown = {"type": "vpdq", "value": signal["value"], "frames": len(signal["frames"])}
        signal = {"type": "vpdq", "frames": signal["frames"]}
    else:
        signal = {"type": record["type"], "value": record["value"].lower()}
        shown = signal
    return {
        "source": source,
        "signal": signal,
        "shown": shown,
        "transform": record.get("transform"),
        "crop": record.get("crop"),
    }


def match_queries(
    args: tuple[str, ...], rotations: bool, fps: float = 1.0, trim_bars: bool = True
) -> list[dict]:
    """One query per signal of hash files, media files and folders, and TYPE:HEX arguments."""
    queries = []
    for text in args:
        path = Path(text)
        if path.exists() and path.suffix.lower() in (".jsonl", ".ndjson", ".csv"):
            for record in read_records((path,)):
                queries.append(_query(record.get("file", text), record))
        elif path.exists():
            for file in hashing.files_under([path]):
                for record in hashed(file, dihedral=rotations, fps=fps, trim_bars=trim_bars):
                    queries.append(_query(str(file), record))
        else:
            signal = parse_signal(text)
            if signal["type"] == "vpdq":
                raise click.UsageError(
                    f"{text}: a video is matched by its frames: name the video file or a hash "
                    "file holding its frames"
                )
            queries.append(_query(text, signal))
    return queries


def _online(hub: Hub, queries: list[dict], threshold: int, settings: dict) -> list[dict]:
    """The hub's answers, 1,000 signals and 20,000 video frames a request at most."""
    results: list[dict] = []
    chunk: list[dict] = []
    frames = 0

    def ask() -> None:
        has_video = any(signal["type"] == "vpdq" for signal in chunk)
        results.extend(hub.match(chunk, threshold=threshold, **(settings if has_video else {})))

    for query in queries:
        count = len(query["signal"].get("frames", ()))
        if chunk and (len(chunk) >= 1000 or frames + count > framelist.MAX_FRAMES):
            ask()
            chunk, frames = [], 0
        chunk.append(query["signal"])
        frames += count
    if chunk:
        ask()
    return results


def _offline(local: SharedSet, queries: list[dict], threshold: int, settings: dict) -> list[dict]:
    """The same answers from the local copy, by the hub's rules (docs/client.md)."""
    pdq_index = local.pdq_index()
    video_index = (
        local.video_index() if any(q["shown"]["type"] == "vpdq" for q in queries) else None
    )
    results = []
    for query in queries:
        signal = query["signal"]
        if signal["type"] == "vpdq":
            quality_min = settings["frame_quality_min"]
            matches = video_index.search(
                signal["frames"], threshold=threshold, quality_min=quality_min,
                query_min=settings["query_match_min"], compared_min=settings["compared_match_min"],
            )  # fmt: skip
            distinct = DistinctFrames(signal["frames"])
            frame_matches = [
                (distinct.timestamp_ms[i], distance, document["signal"]["value"], document)
                for i in distinct.kept(quality_min)
                for distance, document in pdq_index.search(distinct.hashes[i], threshold)
            ]
            frame_matches.sort(key=lambda hit: hit[:3])
            results.append({
                "matches": matches,
                "frame_matches": [
                    {**entry_fields(document), "distance": distance, "query_ms": ms}
                    for ms, distance, _, document in frame_matches
                ],
            })  # fmt: skip
        elif signal["type"] == "pdq":
            found = pdq_index.search(signal["value"], threshold)
            results.append({"matches": [_match_of(d, doc) for d, doc in found]})
        else:
            document = local.lookup(signal["type"], signal["value"])
            results.append({"matches": [_match_of(0, document)] if document else []})
    return results


def moment(ms: int) -> str:
    return f"{ms // 60000}:{ms % 60000 / 1000:06.3f}"


def entry_summary(found: dict) -> str:
    return f"state {found['state']} labels {','.join(found['labels'])} contributors " + ",".join(
        f"{c['member']}@{c['hub']}" for c in found["contributors"]
    )


@click.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--offline", is_flag=True, help="Against the local synced copy, not the hub.")
@click.option(
    "--rotations", is_flag=True, help="Also query the 8 rotations and mirrors of images and videos."
)
@click.option("--threshold", default=31, show_default=True, type=click.IntRange(0, 63))
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0), help=FPS_HELP)
@click.option(
    "--frame-quality-min", default=50, show_default=True, type=click.IntRange(0, 100),
    help="Video frames below this quality are not matched (both sides).",
)  # fmt: skip
@click.option(
    "--query-match-min", default=80, show_default=True, type=click.IntRange(0, 100),
    help="A video matches when at least this % of your video's frames matched...",
)  # fmt: skip
@click.option(
    "--compared-match-min", default=0, show_default=True, type=click.IntRange(0, 100),
    help="...and at least this % of the shared video's frames.",
)  # fmt: skip
@trim_bars_option
@pass_context
def match(
    context: Context,
    targets: tuple[str, ...],
    offline: bool,
    rotations: bool,
    threshold: int,
    fps: float,
    frame_quality_min: int,
    query_match_min: int,
    compared_match_min: int,
    trim_bars: bool,
) -> None:
    """Match files (images, videos), hash files (JSONL/CSV) or TYPE:HEX signals against the
    shared set."""
    if rotations and fps == 0:
        raise click.UsageError("--rotations samples video frames with FFmpeg: give --fps above 0")
    settings = {
        "frame_quality_min": frame_quality_min,
        "query_match_min": query_match_min,
        "compared_match_min": compared_match_min,
    }
    queries = match_queries(targets, rotations, fps, trim_bars)
    if offline:
        results = _offline(shared_set(context), queries, threshold, settings)
    else:
        context.need("hub", "token")
        results = _online(context.hub(), queries, threshold, settings)
    any_match = False
    for query, result in zip(queries, results, strict=True):
        transform = query["transform"]
        head = {"source": query["source"], "query": query["shown"], "transform": transform}
        if query["crop"] is not None:
            head["crop"] = query["crop"]
        label = f"[bold]{query['source']}[/] {query['shown']['type']}" + (
            f" ({transform})" if transform else ""
        )
        if query["crop"]:
            crop = query["crop"]
            label += f" (bars cut: {crop['width']}x{crop['height']} at {crop['x']},{crop['y']})"
        for found in result["matches"]:
            any_match = True
            if "query_percent" in found:
                pairs = ", ".join(
                    f"{moment(p['query_ms'])}→{moment(p['shared_ms'])} d{p['distance']}"
                    for p in found["pairs"]
                )
                text = (
                    f"{label} matches video {found['signal']['value'][:16]}… query "
                    f"{found['query_percent']}% compared {found['compared_percent']}% "
                    f"(frames {found['matched_frames']}/{found['query_frames']} yours, "
                    f"{found['matched_shared_frames']}/{found['shared_frames']} shared) "
                    f"distance {found['distance']} {entry_summary(found)}\n  moments (yours→shared): {pairs}"
                )
            else:
                text = (
                    f"{label} matches {found['signal']['value'][:16]}… distance "
                    f"{found['distance']} {entry_summary(found)}"
                )
            context.emit({**head, **found}, text)
        for found in result.get("frame_matches", ()):
            any_match = True
            where = f"frame at {moment(found['query_ms'])}" if "query_ms" in found else ""
            if "shared_ms" in found:
                where = f"video frame at {moment(found['shared_ms'])} of"
            context.emit(
                {**head, "frame_match": True, **found},
                f"{label} {where} matches {found['signal']['type']} "
                f"{found['signal']['value'][:16]}… distance {found['distance']} {entry_summary(found)}",
            )
    if not any_match:
        context.emit({"matches": 0}, "no match")


def _match_of(distance: int, document: dict) -> dict:
    return {**entry_fields(document), "distance": distance}
