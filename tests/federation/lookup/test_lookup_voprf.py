"""RFC 9497 appendix A.1.2: the ristretto255-SHA512 VOPRF vectors, through the hub's server half
and the standalone client's half, the batched DLEQ proof included."""

import pytest
from concordat_client import lookup as client

from federation.lookup import voprf

SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")
SK = "e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909"
PK = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
BLIND_1 = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"
BLIND_2 = "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e"
OUT_00 = (
    "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
    "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
)
OUT_5A = (
    "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
    "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"
)

VECTORS = [
    {
        "input": ["00"],
        "blind": [BLIND_1],
        "blinded": ["863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945"],
        "evaluated": ["aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e"],
        "proof": "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06"
        "6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d",
        "r": BLIND_2,
        "output": [OUT_00],
    },
    {
        "input": ["5a" * 17],
        "blind": [BLIND_1],
        "blinded": ["cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c"],
        "evaluated": ["60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468"],
        "proof": "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a"
        "67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02",
        "r": BLIND_2,
        "output": [OUT_5A],
    },
    {
        "input": ["00", "5a" * 17],
        "blind": [BLIND_1, BLIND_2],
        "blinded": [
            "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
            "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654",
        ],
        "evaluated": [
            "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
            "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a",
        ],
        "proof": "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a"
        "5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08",
        "r": "419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c",
        "output": [OUT_00, OUT_5A],
    },
]


def _hex(values):
    return [bytes.fromhex(v) for v in values]


def test_derive_key_pair_gives_the_rfc_keys():
    sk, pk = voprf.derive_key_pair(SEED, KEY_INFO)
    assert (sk.hex(), pk.hex()) == (SK, PK)


@pytest.mark.parametrize("vector", VECTORS, ids=["vector-1", "vector-2", "vector-3-batch-2"])
def test_server_half_reproduces_the_rfc_vectors(vector):
    inputs = _hex(vector["input"])
    blinded = [
        voprf.blind(i, blind_scalar=b)[1]
        for i, b in zip(inputs, _hex(vector["blind"]), strict=True)
    ]
    assert [b.hex() for b in blinded] == vector["blinded"]
    evaluated, proof = voprf.blind_evaluate_batch(
        bytes.fromhex(SK), bytes.fromhex(PK), blinded, r=bytes.fromhex(vector["r"])
    )
    assert [e.hex() for e in evaluated] == vector["evaluated"]
    assert proof.hex() == vector["proof"]
    outputs = voprf.finalize_batch(
        inputs, _hex(vector["blind"]), evaluated, blinded, bytes.fromhex(PK), proof
    )
    assert [o.hex() for o in outputs] == vector["output"]
    assert [voprf.evaluate(bytes.fromhex(SK), i).hex() for i in inputs] == vector["output"]


@pytest.mark.parametrize("vector", VECTORS, ids=["vector-1", "vector-2", "vector-3-batch-2"])
def test_client_half_reproduces_the_rfc_vectors(vector):
    inputs = _hex(vector["input"])
    blinds = _hex(vector["blind"])
    blinded = [client.blind(i, blind_scalar=b)[1] for i, b in zip(inputs, blinds, strict=True)]
    assert [b.hex() for b in blinded] == vector["blinded"]
    outputs = client.finalize_batch(
        inputs,
        blinds,
        _hex(vector["evaluated"]),
        blinded,
        bytes.fromhex(PK),
        bytes.fromhex(vector["proof"]),
    )
    assert [o.hex() for o in outputs] == vector["output"]


def test_a_proof_under_another_key_is_refused_by_the_client():
    other_sk, other_pk = voprf.generate_key_pair()
    inputs = [b"a", b"b", b"c"]
    pairs = [client.blind(i) for i in inputs]
    blinded = [p[1] for p in pairs]
    evaluated, proof = voprf.blind_evaluate_batch(other_sk, other_pk, blinded)
    with pytest.raises(client.LookupError_):
        client.finalize_batch(
            inputs, [p[0] for p in pairs], evaluated, blinded, bytes.fromhex(PK), proof
        )
    # The same answer checks out against the key that made it.
    client.finalize_batch(inputs, [p[0] for p in pairs], evaluated, blinded, other_pk, proof)


def test_one_altered_evaluation_fails_the_batched_proof():
    sk, pk = bytes.fromhex(SK), bytes.fromhex(PK)
    pairs = [voprf.blind(bytes([i])) for i in range(5)]
    blinded = [p[1] for p in pairs]
    evaluated, proof = voprf.blind_evaluate_batch(sk, pk, blinded)
    evaluated[3] = voprf.scalar_mult(voprf.random_scalar(), blinded[3])
    assert not voprf.verify_proof(pk, blinded, evaluated, proof)


@pytest.mark.parametrize(
    "encoding",
    [bytes(32), b"\xff" * 32, bytes(31), bytes.fromhex("01" + "00" * 31)],
    ids=["identity", "non-canonical", "short", "not-on-curve"],
)
def test_bad_elements_are_refused(encoding):
    with pytest.raises(voprf.VoprfError):
        voprf.deserialize_element(encoding)
