"""The admin as a daily tool for consortium admins: the review queue, the entry page, the audit
log's links, and the vote tally that agrees with the quorum rule."""

import re

import pytest
from django.test import Client

from federation.vetting.policy import vote_tally
from tests.federation.vetting_helpers import approve, set_policy, submit_entry

CHANGELIST = "/admin/federation/entry/"


@pytest.fixture
def connie(consortium_admin) -> Client:
    client = Client()
    client.force_login(consortium_admin.user)
    return client


def test_the_admins_tally_leaves_out_a_vote_the_quorum_leaves_out(
    connie, acme_submitter, globex_submitter, globex_reviewer
):
    """Globex approves, then adds the signal itself: its vote no longer counts towards the
    quorum, and the admin's column says so."""
    set_policy(quorum=2)
    entry = submit_entry(acme_submitter)
    assert approve(globex_reviewer, entry).status_code == 200
    assert vote_tally(entry_id=entry.pk) == (1, 0)
    globex_submitter.submit(signal={"type": entry.signal_type, "value": entry.value})

    page = connie.get(CHANGELIST, {"state__exact": "pending"}).content.decode()

    assert vote_tally(entry_id=entry.pk) == (0, 0)
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{entry.value[:16]}(?:(?!</tr>).)*</tr>", page, re.S)
    assert row is not None
    assert '<td class="field-approvals">0 / 0</td>' in row.group(0)
