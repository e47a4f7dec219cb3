"""The report forms: they turn query strings into ``ReportFilters`` and say what is wrong with
bad input (shown on the page, or a 400 for CSV), so no input can cause a server error."""

import re
from datetime import UTC, date, datetime, time, timedelta

from django import forms

from federation.contributions.models import Label, SignalType
from federation.reports.selectors import GRANULARITIES, ReportFilters
from members.models import Organisation

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_HEX = re.compile(r"[0-9a-f]{1,128}")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _check_years(*days: date | None) -> None:
    # The end of a period is the next midnight, which must still be a representable date.
    if any(day is not None and day.year > 9998 for day in days):
        raise forms.ValidationError("Dates run up to the year 9998.")


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _add_from_field(form: forms.Form, *, label: str) -> None:
    """``from`` is a Python keyword, so the field cannot be declared in a class body; it goes first."""
    form.fields = {
        "from": forms.DateField(
            required=False, label=label, widget=forms.DateInput(attrs={"type": "date"})
        ),
        **form.fields,
    }


class FilterForm(forms.Form):
    """Period (``from``/``to``, inclusive dates), member, label, signal type and bucket size."""

    to = forms.DateField(
        required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    member = forms.ChoiceField(required=False)
    label = forms.ChoiceField(required=False)
    signal_type = forms.ChoiceField(
        required=False,
        choices=[("", "any type"), *SignalType.choices],
        label="Signal type",
    )
    granularity = forms.ChoiceField(
        required=False,
        choices=[(name, name) for name in GRANULARITIES],
        label="Per",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _add_from_field(self, label="From")
        self.fields["member"].choices = [
            ("", "all members"),
            *((slug, slug) for slug in Organisation.objects.values_list("slug", flat=True)),
        ]
        self.fields["label"].choices = [
            ("", "all labels"),
            *((slug, slug) for slug in Label.objects.values_list("slug", flat=True)),
        ]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        _check_years(start, end)
        if start and end and end < start:
            raise forms.ValidationError("The period ends before it starts.")
        return cleaned

    def filters(self) -> ReportFilters:
        """The validated filters; call after ``is_valid()`` returned True."""
        data = self.cleaned_data
        return ReportFilters(
            start=_midnight(data["from"]) if data.get("from") else None,
            end=_midnight(data["to"] + timedelta(days=1)) if data.get("to") else None,
            member=data.get("member") or None,
            label=data.get("label") or None,
            signal_type=data.get("signal_type") or None,
            granularity=data.get("granularity") or "day",
        )


class SearchForm(forms.Form):
    """Who shared what: a hash value (exact, any type) and/or a member."""

    value = forms.CharField(required=False, max_length=128, label="Hash value")
    member = forms.ChoiceField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["value"].widget.attrs.update(
            {"placeholder": "hex digest, e.g. an md5, sha256 or pdq value", "size": 70}
        )
        self.fields["member"].choices = [
            ("", "any member"),
            *((slug, slug) for slug in Organisation.objects.values_list("slug", flat=True)),
        ]

    def clean_value(self) -> str:
        value = self.cleaned_data["value"].strip().lower()
        if value and not _HEX.fullmatch(value):
            raise forms.ValidationError("A hash value is written in hexadecimal digits.")
        return value

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("value") and not cleaned.get("member"):
            raise forms.ValidationError("Give a hash value, a member, or both.")
        return cleaned


class TransparencyForm(forms.Form):
    """A month (``period=YYYY-MM``) or an explicit ``from``/``to``; the current month by default."""

    period = forms.CharField(required=False, max_length=7)
    # The same date widget as ``from`` (and as the overview's filters).
    to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _add_from_field(self, label="From")

    def clean_period(self) -> date | None:
        period = self.cleaned_data["period"].strip()
        if not period:
            return None
        match = _MONTH.fullmatch(period)
        if not match or not 1 <= int(match.group(2)) <= 12 or not 1 <= int(match.group(1)) <= 9998:
            raise forms.ValidationError("A period is a month written YYYY-MM, e.g. 2026-11.")
        return date(int(match.group(1)), int(match.group(2)), 1)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        month, start, end = cleaned.get("period"), cleaned.get("from"), cleaned.get("to")
        if month and (start or end):
            raise forms.ValidationError("Give either a month or a from/to period, not both.")
        _check_years(start, end)
        if (start is None) != (end is None):
            raise forms.ValidationError("A from/to period needs both dates.")
        if start and end and end < start:
            raise forms.ValidationError("The period ends before it starts.")
        return cleaned

    def bounds(self, today: date) -> tuple[date, date, str]:
        """First day, last day (inclusive) and a title for the period."""
        data = self.cleaned_data
        if data.get("from"):
            start, last = data["from"], data["to"]
            return start, last, f"{start:%d %B %Y} to {last:%d %B %Y}"
        month = data.get("period") or today.replace(day=1)
        return month, _next_month(month) - timedelta(days=1), f"{month:%B %Y}"

    def filters(self, today: date) -> ReportFilters:
        start, last, _ = self.bounds(today)
        return ReportFilters(start=_midnight(start), end=_midnight(last + timedelta(days=1)))
