"""``prepare_to_send``: what a process's first Celery send would do, done at its start (a web
process calls it from federation/wsgi.py), without connecting to the broker."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter, so that nothing a test before it did has imported or built anything.
SCRIPT = textwrap.dedent(
    """
    import sys
    import django
    django.setup()
    from celery import current_app
    from federation.enqueue import prepare_to_send
    app = current_app._get_current_object()
    before = (app.finalized, "kombu.transport.redis" in sys.modules)
    prepare_to_send()
    after = (app.finalized, "kombu.transport.redis" in sys.modules)
    router_built = "router" in app.amqp.__dict__
    print(before, after, router_built)
    """
)


def test_prepares_the_first_send_without_connecting_to_the_broker():
    # Nothing listens on port 1: a connection attempt would raise, and the script exit non-zero.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:1/1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    line = completed.stdout.strip()
    assert line == "(False, False) (True, True) True", line
