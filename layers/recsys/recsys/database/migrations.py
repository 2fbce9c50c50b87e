"""The schema the project ships (migrations/NNNN_*.sql), applied in order, each once, under an advisory lock so that
concurrent publishers (or a publisher and `recsys db migrate`) apply it once."""

from __future__ import annotations

from pathlib import Path

import psycopg

FOLDER = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x5265_6373  # pg_advisory_xact_lock's key for "migrating recsys' schema"


def shipped() -> list[Path]:
    return sorted(FOLDER.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the shipped migrations not applied yet, in one transaction; the names applied now."""
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS recsys_schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM recsys_schema_migrations")}
        for path in shipped():
            if path.name in done:
                continue
            conn.execute(path.read_text())
            conn.execute("INSERT INTO recsys_schema_migrations (name) VALUES (%s)", (path.name,))
            applied_now.append(path.name)
    return applied_now
