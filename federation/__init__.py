"""Contributions, vetting, the transparency log and (later) propagation between hubs."""
