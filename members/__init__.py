"""Organisations, their users and roles, signing keys and API credentials."""
