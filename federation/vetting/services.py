"""Services that move entries between vetting states; each writes its audit events in the
caller's (or its own) transaction."""

from datetime import datetime

from federation.contributions.models import Contribution, Entry
from federation.transparency.audit import AuditRecord, audit_record_many


def entries_mark_retracted_if_unsupported(
    *, entry_ids: set[int], actor: dict, now: datetime
) -> None:
    """Entries left with no active add leave the active set (they stay in history)."""
    if not entry_ids:
        return
    supported = set(
        Contribution.objects.filter(
            entry_id__in=entry_ids,
            action=Contribution.Action.ADD,
            status=Contribution.Status.ACTIVE,
        ).values_list("entry_id", flat=True)
    )
    unsupported = sorted(entry_ids - supported)
    changed = list(
        Entry.objects.filter(pk__in=unsupported)
        .exclude(state=Entry.State.RETRACTED)
        .values_list("pk", "state")
    )
    Entry.objects.filter(pk__in=[pk for pk, _ in changed]).update(
        state=Entry.State.RETRACTED, state_changed_at=now, updated_at=now
    )
    audit_record_many(
        AuditRecord(
            action="entry.retracted",
            actor=actor,
            object_type="entry",
            object_id=str(pk),
            data={"from": state, "to": Entry.State.RETRACTED},
        )
        for pk, state in changed
    )
