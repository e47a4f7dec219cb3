"""The signed scope is what the member asked; a retraction goes wherever its add went, whatever
scope it names (docs/signing.md, "Distribution scope")."""

import pytest

from federation.contributions.models import Contribution
from federation.contributions.selectors import contributions_effective_scope

pytestmark = pytest.mark.django_db


def submit(party, **fields) -> Contribution:
    document = party.contribution(**fields)
    response = party.submit(document)
    assert response.status_code == 201, response.json()
    return Contribution.objects.get(uuid=document["uuid"])


def retract(party, add: Contribution, scope: str) -> Contribution:
    signal = {"type": add.entry.signal_type, "value": add.entry.value}
    return submit(party, action="retract", labels=[], signal=signal, scope=scope)


def effective(contribution: Contribution) -> str:
    return contributions_effective_scope(contribution_ids=[contribution.pk])[contribution.pk]


@pytest.mark.parametrize("scope", ["hub", "peers", "federation"])
def test_an_add_travels_as_far_as_its_signed_scope(acme_submitter, scope):
    assert effective(submit(acme_submitter, scope=scope)) == scope


def test_a_narrower_retract_is_accepted_withdraws_the_add_and_travels_as_far_as_it(
    acme_submitter,
):
    add = submit(acme_submitter, scope="federation")
    withdrawal = retract(acme_submitter, add, scope="hub")
    add.refresh_from_db()
    assert add.status == Contribution.Status.WITHDRAWN and add.withdrawn_by_id == withdrawal.pk
    assert withdrawal.scope == "hub"  # the signed scope is kept as signed
    assert effective(withdrawal) == "federation"


def test_a_wider_retract_travels_no_further_than_its_add(acme_submitter):
    add = submit(acme_submitter, scope="hub")
    assert effective(retract(acme_submitter, add, scope="federation")) == "hub"


def test_a_retract_of_several_adds_travels_as_far_as_the_widest(acme_submitter):
    value = submit(acme_submitter, scope="hub").entry.value
    submit(acme_submitter, scope="peers", signal={"type": "pdq", "value": value})
    add = Contribution.objects.filter(entry__value=value).first()
    withdrawal = retract(acme_submitter, add, scope="hub")
    assert Contribution.objects.filter(withdrawn_by=withdrawal).count() == 2
    assert effective(withdrawal) == "peers"


def test_effective_scopes_are_read_in_two_queries(acme_submitter, django_assert_num_queries):
    adds = [submit(acme_submitter, scope="federation") for _ in range(3)]
    retracts = [retract(acme_submitter, add, scope="hub") for add in adds]
    ids = [c.pk for c in adds + retracts]
    with django_assert_num_queries(2):
        scopes = contributions_effective_scope(contribution_ids=ids)
    assert set(scopes.values()) == {"federation"} and len(scopes) == 6
