"""TAXII 2.1 benchmark (run with `make bench`), behind a live gunicorn (one worker):

1. sequencing: N indicator versions (one per vetted entry, as the migration writes them for an
   existing shared set) numbered and rendered by ``stix_versions_sequence`` (through
   ``manage.py shell``, so including its start-up), versions/s;
2. a full read with taxii2-client's ``as_pages`` (pages of 10,000, the server's maximum), the
   client parsing every page, objects/s (target >= 10,000/s); median of
   CONCORDAT_BENCH_TAXII_PULLS (default 3) reads.

N is CONCORDAT_BENCH_TAXII_ENTRIES (default 100,000), written with COPY (tests/support/bench_seeding.py).
"""

import os
import statistics
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from taxii2client.v21 import Collection, as_pages

from federation.taxii.selectors import ALL_COLLECTION
from tests.support.bench_seeding import seed_vetted_pdq_entries
from tests.support.harness import running_hub

pytestmark = pytest.mark.bench

ENTRIES = int(os.environ.get("CONCORDAT_BENCH_TAXII_ENTRIES", 100_000))
PULLS = int(os.environ.get("CONCORDAT_BENCH_TAXII_PULLS", 3))


def test_bench_taxii():
    with running_hub("taxiibench", web_workers=1) as hub:
        hub.create_member(
            org="acme", user="alice", role="submitter", trusted=True,
            signing_key=Ed25519PrivateKey.generate(), token=True,
        )  # fmt: skip
        token = hub.create_member(org="globex", user="gus", role="reviewer", token=True)["token"]
        seed_vetted_pdq_entries(hub, [f"{i:064x}" for i in range(ENTRIES)], label="attack-footage")
        hub.sql(
            "INSERT INTO federation_stixobjectversion (kind, entry_id, signal_type, state, "
            "changed_at, stix_id, generation, revoked, created_by, document, is_latest) "
            "SELECT 'indicator', id, '', state, state_changed_at, '', 0, false, '', '', false "
            "FROM federation_entry ORDER BY id"
        )
        collection = Collection(
            f"{hub.url}/taxii2/shared/collections/{ALL_COLLECTION}/",
            user="bench",
            password=token,
        )

        started = time.perf_counter()
        hub.manage(
            "shell",
            "-c",
            "from federation.taxii.versions import stix_versions_sequence as s; print(s())",
        )
        sequencing = time.perf_counter() - started

        seconds = []
        for _ in range(PULLS):
            started = time.perf_counter()
            read = sum(
                len(envelope.get("objects", []))
                for envelope in as_pages(collection.get_objects, per_request=10_000)
            )
            seconds.append(time.perf_counter() - started)
            assert read == ENTRIES + 1  # and acme's identity

        median = statistics.median(seconds)
        print(
            f"\nTAXII, {ENTRIES:,} entries: sequencing {sequencing:.1f} s "
            f"({ENTRIES / sequencing:,.0f} versions/s); as_pages, pages of 10,000: "
            f"median {median:.2f} s of {', '.join(f'{s:.2f}' for s in seconds)} "
            f"= {(ENTRIES + 1) / median:,.0f} objects/s"
        )
        assert (ENTRIES + 1) / median >= 10_000
