"""The ``concordat`` command (docs/client.md). Exit status: 0 done; 1 something was refused, a
discrepancy found, or (``lookup``) a file matched; 2 bad usage or configuration; 3 the hub could
not be reached or answered an error; 130 interrupted."""

import base64
import csv
import hashlib
import io
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress

from concordat_client import hashing, signing
from concordat_client.config import Profile, load_profile
from concordat_client.hub import Hub, HubError
from concordat_client.local import Journal, SharedSet

EXIT_REFUSED, EXIT_USAGE, EXIT_HUB, EXIT_INTERRUPTED = 1, 2, 3, 130
SIGNAL = re.compile(r"(pdq|md5|sha256):([0-9a-fA-F]+)")
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
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), default=None, help="Default: stdout."
)
@pass_context
def hash_command(
    context: Context,
    paths: tuple[Path, ...],
    dihedral: bool,
    output_format: str,
    output: Path | None,
) -> None:
    """Hash files and directories (recursively): MD5 and SHA-256 of every file, PDQ with quality of
    images. Writes JSONL or CSV that submit and match read."""
    files = hashing.files_under(paths)
    stream = output.open("w", newline="") if output else sys.stdout
    writer = None
    if output_format == "csv":
        writer = csv.DictWriter(
            stream, fieldnames=["file", "type", "value", "quality", "transform"]
        )
        writer.writeheader()
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("hashing", total=len(files))
        for path in files:
            for record in hashing.hash_file(path, dihedral=dihedral):
                if writer:
                    writer.writerow(record)
                else:
                    stream.write(json.dumps(record) + "\n")
            progress.advance(task)
    if output:
        stream.close()
        err.print(f"{len(files)} files hashed into {output}")


def read_records(paths: tuple[Path, ...]) -> Iterator[dict]:
    """Records from JSONL or CSV files (by suffix), or hashed from media files."""
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            for line in path.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)
        elif suffix == ".csv":
            for row in csv.DictReader(io.StringIO(path.read_text())):
                yield {k: v for k, v in row.items() if v not in ("", None)}
        else:
            for file in hashing.files_under([path]):
                yield from hashing.hash_file(file)


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
    type=click.Choice(["pdq", "md5", "sha256"]),
    help="Only these signal types (default all).",
)
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Resume file (default: derived from the inputs).",
)
@click.option("--batch", default=1000, show_default=True, help="Items per bulk request.")
@pass_context
def submit(context: Context, inputs, labels, incident, scope, types, journal, batch) -> None:
    """Sign and bulk-submit hashes (JSONL/CSV from `hash`, or media files). Resumable: a rerun
    sends only what has no answer yet. Exits 1 when the hub refused an item."""
    context.need("hub", "token", "member", "key")
    records = [
        {k: r[k] for k in ("type", "value", "quality", "file") if k in r}
        for r in read_records(inputs)
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
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            items = []
            for _, item_uuid, created_at, record in chunk:
                signal = {"type": record["type"], "value": record["value"]}
                if record.get("quality") not in (None, ""):
                    signal["quality"] = int(record["quality"])
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
        raise click.UsageError(f"{text!r} is not TYPE:HEX (pdq:…, md5:…, sha256:…) nor a file")
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
                    "seconds": round(time.monotonic() - started, 3),
                },
                f"{applied} changes applied; {local.count()} entries held",
            )
            if not follow:
                return
            time.sleep(interval)


def match_queries(args: tuple[str, ...], rotations: bool) -> list[dict]:
    """One query per signal: ``{"source", "signal", "transform"}``."""
    queries = []
    for text in args:
        path = Path(text)
        if path.exists() and path.suffix.lower() in (".jsonl", ".ndjson", ".csv"):
            for record in read_records((path,)):
                queries.append(
                    {
                        "source": record.get("file", text),
                        "signal": {"type": record["type"], "value": record["value"]},
                        "transform": record.get("transform"),
                    }
                )
        elif path.exists():
            for file in hashing.files_under([path]):
                for record in hashing.hash_file(file, dihedral=rotations):
                    queries.append(
                        {
                            "source": str(file),
                            "signal": {"type": record["type"], "value": record["value"]},
                            "transform": record.get("transform"),
                        }
                    )
        else:
            queries.append({"source": text, "signal": _signal(text), "transform": None})
    return queries


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--offline", is_flag=True, help="Against the local synced copy, not the hub.")
@click.option("--rotations", is_flag=True, help="Also query the 8 rotations and mirrors of images.")
@click.option("--threshold", default=31, show_default=True, type=click.IntRange(0, 63))
@pass_context
def match(
    context: Context, targets: tuple[str, ...], offline: bool, rotations: bool, threshold: int
) -> None:
    """Match files, hash files (JSONL/CSV) or TYPE:HEX signals against the shared set."""
    queries = match_queries(targets, rotations)
    if offline:
        local = shared_set(context)
        index = local.pdq_index()
        results = []
        for query in queries:
            signal = query["signal"]
            if signal["type"] == "pdq":
                found = index.search(signal["value"], threshold)
            else:
                document = local.lookup(signal["type"], signal["value"])
                found = [(0, document)] if document else []
            results.append([_match_of(distance, doc) for distance, doc in found])
    else:
        context.need("hub", "token")
        hub = context.hub()
        results = []
        for start in range(0, len(queries), 1000):
            chunk = [q["signal"] for q in queries[start : start + 1000]]
            results += [r["matches"] for r in hub.match(chunk, threshold=threshold)]
    any_match = False
    for query, matches in zip(queries, results, strict=True):
        for found in matches:
            any_match = True
            transform = query["transform"]
            context.emit(
                {
                    "source": query["source"],
                    "query": query["signal"],
                    "transform": transform,
                    **found,
                },
                f"[bold]{query['source']}[/] {query['signal']['type']}"
                + (f" ({transform})" if transform else "")
                + f" matches {found['signal']['value'][:16]}… distance {found['distance']} "
                f"state {found['state']} labels {','.join(found['labels'])} contributors "
                + ",".join(f"{c['member']}@{c['hub']}" for c in found["contributors"]),
            )
    if not any_match:
        context.emit({"matches": 0}, "no match")


def _match_of(distance: int, document: dict) -> dict:
    return {
        "signal": document["signal"], "distance": distance, "state": document["state"],
        "labels": document["labels"], "contributors": document["contributors"], "quality": document.get("quality"),
    }  # fmt: skip


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
    document["sync"] = {"entries": local.count(), "cursor": bool(local.cursor())}
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
