"""The hub's home page at ``/``: what this hub is and where to go next (the admin, the reports,
the API docs and the log's public key). Public, and it reads nothing but the hub's settings."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.shortcuts import render
from django.views import View

from federation.transparency.checkpoints import hub_verifier_key


class LandingView(View):
    def get(self, request):
        try:
            vkey = hub_verifier_key()
        except ImproperlyConfigured:  # no hub key yet: the page still answers, and says so
            vkey = None
        return render(request, "landing.html", {"hub_id": settings.HUB_ID, "vkey": vkey})
