"""API plumbing shared by every endpoint: the error shape and pagination."""
