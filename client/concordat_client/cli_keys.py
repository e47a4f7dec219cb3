"""``concordat keygen`` and ``concordat register-key``: the member's Ed25519 signing key, made
locally and registered on the hub with its proof of possession."""

import base64
from pathlib import Path

import click

from concordat_client import signing
from concordat_client.cli_context import Context, pass_context


@click.command()
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


@click.command("register-key")
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
