"""The standalone verifier against a live hub (gunicorn + a Celery worker with beat on its own
database): it passes on an honest log, checks every accepted contribution's member signature,
catches an audit row or a stored contribution changed in the database, runs incrementally from
its state directory, checks across runs that the log it saw before is a prefix of the log it
sees now, and compares two auditors' saved checkpoints."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.transparency.checkpoints import verifier_key
from tests.support.harness import ROOT, running_hub, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

VERIFIER = ROOT / "client" / "concordat_client" / "verifier.py"
CROSSCHECK = VERIFIER.with_name("crosscheck.py")


def fully_sequenced(hub) -> int | None:
    """The checkpoint size once every audit event is in a signed checkpoint."""
    pending = hub.sql("SELECT count(*) FROM federation_auditevent WHERE leaf_index IS NULL")[0][0]
    total = hub.sql("SELECT count(*) FROM federation_auditevent")[0][0]
    signed = hub.sql("SELECT max(tree_size) FROM federation_checkpoint")[0][0]
    return total if pending == 0 and signed == total and total > 0 else None


def run_verifier(
    hub, vkey: str, token: str, state: Path, *extra: str
) -> subprocess.CompletedProcess:
    # A clean environment and working directory: the verifier needs no project code.
    option = "--state" if state.suffix == ".json" else "--state-dir"
    return subprocess.run(
        [sys.executable, str(VERIFIER), "--hub", hub.url, "--key", vkey, "--token", token,
         option, str(state), *extra],
        cwd=state.parent, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(state.parent)},
    )  # fmt: skip


def test_verifier_passes_detects_a_changed_row_and_checks_consistency_across_runs(tmp_path):
    private_key = Ed25519PrivateKey.generate()
    with running_hub("tlog", worker=True) as hub:
        member = hub.create_member(
            org="acme", user="alice", role="submitter", signing_key=private_key
        )
        auditor = hub.create_staff(user="otto", role="auditor")
        status, key = hub.request("GET", "/api/v1/log/key")
        assert status == 200
        vkey = key["vkey"]
        state = tmp_path / "auditor-a"

        submit(hub, member, private_key, 5)
        first_size = wait_for(lambda: fully_sequenced(hub), timeout=60, what="sequencing")
        first = run_verifier(hub, vkey, auditor["token"], state, "--reconcile")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"tree size {first_size}" in first.stdout
        assert "RESULT: OK" in first.stdout
        assert "no previous checkpoint" in first.stdout
        assert "OK    5 accepted contributions: signed bytes hash" in first.stdout
        assert f"reconciled at checkpoint {first_size}" in first.stdout
        assert (state / "state.json").exists() and (state / "checkpoints.jsonl").exists()
        other_auditor = tmp_path / "auditor-b"
        assert run_verifier(hub, vkey, auditor["token"], other_auditor).returncode == 0

        submit(hub, member, private_key, 4)
        second_size = wait_for(
            lambda: (size := fully_sequenced(hub)) and size > first_size and size,
            timeout=60,
            what="the new events to be sequenced",
        )
        second = run_verifier(hub, vkey, auditor["token"], state, "--reconcile")
        assert second.returncode == 0, second.stdout + second.stderr
        assert (
            f"the previous checkpoint (size {first_size}) is a prefix of this one "
            f"(size {second_size}" in second.stdout
        )
        assert f"fetched the {second_size - first_size} new entries" in second.stdout
        assert "OK    4 accepted contributions" in second.stdout
        assert f"reconciled at checkpoint {second_size}" in second.stdout

        # Two auditors compare what they saw: sizes differ, the hub proves consistency.
        compared = subprocess.run(
            [sys.executable, str(CROSSCHECK), "compare", "--key", vkey, str(state),
             str(other_auditor), "--hub", hub.url, "--token", auditor["token"]],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert compared.returncode == 0, compared.stdout + compared.stderr
        assert f"size {first_size} is a prefix of size {second_size}" in compared.stdout

        # A stored contribution's signed bytes changed in the database.
        (contribution_uuid, canonical) = hub.sql(
            "SELECT uuid, canonical FROM federation_contribution ORDER BY id LIMIT 1"
        )[0]
        hub.sql(
            "UPDATE federation_contribution SET canonical = %s WHERE uuid = %s",
            (canonical.replace("propaganda", "violence"), contribution_uuid),
            bypass_triggers=True,
        )
        leaf = hub.sql(
            "SELECT leaf_index FROM federation_auditevent WHERE action = 'contribution.accepted' "
            "AND object_id = %s",
            (str(contribution_uuid),),
        )[0][0]
        resigned = run_verifier(hub, vkey, auditor["token"], state, "--full")
        assert resigned.returncode == 1, resigned.stdout + resigned.stderr
        assert (
            f"leaf {leaf} (contribution {contribution_uuid}): SHA-256 of the signed bytes is not "
            "the leaf's content_hash" in resigned.stdout
        )
        hub.sql(
            "UPDATE federation_contribution SET canonical = %s WHERE uuid = %s",
            (canonical, contribution_uuid),
            bypass_triggers=True,
        )

        # The hub's own database refuses the edit...
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            hub.sql("UPDATE federation_auditevent SET organisation = 'mallory' WHERE id = 1")
        # ...but an insider with superuser rights switches the append-only triggers off for a session
        # and edits one logged event directly in the database.
        event_id, leaf_index = hub.sql(
            "SELECT id, leaf_index FROM federation_auditevent "
            "WHERE action LIKE 'contribution.%%' ORDER BY leaf_index LIMIT 1"
        )[0]
        hub.sql(
            "UPDATE federation_auditevent SET data = data || '{\"tampered\": true}'::jsonb "
            "WHERE id = %s",
            (event_id,),
            bypass_triggers=True,
        )
        state_before = (state / "state.json").read_text()
        tampered = run_verifier(hub, vkey, auditor["token"], state, "--full")
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert f"leaf {leaf_index} (event id {event_id}" in tampered.stdout
        assert "no longer match the log" in tampered.stdout
        assert "does NOT match the signed root" in tampered.stdout
        assert "RESULT: FAIL" in tampered.stdout
        assert (state / "state.json").read_text() == state_before  # a failed run changes nothing

        # History rewritten: the state holds a checkpoint the hub signed for another tree of a
        # smaller size (a split view). Signed with the hub's own key, it passes the signature
        # check; only the consistency proof can tell.
        hub_key = serialization.load_pem_private_key(
            Path(hub.env["CONCORDAT_HUB_KEY_PATH"]).read_bytes(), password=None
        )
        body = f"{hub.hub_id}\n{first_size}\n{base64.b64encode(b'x' * 32).decode()}\n"
        signature = base64.b64encode(
            bytes.fromhex(vkey.split("+")[1]) + hub_key.sign(body.encode())
        )
        forked = tmp_path / "forked-state.json"
        forked.write_text(
            json.dumps({"checkpoint": f"{body}\n\u2014 {hub.hub_id} {signature.decode()}\n"})
        )
        hub.sql(
            "UPDATE federation_auditevent SET data = data - 'tampered' WHERE id = %s",
            (event_id,),
            bypass_triggers=True,
        )
        split_view = run_verifier(hub, vkey, auditor["token"], forked)
        assert split_view.returncode == 1, split_view.stdout + split_view.stderr
        assert f"the previous checkpoint (size {first_size}) is NOT a prefix" in split_view.stdout

        # A key other than the hub's: the checkpoint itself is refused.
        other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        other_vkey = verifier_key(hub.hub_id, other)
        stranger = run_verifier(hub, other_vkey, auditor["token"], tmp_path / "other.json")
        assert stranger.returncode == 1
        assert "checkpoint rejected" in stranger.stdout
