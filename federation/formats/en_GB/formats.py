"""Date and time formats for the hub's pages (admin, reports): every time with its time zone, in
24-hour form, so that an admin comparing a time with a log or a partner's report knows what it
means. Django's locale formats (``j M Y, P``) carry no zone."""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i:s T"
