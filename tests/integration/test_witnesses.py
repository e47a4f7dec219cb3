"""Three live hubs witness each other's logs (each a gunicorn and a Celery worker with beat on its
own database): every change is cosigned by the two others; the verifier's witness policy passes
2-of-2, fails while a witness is down and ignores cosignatures by keys outside it; a witness that
was down cosigns again over the gap; a hub whose log is forked in its database (rows rewritten,
the tree and checkpoint re-signed with its key) gets no more cosignatures (its witnesses refuse
the proofs, which are no evidence by themselves: they keep none and stay usable), and the
verifier fails and keeps its own evidence; and two hubs' federation records are reconciled item by item.
"""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from concordat_client import verifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb

from federation.canonical import canonical_json_bytes
from federation.transparency import merkle
from federation.transparency.audit import row_document
from federation.transparency.checkpoints import checkpoint_body, sign_note
from federation.transparency.sequencer import SEQUENCER_LOCK_KEY
from tests.support.cosignatures import independent_cosignature_check
from tests.support.harness import ROOT, running_hub, submit, wait_for, witness_each_other

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

VERIFIER = ROOT / "client" / "concordat_client" / "verifier.py"
CROSSCHECK = VERIFIER.with_name("crosscheck.py")
CROSSCHECK_TOOLS = ("compare", "evidence", "reconcile-hubs")
WITNESS_ENV = {
    "CONCORDAT_WITNESS_INTERVAL_SECONDS": "2",
    "CONCORDAT_WITNESS_RETRY_SECONDS": "1",
    "CONCORDAT_WITNESS_MAX_RETRIES": "2",
    "CONCORDAT_WITNESS_TIMEOUT_SECONDS": "5",
}


def run_verifier(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CROSSCHECK if args[0] in CROSSCHECK_TOOLS else VERIFIER), *args],
        cwd=cwd, capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip


def changes_through(hub) -> int | None:
    """One past the last sequenced leaf that is not a cosigning record, once nothing else waits."""
    pending = hub.sql(
        "SELECT count(*) FROM federation_auditevent WHERE leaf_index IS NULL "
        "AND action <> 'checkpoint.cosigned'"
    )[0][0]
    if pending:
        return None
    return hub.sql(
        "SELECT coalesce(max(leaf_index) + 1, 0) FROM federation_auditevent "
        "WHERE action <> 'checkpoint.cosigned'"
    )[0][0]


def cosigned(hub, token: str) -> tuple[str, int, dict[str, str]]:
    """The hub's newest cosigned checkpoint: its note, size and the cosignature line by name."""
    status, note = hub.request("GET", "/api/v1/log/checkpoint/cosigned", token=token)
    assert status == 200, note
    text, block = note[: note.index("\n\n") + 1], note[note.index("\n\n") + 2 :]
    lines = {line.split(" ")[1]: line + "\n" for line in block[:-1].split("\n")}
    lines.pop(hub.hub_id)
    return text, int(text.split("\n")[1]), lines


def witnessed_by(hub, token: str, witnesses: list) -> int | bool:
    """The size of the newest cosigned checkpoint once it covers every change and carries a
    cosignature by each of ``witnesses``; False before."""
    through = changes_through(hub)
    _, size, lines = cosigned(hub, token)
    names = {witness.witness_vkey.split("+", 1)[0] for witness in witnesses}
    return through is not None and size >= through and names <= set(lines) and size


def fork_log(hub, *, leaf_index: int) -> int:
    """What an insider with the database and the hub key can do: change one logged event,
    rebuild the stored tree from the rows, drop the checkpoints (and cosignatures) after the
    changed leaf, and sign the forked tree with the hub's key. Under the sequencer's lock, with
    the append-only triggers off. Returns the forked tree's size."""
    hub_key = serialization.load_pem_private_key(
        Path(hub.env["CONCORDAT_HUB_KEY_PATH"]).read_bytes(), password=None
    )
    with psycopg.connect(hub.database_url) as connection, connection.transaction():
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK_KEY])
        size = connection.execute("SELECT max(tree_size) FROM federation_checkpoint").fetchone()[0]
        rows = connection.execute(
            "SELECT id, occurred_at, action, actor_type, actor_id, actor_label, organisation, "
            "object_type, object_id, data FROM federation_auditevent "
            "WHERE leaf_index < %s ORDER BY leaf_index",
            [size],
        ).fetchall()
        forged = list(rows[leaf_index])
        forged[9] = {**forged[9], "forged": True}
        rows[leaf_index] = tuple(forged)
        connection.execute(
            "UPDATE federation_auditevent SET data = %s WHERE id = %s",
            [Jsonb(forged[9]), forged[0]],
        )
        hashes = [merkle.leaf_hash(canonical_json_bytes(row_document(*row))) for row in rows]
        nodes = merkle.new_nodes(old_size=0, leaf_hashes=hashes, frontier={})
        connection.execute("DELETE FROM federation_merklenode")
        with connection.cursor().copy(
            "COPY federation_merklenode (level, index, hash) FROM STDIN"
        ) as copy:
            for (level, index), digest in nodes.items():
                copy.write_row((level, index, digest))
        connection.execute(
            "DELETE FROM federation_cosignature WHERE checkpoint_id IN "
            "(SELECT id FROM federation_checkpoint WHERE tree_size > %s)",
            [leaf_index],
        )
        connection.execute("DELETE FROM federation_checkpoint WHERE tree_size > %s", [leaf_index])
        signed_at = connection.execute("SELECT date_trunc('second', now())").fetchone()[0]
        root = merkle.range_hash(0, size, nodes)
        body = checkpoint_body(
            origin=hub.hub_id, tree_size=size, root_hash=root, signed_at=signed_at
        )
        connection.execute(
            "INSERT INTO federation_checkpoint (tree_size, root_hash, note, created_at) "
            "VALUES (%s, %s, %s, %s)",
            [size, root, sign_note(body, name=hub.hub_id, private_key=hub_key), signed_at],
        )
    return size


def test_three_hubs_witness_each_other(tmp_path):
    key = Ed25519PrivateKey.generate()
    with (
        running_hub("wa", worker=True, extra_env=WITNESS_ENV) as a,
        running_hub("wb", worker=True, extra_env=WITNESS_ENV) as b,
        running_hub("wc", worker=True, extra_env=WITNESS_ENV) as c,
    ):
        member = a.create_member(org="acme", user="alice", role="submitter", signing_key=key)
        auditor = a.create_staff(user="otto", role="auditor")
        token = auditor["token"]
        witness_each_other([a, b, c])
        b_key, c_key = b.witness_vkey, c.witness_vkey
        policy = ["--witness", b_key, "--witness", c_key]
        verify = ["--hub", a.url, "--key", a.log_vkey, "--token", token]

        # Every change on a is cosigned by b and c, in the format of C2SP tlog-cosignature.
        for round_ in range(3):
            submit(a, member, key, 1)
            size = wait_for(
                lambda: witnessed_by(a, token, [b, c]), timeout=60, what=f"cosignatures {round_}"
            )
        text, size, lines = cosigned(a, token)
        for witness in (b, c):
            line = lines[witness.witness_vkey.split("+", 1)[0]]
            independent_cosignature_check(line, text, witness.witness_vkey)
        # Each witness recorded the cosigning in its own log, and holds a's checkpoint.
        for witness in (b, c):
            [(tree_size,)] = witness.sql(
                "SELECT tree_size FROM federation_witnessedlog WHERE origin = %s", (a.hub_id,)
            )
            assert tree_size >= size
            assert (
                witness.sql(
                    "SELECT count(*) FROM federation_auditevent WHERE action = 'checkpoint.cosigned' "
                    "AND object_id = %s",
                    (a.hub_id,),
                )[0][0]
                >= 3
            )

        # The verifier's 2-of-2 policy passes.
        auditor_state = tmp_path / "auditor"
        passed = run_verifier(*verify, *policy, "--state-dir", str(auditor_state), cwd=tmp_path)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert "witness policy met: 2 of the 2 trusted witnesses cosigned" in passed.stdout
        assert f"OK    witness {b_key.split('+')[0]} cosigned tree size" in passed.stdout

        # A cosignature by a key outside the policy is ignored; one that shares a trusted
        # witness's name but not its key counts for nothing.
        rogue = Ed25519PrivateKey.generate()
        rogue_vkey = verifier.witness_vkey(rogue, "rogue.test/witness")
        a.manage(
            "hub_witnesses", "add", "--name", "rogue.test/witness", "--vkey", rogue_vkey,
            "--url", "http://127.0.0.1:9/api/v1/witness", "--inactive",
        )  # fmt: skip
        wait_for(lambda: witnessed_by(a, token, [b, c]), timeout=60, what="the change cosigned")
        text, size, _ = cosigned(a, token)
        line = verifier.cosign(text, rogue, "rogue.test/witness", int(time.time()))
        a.sql(
            "INSERT INTO federation_cosignature (checkpoint_id, witness_id, line, timestamp, "
            "received_at) SELECT c.id, w.id, %s, 1, now() FROM federation_checkpoint c, "
            "federation_witness w WHERE c.tree_size = %s AND w.name = 'rogue.test/witness'",
            (line, size),
        )
        ignored = run_verifier(*verify, *policy, "--state-dir", str(tmp_path / "x"), cwd=tmp_path)
        assert ignored.returncode == 0, ignored.stdout
        assert "ignored 1 cosignatures by keys not in the policy" in ignored.stdout
        impostor = verifier.witness_vkey(Ed25519PrivateKey.generate(), "rogue.test/witness")
        unmet = run_verifier(
            *verify, "--witness", b_key, "--witness", impostor, "--state-dir",
            str(tmp_path / "y"), cwd=tmp_path,
        )  # fmt: skip
        assert unmet.returncode == 1, unmet.stdout
        assert "witness policy not met: 1 of the 2 trusted witnesses cosigned" in unmet.stdout

        # c goes down: a's changes are cosigned by b alone. 2-of-2 is judged on the newest
        # checkpoint both cosigned, and the changes after it wait within the grace (failing
        # without it); 1-of-2 passes on the newest.
        c.stop_web()
        [(held,)] = c.sql(
            "SELECT tree_size FROM federation_witnessedlog WHERE origin = %s", (a.hub_id,)
        )
        for _ in range(3):
            submit(a, member, key, 1)
            wait_for(lambda: witnessed_by(a, token, [b]), timeout=60, what="b's cosignature")
        _, gap_size, lines = cosigned(a, token)
        assert c_key.split("+", 1)[0] not in lines
        down = run_verifier(*verify, *policy, "--state-dir", str(auditor_state), cwd=tmp_path)
        assert down.returncode == 3, down.stdout
        assert "witness policy met: 2 of the 2" in down.stdout
        assert "hold changes no witness cosigned" in down.stdout and "within the grace" in (
            down.stdout
        )
        strict = run_verifier(
            *verify, *policy, "--witness-grace", "0", "--state-dir", str(tmp_path / "w"),
            cwd=tmp_path,
        )  # fmt: skip
        assert strict.returncode == 1, strict.stdout
        assert "hold changes no witness cosigned" in strict.stdout
        one = run_verifier(
            *verify, *policy, "--threshold", "1", "--state-dir", str(tmp_path / "z"), cwd=tmp_path
        )
        assert one.returncode == 0, one.stdout
        [(error,)] = a.sql(
            "SELECT last_error FROM federation_witness WHERE name = %s", (c_key.split("+", 1)[0],)
        )
        assert "Connection refused" in error or "refused" in error.lower(), error

        # c returns: the periodic run brings it up to date over the gap, in one proof.
        c.start_web()
        size = wait_for(lambda: witnessed_by(a, token, [b, c]), timeout=60, what="c to return")
        sizes = c.sql(
            "SELECT (data->>'old_size')::int, (data->>'tree_size')::int FROM "
            "federation_auditevent WHERE action = 'checkpoint.cosigned' AND object_id = %s",
            (a.hub_id,),
        )
        # One request took c from what it held before it went down to beyond the gap.
        assert any(old == held and new >= gap_size for old, new in sizes), (held, gap_size, sizes)
        back = run_verifier(*verify, *policy, "--state-dir", str(auditor_state), cwd=tmp_path)
        assert back.returncode == 0, back.stdout + back.stderr

        # An insider forks a's log: leaf 2 changed, the tree rebuilt and re-signed.
        forked_size = fork_log(a, leaf_index=2)
        submit(a, member, key, 1)
        for witness, name in ((b, b_key.split("+", 1)[0]), (c, c_key.split("+", 1)[0])):
            wait_for(
                lambda n=name: (
                    "inconsistent"
                    in a.sql("SELECT last_error FROM federation_witness WHERE name = %s", (n,))[0][
                        0
                    ]
                ),
                timeout=60,
                what="the witness to refuse the fork's proof",
            )
            # A failing proof is the sender's: the witness keeps no evidence and is not blocked.
            assert witness.sql(
                "SELECT count(*) FROM federation_splitviewevidence WHERE origin = %s",
                (a.hub_id,),
            ) == [(0,)]
            [(state,)] = witness.sql(
                "SELECT state FROM federation_witnessedlog WHERE origin = %s", (a.hub_id,)
            )
            assert state == "active"
        latest = a.sql("SELECT max(tree_size) FROM federation_checkpoint")[0][0]
        assert latest > forked_size
        assert a.sql(
            "SELECT count(*) FROM federation_cosignature s JOIN federation_checkpoint c "
            "ON c.id = s.checkpoint_id WHERE c.tree_size > 2"
        ) == [(0,)]
        # The auditor who saw the honest history fails; so does a new one, on the policy.
        caught = run_verifier(*verify, *policy, "--state-dir", str(auditor_state), cwd=tmp_path)
        assert caught.returncode == 1, caught.stdout
        assert "consistency" in caught.stdout and "FAIL" in caught.stdout
        # That auditor kept both signed checkpoints, in the witnesses' evidence format.
        own = run_verifier(
            "evidence", "--file", str(auditor_state / "evidence.json"), "--key", a.log_vkey,
            cwd=tmp_path,
        )  # fmt: skip
        assert own.returncode == 1, own.stdout
        assert "SPLIT VIEW: no consistency proof from size" in own.stdout
        fresh = run_verifier(
            *verify, *policy, "--witness-grace", "0", "--state-dir", str(tmp_path / "fresh"),
            cwd=tmp_path,
        )  # fmt: skip
        assert fresh.returncode == 1, fresh.stdout
        assert "witness policy not met: 0 of the 2" in fresh.stdout
        # The witnesses hold no evidence (only a same-size fork is): the verifier says so.
        shown = run_verifier(
            "evidence", "--witness-url", b.witness_url, "--key", a.log_vkey, "--witness", b_key,
            "--hub", a.url, "--token", token, cwd=tmp_path,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stdout
        (tmp_path / "evidence-note.txt").write_text(shown.stdout)

        # Cross-hub reconciliation between b and c, from audit events each hub wrote.
        digests = [uuid.uuid4().hex * 2 for _ in range(6)]
        batch1, batch2, batch3 = (str(uuid.uuid4()) for _ in range(3))
        record(b, "FEDERATION_SENT", c.hub_id, {"batch": batch1, "items": digests[:3]})
        record(
            c, "FEDERATION_RECEIVED", b.hub_id,
            {"batch": batch1, "accepted": [digests[0]], "duplicates": [digests[1]],
             "rejected": [{"item": digests[2], "code": "bad_signature"}]},
        )  # fmt: skip
        record(b, "FEDERATION_SENT", c.hub_id, {"batch": batch2, "items": [digests[3]]})
        record(
            c, "FEDERATION_RECEIVED", b.hub_id,
            {"batch": batch3, "accepted": [digests[4]], "duplicates": [], "rejected": []},
        )  # fmt: skip
        record(c, "FEDERATION_SENT", b.hub_id, {"batch": batch3, "items": [digests[5]]})
        record(
            b, "FEDERATION_RECEIVED", c.hub_id,
            {"batch": batch3, "accepted": [digests[5]], "duplicates": [], "rejected": []},
        )  # fmt: skip
        b_auditor = b.create_staff(user="bea", role="auditor")["token"]
        c_auditor = c.create_staff(user="cid", role="auditor")["token"]
        for hub in (b, c):
            wait_for(lambda h=hub: changes_through(h), timeout=60, what="sequencing")
        reconciled = run_verifier(
            "reconcile-hubs", "--hub-a", b.url, "--key-a", b.log_vkey, "--token-a", b_auditor,
            "--hub-b", c.url, "--key-b", c.log_vkey, "--token-b", c_auditor, cwd=tmp_path,
        )  # fmt: skip
        assert reconciled.returncode == 1, reconciled.stdout + reconciled.stderr
        out = reconciled.stdout
        assert (
            f"1 items {b.hub_id} says it sent to {c.hub_id} that {c.hub_id} never recorded" in out
        )
        assert f"item {digests[3]}" in out
        assert f"1 items {c.hub_id} recorded from {b.hub_id} that {b.hub_id} never says" in out
        assert f"item {digests[4]}" in out
        assert f"OK    {c.hub_id} -> {b.hub_id}: 1 items sent, every one recorded" in out
        for digest in (digests[0], digests[1], digests[2], digests[5]):
            assert digest not in out
        (tmp_path / "outputs.json").write_text(
            json.dumps({"passed": passed.stdout, "fresh": fresh.stdout, "reconciled": out})
        )


def record(hub, action: str, peer: str, data: dict) -> None:
    """Write a federation audit event on a live hub with the hub's own audit_record, in a
    transaction (as the federation services will): the event is sequenced and served like any."""
    code = (
        "import json; from django.db import transaction; "
        "from federation.transparency.actions import Action, Key, ObjectType; "
        "from federation.transparency.audit import AuditRecord, audit_record; "
        "from members.actors import Actor; "
        f"data = json.loads({json.dumps(json.dumps({'peer': peer, **data}))}); "
        "transaction.atomic()(lambda: audit_record(AuditRecord("
        f"action=Action.{action}, actor=Actor.system('federation'), "
        f"object_type=ObjectType.PEER, object_id={peer!r}, data=data)))()"
    )
    hub.manage("shell", "-c", code)
