"""Witness benchmark (run with `make bench`), on live hubs: a hub ``a`` witnessed by ``b`` and
``c`` (each a gunicorn and a Celery worker with beat on its own database).

1. cosigning latency: for each of SAMPLES contributions on ``a``, the time from the checkpoint
   covering it being signed (seen in ``a``'s database, polled every 5 ms) to both cosignatures
   being held, and from the contribution's answer to both cosignatures;
2. the standalone verifier, as a subprocess, on a log of CONCORDAT_BENCH_WITNESS_LEAVES leaves
   (default 20,000; the figures in docs/transparency.md are at 1,000,000) with a 2-of-2 witness
   policy: a first run (every leaf fetched and checked) and an incremental run after one change.

Figures are printed; the run fails if a verifier run does not pass.
"""

import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.harness import ROOT, running_hub, submit, wait_for

pytestmark = pytest.mark.bench

LEAVES = int(os.environ.get("CONCORDAT_BENCH_WITNESS_LEAVES", 20_000))
SAMPLES = int(os.environ.get("CONCORDAT_BENCH_WITNESS_SAMPLES", 20))
VERIFIER = ROOT / "client" / "concordat_client" / "verifier.py"
ENV = {"CONCORDAT_WITNESS_INTERVAL_SECONDS": "5", "CONCORDAT_SEQUENCE_INTERVAL_SECONDS": "1"}


def witnessed(hub, witnesses: int, *, size: int) -> bool:
    """Whether a checkpoint of at least ``size`` leaves holds ``witnesses`` cosignatures."""
    held = hub.sql(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM federation_cosignature s "
        "JOIN federation_checkpoint c ON c.id = s.checkpoint_id WHERE c.tree_size >= %s "
        "GROUP BY c.id) AS held",
        (size,),
    )[0][0]
    return held >= witnesses


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(int(len(ordered) * 0.95) - 1, 0)]
    return f"median {statistics.median(ordered):.0f} ms, p95 {p95:.0f} ms, max {ordered[-1]:.0f} ms"


def insert_leaves(hub, count: int) -> None:
    """``count`` audit events COPYed into the hub's log (the worker sequences them)."""
    now = datetime.now(UTC)
    columns = (
        "occurred_at, action, actor_type, actor_id, actor_label, organisation, object_type, "
        "object_id, data"
    )
    with psycopg.connect(hub.database_url) as connection:
        chunk = 100_000
        for offset in range(0, count, chunk):
            with connection.cursor().copy(
                f"COPY federation_auditevent ({columns}) FROM STDIN"
            ) as copy:
                for i in range(offset, min(offset + chunk, count)):
                    copy.write_row(
                        (
                            now,
                            "match.requested",
                            "system",
                            "bench",
                            "bench",
                            "",
                            "",
                            "",
                            f'{{"n": {i}}}',
                        )
                    )
            connection.commit()


def run_verifier(hub, vkey, token, state, policy) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(VERIFIER), "--hub", hub.url, "--key", vkey, "--token", token,
         "--state-dir", str(state), *policy],
        cwd=state.parent, capture_output=True, text=True, timeout=7200,
        env={"PATH": "/usr/bin:/bin", "HOME": str(state.parent)},
    )  # fmt: skip
    return time.perf_counter() - started, done


def test_bench_witnesses(tmp_path):
    key = Ed25519PrivateKey.generate()
    with (
        running_hub("bwa", worker=True, extra_env=ENV) as a,
        running_hub("bwb", worker=True, extra_env=ENV) as b,
        running_hub("bwc", worker=True, extra_env=ENV) as c,
    ):
        member = a.create_member(org="acme", user="alice", role="submitter", signing_key=key)
        token = a.create_staff(user="otto", role="auditor")["token"]
        for witness in (b, c):
            witness.manage("witnessed_logs", "add", "--origin", a.hub_id, "--vkey", a.log_vkey)
            vkey = witness.witness_vkey
            a.manage(
                "hub_witnesses", "add", "--name", vkey.split("+", 1)[0], "--vkey", vkey,
                "--url", witness.witness_url,
            )  # fmt: skip
        policy = ["--witness", b.witness_vkey, "--witness", c.witness_vkey]

        signed_to_cosigned, answered_to_cosigned = [], []
        for _ in range(SAMPLES):
            size = a.sql("SELECT count(*) FROM federation_auditevent")[0][0]
            submit(a, member, key, 1)
            answered = time.perf_counter()
            target = size + 1
            signed = wait_for(
                lambda t=target: (
                    a.sql("SELECT max(tree_size) >= %s FROM federation_checkpoint", (t,))[0][0]
                    and time.perf_counter()
                ),
                timeout=60,
                interval=0.005,
                what="the checkpoint",
            )
            done = wait_for(
                lambda t=target: witnessed(a, 2, size=t) and time.perf_counter(),
                timeout=60,
                interval=0.005,
                what="two cosignatures",
            )
            signed_to_cosigned.append((done - signed) * 1000)
            answered_to_cosigned.append((done - answered) * 1000)

        started = time.perf_counter()
        insert_leaves(a, LEAVES)
        total = a.sql("SELECT count(*) FROM federation_auditevent")[0][0]
        wait_for(
            lambda: a.sql("SELECT max(tree_size) FROM federation_checkpoint")[0][0] >= total,
            timeout=3600,
            interval=1,
            what="sequencing",
        )
        sequenced = time.perf_counter() - started
        submit(a, member, key, 1)  # a change after the bulk, so that the witnesses cosign it
        wait_for(lambda: witnessed(a, 2, size=total + 1), timeout=120, what="cosignatures")
        state = tmp_path / "auditor"
        first_seconds, first = run_verifier(a, a.log_vkey, token, state, policy)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        size = a.sql("SELECT max(tree_size) FROM federation_checkpoint")[0][0]
        submit(a, member, key, 1)
        wait_for(lambda: witnessed(a, 2, size=size + 1), timeout=120, what="cosignatures")
        again_seconds, again = run_verifier(a, a.log_vkey, token, state, policy)
        assert again.returncode == 0, again.stdout[-3000:]
        assert "witness policy met: 2 of the 2" in again.stdout

        print()
        print(f"Witness benchmark: live hubs, a witnessed by b and c, {SAMPLES} changes")
        print(f"  checkpoint signed -> 2 cosignatures held: {summary(signed_to_cosigned)}")
        print(f"  contribution answered -> 2 cosignatures:  {summary(answered_to_cosigned)}")
        print(f"  {LEAVES:,} leaves COPYed and sequenced by the hub's worker in {sequenced:.1f} s")
        print(
            f"  verifier, 2-of-2 policy, first run over {size:,} leaves: {first_seconds:.1f} s "
            f"({size / first_seconds:,.0f} leaves/s)"
        )
        print(f"  verifier, incremental run after one change: {again_seconds:.2f} s")
