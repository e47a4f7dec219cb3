"""The hub's OPRF key: a ristretto255 scalar in a JSON file at ``LOOKUP_KEY_PATH`` (mode 0600),
kept like the hub key (federation/hubkey.py): outside the database, made and rotated by
``manage.py lookup_key``. Its public half is a ``LookupKey`` row and a ``lookup.key_created``
event. A process serves lookups only with the key the database names as current: after a
rotation, every process re-reads the file once it sees the new key id."""

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from federation.errors import Unavailable
from federation.lookup import voprf
from federation.lookup.models import LookupKey


@dataclass(frozen=True)
class OprfKey:
    key_id: str
    secret: bytes
    public_key: bytes


def lookup_key_id(public_key: bytes) -> str:
    """Hex of the first 16 bytes of SHA-256 over the 32-byte public key (as signing key ids)."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def oprf_key(secret: bytes) -> OprfKey:
    public_key = voprf.scalar_mult_base(secret)
    return OprfKey(key_id=lookup_key_id(public_key), secret=secret, public_key=public_key)


def write_key_file(path: Path, key: OprfKey) -> None:
    """Write ``key`` to ``path`` atomically, readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"suite": voprf.SUITE, "key_id": key.key_id, "secret": key.secret.hex()}, handle)
    os.replace(temporary, path)


def read_key_file(path: Path) -> OprfKey | None:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    key = oprf_key(bytes.fromhex(document["secret"]))
    if document.get("suite") != voprf.SUITE or not voprf.scalar_is_canonical(key.secret):
        raise Unavailable(f"The lookup key file {path} is not a {voprf.SUITE} key.")
    return key


_cached: OprfKey | None = None
_lock = threading.Lock()


def current_key() -> OprfKey:
    """The key the database names as current, from the key file; 503 ``lookup_unavailable`` if
    there is none or the file holds another key."""
    global _cached
    key_id = LookupKey.objects.filter(retired_at__isnull=True).values_list("key_id", flat=True)
    key_id = key_id.first()
    if key_id is None:
        raise Unavailable(
            "This hub has no lookup key yet (manage.py lookup_key create).",
            code="lookup_unavailable",
        )
    with _lock:
        if _cached is None or _cached.key_id != key_id:
            _cached = read_key_file(Path(settings.LOOKUP_KEY_PATH))
        key = _cached
    if key is None or key.key_id != key_id:
        raise Unavailable(
            "The lookup key file does not hold the published lookup key.",
            code="lookup_unavailable",
        )
    return key
