"""Reading contributions and entries."""

from django.db.models import Prefetch, QuerySet

from federation.contributions.models import Contribution, Entry, Label


def contributions_for_organisation(*, organisation) -> QuerySet[Contribution]:
    return Contribution.objects.filter(organisation=organisation).select_related(
        "entry", "signing_key", "organisation"
    )


def entries_visible() -> QuerySet[Entry]:
    return Entry.objects.prefetch_related(
        Prefetch("labels", queryset=Label.objects.only("slug")),
    )


def entry_with_history(*, entry_id: int) -> Entry:
    return Entry.objects.prefetch_related(
        Prefetch("labels", queryset=Label.objects.only("slug")),
        Prefetch(
            "contributions",
            queryset=Contribution.objects.select_related("organisation", "signing_key").order_by(
                "id"
            ),
        ),
    ).get(pk=entry_id)
