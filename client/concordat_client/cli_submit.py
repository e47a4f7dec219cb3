"""``concordat submit``, ``retract`` and ``feedback``: the member's signed contributions (bulk,
resumable through a journal) and opinions sent to the hub."""

import hashlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
from rich.progress import Progress

from concordat_client import signing
from concordat_client.cli_context import EXIT_REFUSED, Context, err, pass_context
from concordat_client.cli_hash import (
    FPS_HELP,
    parse_signal,
    read_records,
    trim_bars_option,
    video_signal,
)
from concordat_client.local import Journal


@click.command()
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
@trim_bars_option
@pass_context
def submit(
    context: Context, inputs, labels, incident, scope, types, journal, batch, fps, trim_bars
) -> None:
    """Sign and bulk-submit hashes (JSONL/CSV from `hash`, or media files). Resumable: a rerun
    sends only what has no answer yet. Exits 1 when the hub refused an item."""
    context.need("hub", "token", "member", "key")
    records = [
        _submitted(r)
        for r in read_records(inputs, fps=fps, trim_bars=trim_bars)
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


@click.command()
@click.argument("signals", nargs=-1, required=True)
@click.option("--scope", default="federation", type=click.Choice(["federation", "local"]))
@pass_context
def retract(context: Context, signals: tuple[str, ...], scope: str) -> None:
    """Retract your organisation's adds of TYPE:VALUE signals."""
    context.need("hub", "token", "member", "key")
    parsed = [parse_signal(text) for text in signals]
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


@click.command()
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
        signal = parse_signal(entry)
        entry_id = hub.entry_id(signal["type"], signal["value"])
    answer = hub.feedback(entry_id, opinion, reason)
    context.emit(answer, f"entry {entry_id}: {opinion} recorded")
