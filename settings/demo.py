"""Demo settings: SQLite and a file-system Celery transport, so no database or broker server is needed.

``CONCORDAT_DEMO_NAME`` names the demo hub whose files (``var/NAME/``) these settings use; it
defaults to ``hub-a``, the hub ``make demo`` starts, so that
``DJANGO_SETTINGS_MODULE=settings.demo manage.py create_member …`` acts on the running demo.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "demo-only-not-secret")
# DEBUG stays off (as on a real hub) unless DJANGO_DEBUG says otherwise: API errors are the
# documented JSON, pages are the hub's own; static files are served by WhiteNoise either way.

from settings.base import *  # noqa: F403

DEMO_NAME = os.environ.get("CONCORDAT_DEMO_NAME", "hub-a")
_VAR = BASE_DIR / "var" / DEMO_NAME  # noqa: F405
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _VAR / "db.sqlite3",
        # The web server and the Celery worker write at once: wait for the lock, take it up front.
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
}
HUB_KEY_PATH = str(_VAR / "hub-key.pem")
HUB_ID = os.environ.get("CONCORDAT_HUB_ID", f"{DEMO_NAME}.demo")
WITNESS_KEY_PATH = str(_VAR / "witness-key.pem")
WITNESS_NAME = f"{HUB_ID}/witness"
_QUEUE = _VAR / "broker"
BROKER_FOLDERS = ("out", "processed", "control")
# A process that names its hub (CONCORDAT_DEMO_NAME: the demo's hub processes, an operator's
# ``manage.py``) gets the hub's folders; the demo command itself, which runs without it and makes
# each hub's folders, creates nothing here, so a demo under another --hub-name leaves no empty
# ``var/hub-a``.
if "CONCORDAT_DEMO_NAME" in os.environ:
    for _folder in BROKER_FOLDERS:
        (_QUEUE / _folder).mkdir(parents=True, exist_ok=True)
# With a host name, kombu does not warn "No hostname was supplied" on every connection.
CELERY_BROKER_URL = "filesystem://localhost//"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(_QUEUE / "out"),
    "data_folder_out": str(_QUEUE / "out"),
    "data_folder_processed": str(_QUEUE / "processed"),
    "control_folder": str(_QUEUE / "control"),
}
CELERY_RESULT_BACKEND = None

# Static files straight from the apps (no collectstatic step in the demo).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Browsers keep cookies per host, not per port: the demo's hubs all run on 127.0.0.1, so each
# names its own session and CSRF cookies, and signing in to one hub's admin keeps the others'.
SESSION_COOKIE_NAME = f"concordat_{DEMO_NAME}_session"
CSRF_COOKIE_NAME = f"concordat_{DEMO_NAME}_csrftoken"
