"""Monitoring on a real hub (docs/operations.md): gunicorn with two workers and a Celery worker in
prometheus-client's multiprocess mode. Every scrape, whichever worker answers it, counts every
submission; the audit log's gauges follow the worker's sequencing; the probes answer."""

import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import running_hub, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_real_hub_counts_over_its_processes_and_reports_its_log(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    private_key = Ed25519PrivateKey.generate()
    with running_hub(
        "metrics",
        worker=True,
        web_workers=2,
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    ) as hub:
        assert hub.request("GET", "/health/live") == (200, {"status": "ok"})
        assert hub.request("GET", "/health/ready") == (
            200,
            {"status": "ready", "checks": {"database": "ok", "broker": "ok"}},
        )
        scraper = hub.manage(
            "create_staff", "--user", "prometheus", "--role", "consortium-admin", "--token",
            "--scopes", "metrics",
        )  # fmt: skip
        token = json.loads(scraper.strip().splitlines()[-1])["token"]
        assert hub.request("GET", "/metrics")[0] == 401  # 127.0.0.1 is not an allowed network

        member = hub.create_member(
            org="acme", user="alice", role="submitter", signing_key=private_key
        )
        submit(hub, member, private_key, 12)
        status, _ = hub.request(
            "POST",
            "/api/v1/contributions/",
            json_body={"contribution": {"uuid": str(uuid.uuid4())}, "signature": "x"},
            token=member["token"],
        )
        assert status == 400

        def sequenced():
            status, text = hub.request("GET", "/metrics", token=token)
            assert status == 200, text
            found = samples(text)
            if found[("concordat_audit_log_unsequenced_events", ())] == 0 and (
                found[("concordat_audit_log_tree_size", ())] > 0
            ):
                return found
            return None

        found = wait_for(sequenced, timeout=60, what="the worker to sequence the audit log")
        assert found[("concordat_audit_log_sequencer_state", (("state", "ok"),))] == 1
        assert found[("concordat_metrics_group_up", (("group", "federation"),))] == 1
        # Each scrape reaches one of the two gunicorn workers; each reports all 12 and the 1.
        for _ in range(6):
            status, text = hub.request("GET", "/metrics", token=token)
            found = samples(text)
            assert found[("concordat_ingest_items_total", (("outcome", "created"),))] == 12
            assert found[("concordat_ingest_items_total", (("outcome", "rejected"),))] == 1
        assert len(list(metrics_dir.glob("counter_*.db"))) >= 1
