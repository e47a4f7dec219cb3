"""Server-rendered reports for auditors: who shared what, by period, member, label and type."""
