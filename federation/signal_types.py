"""Signal types and the validation and normalisation of their values."""

import re

from federation.contributions.models import SignalType

# A vpdq value is the SHA-256 of its canonical frame list (federation/video/frames.py): the
# frames themselves travel beside it in the signal (docs/video.md).
HEX_LENGTHS = {
    SignalType.PDQ: 64,
    SignalType.MD5: 32,
    SignalType.SHA256: 64,
    SignalType.VPDQ: 64,
}
_HEX = re.compile(r"[0-9a-fA-F]+")


def normalise_signal_value(signal_type: str, value: object) -> str:
    """Return the canonical (lowercase hex) form of ``value`` or raise ``ValueError`` saying why."""
    # The type is checked to be a string first: it comes straight from client JSON.
    length = HEX_LENGTHS.get(signal_type) if isinstance(signal_type, str) else None
    if length is None:
        shown = repr(signal_type)[:40] if isinstance(signal_type, str) else "that"
        raise ValueError(f"unsupported signal type {shown}; use one of {sorted(HEX_LENGTHS)}")
    if not isinstance(value, str):
        raise ValueError("the signal value must be a string")
    if len(value) != length or not _HEX.fullmatch(value):
        raise ValueError(f"a {signal_type} value is {length} hexadecimal characters")
    return value.lower()
