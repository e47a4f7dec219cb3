"""Reading the review queue, decisions, feedback, incidents, labels and the policy."""

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from federation.contributions.models import Contribution, Entry, Label
from federation.vetting.models import Decision, Feedback, Incident
from members.models import Organisation


def review_queue(*, organisation: Organisation) -> QuerySet[Entry]:
    """Pending entries ``organisation`` may still vote on: none of its active adds is on them and
    it has not voted in their current round."""
    own_add = Contribution.objects.filter(
        entry_id=OuterRef("pk"),
        organisation=organisation,
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
    )
    voted = Decision.objects.filter(
        entry_id=OuterRef("pk"),
        review_round=OuterRef("review_round"),
        kind=Decision.Kind.VOTE,
        organisation=organisation,
    )
    return (
        Entry.objects.filter(state=Entry.State.PENDING)
        .exclude(Exists(own_add))
        .exclude(Exists(voted))
        .prefetch_related(
            Prefetch("labels", queryset=Label.objects.only("slug")),
            Prefetch(
                "contributions",
                queryset=Contribution.objects.filter(
                    action=Contribution.Action.ADD, status=Contribution.Status.ACTIVE
                )
                .select_related("organisation")
                .only("entry_id", "organisation__slug", "incident_id"),
                to_attr="active_adds",
            ),
        )
    )


def decisions_for_entry(*, entry_id: int) -> QuerySet[Decision]:
    return (
        Decision.objects.filter(entry_id=entry_id)
        .select_related("organisation", "user")
        .order_by("created_at", "pk")
    )


def feedback_for_entry(*, entry_id: int) -> QuerySet[Feedback]:
    return (
        Feedback.objects.filter(entry_id=entry_id)
        .select_related("organisation")
        .order_by("created_at", "pk")
    )


def incidents_all() -> QuerySet[Incident]:
    return Incident.objects.order_by("-started_at", "pk")


def labels_all() -> QuerySet[Label]:
    return Label.objects.order_by("slug")
