"""The same formats for the ``en`` locale (see ``en_GB``)."""

from federation.formats.en_GB.formats import (  # noqa: F401
    DATE_FORMAT,
    DATETIME_FORMAT,
    SHORT_DATETIME_FORMAT,
    TIME_FORMAT,
)
