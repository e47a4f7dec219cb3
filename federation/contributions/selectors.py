"""Reading contributions and entries."""

from django.db.models import Prefetch, QuerySet

from federation.contributions.models import Contribution, ContributionScope, Entry, Label

# Distribution scopes from narrowest to widest (docs/signing.md, "Distribution scope").
SCOPE_WIDTH = {
    ContributionScope.HUB: 0,
    ContributionScope.PEERS: 1,
    ContributionScope.FEDERATION: 2,
}


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


def contributions_effective_scope(*, contribution_ids) -> dict[int, str]:
    """How far this hub may pass each contribution on: its *effective* scope.

    The signed ``scope`` is what the member asked and is never rewritten. An ``add`` made on this
    hub travels as far as its signed scope. A ``retract`` travels wherever the adds it withdrew
    travelled — the widest of their effective scopes — whatever scope it names itself: a
    retraction must reach every hub its add reached, and a retraction sent where the add never
    went would only disclose the signal. (Federation adds arrival receipts, which hold the
    effective scope of a relayed contribution as downgraded on arrival; this rule then reads
    the adds' receipts instead of their signed scope.) Two queries, whatever the number of ids.
    """
    rows = list(
        Contribution.objects.filter(pk__in=list(contribution_ids)).values_list(
            "pk", "action", "scope"
        )
    )
    effective = {pk: scope for pk, action, scope in rows if action == Contribution.Action.ADD}
    retracts = {pk: scope for pk, action, scope in rows if action == Contribution.Action.RETRACT}
    withdrawn: dict[int, list[str]] = {}
    for retract_id, scope in Contribution.objects.filter(
        withdrawn_by_id__in=list(retracts)
    ).values_list("withdrawn_by_id", "scope"):
        withdrawn.setdefault(retract_id, []).append(scope)
    for pk, own_scope in retracts.items():
        adds = withdrawn.get(pk)
        effective[pk] = max(adds, key=SCOPE_WIDTH.__getitem__) if adds else own_scope
    return effective
