"""What every API view does after answering: let go of its request and response.

DRF ties each request to itself and to its view in reference cycles (the request's
``parser_context`` names the request and the view; the view holds the request and, after
``dispatch``, the response). A cycle outlives the request until Python's cyclic collector runs a
full collection, which in a web worker can be hundreds of requests away, and meanwhile it keeps
the request's body and the response's content alive: a delta sync page of 10,000 changes is
about 3.7 MB, and a worker serving a full pull grew by about 370 MB per 1,000,000 entries
(measured, docs/sync.md).

``install`` (run once, by the URL patterns that route to the views: ``federation.urls``) wraps
``APIView.dispatch`` so that, once the view has answered, the view drops the request and the
response and the request's ``parser_context`` is emptied: no cycle holds either any more, and
both are freed as soon as the server has sent the response. (The view itself stays in Django's
own small cycle, ``view.head = view.get``, until a collection.)
"""

from rest_framework.views import APIView

_RELEASES = "_concordat_releases_after_dispatch"


def install() -> None:
    if getattr(APIView.dispatch, _RELEASES, False):
        return
    dispatch = APIView.dispatch

    def dispatch_then_release(self, request, *args, **kwargs):
        try:
            return dispatch(self, request, *args, **kwargs)
        finally:
            context = getattr(getattr(self, "request", None), "parser_context", None)
            if context is not None:
                context.clear()
            self.request = self.response = None

    setattr(dispatch_then_release, _RELEASES, True)
    dispatch_then_release.__wrapped__ = dispatch
    APIView.dispatch = dispatch_then_release
