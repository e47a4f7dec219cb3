"""TAXII 2.1: the shared set served read-only to threat-intelligence platforms (docs/taxii.md)."""
