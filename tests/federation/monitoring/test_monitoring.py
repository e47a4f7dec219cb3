"""Monitoring (docs/operations.md): /metrics read after real activity (submissions, a peer that
fails, a pull that fails, the sequencers, the match index, a witness), who may read it, each
group's time bound, the counters summed over processes, and the liveness and readiness probes."""

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest
import yaml
from django.conf import settings as django_settings
from django.db import connection, connections
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from federation.monitoring import gauges
from federation.propagation.delivery import outbox_drain
from federation.propagation.models import OutboxItem
from federation.receiving.pull import pull_from_peer
from federation.sync.sequencer import sync_sequence_pending
from federation.transparency.models import Witness
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from members.models import Peer
from members.services import credential_create
from settings.celery import app
from tests.support.federation import RemoteHub, contribution_item
from tests.support.sending import Receiver, make_peer, vetted_entry


def scrape(client) -> dict[tuple[str, tuple], float]:
    """The samples of one scrape, by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def metrics_client(consortium_admin):
    """A scraper's token: a consortium admin's, with the metrics scope alone."""
    issued = credential_create(
        holder=consortium_admin.user,
        name="prometheus",
        scopes=["metrics"],
        actor=Actor.system("test"),
    )
    client = APIClient(REMOTE_ADDR="192.0.2.10")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    return client


# --- after real activity ------------------------------------------------------------------------


def test_ingest_counts_by_outcome_and_rejection_code(acme_submitter, metrics_client):
    before = scrape(metrics_client)
    document = acme_submitter.contribution()
    assert acme_submitter.submit(document).status_code == 201
    assert acme_submitter.submit(document).status_code == 200  # the same uuid again
    forged = acme_submitter.signed()
    forged["signature"] = acme_submitter.signed()["signature"]
    assert acme_submitter.client.post("/api/v1/contributions/", forged, format="json").status_code
    after = scrape(metrics_client)

    def delta(name, **labels):
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert delta("concordat_ingest_items_total", outcome="created") == 1
    assert delta("concordat_ingest_items_total", outcome="duplicate") == 1
    assert delta("concordat_ingest_items_total", outcome="rejected") == 1
    assert delta("concordat_ingest_rejections_total", code="bad_signature") == 1


def test_a_failing_peer_shows_depth_age_failure_and_dead_letters(
    acme_submitter, metrics_client, settings
):
    settings.FEDERATION_MAX_ATTEMPTS = 2
    with Receiver() as receiver:
        receiver.answer = lambda body: (503, {"error": {"code": "unavailable", "message": ""}})
        peer = make_peer("bravo.hub", url=receiver.url)
        for _ in range(3):
            vetted_entry(acme_submitter)
        OutboxItem.objects.update(created_at=timezone.now() - timedelta(seconds=90))

        samples = scrape(metrics_client)
        assert (
            value(samples, "concordat_federation_outbox_pending", peer="bravo.hub", lane="normal")
            == 3
        )
        assert (
            value(samples, "concordat_federation_outbox_pending", peer="bravo.hub", lane="incident")
            == 0
        )
        age = value(
            samples,
            "concordat_federation_outbox_oldest_pending_age_seconds",
            peer="bravo.hub",
            lane="normal",
        )
        assert 90 <= age < 120
        assert value(samples, "concordat_federation_push_failing", peer="bravo.hub") == 0

        failures = value(samples, "concordat_federation_push_failures_total", peer="bravo.hub")
        outbox_drain(peer_id=peer.pk, lane="normal")
        samples = scrape(metrics_client)
        assert value(samples, "concordat_federation_push_failing", peer="bravo.hub") == 1
        pushes_failed = value(samples, "concordat_federation_push_failures_total", peer="bravo.hub")
        assert pushes_failed - (failures or 0) == 1
        assert (
            value(samples, "concordat_federation_outbox_pending", peer="bravo.hub", lane="normal")
            == 3
        )
        assert value(samples, "concordat_federation_outbox_dead_letters", peer="bravo.hub") == 0

        OutboxItem.objects.update(next_attempt_at=timezone.now())
        outbox_drain(peer_id=peer.pk, lane="normal")
        samples = scrape(metrics_client)
        assert value(samples, "concordat_federation_outbox_dead_letters", peer="bravo.hub") == 3
        assert (
            value(samples, "concordat_federation_outbox_pending", peer="bravo.hub", lane="normal")
            == 0
        )
        assert (
            value(
                samples,
                "concordat_federation_outbox_oldest_pending_age_seconds",
                peer="bravo.hub",
                lane="normal",
            )
            == 0
        )

        receiver.answer = None  # accept everything again
        vetted_entry(acme_submitter)
        outbox_drain(peer_id=peer.pk, lane="normal")
        samples = scrape(metrics_client)
        assert value(samples, "concordat_federation_push_failing", peer="bravo.hub") == 0
        assert value(samples, "concordat_federation_outbox_dead_letters", peer="bravo.hub") == 3
        assert value(
            samples, "concordat_federation_push_last_success_timestamp_seconds", peer="bravo.hub"
        ) == pytest.approx(timezone.now().timestamp(), abs=30)


def test_pull_failures_and_received_items_per_peer(db, metrics_client):
    hub = RemoteHub("charlie.example")
    Peer.objects.filter(pk=hub.peer.pk).update(outbound_token="cp_x_secret")  # url: port 1
    before = scrape(metrics_client)
    member = hub.member()
    assert hub.push([contribution_item(member)]).status_code == 200
    assert hub.push([contribution_item(member)], to="someone.else").status_code == 400

    pull_from_peer(hub.peer.pk)
    after = scrape(metrics_client)

    received = ("concordat_federation_received_items_total", "charlie.example", "push")
    assert (
        value(after, received[0], peer=received[1], via=received[2], outcome="accepted") or 0
    ) - (
        value(before, received[0], peer=received[1], via=received[2], outcome="accepted") or 0
    ) == 1
    refused = value(
        after,
        "concordat_federation_batches_refused_total",
        peer="charlie.example",
        via="push",
        code="wrong_receiver",
    )
    assert refused is not None and refused >= 1
    assert value(after, "concordat_federation_pull_failing", peer="charlie.example") == 1
    pulls_failed = ("concordat_federation_pull_failures_total", "charlie.example")
    assert (value(after, pulls_failed[0], peer=pulls_failed[1]) or 0) - (
        value(before, pulls_failed[0], peer=pulls_failed[1]) or 0
    ) == 1
    assert value(
        after, "concordat_federation_pull_last_error_timestamp_seconds", peer="charlie.example"
    ) == pytest.approx(timezone.now().timestamp(), abs=30)
    assert value(after, "concordat_federation_pull_lag_seconds", peer="charlie.example") is None


def test_the_sequencers_lag_and_the_logs_state(acme_submitter, metrics_client):
    sequence_pending()
    sync_sequence_pending()
    acme_submitter.submit()
    samples = scrape(metrics_client)
    assert value(samples, "concordat_audit_log_unsequenced_events") >= 1
    assert value(samples, "concordat_audit_log_sequencer_state", state="ok") == 1
    assert value(samples, "concordat_audit_log_sequencer_state", state="refused") == 0
    assert value(samples, "concordat_audit_log_stalled") == 0

    sequence_pending()
    sync_sequence_pending()
    samples = scrape(metrics_client)
    assert value(samples, "concordat_audit_log_unsequenced_events") == 0
    assert value(samples, "concordat_audit_log_sequencer_lag_seconds") == 0
    assert value(samples, "concordat_audit_log_tree_size") >= 1
    assert value(samples, "concordat_sync_unsequenced_changes") == 0
    assert value(samples, "concordat_metrics_group_up", group="audit_log") == 1


def test_the_sync_streams_lag(acme, acme_submitter, metrics_client):
    acme.trusted = True  # its adds are vetted at once: a change members see
    acme.save()
    sync_sequence_pending()
    acme_submitter.submit()
    samples = scrape(metrics_client)
    assert value(samples, "concordat_sync_unsequenced_changes") == 1
    position = value(samples, "concordat_sync_stream_position")

    sync_sequence_pending()
    samples = scrape(metrics_client)
    assert value(samples, "concordat_sync_unsequenced_changes") == 0
    assert value(samples, "concordat_sync_stream_lag_seconds") == 0
    assert value(samples, "concordat_sync_stream_position") == position + 1


def test_the_match_index_of_the_process_that_holds_one(
    acme, acme_submitter, globex_reviewer, metrics_client
):
    acme.trusted = True
    acme.save()
    acme_submitter.submit()
    sync_sequence_pending()
    assert value(scrape(metrics_client), "concordat_match_index_loaded") == 0

    signal = {"type": "md5", "value": "0" * 32}
    globex_reviewer.client.post("/api/v1/match", {"signals": [signal]}, format="json")
    samples = scrape(metrics_client)
    assert value(samples, "concordat_match_index_loaded") == 1
    assert (
        sum(
            value(samples, "concordat_match_index_signals", signal_type=kind)
            for kind in ("pdq", "md5", "sha256")
        )
        == 1
    )
    assert value(samples, "concordat_match_index_positions_behind") == 0
    assert value(samples, "concordat_match_index_staleness_seconds") == 0

    acme_submitter.submit()
    sync_sequence_pending()  # a change the (non-following) index has not applied yet
    samples = scrape(metrics_client)
    assert value(samples, "concordat_match_index_positions_behind") == 1
    assert value(samples, "concordat_match_index_staleness_seconds") >= 0


def test_a_witnesses_cosignature_age_and_how_far_behind_it_is(acme_submitter, metrics_client):
    acme_submitter.submit()
    sequence_pending()
    witnessed_at = timezone.now() - timedelta(minutes=10)
    Witness.objects.create(
        name="w1.example/witness",
        vkey="w1.example/witness+00000000+AA==",
        url="http://127.0.0.1:1/",
        tree_size=1,
        last_cosigned_at=witnessed_at,
        last_error="HTTP 503",
    )
    samples = scrape(metrics_client)
    age = value(samples, "concordat_witness_cosignature_age_seconds", witness="w1.example/witness")
    assert 600 <= age < 660
    tree_size = value(samples, "concordat_audit_log_tree_size")
    behind = value(samples, "concordat_witness_tree_size_behind", witness="w1.example/witness")
    assert behind == tree_size - 1
    assert value(samples, "concordat_witness_failing", witness="w1.example/witness") == 1


# --- bounded, isolated groups -------------------------------------------------------------------


def test_a_group_that_runs_out_of_time_is_left_out_and_the_others_are_served(
    db, metrics_client, settings, monkeypatch
):
    settings.METRICS_STATEMENT_TIMEOUT_MS = 50

    def slow(now):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")
        return []

    monkeypatch.setitem(gauges.GROUPS, "sync", slow)
    samples = scrape(metrics_client)
    assert value(samples, "concordat_metrics_group_up", group="sync") == 0
    assert value(samples, "concordat_metrics_group_up", group="audit_log") == 1
    assert value(samples, "concordat_metrics_group_up", group="witness") == 1
    assert value(samples, "concordat_audit_log_tree_size") is not None
    with connection.cursor() as cursor:  # the bound ends with the scrape
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] != "50ms"


def test_without_a_database_every_group_is_down_and_the_counters_are_still_served(db, monkeypatch):
    from django.db import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", refuse)
        patched.setattr(django_settings, "METRICS_ALLOWED_NETWORKS", ["10.0.0.0/8"])
        response = APIClient(REMOTE_ADDR="10.0.0.1").get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert {s.labels["group"]: s.value for s in families["concordat_metrics_group_up"].samples} == {
        "federation": 0, "audit_log": 0, "sync": 0, "match": 0, "witness": 0,
    }  # fmt: skip
    assert "concordat_ingest_items" in families


# --- who may read -----------------------------------------------------------------------------


def test_metrics_need_the_metrics_scope_or_an_allowed_network(
    db, consortium_admin, auditor, metrics_client, settings
):
    settings.METRICS_ALLOWED_NETWORKS = []
    assert metrics_client.get("/metrics").status_code == 200
    assert consortium_admin.client.get("/metrics").status_code == 200  # the role's every scope
    forbidden = auditor.client.get("/metrics")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "permission_denied"
    narrower = credential_create(
        holder=consortium_admin.user, name="ops", scopes=["audit"], actor=Actor.system("test")
    )
    assert (
        APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {narrower.token}").status_code
        == 403
    )
    anonymous = APIClient(REMOTE_ADDR="192.0.2.10").get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "192.0.2.0/28"]
    assert APIClient(REMOTE_ADDR="192.0.2.10").get("/metrics").status_code == 200
    assert APIClient(REMOTE_ADDR="192.0.2.20").get("/metrics").status_code == 401
    # the address of the connection counts, never a header the client writes
    spoofed = APIClient(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.1.1.1")
    assert spoofed.get("/metrics").status_code == 401


def test_behind_https_a_credential_on_plain_http_is_refused_but_the_network_is_not(
    db, metrics_client, settings
):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^api/", r"^health/", r"^metrics$"]
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    refused = metrics_client.get("/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "https_required"
    assert metrics_client.get("/metrics", secure=True).status_code == 200
    assert APIClient(REMOTE_ADDR="10.0.0.7").get("/metrics").status_code == 200
    assert APIClient().get("/health/live").status_code == 200


# --- counters over several processes ------------------------------------------------------------


def test_counters_of_several_processes_are_summed_in_multiprocess_mode(tmp_path):
    count = textwrap.dedent(
        """
        from types import SimpleNamespace
        from federation.monitoring.counters import ingest_counted
        ingest_counted(results=[SimpleNamespace(status="created", error=None)] * 3)
        """
    )
    read = textwrap.dedent(
        """
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _process in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    output = subprocess.run(
        [sys.executable, "-c", read], env=env, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    assert 'concordat_ingest_items_total{outcome="created"} 6.0' in output


# --- probes ---------------------------------------------------------------------------------------


def test_liveness_answers_without_credentials(db):
    response = APIClient().get("/health/live", HTTP_AUTHORIZATION="Bearer cc_bad_token")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readiness_checks_the_database_and_the_broker(db):
    response = APIClient().get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readiness_is_503_when_the_broker_is_unreachable(db, monkeypatch):
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:9/0")  # nothing listens
    response = APIClient().get("/health/ready")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "not_ready",
        "message": "This process cannot serve: broker unavailable.",
        "details": {"database": "ok", "broker": "unavailable"},
    }


def test_readiness_is_503_within_its_bound_when_the_broker_accepts_but_never_answers(
    db, monkeypatch, settings
):
    settings.READINESS_TIMEOUT_SECONDS = 1.0
    with socket.socket() as silent:  # the kernel accepts connections; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr(
            app.conf, "broker_url", f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        )
        answers = []

        def probe():  # on a thread, so that a probe without a bound fails the test, not hangs it
            try:
                answers.append(APIClient().get("/health/ready"))
            finally:
                connections.close_all()

        started = time.monotonic()
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(timeout=10)
        elapsed = time.monotonic() - started
    assert answers, "the readiness probe did not answer within 10 s"
    (response,) = answers
    assert response.status_code == 503
    assert response.json()["error"]["details"] == {"database": "ok", "broker": "unavailable"}
    assert elapsed < 5


def test_readiness_is_503_when_the_database_does_not_answer(db, monkeypatch):
    from django.db import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", refuse)
        response = APIClient().get("/health/ready")
    assert response.status_code == 503
    assert response.json()["error"]["details"] == {"database": "unavailable", "broker": "ok"}


# --- the sample alert rules ---------------------------------------------------------------------


def test_the_sample_alert_rules_name_only_metrics_the_hub_exports(db, metrics_client):
    rules = yaml.safe_load(
        (django_settings.BASE_DIR / "docs" / "prometheus-alerts.yml").read_text()
    )
    exported = {
        family.name
        for family in text_string_to_metric_families(
            metrics_client.get("/metrics").content.decode()
        )
    }
    named = {
        (rule["alert"], metric)
        for group in rules["groups"]
        for rule in group["rules"]
        for metric in re.findall(r"concordat_[a-z0-9_]+", rule["expr"])
    }
    assert named, "the rule file names no metric"
    assert {(alert, metric) for alert, metric in named if metric not in exported} == set()
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "ConcordatDeadLetters",
        "ConcordatSequencerStalled",
        "ConcordatPeerUnreachable",
    } <= alerts


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_the_sample_alert_rules_pass_promtools_checks_and_unit_tests():
    docs = django_settings.BASE_DIR / "docs"
    for command in (
        ["promtool", "check", "rules", "prometheus-alerts.yml"],
        ["promtool", "test", "rules", "prometheus-alerts.test.yml"],
    ):
        done = subprocess.run(command, cwd=docs, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_the_exposition_passes_promtools_lint(acme_submitter, metrics_client):
    make_peer("bravo.hub", url="http://127.0.0.1:1")
    vetted_entry(acme_submitter)
    text = metrics_client.get("/metrics").content
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
