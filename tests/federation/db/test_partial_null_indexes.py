"""Migration 0033 indexes the audit events' leaf index and the change rows' position only where
set (a row is written with NULL there): both stay unique among the values set."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from federation.contributions.models import Entry
from federation.sync.models import EntryChange
from federation.transparency.audit import AuditRecord, audit_record
from federation.transparency.models import AuditEvent
from members.actors import Actor

pytestmark = pytest.mark.django_db


def test_two_events_cannot_take_one_leaf_index():
    first, second = (
        audit_record(AuditRecord(action="test.event", actor=Actor.system("test"))) for _ in range(2)
    )
    assert AuditEvent.objects.filter(leaf_index__isnull=True).count() == 2  # NULLs may repeat
    AuditEvent.objects.filter(pk=first.pk).update(leaf_index=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.filter(pk=second.pk).update(leaf_index=0)
    AuditEvent.objects.filter(pk=second.pk).update(leaf_index=1)


def test_two_change_rows_cannot_take_one_position():
    entry = Entry.objects.create(signal_type="md5", value="ab" * 16)
    first, second = EntryChange.objects.bulk_create(
        EntryChange(entry=entry, reason="vetted", recorded_at=timezone.now()) for _ in range(2)
    )
    EntryChange.objects.filter(pk=first.pk).update(position=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        EntryChange.objects.filter(pk=second.pk).update(position=1)
    EntryChange.objects.filter(pk=second.pk).update(position=2)
