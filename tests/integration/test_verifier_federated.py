"""The standalone verifier against hubs that federate (docs/transparency.md, "The standalone
verifier"): a receiving hub's log proves the foreign members' signatures by itself, through the
``key.received`` events (the home hub's binding, its pinned key, the member's registration), and
the sending hub's log names every binding it signed (``key.bound``)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.federation_harness import FederationHub, item_uuid, running_federation
from tests.support.harness import ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

VERIFIER = ROOT / "client" / "concordat_client" / "verifier.py"


def sequenced_size(hub: FederationHub) -> int | None:
    """The checkpoint size once every audit event is in a signed checkpoint."""
    [(pending, total, signed)] = hub.sql(
        "SELECT count(*) FILTER (WHERE leaf_index IS NULL), count(*), "
        "(SELECT max(tree_size) FROM federation_checkpoint) FROM federation_auditevent"
    )
    return total if pending == 0 and signed == total and total > 0 else None


def run_verifier(hub: FederationHub, state: Path, *extra: str) -> subprocess.CompletedProcess:
    """The verifier as an auditor runs it: its own process, no project code on its path."""
    status, key = hub.request("GET", "/api/v1/log/key")
    assert status == 200, key
    token = hub.staff_token("auditor")
    return subprocess.run(
        [sys.executable, str(VERIFIER), "--hub", hub.url, "--key", key["vkey"], "--token", token,
         "--state-dir", str(state), *extra],
        cwd=state.parent, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(state.parent)},
    )  # fmt: skip


def test_the_verifier_proves_relayed_contributions_on_the_receiving_hub_from_its_log(tmp_path):
    with running_federation("a", "b") as fed:
        a, b = fed.hubs
        fed.link(a, b)
        alice = a.member("acme", trusted=True)
        items = [alice.add("md5", labels=["propaganda"]) for _ in range(3)]
        alice.submit(items)
        b.wait_for_contributions([item_uuid(item) for item in items], timeout=60)
        [(received,)] = b.sql(
            "SELECT count(*) FROM federation_auditevent WHERE action = 'contribution.accepted' "
            "AND organisation = 'acme'"
        )
        assert received == 3
        wait_for(lambda: sequenced_size(b), timeout=60, what="b's log to be sequenced")

        run = run_verifier(b, tmp_path / "auditor-b")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "key bindings (key.received, key.bound)" in run.stdout
        assert "3 accepted contributions" in run.stdout, run.stdout

        # The sender's log names the binding it signed, and the verifier checks it there too.
        [(bound,)] = a.sql(
            "SELECT count(*) FROM federation_auditevent WHERE action = 'key.bound' "
            "AND object_id = %s",
            (alice.key_id,),
        )
        assert bound == 1
        wait_for(lambda: sequenced_size(a), timeout=60, what="a's log to be sequenced")
        run = run_verifier(a, tmp_path / "auditor-a")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "1 key bindings (key.received, key.bound)" in run.stdout, run.stdout
