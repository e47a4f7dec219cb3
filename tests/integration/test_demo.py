"""`make demo` works: a hub on SQLite with a file-system broker, driven over HTTP, verified."""

import os
import subprocess
import sys

import pytest

from tests.integration.harness import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def test_demo_runs_a_hub_without_servers_and_the_verifier_catches_a_rewrite():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.demo"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "demo", "--contributions", "30", "--port", str(free_port()),
         "--hub-name", "hub-demo-test"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "30 created, 2 rejected" in output
    assert "bad_signature" in output and "unknown_label" in output
    assert "now vetted" in output and "now rejected" in output and "is now retracted" in output
    assert "RESULT: OK" in output
    assert "does NOT match the signed root" in output
