"""``concordat verify-log``, ``status`` and ``lookup``: the transparency verifier run against the
profile's hub, what the profile sees of the hub and of its local copy, and the private lookup of
files' digests."""

import json
import sys
from pathlib import Path
from typing import Any

import click

from concordat_client import hashing
from concordat_client.cli_context import EXIT_REFUSED, Context, pass_context, shared_set
from concordat_client.hub import HubError


@click.command("verify-log", context_settings={"ignore_unknown_options": True})
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


@click.command()
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


@click.command()
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
