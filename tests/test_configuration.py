"""Configuring a hub from the environment: a missing or malformed setting is one clear line, and a
hub configured as the README says passes Django's deployment checks."""

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.support.harness import ROOT


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONCORDAT_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "settings.base", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_secret_key_is_one_line_naming_the_variable():
    done = manage("check")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Set the environment variable DJANGO_SECRET_KEY" in lines[0]


def test_a_malformed_setting_is_one_line_naming_the_variable():
    done = manage("check", DJANGO_SECRET_KEY=secrets.token_urlsafe(50), CONCORDAT_HTTPS="maybe")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "manage.py: configuration error: CONCORDAT_HTTPS must be a boolean (true/false), not "
        "'maybe'. See README, 'Running a hub'."
    ]


DEPLOYED = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "hub.example.org",
    "CONCORDAT_HTTPS": "true",
}


@pytest.mark.parametrize("preload", [None, "true"])
def test_a_hub_deployed_as_the_readme_says_passes_check_deploy(preload):
    extra = {"CONCORDAT_HSTS_PRELOAD": preload} if preload else {}
    done = manage("check", "--deploy", "--fail-level", "WARNING", **DEPLOYED, **extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "W0" not in done.stdout + done.stderr


PROBE = """
import json
from django.test import Client
client = Client()
api = client.post("/api/v1/contributions/", b"{}", content_type="application/json")
page = client.get("/admin/login/")
secure = client.get("/api/v1/no-such-url/", secure=True)
print(json.dumps({"api": [api.status_code, api.json(), api.get("Location")],
                  "page": [page.status_code, page.get("Location")],
                  "secure_api": secure.status_code}))
"""


def test_behind_https_a_plain_http_api_call_is_refused_in_json_never_redirected():
    done = manage("shell", "-c", PROBE, **{**DEPLOYED, "DJANGO_ALLOWED_HOSTS": "testserver"})
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    status, body, location = seen["api"]
    assert (status, location) == (403, None)
    assert body["error"]["code"] == "https_required"
    assert body["error"]["details"]["url"] == "https://testserver/api/v1/contributions/"
    assert seen["page"] == [301, "https://testserver/admin/login/"]  # pages still redirect
    assert seen["secure_api"] == 404  # over HTTPS the request goes through to the API


def test_a_malformed_metrics_network_is_one_line_naming_the_variable():
    done = manage(
        "check",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        CONCORDAT_METRICS_ALLOWED_NETWORKS="10.0.0.0/8,10.0.0.300",
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "manage.py: configuration error: CONCORDAT_METRICS_ALLOWED_NETWORKS must be a "
        "comma-separated list of IP networks, not '10.0.0.300'. See README, 'Running a hub'."
    ]


MONITORING_PROBE = """
import json
from django.test import Client
client = Client(REMOTE_ADDR="10.0.0.7")
live = client.get("/health/live")
metrics = client.get("/metrics")
print(json.dumps({"live": [live.status_code, live.get("Location")],
                  "metrics": [metrics.status_code, metrics.get("Location")],
                  "groups_down": metrics.content.decode().count("_up{group=")}))
"""


def test_behind_https_the_probes_and_an_allowed_scraper_are_served_on_plain_http():
    done = manage(
        "shell", "-c", MONITORING_PROBE,
        **{
            **DEPLOYED,
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "CONCORDAT_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:9/nothing",  # no database: still served
        },
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["live"] == [200, None]
    assert seen["metrics"] == [200, None]
    assert seen["groups_down"] == 5
