"""Database plumbing the services share: what differs between PostgreSQL and SQLite stays here."""
