"""The web process's start-up (federation/wsgi.py): what it has loaded when it freezes start-up's
objects out of the cyclic collector's reach."""

import os
import subprocess
import sys

from tests.support.harness import ROOT

# Objects the collector tracks that a web worker's first request would add: after start-up,
# loading the URL patterns (which Django otherwise does on the first request) adds none.
_PROBE = """
import gc
import federation.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
print(len(gc.get_objects()))
"""


def test_the_url_patterns_and_views_are_loaded_before_the_freeze():
    """Otherwise the first request imports every view module after the freeze (about 23,000
    tracked objects), and each full collection of the worker's life walks them (docs/sync.md)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONCORDAT_"))}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "settings.base", "DJANGO_SECRET_KEY": "probe"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert int(done.stdout.split()[-1]) < 1_000


def test_the_web_process_switches_threads_within_a_millisecond():
    """A thread back from a query waits for the GIL at most the switch interval while another
    thread of the process is busy in Python: 1 ms, not the interpreter's 5 (docs/federation.md,
    "The two queues")."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONCORDAT_"))}
    done = subprocess.run(
        [sys.executable, "-c", "import sys, federation.wsgi; print(sys.getswitchinterval())"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "settings.base", "DJANGO_SECRET_KEY": "probe"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert float(done.stdout.split()[-1]) == 0.001


_VERIFIERS = """
import federation.wsgi
from federation.signature_processes import _Shared
print(_Shared.started is not None)
"""


def test_the_verification_processes_start_with_the_web_process():
    """Not on the first bulk request or received batch, which would wait for them (about 0.1 s
    each to start, docs/operations.md); not at all where they are turned off."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CONCORDAT_"))}
    env = {**base, "DJANGO_SETTINGS_MODULE": "settings.base", "DJANGO_SECRET_KEY": "probe"}
    for setting, started in (("true", "True"), ("false", "False")):
        done = subprocess.run(
            [sys.executable, "-c", _VERIFIERS],
            cwd=ROOT,
            env={**env, "CONCORDAT_VERIFY_PROCESSES": setting},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert done.stdout.split()[-1] == started
