import cProfile
import pstats

import pytest

from tests.bench.test_bench_ingest import ITEMS, signed_pdq_items

pytestmark = pytest.mark.bench


def test_profile(acme_submitter):
    from django.conf import settings

    from federation.contributions import services

    items = signed_pdq_items(
        acme_submitter.private_key, hub=settings.HUB_ID, member="acme", count=ITEMS, seed=3
    )
    profile = cProfile.Profile()
    profile.enable()
    services.contributions_submit(actor=acme_submitter.actor, items=items)
    profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(60)
