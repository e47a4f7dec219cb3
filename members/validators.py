"""The one check for names other people are shown: organisation names, signing-key labels,
credential names and incident names.

Such a name appears in the admin, the reports, API answers and audit events read by other members
and auditors. Invisible or reordering characters would let it say something other than what it
looks like (U+202E RIGHT-TO-LEFT OVERRIDE shows the rest of a name reversed; a zero-width space
makes two different names look the same), so they are refused rather than stored verbatim. Refused: every character
of Unicode categories Cc (controls, including tab and newline), Cf (format: bidi embeddings,
overrides and isolates, zero-width space/joiners, word joiner, BOM, soft hyphen), Cs (surrogates),
Co (private use), Zl and Zp (line and paragraph separators). Models, serializers, admin forms and
services all call this one function.
"""

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from federation.errors import InvalidInput

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
UNSAFE_CODE = "unsafe_characters"


def unsafe_characters(value: str) -> list[str]:
    """The refused characters in ``value``, as ``U+XXXX`` (first occurrence of each, in order)."""
    found: list[str] = []
    for char in value:
        if unicodedata.category(char) in UNSAFE_CATEGORIES:
            point = f"U+{ord(char):04X}"
            if point not in found:
                found.append(point)
    return found


@deconstructible
class DisplayNameValidator:
    """A Django validator (models, forms; DRF runs Django validators too)."""

    message = (
        "This name contains invisible or text-direction characters ({points}); "
        "names shown to other members may not contain control, format (bidi, zero-width) "
        "or separator characters."
    )

    def __call__(self, value) -> None:
        if not isinstance(value, str):
            return
        found = unsafe_characters(value)
        if found:
            raise ValidationError(
                self.message.format(points=", ".join(found[:5])),
                code=UNSAFE_CODE,
                params={"characters": found},
            )

    def __eq__(self, other) -> bool:
        return isinstance(other, DisplayNameValidator)


validate_display_name = DisplayNameValidator()


def check_display_name(value: str, *, field: str) -> None:
    """The services' form of the check: a 400 ``unsafe_characters`` naming the field."""
    found = unsafe_characters(value or "")
    if found:
        raise InvalidInput(
            f"{field} contains invisible or text-direction characters ({', '.join(found[:5])}); "
            "names shown to other members may not contain control, format (bidi, zero-width) "
            "or separator characters.",
            code=UNSAFE_CODE,
            details={"field": field, "characters": found},
        )
