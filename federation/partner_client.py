"""A minimal client for the Concordat API, as a partner would write one: the standard library for
HTTP and `cryptography` for signing. The demo uses it; docs/signing.md is the specification.
"""

import hashlib
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.signing import (
    format_timestamp,
    key_registration_document,
    sign_contribution,
    sign_key_registration,
)
from federation.video.frames import FrameList


class ConcordatClient:
    """Talks JSON to one hub with one API token."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 120) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("the hub URL must be http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        # The scheme is checked in __init__: only http(s) URLs reach urlopen.
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, _decode(
                    response.read(), response.headers.get_content_type()
                )
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read(), error.headers.get_content_type())

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", path, body if body is not None else {})


def _decode(body: bytes, content_type: str) -> Any:
    if content_type == "application/json" and body:
        return json.loads(body)
    return body.decode("utf-8", "replace")


@dataclass
class ContributionSigner:
    """Builds and signs contribution objects, and the key's registration, for one member key."""

    private_key: Ed25519PrivateKey
    hub_id: str
    member: str
    key_id: str = ""  # derived from the key when not given

    def __post_init__(self) -> None:
        # key_id: hex of the first 16 bytes of SHA-256 over the raw public key (docs/signing.md).
        raw = self.private_key.public_key().public_bytes_raw()
        derived = hashlib.sha256(raw).hexdigest()[:32]
        if self.key_id and self.key_id != derived:
            raise ValueError(f"key_id {self.key_id} is not this key's ({derived})")
        self.key_id = derived

    def key_registration(self, *, created_at: datetime | None = None) -> dict[str, Any]:
        """The signed registration of this key for ``member`` on ``hub_id`` (proof of
        possession): the body for ``POST /api/v1/keys/`` (add ``label``/``not_before`` freely),
        or the file for ``create_member --key-registration``."""
        document = key_registration_document(
            hub=self.hub_id,
            member=self.member,
            public_key=self.private_key.public_key().public_bytes_raw(),
            created_at=created_at or datetime.now(UTC).replace(microsecond=0),
        )
        return {
            "registration": document,
            "signature": sign_key_registration(self.private_key, document),
        }

    def add(
        self,
        signal_type: str,
        value: str,
        labels: list[str],
        *,
        scope: str = "federation",
        incident: str | None = None,
        quality: int | None = None,
    ) -> dict[str, Any]:
        signal: dict[str, Any] = {"type": signal_type, "value": value}
        if quality is not None:
            signal["quality"] = quality
        return self._sign("add", signal, labels, scope, incident)

    def add_video(
        self,
        frames: FrameList,
        labels: list[str],
        *,
        scope: str = "federation",
        incident: str | None = None,
    ) -> dict[str, Any]:
        """A signed vpdq add of a canonical frame list (``federation.video.frames``: e.g.
        ``from_vpdq_features(vpdq.computeHash(path))``); its value is the list's digest."""
        signal = {"type": "vpdq", "value": frames.digest, "frames": frames.to_document()}
        return self._sign("add", signal, labels, scope, incident)

    def retract(self, signal_type: str, value: str, *, scope: str = "federation") -> dict[str, Any]:
        return self._sign("retract", {"type": signal_type, "value": value}, [], scope, None)

    def _sign(self, action, signal, labels, scope, incident) -> dict[str, Any]:
        document: dict[str, Any] = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": self.hub_id,
            "member": self.member,
            "key_id": self.key_id,
            "uuid": str(uuid.uuid4()),
            "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
            "action": action,
            "signal": signal,
            "labels": labels,
            "scope": scope,
        }
        if incident is not None:
            document["incident"] = incident
        return {
            "contribution": document,
            "signature": sign_contribution(self.private_key, document),
        }
