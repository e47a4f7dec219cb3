"""WSGI entry point (gunicorn federation.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from settings.env import configuration_errors_in_one_line

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
with configuration_errors_in_one_line("concordat (wsgi)"):
    application = get_wsgi_application()
