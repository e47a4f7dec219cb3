"""Private lookup against a Concordat hub (docs/private-lookup.md), standalone.

This module imports nothing of the hub: the standard library and ``rbcl`` (libsodium's
ristretto255; PyNaCl has none) only, so that the partner client can wrap it. It does, per file:
hash (MD5 and SHA-256) -> blind -> evaluate (``POST /api/v1/lookup/evaluate``, batches of up to
1,000) -> verify the batched DLEQ proof against the hub's published OPRF key -> unblind ->
truncate to the table's tag length -> look the tag up in the lookup table
(``GET /api/v1/lookup/table``). The VOPRF is RFC 9497 mode 0x01, ristretto255-SHA512.
"""

import base64
import bisect
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rbcl

CONTEXT = b"OPRFV1-\x01-ristretto255-SHA512"
IDENTITY = bytes(32)
ORDER = 2**252 + 27742317777372353535851937790883648493
BATCH = 1000
INPUT_PREFIX = b"concordat-lookup-v1:"


class LookupError_(Exception):  # the trailing underscore: LookupError is a builtin
    """The lookup could not be completed: a refused proof, a changed key, an HTTP error."""


# --- RFC 9497, client half --------------------------------------------------------------------


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    ell = -(-length // 64)
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = hashlib.sha512(bytes(128) + msg + _i2osp(length, 2) + b"\x00" + dst_prime).digest()
    b = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    blocks = [b]
    for i in range(2, ell + 1):
        b = hashlib.sha512(
            bytes(x ^ y for x, y in zip(b0, b, strict=True)) + _i2osp(i, 1) + dst_prime
        ).digest()
        blocks.append(b)
    return b"".join(blocks)[:length]


def _hash_to_scalar(msg: bytes) -> bytes:
    uniform = _expand_message_xmd(msg, b"HashToScalar-" + CONTEXT, 64)
    return rbcl.crypto_core_ristretto255_scalar_reduce(uniform)


def _mul(scalar: bytes, element: bytes) -> bytes:
    return rbcl.crypto_scalarmult_ristretto255_allow_scalar_zero(scalar, element)


def _add(a: bytes, b: bytes) -> bytes:
    if a == IDENTITY:
        return b
    if b == IDENTITY:
        return a
    return rbcl.crypto_core_ristretto255_add(a, b)


def _framed(*parts: bytes) -> bytes:
    return b"".join(_i2osp(len(part), 2) + part for part in parts)


def _valid_element(data: bytes) -> bool:
    return (
        len(data) == 32 and data != IDENTITY and rbcl.crypto_core_ristretto255_is_valid_point(data)
    )


def blind(input_: bytes, *, blind_scalar: bytes | None = None) -> tuple[bytes, bytes]:
    """``(blind, blindedElement)`` for one input."""
    uniform = _expand_message_xmd(input_, b"HashToGroup-" + CONTEXT, 64)
    element = rbcl.crypto_core_ristretto255_from_hash(uniform)
    if element == IDENTITY:
        raise LookupError_("this input maps to the identity element")
    scalar = blind_scalar
    while scalar is None or scalar == bytes(32):
        scalar = rbcl.crypto_core_ristretto255_scalar_random()
    return scalar, _mul(scalar, element)


def verify_proof(pk: bytes, c: Sequence[bytes], d: Sequence[bytes], proof: bytes) -> bool:
    """RFC 9497 VerifyProof (A = generator, B = ``pk``) over the batch."""
    if len(proof) != 64:
        return False
    challenge, s = proof[:32], proof[32:]
    if int.from_bytes(challenge, "little") >= ORDER or int.from_bytes(s, "little") >= ORDER:
        return False
    seed = hashlib.sha512(_framed(pk, b"Seed-" + CONTEXT)).digest()
    m = z = IDENTITY
    for i, (ci, di) in enumerate(zip(c, d, strict=True)):
        weight = _hash_to_scalar(_framed(seed) + _i2osp(i, 2) + _framed(ci, di) + b"Composite")
        m = _add(_mul(weight, ci), m)
        z = _add(_mul(weight, di), z)
    t2 = _add(rbcl.crypto_scalarmult_ristretto255_base_allow_scalar_zero(s), _mul(challenge, pk))
    t3 = _add(_mul(s, m), _mul(challenge, z))
    expected = _hash_to_scalar(_framed(pk, m, z, t2, t3) + b"Challenge")
    return hmac.compare_digest(expected, challenge)


def finalize_batch(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated: Sequence[bytes],
    blinded: Sequence[bytes],
    pk: bytes,
    proof: bytes,
) -> list[bytes]:
    """Verify the batch's proof against ``pk``, then unblind: the 64-byte PRF outputs."""
    if not (len(inputs) == len(blinds) == len(evaluated) == len(blinded)):
        raise LookupError_("the hub answered a different number of elements")
    if not all(_valid_element(e) for e in evaluated):
        raise LookupError_("the hub answered an invalid element")
    if not verify_proof(pk, blinded, evaluated, proof):
        raise LookupError_(
            "the hub's proof does not verify against the published lookup key: its answers are "
            "not from that key (do not trust them)"
        )
    outputs = []
    for input_, scalar, element in zip(inputs, blinds, evaluated, strict=True):
        unblinded = _mul(rbcl.crypto_core_ristretto255_scalar_invert(scalar), element)
        outputs.append(hashlib.sha512(_framed(input_, unblinded) + b"Finalize").digest())
    return outputs


# --- Concordat's use of it ----------------------------------------------------------------------


def lookup_input(signal_type: str, hex_value: str) -> bytes:
    """The OPRF input for one exact hash: ``concordat-lookup-v1:<type>:<lowercase hex>``."""
    return INPUT_PREFIX + f"{signal_type}:{hex_value.lower()}".encode("ascii")


def file_hashes(path: Path) -> dict[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


@dataclass
class LookupTable:
    """The hub's table of truncated PRF outputs, sorted, one array per state."""

    key_id: str
    public_key: bytes
    position: int
    tag_bytes: int
    tags: dict[str, list[bytes]] = field(default_factory=dict)  # state -> sorted tags

    @classmethod
    def from_document(cls, document: dict) -> "LookupTable":
        width = document["tag_bytes"]
        tags = {}
        for state, packed in document["tags"].items():
            raw = base64.b64decode(packed)
            tags[state] = [raw[i : i + width] for i in range(0, len(raw), width)]
        return cls(
            key_id=document["key_id"],
            public_key=base64.b64decode(document["public_key"]),
            position=document["position"],
            tag_bytes=width,
            tags=tags,
        )

    def apply_changes(self, document: dict) -> None:
        """Apply a page of ``GET /api/v1/lookup/table/changes``."""
        for change in document["changes"]:
            tag = bytes.fromhex(change["tag"])
            for tags in self.tags.values():
                index = bisect.bisect_left(tags, tag)
                if index < len(tags) and tags[index] == tag:
                    del tags[index]
            if change["state"] != "removed":
                bisect.insort(self.tags.setdefault(change["state"], []), tag)
        self.position = document["position"]

    def state_of(self, output: bytes) -> str | None:
        tag = output[: self.tag_bytes]
        for state, tags in self.tags.items():
            index = bisect.bisect_left(tags, tag)
            if index < len(tags) and tags[index] == tag:
                return state
        return None


@dataclass(frozen=True)
class FileResult:
    path: str
    matched: bool
    signal_type: str | None = None  # which of the file's hashes matched
    state: str | None = None  # vetted or disputed

    def describe(self) -> str:
        if not self.matched:
            return f"{self.path}: not matched"
        meaning = (
            "vetted by the consortium's members as terrorist or violent extremist content"
            if self.state == "vetted"
            else "in the shared set but under dispute by members"
        )
        return f"{self.path}: MATCHED ({self.signal_type}; {meaning})"


Transport = Callable[[str, str, dict[str, str], bytes | None], tuple[int, bytes]]


def urllib_transport(method: str, url: str, headers: dict[str, str], body: bytes | None):
    """One HTTP request with the standard library: ``(status, body)``."""
    if not url.startswith(("https://", "http://")):
        raise LookupError_("the hub's URL must be http(s)")
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class HubClient:
    """The calls a lookup makes. ``transport`` sends one request (default: urllib over HTTPS,
    or HTTP on a test hub); tests hand in their own."""

    def __init__(self, base_url: str, token: str, *, transport: Transport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.transport = transport or urllib_transport

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        status, answer = self.transport(method, self.base_url + path, headers, data)
        if status != 200:
            try:
                error = json.loads(answer)["error"]
            except Exception:
                error = {"code": str(status), "message": answer[:200].decode(errors="replace")}
            raise LookupError_(f"{status} {error['code']}: {error['message']}")
        return json.loads(answer)

    def table(self) -> LookupTable:
        return LookupTable.from_document(self._call("GET", "/api/v1/lookup/table"))

    def update(self, table: LookupTable) -> LookupTable:
        """Bring ``table`` up to date by deltas, or download it whole if the key changed or the
        hub no longer holds the deltas from its position."""
        while True:
            try:
                page = self._call(
                    "GET",
                    f"/api/v1/lookup/table/changes?key_id={table.key_id}&since={table.position}",
                )
            except LookupError_ as exc:
                if "lookup_table_stale" in str(exc):
                    return self.table()
                raise
            table.apply_changes(page)
            if not page["more"]:
                return table

    def evaluate(self, key_id: str, blinded: Sequence[bytes]) -> tuple[list[bytes], bytes]:
        answer = self._call(
            "POST",
            "/api/v1/lookup/evaluate",
            {"key_id": key_id, "blinded": [base64.b64encode(b).decode() for b in blinded]},
        )
        if answer.get("key_id") != key_id:
            raise LookupError_("the hub answered with another key")
        return [base64.b64decode(e) for e in answer["evaluated"]], base64.b64decode(answer["proof"])


def lookup_outputs(
    hub: HubClient, table: LookupTable, inputs: Sequence[bytes], *, batch: int = BATCH
) -> list[bytes]:
    """The verified PRF outputs of ``inputs``, evaluated blindly in batches."""
    outputs: list[bytes] = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        pairs = [blind(i) for i in chunk]
        blinded = [p[1] for p in pairs]
        evaluated, proof = hub.evaluate(table.key_id, blinded)
        outputs += finalize_batch(
            chunk, [p[0] for p in pairs], evaluated, blinded, table.public_key, proof
        )
    return outputs


def lookup_files(
    hub: HubClient, paths: Iterable[Path | str], *, table: LookupTable | None = None
) -> list[FileResult]:
    """Look up each file's MD5 and SHA-256 privately; one result per file."""
    table = table or hub.table()
    paths = [Path(p) for p in paths]
    inputs, owners = [], []
    for index, path in enumerate(paths):
        for signal_type, value in file_hashes(path).items():
            inputs.append(lookup_input(signal_type, value))
            owners.append((index, signal_type))
    results = [FileResult(path=str(p), matched=False) for p in paths]
    for (index, signal_type), output in zip(
        owners, lookup_outputs(hub, table, inputs), strict=True
    ):
        state = table.state_of(output)
        if state is not None and not results[index].matched:
            results[index] = FileResult(str(paths[index]), True, signal_type, state)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python lookup.py --hub URL FILE...`` (token in ``CONCORDAT_TOKEN``):
    one line per file, matched or not, and what a match means. Exit status 1 if any matched."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(description="Private lookup of files against a Concordat hub.")
    parser.add_argument("--hub", required=True, help="The hub's base URL, e.g. https://hub.example")
    parser.add_argument("files", nargs="+", type=Path)
    options = parser.parse_args(argv)
    token = os.environ.get("CONCORDAT_TOKEN", "")
    if not token:
        parser.error("set CONCORDAT_TOKEN to a lookup-only (or read) token")
    try:
        results = lookup_files(HubClient(options.hub, token), options.files)
    except (LookupError_, OSError) as exc:
        print(f"lookup failed: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(result.describe())
    return 1 if any(r.matched for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
