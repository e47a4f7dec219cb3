"""The ``concordat`` command (docs/client.md). Exit status: 0 done; 1 something was refused, a
discrepancy found, or (``lookup``) a file matched; 2 bad usage or configuration; 3 the hub could
not be reached or answered an error; 130 interrupted."""

import base64
import csv
import hashlib
import io
import itertools
import json
import re
import signal as os_signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress

from concordat_client import frames as framelist
from concordat_client import hashing, signing, video
from concordat_client.config import Profile, load_profile
from concordat_client.hub import Hub, HubError
from concordat_client.local import DistinctFrames, Journal, SharedSet, entry_fields

EXIT_REFUSED, EXIT_USAGE, EXIT_HUB, EXIT_INTERRUPTED = 1, 2, 3, 130
SIGNAL = re.compile(r"(pdq|md5|sha256|vpdq):([0-9a-fA-F]+)")
CSV_FIELDS = ["file", "type", "value", "quality", "transform", "frames"]
FPS_HELP = "Video frames hashed per second (vPDQ's default 1; 0: every frame)."
err = Console(stderr=True)


class Context:
    def __init__(self, profile: Profile, as_json: bool) -> None:
        self.profile, self.as_json = profile, as_json
        self.out = Console(highlight=False)

    def need(self, *fields: str) -> None:
        missing = [f for f in fields if getattr(self.profile, f) in (None, "")]
        if missing:
            names = ", ".join(f"CONCORDAT_{f.upper()}" for f in missing)
            raise click.UsageError(
                f"profile {self.profile.name!r} has no {', '.join(missing)} (set it in the config "
                f"file or {names})"
            )

    def hub(self) -> Hub:
        self.need("hub")
        return Hub(self.profile.hub, self.profile.token)

    def emit(self, document: Any, text: str | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(document, separators=(",", ":")))
        elif text is not None:
            self.out.print(text)


pass_context = click.make_pass_decorator(Context)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        err.print("interrupted: rerun the same command to carry on")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except HubError as exc:
        err.print(f"hub error: {exc}")
        sys.exit(EXIT_HUB)
    except video.MissingTool as exc:
        err.print(f"error: {exc}")
        sys.exit(EXIT_USAGE)


@click.group()
@click.option("--profile", default=None, help="Profile in the config file (default: 'default').")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, one JSON per line.")
@click.pass_context
def cli(click_context: click.Context, profile: str | None, as_json: bool) -> None:
    """Concordat partner client: hash, sign, submit, sync, match, verify."""
    click_context.obj = Context(load_profile(profile), as_json)


# --- keys -------------------------------------------------------------------------------------


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@pass_context
def keygen(context: Context, path: Path | None) -> None:
    """Create an Ed25519 signing key (file mode 0600); print its public key and key id."""
    path = path or context.profile.key
    if path is None:
        raise click.UsageError("name the key file (or set the profile's key)")
    if path.exists():
        raise click.UsageError(f"{path} exists; keygen never overwrites a key")
    key = signing.write_new_key(path)
    raw = signing.public_bytes(key)
    document = {
        "path": str(path),
        "public_key": base64.b64encode(raw).decode(),
        "key_id": signing.key_id(raw),
    }
    context.emit(
        document,
        f"key written to {path}\npublic key {document['public_key']}\nkey id     {document['key_id']}",
    )


@cli.command("register-key")
@click.option("--label", default=None)
@pass_context
def register_key(context: Context, label: str | None) -> None:
    """Register the profile's key on the hub with its proof of possession (scope manage)."""
    context.need("hub", "token", "member", "key")
    hub = context.hub()
    body = signing.key_registration(
        signing.load_key(context.profile.key),
        hub=hub.hub_info()["hub_id"],
        member=context.profile.member,
        label=label,
    )
    answer = hub.register_key(body)
    context.emit(answer, f"registered key {body['registration']['key_id']}")


# --- hashing ----------------------------------------------------------------------------------


@cli.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--dihedral", is_flag=True, help="PDQ of the 8 rotations and mirrors too.")
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0), help=FPS_HELP)
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), default=None, help="Default: stdout."
)
@pass_context
def hash_command(
    context: Context,
    paths: tuple[Path, ...],
    dihedral: bool,
    fps: float,
    output_format: str,
    output: Path | None,
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
            for record in _hashed(path, dihedral=dihedral, fps=fps):
                if writer:
                    frames = record.get("frames")
                    writer.writerow({**record, **({"frames": _compact(frames)} if frames else {})})
                else:
                    stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            progress.advance(task)
    if output:
        stream.close()
        err.print(f"{len(files)} files hashed into {output}")


def _compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def _hashed(path: Path, *, dihedral: bool = False, fps: float = 1.0) -> Iterator[dict]:
    """``hashing.hash_file``, a video that cannot be hashed reported (its digests still
    given); a missing package or program stops everything (``video.MissingTool``)."""
    try:
        yield from hashing.hash_file(path, dihedral=dihedral, fps=fps)
    except video.MissingTool:
        raise
    except video.VideoError as exc:
        err.print(f"warning: {exc}")


def read_records(paths: tuple[Path, ...], *, fps: float = 1.0) -> Iterator[dict]:
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
                if "frames" in record:
                    record["frames"] = json.loads(record["frames"])
                yield record
        else:
            for file in hashing.files_under([path]):
                yield from _hashed(file, fps=fps)


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


# --- submitting -------------------------------------------------------------------------------


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--label", "labels", multiple=True, required=True, help="A label slug; repeat.")
@click.option("--incident", default=None, help="An incident UUID.")
@click.option("--scope", default="federation", type=click.Choice(["federation", "local"]))
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["pdq", "md5", "sha256", "vpdq"]),
    help="Only these signal types (default all).",
)
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Resume file (default: derived from the inputs).",
)
@click.option("--batch", default=1000, show_default=True, help="Items per bulk request.")
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0), help=FPS_HELP)
@pass_context
def submit(context: Context, inputs, labels, incident, scope, types, journal, batch, fps) -> None:
    """Sign and bulk-submit hashes (JSONL/CSV from `hash`, or media files). Resumable: a rerun
    sends only what has no answer yet. Exits 1 when the hub refused an item."""
    context.need("hub", "token", "member", "key")
    records = [
        _submitted(r)
        for r in read_records(inputs, fps=fps)
        if (not types or r["type"] in types) and r.get("transform", "original") == "original"
    ]
    if journal is None:
        digest = hashlib.sha256(
            json.dumps([sorted(map(str, inputs)), labels, incident, scope, types]).encode()
        ).hexdigest()[:16]
        journal = context.profile.state / "journals" / f"submit-{digest}.sqlite"
    journal.parent.mkdir(parents=True, exist_ok=True)
    book = Journal(journal)
    book.plan(records, lambda: str(uuid.uuid4()), signing.timestamp)
    key = signing.load_key(context.profile.key)
    hub = context.hub()
    hub_id = hub.hub_info()["hub_id"]
    pending = book.pending()
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("submitting", total=len(pending))
        for chunk in _batches(pending, batch):
            items = []
            for _, item_uuid, created_at, record in chunk:
                signal = {"type": record["type"], "value": record["value"]}
                if record.get("quality") not in (None, ""):
                    signal["quality"] = int(record["quality"])
                if record["type"] == "vpdq":
                    signal["frames"] = record["frames"]
                items.append(signing.contribution(
                    key, hub=hub_id, member=context.profile.member, action="add", signal=signal,
                    labels=list(labels), scope=scope, incident=incident, item_uuid=item_uuid, created_at=created_at,
                ))  # fmt: skip
            answer = hub.submit_bulk(items)
            book.answer([(chunk[r["index"]][0], r["status"], r) for r in answer["results"]])
            progress.advance(task, len(chunk))
    summary = book.summary()
    refused = book.refused()
    for position, record, answer in refused:
        error = answer.get("error", {})
        context.emit(
            {"index": position, **record, "error": error},
            f"refused #{position} {record['type']}:{record['value']}: {error.get('code')} {error.get('message')}",
        )
    context.emit(
        {"journal": str(journal), **summary},
        f"summary: {', '.join(f'{v} {k}' for k, v in sorted(summary.items()))} (journal {journal})",
    )
    if refused:
        sys.exit(EXIT_REFUSED)


def _submitted(record: dict) -> dict:
    """What the journal keeps of a record: its signal's parts and its file."""
    kept = {k: record[k] for k in ("type", "value", "quality", "file") if k in record}
    if record["type"] == "vpdq":
        signal = video_signal(record)
        kept.update(value=signal["value"], frames=signal["frames"])
    return kept


# A bulk request carries at most 8 MiB by default (docs/api.md): about four full-size frame
# lists. Batches close at this many frames, so a batch of video signals stays well below it.
BATCH_FRAMES = 20_000


def _batches(pending: list, size: int) -> Iterator[list]:
    """``size`` items a batch, fewer when frame lists would make the request too large."""
    chunk: list = []
    frames = 0
    for item in pending:
        count = len(item[3].get("frames") or ())
        if chunk and (len(chunk) >= size or frames + count > BATCH_FRAMES):
            yield chunk
            chunk, frames = [], 0
        chunk.append(item)
        frames += count
    if chunk:
        yield chunk


@cli.command()
@click.argument("signals", nargs=-1, required=True)
@click.option("--scope", default="federation", type=click.Choice(["federation", "local"]))
@pass_context
def retract(context: Context, signals: tuple[str, ...], scope: str) -> None:
    """Retract your organisation's adds of TYPE:VALUE signals."""
    context.need("hub", "token", "member", "key")
    parsed = [_signal(text) for text in signals]
    key, hub = signing.load_key(context.profile.key), context.hub()
    hub_id = hub.hub_info()["hub_id"]
    items = [
        signing.contribution(
            key,
            hub=hub_id,
            member=context.profile.member,
            action="retract",
            signal=s,
            labels=[],
            scope=scope,
        )
        for s in parsed
    ]
    answer = hub.submit_bulk(items)
    for signal, result in zip(parsed, answer["results"], strict=True):
        code = result.get("error", {}).get("code", "")
        context.emit(result, f"{signal['type']}:{signal['value']}: {result['status']} {code}")
    if answer["rejected"]:
        sys.exit(EXIT_REFUSED)


@cli.command()
@click.argument("entry")
@click.argument("opinion", type=click.Choice(["agree", "disagree", "false_positive"]))
@click.option("--reason", default=None, help="A note, up to 2000 characters.")
@pass_context
def feedback(context: Context, entry: str, opinion: str, reason: str | None) -> None:
    """Give your organisation's opinion on a vetted entry, named by its id or TYPE:HEX (scope
    review)."""
    context.need("hub", "token")
    hub = context.hub()
    if entry.isdigit():
        entry_id = int(entry)
    else:
        signal = _signal(entry)
        entry_id = hub.entry_id(signal["type"], signal["value"])
    answer = hub.feedback(entry_id, opinion, reason)
    context.emit(answer, f"entry {entry_id}: {opinion} recorded")


def _signal(text: str) -> dict[str, str]:
    found = SIGNAL.fullmatch(text.strip())
    if not found:
        raise click.UsageError(
            f"{text!r} is not TYPE:HEX (pdq:…, md5:…, sha256:…, vpdq:…) nor a file"
        )
    return {"type": found.group(1), "value": found.group(2).lower()}


# --- sync and match ---------------------------------------------------------------------------


def shared_set(context: Context) -> SharedSet:
    return SharedSet(context.profile.state / "shared-set.sqlite")


@cli.command()
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
    count, not its frames), and the ``transform`` of the image or video that gave it."""
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
    }


def match_queries(args: tuple[str, ...], rotations: bool, fps: float = 1.0) -> list[dict]:
    """One query per signal of hash files, media files and folders, and TYPE:HEX arguments."""
    queries = []
    for text in args:
        path = Path(text)
        if path.exists() and path.suffix.lower() in (".jsonl", ".ndjson", ".csv"):
            for record in read_records((path,)):
                queries.append(_query(record.get("file", text), record))
        elif path.exists():
            for file in hashing.files_under([path]):
                for record in _hashed(file, dihedral=rotations, fps=fps):
                    queries.append(_query(str(file), record))
        else:
            signal = _signal(text)
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


def _ms(ms: int) -> str:
    return f"{ms // 60000}:{ms % 60000 / 1000:06.3f}"


def _who(found: dict) -> str:
    return f"state {found['state']} labels {','.join(found['labels'])} contributors " + ",".join(
        f"{c['member']}@{c['hub']}" for c in found["contributors"]
    )


@cli.command()
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
    queries = match_queries(targets, rotations, fps)
    if offline:
        results = _offline(shared_set(context), queries, threshold, settings)
    else:
        context.need("hub", "token")
        results = _online(context.hub(), queries, threshold, settings)
    any_match = False
    for query, result in zip(queries, results, strict=True):
        transform = query["transform"]
        head = {"source": query["source"], "query": query["shown"], "transform": transform}
        label = f"[bold]{query['source']}[/] {query['shown']['type']}" + (
            f" ({transform})" if transform else ""
        )
        for found in result["matches"]:
            any_match = True
            if "query_percent" in found:
                pairs = ", ".join(
                    f"{_ms(p['query_ms'])}→{_ms(p['shared_ms'])} d{p['distance']}"
                    for p in found["pairs"]
                )
                text = (
                    f"{label} matches video {found['signal']['value'][:16]}… query "
                    f"{found['query_percent']}% compared {found['compared_percent']}% "
                    f"(frames {found['matched_frames']}/{found['query_frames']} yours, "
                    f"{found['matched_shared_frames']}/{found['shared_frames']} shared) "
                    f"distance {found['distance']} {_who(found)}\n  moments (yours→shared): {pairs}"
                )
            else:
                text = (
                    f"{label} matches {found['signal']['value'][:16]}… distance "
                    f"{found['distance']} {_who(found)}"
                )
            context.emit({**head, **found}, text)
        for found in result.get("frame_matches", ()):
            any_match = True
            where = f"frame at {_ms(found['query_ms'])}" if "query_ms" in found else ""
            if "shared_ms" in found:
                where = f"video frame at {_ms(found['shared_ms'])} of"
            context.emit(
                {**head, "frame_match": True, **found},
                f"{label} {where} matches {found['signal']['type']} "
                f"{found['signal']['value'][:16]}… distance {found['distance']} {_who(found)}",
            )
    if not any_match:
        context.emit({"matches": 0}, "no match")


def _match_of(distance: int, document: dict) -> dict:
    return {**entry_fields(document), "distance": distance}


# --- live streams -----------------------------------------------------------------------------


@cli.command()
@click.argument("source")
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Frames sampled (and sent) per second of stream.")  # fmt: skip
@click.option(
    "--as-fast-as-possible", "fast", is_flag=True,
    help="Read a file as fast as it decodes instead of at its own pace.",
)  # fmt: skip
@click.option("--batch", default=None, type=click.IntRange(1, 60),
              help="Frames per call (default 1 in real time, 10 as fast as possible).")  # fmt: skip
@click.option("--stop-on-alert", is_flag=True, help="Stop at the first alert.")
@click.option(
    "--threshold", default=None, type=click.IntRange(0, 63), help="Default: the hub's (31)."
)
@click.option("--frame-quality-min", default=None, type=click.IntRange(0, 100), help="Default: 50.")
@click.option("--min-frames", default=None, type=click.IntRange(1, 600), help="Default: 5.")
@click.option("--coverage", default=None, type=click.IntRange(0, 100), help="Default: 50 (%).")
@click.option("--ffmpeg", default="ffmpeg", show_default=True, help="The FFmpeg program.")
@pass_context
def live(context: Context, source: str, fps, fast, batch, stop_on_alert, threshold,
         frame_quality_min, min_frames, coverage, ffmpeg) -> None:  # fmt: skip
    """Watch a video file or stream (anything FFmpeg opens) as it plays: sample frames, hash
    them with PDQ, send them to a live session and print each alert the moment it comes.
    Exits 1 when something alerted; Ctrl-C closes the session (exit 130)."""
    from concordat_client.live import LiveStream

    context.need("hub", "token")
    real_time = not fast and Path(source).exists()  # a network stream comes at its own pace
    sampled = video.SampledFrames(source, fps=fps, real_time=real_time, ffmpeg=ffmpeg)

    def emit(event: str, document: dict) -> None:
        context.emit({"event": event, **document}, _live_text(event, document))
        sys.stdout.flush()

    runner = LiveStream(
        context.hub(),
        settings={"threshold": threshold, "frame_quality_min": frame_quality_min,
                  "min_frames": min_frames, "coverage": coverage},
        batch=batch or (10 if fast else 1), stop_on_alert=stop_on_alert, emit=emit,
    )  # fmt: skip
    previous = os_signal.signal(os_signal.SIGTERM, _interrupt)
    try:
        frames = iter(sampled)
        first = next(frames, None)  # no session is opened for a source FFmpeg cannot read
        if first is None:
            sampled.process.wait(timeout=30)
            raise click.ClickException(
                f"FFmpeg read no video frame from {source}: {sampled.error() or 'no video stream'}"
            )
        alerts = runner.run(itertools.chain([first], frames))
        failure = ""
        if not (stop_on_alert and alerts) and sampled.process.wait(timeout=30) != 0:
            failure = sampled.error()  # the stream broke off: what was sent was matched
    finally:
        os_signal.signal(os_signal.SIGTERM, previous)
        sampled.close()
    if failure:
        err.print(f"warning: FFmpeg stopped: {failure}")
    context.emit(
        {"event": "summary", "frames": runner.frames_sent, "calls": runner.calls,
         "alerted": list(alerts)},
        f"{runner.frames_sent} frames sent in {runner.calls} calls; "
        + (f"{len(alerts)} shared video(s) alerted" if alerts else "no alert"),
    )  # fmt: skip
    if alerts:
        sys.exit(EXIT_REFUSED)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _live_text(event: str, document: dict) -> str | None:
    if event == "opened":
        session = document["session"]
        return (
            f"live session {session['id']} open (threshold {session['threshold']}, quality "
            f"floor {session['frame_quality_min']}, min frames {session['min_frames']}, "
            f"coverage {session['coverage']}%)"
        )
    if event == "alert":
        pairs = ", ".join(
            f"{_ms(p['query_ms'])}→{_ms(p['shared_ms'])} d{p['distance']}"
            for p in document["pairs"][:5]
        )
        incident = f" [bold]incident {document['incident']}[/]" if document.get("incident") else ""
        return (
            f"[bold red]ALERT[/] at {_ms(document['stream_ms'])} of the stream: it matches video "
            f"{document['signal']['value'][:16]}… ({document['matched_frames']} frames matched, "
            f"{document['matched_shared_frames']}/{document['shared_frames']} of the shared "
            f"video) {_who(document)}{incident}\n  moments (stream→shared): {pairs}"
        )
    if event == "frame_match":
        return (
            f"frame at {_ms(document['query_ms'])} matches photo "
            f"{document['signal']['value'][:16]}… distance {document['distance']} {_who(document)}"
        )
    if event == "renewed":
        return f"session {document['session']['id']} {document['reason']}: opening a new one"
    if event == "closed":
        session = document["session"]
        return f"live session {session['id']} closed: {session['frames']} frames, {session['calls']} calls"
    return None


# --- audit, status, lookup --------------------------------------------------------------------


@cli.command("verify-log", context_settings={"ignore_unknown_options": True})
@click.option(
    "--key",
    "log_key",
    envvar="CONCORDAT_LOG_KEY",
    required=True,
    help="The hub's pinned verifier key.",
)
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
@pass_context
def verify_log(context: Context, log_key: str, extra: tuple[str, ...]) -> None:
    """Run the standalone transparency verifier against the profile's hub (needs the audit scope);
    other options (--witness, --threshold, --reconcile, --state-dir, ...) pass through."""
    from concordat_client import verifier

    context.need("hub")
    argv = ["--hub", context.profile.hub, "--key", log_key, *extra]
    if context.profile.token:
        argv += ["--token", context.profile.token]
    sys.exit(verifier.main(argv))


@cli.command()
@pass_context
def status(context: Context) -> None:
    """The hub, its health, your keys and credentials' scopes, and your sync position."""
    hub = context.hub()
    info = hub.hub_info()
    document: dict[str, Any] = {
        "profile": context.profile.name,
        "hub": context.profile.hub,
        "hub_id": info["hub_id"],
        "member": context.profile.member,
    }
    try:
        document["health"] = hub.call("GET", "/health/ready")
    except HubError as exc:
        document["health"] = {"error": exc.code, "status": exc.status}
    for name, reader in (("keys", hub.keys), ("credentials", hub.credentials)):
        try:
            rows = reader()
            document[name] = [
                {
                    k: row.get(k)
                    for k in ("key_id", "label", "name", "scopes", "revoked_at", "expires_at")
                    if k in row
                }
                for row in rows
            ]
        except HubError as exc:
            document[name] = {"error": exc.code}
    local = shared_set(context)
    document["sync"] = {
        "entries": local.count(),
        "video_frame_lists": local.video_count(),
        "cursor": bool(local.cursor()),
    }
    lines = [f"{k}: {json.dumps(v)}" for k, v in document.items()]
    context.emit(document, "\n".join(lines))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@pass_context
def lookup(context: Context, paths: tuple[Path, ...]) -> None:
    """Private lookup (RFC 9497 VOPRF, docs/private-lookup.md) of files' MD5 and SHA-256; the hub
    never sees the hashes. Exits 1 if a file matched."""
    from concordat_client import lookup as private

    context.need("hub", "token")
    try:
        results = private.lookup_files(
            private.HubClient(context.profile.hub, context.profile.token),
            hashing.files_under(paths),
        )
    except private.LookupError_ as exc:
        raise HubError(0, "lookup_failed", str(exc)) from exc
    for result in results:
        context.emit(result.__dict__, result.describe())
    if any(r.matched for r in results):
        sys.exit(EXIT_REFUSED)


if __name__ == "__main__":
    main()
