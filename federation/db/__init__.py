"""Database plumbing: bulk inserts, advisory locks, lookups and the retry-after-a-lost-race helper; the PostgreSQL and SQLite branches live here."""
