"""A refusing sequencer is loud and visible: a row squatting the next leaf stops sequencing with
a critical log and a stored status that the log's status and health endpoints show; the status
reports the latest checkpoint's signed time, the unsequenced events and the oldest one's age."""

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from federation.transparency import log_selectors as selectors
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.models import AuditEvent, Checkpoint, SequencerStatus
from federation.transparency.sequencer import LogInconsistent, sequence_pending
from members.actors import Actor
from tests.support.tampering import as_superuser_bypassing_triggers

ACTOR = Actor.system("test")


def record(count: int) -> None:
    audit_record_many(
        AuditRecord(action="test.event", actor=ACTOR, object_id=str(i), data={"n": i})
        for i in range(count)
    )


def forge_row_at(leaf_index: int) -> AuditEvent:
    return AuditEvent.objects.create(
        action="forged", actor_type="system", actor_id="x", leaf_index=leaf_index
    )


@pytest.mark.django_db
def test_a_row_squatting_the_next_leaf_makes_the_sequencer_refuse_loudly(
    auditor, anonymous, caplog
):
    record(3)
    sequence_pending()
    size = selectors.latest_checkpoint().tree_size
    forged = forge_row_at(size)
    record(2)
    with caplog.at_level(logging.CRITICAL), pytest.raises(LogInconsistent, match="claim leaves"):
        sequence_pending()
    assert any(
        r.levelno == logging.CRITICAL and f"({forged.pk}, {size})" in r.getMessage()
        for r in caplog.records
    )
    assert selectors.latest_checkpoint().tree_size == size  # nothing signed
    status = SequencerStatus.objects.get()
    assert status.state == "refused" and status.refusals == 1 and str(size) in status.reason
    with pytest.raises(LogInconsistent):
        sequence_pending()
    assert SequencerStatus.objects.get().refusals == 2

    body = auditor.client.get("/api/v1/log/status").json()
    assert body["healthy"] is False
    assert body["sequencer"]["state"] == "refused"
    assert body["sequencer"]["refusals"] == 2
    assert body["unsequenced_events"] == 2
    health = anonymous.get("/api/v1/log/health")
    assert health.status_code == 503
    assert health.json()["error"]["code"] == "log_refused"

    with as_superuser_bypassing_triggers():
        forged.delete()  # the operator removes the forged row
    assert sequence_pending() == 2
    assert SequencerStatus.objects.get().state == "ok"
    assert anonymous.get("/api/v1/log/health").status_code == 200


@pytest.mark.django_db
def test_a_row_claiming_a_leaf_far_beyond_the_tree_is_refused_too():
    record(2)
    sequence_pending()
    forge_row_at(10_000)
    record(1)
    with pytest.raises(LogInconsistent, match="10000"):
        sequence_pending()


@pytest.mark.django_db
def test_the_status_reports_the_signed_time_and_what_waits(auditor):
    record(2)
    sequence_pending()
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    record(3)
    waited = timezone.now() - timedelta(seconds=90)
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(leaf_index__isnull=True).update(occurred_at=waited)
    body = auditor.client.get("/api/v1/log/status").json()
    assert body["tree_size"] == checkpoint.tree_size
    assert body["checkpoint_signed_at"] == checkpoint.created_at.strftime(
        "%Y-%m-%dT%H:%M:%S.000000Z"
    )
    assert body["unsequenced_events"] == 3
    assert body["oldest_unsequenced_at"] == waited.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert 90 <= body["oldest_unsequenced_age_seconds"] < 120
    assert body["sequencer"]["state"] == "ok"


@pytest.mark.django_db
def test_the_status_is_for_auditors_only(acme_submitter, anonymous):
    assert acme_submitter.client.get("/api/v1/log/status").status_code == 403
    assert anonymous.get("/api/v1/log/status").status_code in (401, 403)


@pytest.mark.django_db
@override_settings(TRANSPARENCY_STALL_SECONDS=60)
def test_health_reports_a_stalled_log_when_events_wait_beyond_the_bound(anonymous):
    record(1)
    sequence_pending()
    assert anonymous.get("/api/v1/log/health").status_code == 200
    record(1)
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(leaf_index__isnull=True).update(
            occurred_at=timezone.now() - timedelta(seconds=61)
        )
    health = anonymous.get("/api/v1/log/health")
    assert health.status_code == 503
    assert health.json()["error"]["code"] == "log_stalled"
    assert health.json()["error"]["details"]["unsequenced_events"] == 1
