"""docs/private-lookup-vectors.json is what the code computes, and the standalone client agrees
with it (blinded elements, the batched proof, outputs and tags)."""

import json

from concordat_client import lookup as client

from tests.support.lookup_vectors_gen import PATH, vectors


def test_the_published_vectors_are_what_the_hub_computes():
    assert json.loads(PATH.read_text()) == vectors()


def test_the_client_reproduces_the_published_vectors():
    document = json.loads(PATH.read_text())
    items = document["items"]
    inputs = [client.lookup_input(i["signal_type"], i["hash"]) for i in items]
    assert [i.hex() for i in inputs] == [i["input"] for i in items]
    blinds = [bytes.fromhex(i["blind"]) for i in items]
    blinded = [client.blind(x, blind_scalar=b)[1] for x, b in zip(inputs, blinds, strict=True)]
    assert [b.hex() for b in blinded] == [i["blinded"] for i in items]
    outputs = client.finalize_batch(
        inputs,
        blinds,
        [bytes.fromhex(i["evaluated"]) for i in items],
        blinded,
        bytes.fromhex(document["pkS"]),
        bytes.fromhex(document["batch_proof"]),
    )
    assert [o.hex() for o in outputs] == [i["output"] for i in items]
    assert [o[:8].hex() for o in outputs] == [i["tag"] for i in items]
