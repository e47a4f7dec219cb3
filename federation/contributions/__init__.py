"""Signed contributions and the entries they build up."""
