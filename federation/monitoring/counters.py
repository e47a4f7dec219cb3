"""Counters kept by the processes that do the work, and the registry a scrape reads.

Ingest outcomes are counted where they happen: members' submissions (``contributions_submit``, in
the web processes) and items received from peers (``batch_receive``: pushed to a web process, or
pulled by a Celery worker). The database keeps no cheap total of them: their only record is one
audit event per item, and counting those grows with the whole log.

A counter lives in its process. gunicorn runs several worker processes and a scrape reaches one
of them, so a hub with more than one worker runs prometheus-client's **multiprocess mode**: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory, the same for every gunicorn and Celery
process on the machine, before they start; each process writes its counts to its own file there
and a scrape sums them all (docs/operations.md, "Counters and several processes"). Without it
(one process, tests, the demo), a scrape reports the counts of the process that answers.
"""

from prometheus_client import Counter

# Not in prometheus-client's global registry: a scrape builds its own (``federation.monitoring.registry``), so
# that in multiprocess mode the counters are read from the shared files, not twice.
INGEST_ITEMS = Counter(
    "concordat_ingest_items",
    "Contributions submitted by this hub's members, by outcome (created, duplicate, rejected).",
    ["outcome"],
    registry=None,
)
INGEST_REJECTIONS = Counter(
    "concordat_ingest_rejections",
    "Contributions of this hub's members rejected, by rejection code (docs/api.md).",
    ["code"],
    registry=None,
)
RECEIVED_ITEMS = Counter(
    "concordat_federation_received_items",
    "Items received from a peer hub, by peer, how (push, pull) and outcome (accepted, "
    "duplicate, rejected).",
    ["peer", "via", "outcome"],
    registry=None,
)
BATCHES_REFUSED = Counter(
    "concordat_federation_batches_refused",
    "Batches from a peer refused as a whole, by peer, how and code (docs/federation.md).",
    ["peer", "via", "code"],
    registry=None,
)
PUSH_FAILURES = Counter(
    "concordat_federation_push_failures",
    "Failed pushes to a peer (a batch not delivered: network error, HTTP error, or items the "
    "answer did not name), by peer; counted by the Celery workers.",
    ["peer"],
    registry=None,
)
PULL_FAILURES = Counter(
    "concordat_federation_pull_failures",
    "Failed pulls from a peer, by peer; counted by the Celery workers.",
    ["peer"],
    registry=None,
)
COUNTERS = (
    INGEST_ITEMS,
    INGEST_REJECTIONS,
    RECEIVED_ITEMS,
    BATCHES_REFUSED,
    PUSH_FAILURES,
    PULL_FAILURES,
)


def _tally(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def ingest_counted(*, results) -> None:
    """Count one submission's results (``contributions_submit``) by outcome and rejection code."""
    for outcome, count in _tally(result.status for result in results).items():
        INGEST_ITEMS.labels(outcome=outcome).inc(count)
    codes = _tally(str(result.error.get("code")) for result in results if result.error)
    for code, count in codes.items():
        INGEST_REJECTIONS.labels(code=code).inc(count)


def received_counted(*, peer: str, via: str, results) -> None:
    """Count one received batch's item results (``batch_receive``) by outcome."""
    for outcome, count in _tally(result.status for result in results).items():
        RECEIVED_ITEMS.labels(peer=peer, via=via, outcome=outcome).inc(count)


def batch_refused_counted(*, peer: str, via: str, code: str) -> None:
    BATCHES_REFUSED.labels(peer=peer, via=via, code=code).inc()


def push_failed_counted(*, peer: str) -> None:
    PUSH_FAILURES.labels(peer=peer).inc()


def pull_failed_counted(*, peer: str) -> None:
    PULL_FAILURES.labels(peer=peer).inc()
