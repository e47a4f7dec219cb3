"""Small steps shared by the vetting, feedback, incident and retraction tests."""

from federation.contributions.models import Entry
from federation.transparency.models import AuditEvent
from federation.vetting.models import VettingPolicy
from members.models import Role
from tests.support.parties import Party, make_member, make_organisation


def submit_entry(party: Party, **overrides) -> Entry:
    """``party`` adds a fresh signal; returns its entry."""
    response = party.submit(**overrides)
    assert response.status_code == 201, response.json()
    return Entry.objects.get(pk=response.json()["entry_id"])


def reviewer_of(slug: str) -> Party:
    """A reviewer of a new member organisation ``slug`` (a third, fourth… organisation)."""
    return make_member(f"{slug}-reviewer", make_organisation(slug), Role.REVIEWER, with_key=False)


def set_policy(**fields) -> None:
    VettingPolicy.current()
    VettingPolicy.objects.filter(pk=1).update(**fields)


def approve(party: Party, entry: Entry, reason: str = ""):
    return party.client.post(
        f"/api/v1/entries/{entry.pk}/approve/", {"reason": reason}, format="json"
    )


def reject(party: Party, entry: Entry, reason: str = ""):
    return party.client.post(
        f"/api/v1/entries/{entry.pk}/reject/", {"reason": reason}, format="json"
    )


def feedback(party: Party, entry: Entry, opinion: str, note: str = ""):
    return party.client.put(
        f"/api/v1/entries/{entry.pk}/feedback/", {"opinion": opinion, "note": note}, format="json"
    )


def events(action: str, entry: Entry | None = None) -> list[AuditEvent]:
    queryset = AuditEvent.objects.filter(action=action)
    if entry is not None:
        queryset = queryset.filter(object_type="entry", object_id=str(entry.pk))
    return list(queryset.order_by("pk"))


def state_of(entry: Entry) -> str:
    entry.refresh_from_db()
    return entry.state


def error_code(response) -> str:
    return response.json()["error"]["code"]
