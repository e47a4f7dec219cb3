"""Vetting policy, decisions, incidents and member feedback."""
