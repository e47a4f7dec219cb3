"""RFC 9497 VOPRF (mode 0x01) with the ristretto255-SHA512 suite, on libsodium's ristretto255.

libsodium's group and scalar operations come through ``rbcl`` (a wheel bundling libsodium and
wrapping its ``crypto_core_ristretto255_*`` functions; PyNaCl exposes no ristretto255). Everything
above the group is written here from RFC 9497 and RFC 9380 (``expand_message_xmd``): hash to group
and to scalar, the batched DLEQ proof (sections 2.2.1 and 2.2.2), ``BlindEvaluate``, ``Blind``,
``Finalize`` and ``Evaluate``. ``tests/federation/lookup/test_lookup_voprf.py`` runs the RFC's VOPRF
vectors (appendix A.1.2) through both halves, the batched proof included.

Scalars and elements are their 32-byte encodings throughout. The hub uses the server half
(``blind_evaluate_batch``, ``evaluate``); ``client/concordat_client/lookup.py`` carries its own copy of
the client half, so that it imports nothing of the hub.
"""

import hashlib
import hmac
from collections.abc import Sequence

import rbcl

SUITE = "ristretto255-SHA512"
MODE_VOPRF = 0x01
CONTEXT = b"OPRFV1-" + bytes([MODE_VOPRF]) + b"-" + SUITE.encode()
ELEMENT_BYTES = 32
SCALAR_BYTES = 32
OUTPUT_BYTES = 64
IDENTITY = bytes(32)
# ristretto255's canonical generator (the encoding of the Ed25519 base point).
GENERATOR = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
ORDER = 2**252 + 27742317777372353535851937790883648493


class VoprfError(ValueError):
    """An input that RFC 9497 says to refuse (a DeserializeError, InvalidInputError or
    VerifyError there)."""


def i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    if len(dst) > 255:
        raise VoprfError("DST longer than 255 bytes")
    ell = -(-length // 64)
    if ell > 255 or length > 65535:
        raise VoprfError("expand_message_xmd length too large")
    dst_prime = dst + i2osp(len(dst), 1)
    b0 = hashlib.sha512(bytes(128) + msg + i2osp(length, 2) + b"\x00" + dst_prime).digest()
    b = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [b]
    for i in range(2, ell + 1):
        b = hashlib.sha512(
            bytes(x ^ y for x, y in zip(b0, b, strict=True)) + i2osp(i, 1) + dst_prime
        ).digest()
        out.append(b)
    return b"".join(out)[:length]


def hash_to_group(msg: bytes, *, context: bytes = CONTEXT) -> bytes:
    """hash_to_ristretto255: 64 uniform bytes, then ristretto255's one-way map (libsodium's
    ``crypto_core_ristretto255_from_hash`` is exactly that map)."""
    uniform = expand_message_xmd(msg, b"HashToGroup-" + context, 64)
    return rbcl.crypto_core_ristretto255_from_hash(uniform)


def hash_to_scalar(msg: bytes, *, dst: bytes | None = None, context: bytes = CONTEXT) -> bytes:
    """64 uniform bytes read as a little-endian integer, reduced modulo the group order."""
    uniform = expand_message_xmd(msg, dst if dst is not None else b"HashToScalar-" + context, 64)
    return rbcl.crypto_core_ristretto255_scalar_reduce(uniform)


def _scalar_int(scalar: bytes) -> int:
    return int.from_bytes(scalar, "little")


def scalar_is_canonical(scalar: bytes) -> bool:
    return len(scalar) == SCALAR_BYTES and _scalar_int(scalar) < ORDER


def deserialize_element(data: bytes) -> bytes:
    """The element encoded by ``data``, refusing non-canonical encodings and the identity."""
    if len(data) != ELEMENT_BYTES or data == IDENTITY:
        raise VoprfError("not a valid non-identity ristretto255 element")
    if not rbcl.crypto_core_ristretto255_is_valid_point(data):
        raise VoprfError("not a valid non-identity ristretto255 element")
    return data


def scalar_mult(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element``; a zero scalar or an identity result gives the identity encoding."""
    return rbcl.crypto_scalarmult_ristretto255_allow_scalar_zero(scalar, element)


def scalar_mult_base(scalar: bytes) -> bytes:
    return rbcl.crypto_scalarmult_ristretto255_base_allow_scalar_zero(scalar)


def add(a: bytes, b: bytes) -> bytes:
    if a == IDENTITY:
        return b
    if b == IDENTITY:
        return a
    return rbcl.crypto_core_ristretto255_add(a, b)


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar (libsodium's rejection sampling)."""
    while True:
        scalar = rbcl.crypto_core_ristretto255_scalar_random()
        if scalar != bytes(32):
            return scalar


def derive_key_pair(seed: bytes, info: bytes, *, context: bytes = CONTEXT) -> tuple[bytes, bytes]:
    """RFC 9497 section 3.2.1 DeriveKeyPair: ``(skS, pkS)``."""
    derive_input = seed + i2osp(len(info), 2) + info
    for counter in range(256):
        sk = hash_to_scalar(derive_input + i2osp(counter, 1), dst=b"DeriveKeyPair" + context)
        if sk != bytes(32):
            return sk, scalar_mult_base(sk)
    raise VoprfError("DeriveKeyPairError")


def generate_key_pair() -> tuple[bytes, bytes]:
    sk = random_scalar()
    return sk, scalar_mult_base(sk)


def _framed(*parts: bytes) -> bytes:
    return b"".join(i2osp(len(part), 2) + part for part in parts)


def _composite_weights(pk: bytes, c: Sequence[bytes], d: Sequence[bytes]) -> list[bytes]:
    seed = hashlib.sha512(_framed(pk, b"Seed-" + CONTEXT)).digest()
    prefix = i2osp(len(seed), 2) + seed
    return [
        hash_to_scalar(prefix + i2osp(i, 2) + _framed(ci, di) + b"Composite")
        for i, (ci, di) in enumerate(zip(c, d, strict=True))
    ]


def _challenge(pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    return hash_to_scalar(_framed(pk, m, z, t2, t3) + b"Challenge")


def generate_proof(
    sk: bytes, pk: bytes, c: Sequence[bytes], d: Sequence[bytes], *, r: bytes | None = None
) -> bytes:
    """The batched DLEQ proof that ``pk = sk*G`` and ``d[i] = sk*c[i]`` (GenerateProof with
    ComputeCompositesFast); ``r`` is fixed only by the RFC's vectors. Returns ``c || s``."""
    m = IDENTITY
    for weight, ci in zip(_composite_weights(pk, c, d), c, strict=True):
        m = add(scalar_mult(weight, ci), m)
    z = scalar_mult(sk, m)
    r = r if r is not None else random_scalar()
    challenge = _challenge(pk, m, z, scalar_mult_base(r), scalar_mult(r, m))
    s = rbcl.crypto_core_ristretto255_scalar_sub(
        r, rbcl.crypto_core_ristretto255_scalar_mul(challenge, sk)
    )
    return challenge + s


def verify_proof(pk: bytes, c: Sequence[bytes], d: Sequence[bytes], proof: bytes) -> bool:
    """VerifyProof with A = the generator, B = ``pk`` (ComputeComposites)."""
    if len(proof) != 2 * SCALAR_BYTES:
        return False
    challenge, s = proof[:32], proof[32:]
    if not (scalar_is_canonical(challenge) and scalar_is_canonical(s)):
        return False
    m = z = IDENTITY
    for weight, ci, di in zip(_composite_weights(pk, c, d), c, d, strict=True):
        m = add(scalar_mult(weight, ci), m)
        z = add(scalar_mult(weight, di), z)
    t2 = add(scalar_mult_base(s), scalar_mult(challenge, pk))
    t3 = add(scalar_mult(s, m), scalar_mult(challenge, z))
    return hmac.compare_digest(_challenge(pk, m, z, t2, t3), challenge)


def blind_evaluate_batch(
    sk: bytes, pk: bytes, blinded: Sequence[bytes], *, r: bytes | None = None
) -> tuple[list[bytes], bytes]:
    """BlindEvaluate over a batch: each element times ``sk`` and one DLEQ proof for all of them.
    The elements must already be deserialized (``deserialize_element``)."""
    evaluated = [scalar_mult(sk, element) for element in blinded]
    return evaluated, generate_proof(sk, pk, blinded, evaluated, r=r)


def blind(input_: bytes, *, blind_scalar: bytes | None = None) -> tuple[bytes, bytes]:
    """Blind: ``(blind, blindedElement)``."""
    element = hash_to_group(input_)
    if element == IDENTITY:
        raise VoprfError("InvalidInputError")
    scalar = blind_scalar if blind_scalar is not None else random_scalar()
    return scalar, scalar_mult(scalar, element)


def _finalize_hash(input_: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(_framed(input_, unblinded) + b"Finalize").digest()


def finalize_batch(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated: Sequence[bytes],
    blinded: Sequence[bytes],
    pk: bytes,
    proof: bytes,
) -> list[bytes]:
    """Finalize for a batch: verify the one proof, then unblind and hash each output."""
    if not (len(inputs) == len(blinds) == len(evaluated) == len(blinded)):
        raise VoprfError("batch lengths differ")
    if not verify_proof(pk, blinded, evaluated, proof):
        raise VoprfError("VerifyError")
    outputs = []
    for input_, scalar, element in zip(inputs, blinds, evaluated, strict=True):
        inverse = rbcl.crypto_core_ristretto255_scalar_invert(scalar)
        outputs.append(_finalize_hash(input_, scalar_mult(inverse, element)))
    return outputs


def evaluate(sk: bytes, input_: bytes) -> bytes:
    """Evaluate: the PRF output for a holder of the key (how the hub builds its lookup table)."""
    element = hash_to_group(input_)
    if element == IDENTITY:
        raise VoprfError("InvalidInputError")
    return _finalize_hash(input_, scalar_mult(sk, element))
