"""The hub's own Ed25519 keys: the hub key signs log checkpoints (and, later, federation
attestations); the witness key cosigns other hubs' checkpoints (docs/transparency.md,
"Witnesses"). Two keys, because C2SP signed-note asks that one key serve one signature type."""

import base64
import functools
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def generate_key_file(path: Path) -> Ed25519PrivateKey:
    """Write a new PEM (PKCS#8) private key readable only by its owner."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    return key


def _load_key(path: Path, what: str, variable: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ImproperlyConfigured(
            f"No {what} at {path}. Create one with `manage.py hub_keygen` or set {variable}."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"The {what} at {path} is not an Ed25519 key.")
    return key


@functools.cache
def hub_private_key() -> Ed25519PrivateKey:
    return _load_key(Path(settings.HUB_KEY_PATH), "hub key", "CONCORDAT_HUB_KEY_PATH")


@functools.cache
def witness_private_key() -> Ed25519PrivateKey:
    return _load_key(Path(settings.WITNESS_KEY_PATH), "witness key", "CONCORDAT_WITNESS_KEY_PATH")


def witness_public_key_bytes() -> bytes:
    return witness_private_key().public_key().public_bytes_raw()


def hub_public_key() -> Ed25519PublicKey:
    return hub_private_key().public_key()


def hub_public_key_bytes() -> bytes:
    return hub_public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def hub_public_key_b64() -> str:
    return base64.b64encode(hub_public_key_bytes()).decode()
