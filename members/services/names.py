"""The check every service runs on a name other people are shown (an organisation's name, a key's
label, a credential's name, a peer's name): ``members.validators`` as a 400 ``unsafe_characters``."""

from federation.errors import InvalidInput
from members.validators import UNSAFE_CODE, unsafe_characters


def check_display_name(value: str, *, field: str) -> None:
    """Services' form of ``members.validators``: a 400 ``unsafe_characters`` naming the field."""
    found = unsafe_characters(value or "")
    if found:
        raise InvalidInput(
            f"{field} contains invisible or text-direction characters ({', '.join(found[:5])}); "
            "names shown to other members may not contain control, format (bidi, zero-width) "
            "or separator characters.",
            code=UNSAFE_CODE,
            details={"field": field, "characters": found},
        )
