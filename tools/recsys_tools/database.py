"""`recsys db`: apply the schema, load raw JSONL events into a Postgres `exposure_events` table (to try the Postgres
event source with the sample or synthetic data), and show what the signal store holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import psycopg
import psycopg.sql

from recsys.database.migrations import migrate
from recsys.events.contract import parse_timestamp
from recsys.ingest.sources import raw_files

_TEXT_FIELDS = ("session_id", "request_id", "user_id", "item_id", "event_type", "event_id")
_COPY_ROWS = 100_000  # rows sent per COPY (a new tenant is inserted between two)
COLUMNS = ("tenant_id", "occurred_at", "surface", *_TEXT_FIELDS, "rank")


@dataclass
class LoadReport:
    loaded: int = 0
    skipped: int = 0  # lines a typed row cannot hold (not JSON, no valid ts, a non-string field...)
    reasons: dict[str, int] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _lines(raw_uri: str, days: Iterable[dt.date]) -> Iterator[bytes]:
    seen: set[str] = set()
    for day in days:
        for raw in raw_files(raw_uri, day):
            if raw.source in seen:
                continue
            seen.add(raw.source)
            rest = b""
            for piece in raw.pieces():
                lines = (rest + piece).split(b"\n")
                rest = lines.pop()
                yield from lines
            if rest:
                yield rest


def _row(line: bytes, tenant_id: dict[str, object], conn: psycopg.Connection, report: LoadReport) -> tuple | None:
    """The table row of one raw line, or None (counted in `report`) when a typed row cannot hold it."""
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        report.skip("not JSON")
        return None
    if not isinstance(event, dict):
        report.skip("not an object")
        return None
    try:
        occurred_at = parse_timestamp(event["ts"])
    except (KeyError, TypeError, ValueError):
        report.skip("no valid ts")
        return None
    tenant, surface = event.get("tenant"), event.get("surface")
    if not isinstance(tenant, str) or not tenant.strip() or not isinstance(surface, str):
        report.skip("no tenant or surface")
        return None
    values = [event.get(name) for name in _TEXT_FIELDS]
    rank = event.get("rank")
    if any(value is not None and not isinstance(value, str) for value in values) or (
        rank is not None and (not isinstance(rank, int) or isinstance(rank, bool))
    ):
        report.skip("a field of another type")
        return None
    if any("\x00" in value for value in values if value):
        report.skip("a NUL character")  # Postgres text cannot hold it
        return None
    tenant = tenant.strip()
    if tenant not in tenant_id:
        tenant_id[tenant] = conn.execute(
            "INSERT INTO tenants (external_id, name) VALUES (%s, %s) ON CONFLICT (external_id) "
            "DO UPDATE SET external_id = EXCLUDED.external_id RETURNING id",
            (tenant, tenant),
        ).fetchone()[0]
        report.tenants.append(tenant)
    return (tenant_id[tenant], occurred_at, surface.strip(), *values, rank)


def load_events(
    conn: psycopg.Connection, raw_uri: str, days: Iterable[dt.date], table: str = "exposure_events"
) -> LoadReport:
    """Insert every line of the raw files of `days` as one row (this project's columns), in file order, in one
    transaction. Applies the shipped schema first. Lines a typed row cannot hold are skipped and counted."""
    migrate(conn)
    report = LoadReport()
    tenant_id: dict[str, object] = {}
    relation = psycopg.sql.SQL(".").join(psycopg.sql.Identifier(part) for part in table.split("."))
    statement = psycopg.sql.SQL("COPY {} ({}) FROM STDIN").format(
        relation, psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, COLUMNS))
    )
    with conn.transaction():
        rows: list[tuple] = []
        for line in _lines(raw_uri, days):
            if not line.strip():
                continue
            row = _row(line, tenant_id, conn, report)
            if row is not None:
                rows.append(row)
            if len(rows) >= _COPY_ROWS:
                _copy(conn, statement, rows, report)
        _copy(conn, statement, rows, report)
    return report


def _copy(conn: psycopg.Connection, statement: psycopg.sql.Composed, rows: list[tuple], report: LoadReport) -> None:
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    report.loaded += len(rows)
    rows.clear()
