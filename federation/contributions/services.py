"""Submitting signed contributions, one or thousands at a time: checks, then storage.

The checks (``federation.contributions.checks``) judge every item in a tight loop (structure,
key, time window, Ed25519 signature) under a context given to them; for a member's own
submissions that is ``local_check_context``. The valid items are then stored in one transaction
(``federation.contributions.storage``), chunk by chunk as they are verified: each chunk costs a
fixed number of queries whatever its size, and the next chunks are parsed (on a thread of
their own) and verified (in the verification processes) while one is written. Items are independent: a bad item is reported (and audited, docs/api.md "What is
audited") while the good ones are stored.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from federation.contributions.checks import (
    CheckContext,
    MemberKeys,
    TimeRule,
    check_contributions_in_chunks,
)
from federation.contributions.models import Label
from federation.contributions.storage import (
    ContributionResult,
    contributions_store,
    submitting_organisation,
)
from federation.monitoring.counters import ingest_counted
from federation.vetting.models import Incident
from members.actors import Actor
from members.models import Organisation

# Items per chunk of a request: parsed and verified ahead while the chunks before are written.
# Each chunk costs its fixed statements (chunks of 2,000 saved PostgreSQL about 3 µs an item),
# but the writer starts a chunk only once all of it is verified and ends with the last one
# alone: at 2,000, a request of 2,000 was two chunks, 250 and 1,750, the second written with
# nothing beside it, and 5 requests of 2,000 took longer in three runs of three.
CHUNK_SIZE = 1000
# The first chunk's size: its verification is the one that nothing overlaps, so it is small.
FIRST_CHUNK_SIZE = 250


def local_check_context(*, organisation: Organisation, now: datetime) -> CheckContext:
    """The context of a member submitting to this hub: contributions of this hub, signed for the
    organisation by one of its keys (loaded once), under the local time rule."""
    hub = settings.HUB_ID
    return CheckContext(
        origin_hub=hub,
        member=organisation.slug,
        keys=MemberKeys.of_organisation(organisation, hub=hub),
        time=TimeRule.local(now=now),
        labels=dict(Label.objects.filter(active=True).values_list("slug", "id")),
        incidents=lambda: frozenset(Incident.objects.values_list("pk", flat=True)),
    )


def contributions_submit(
    *,
    actor: Actor,
    items: Sequence[object],
    request_evidence: Callable[[], Mapping[str, Any]] | None = None,
) -> list[ContributionResult]:
    """Check and store ``items`` (each ``{"contribution": {...}, "signature": "..."}``) for the
    organisation of ``actor`` (a member user). Returns one result per item, in input order.

    ``request_evidence`` (called only if needed: size and digest of the HTTP body, from the API)
    goes into the one event that records the request's malformed items, if it has any."""
    organisation = submitting_organisation(actor)
    now = timezone.now()
    context = local_check_context(organisation=organisation, now=now)
    chunks = check_contributions_in_chunks(
        items=items, context=context, chunk_size=CHUNK_SIZE, first_chunk_size=FIRST_CHUNK_SIZE
    )
    results = contributions_store(
        actor=actor,
        outcome=chunks,
        item_count=len(items),
        label_ids=context.labels,
        now=now,
        request_evidence=request_evidence,
    )
    ingest_counted(results=results)
    return results
