"""The hub's home page and the admin's link to the reports."""

import pytest
from django.test import Client

from federation.transparency.checkpoints import hub_verifier_key

pytestmark = pytest.mark.django_db


def test_home_page_links_admin_reports_api_docs_and_the_log_key():
    response = Client().get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for link in (
        'href="/admin/"',
        'href="/reports/"',
        'href="/api/docs/"',
        'href="/api/v1/log/key"',
    ):
        assert link in html
    assert hub_verifier_key() in html
    assert "URLconf" not in html  # not Django's debug 404 listing the URL patterns


def test_admin_view_site_link_leads_to_the_home_page(consortium_admin):
    client = Client()
    client.force_login(consortium_admin.user)
    html = client.get("/admin/").content.decode()
    assert 'href="/"' in html  # "View site"
    assert Client().get("/").status_code == 200


def test_auditor_admin_index_links_to_the_reports(auditor):
    client = Client()
    client.force_login(auditor.user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert 'href="/reports/"' in response.content.decode()


def test_member_admin_index_has_no_reports_link(acme_admin):
    acme_admin.user.is_staff = True
    acme_admin.user.save()
    client = Client()
    client.force_login(acme_admin.user)
    response = client.get("/admin/")
    assert 'href="/reports/"' not in response.content.decode()
