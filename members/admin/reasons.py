"""Admin actions that ask for a reason on an intermediate page, and applying a service to each
selected object with each refusal reported."""

from collections.abc import Callable, Iterable

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from federation.errors import ConcordatError


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Recorded with each decision and in the audit log.",
    )


def run_reason_action(
    modeladmin,
    request,
    queryset,
    *,
    title: str,
    button: str,
    apply: Callable[[object, str], None],
    targets: Callable[[Iterable], Iterable] | None = None,
):
    """Ask for a reason, then ``apply(obj, reason)`` to each target (the selected objects, or
    what ``targets`` derives from them), reporting each refusal as a message."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    objects = list(targets(queryset) if targets else queryset)
    if form.is_bound and form.is_valid():
        done = 0
        for obj in objects:
            try:
                apply(obj, form.cleaned_data["reason"])
                done += 1
            except ConcordatError as exc:
                modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
        if done:
            modeladmin.message_user(request, f"{title}: done for {done} of {len(objects)}.")
        return None  # back to the change list
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "button": button,
        "objects": objects,
        "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        "action": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "form": form,
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/concordat/reason_action.html", context)


def report_each(modeladmin, request, queryset, apply: Callable[[object], None], done_text: str):
    """Apply a service to each selected object, reporting refusals as messages."""
    done = 0
    for obj in queryset:
        try:
            apply(obj)
            done += 1
        except ConcordatError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done_text}: {done}.")
