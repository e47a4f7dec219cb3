"""The integration harness runs a real hub that accepts a signed contribution over HTTP."""

import shutil
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.signing import format_timestamp, sign_contribution
from tests.support.harness import running_hub

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def test_live_hub_accepts_a_signed_contribution_over_http():
    private_key = Ed25519PrivateKey.generate()
    with running_hub("smoke") as hub:
        member = hub.create_member(
            org="acme", user="alice", role="submitter", signing_key=private_key
        )
        document = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": hub.hub_id,
            "member": "acme",
            "key_id": member["key_id"],
            "uuid": str(uuid.uuid4()),
            "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
            "action": "add",
            "signal": {"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"},
            "labels": ["propaganda"],
            "scope": "federation",
        }
        body = {"contribution": document, "signature": sign_contribution(private_key, document)}
        status, response = hub.request(
            "POST", "/api/v1/contributions/", json_body=body, token=member["token"]
        )
        assert status == 201, response
        assert hub.sql("SELECT count(*) FROM federation_contribution")[0][0] == 1
        status, again = hub.request(
            "POST", "/api/v1/contributions/", json_body=body, token=member["token"]
        )
        assert status == 200 and again["uuid"] == document["uuid"]


def test_a_failed_test_keeps_its_hub_logs_and_prints_their_tails(capsys):
    with pytest.raises(RuntimeError, match="the test failed"), running_hub("kept") as hub:
        workdir = hub.workdir
        hub.request("GET", "/api/v1/no-such-route/")
        raise RuntimeError("the test failed")
    try:
        printed = capsys.readouterr().err
        assert f"--- hub kept: logs kept in {workdir}" in printed
        assert f"--- {workdir / 'web.log'} (last" in printed
        assert (workdir / "web.log").exists()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_passing_test_leaves_no_hub_folder():
    with running_hub("clean") as hub:
        workdir = hub.workdir
    assert not workdir.exists()
