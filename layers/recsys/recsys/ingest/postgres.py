"""The Postgres event source: one (tenant, surface, UTC day) of an `exposure_events` table, as the JSON lines the
file sources give, so that the same contract, quarantine and canonical partitions apply to it.

The raw URI is a libpq URI, e.g. `postgresql://recsys@db:5432/recsys?table=exposure_events` (`table` may be
schema-qualified; default exposure_events); credentials come from the URI, libpq's environment (PGPASSWORD,
~/.pgpass) or RECSYS_DATABASE__SECRET_ARN. The table has the seed's shape (migrations/0001): the tenant by
`tenant_id` (tenants.external_id or its id), one row per served response whose `response.items` become one exposure
event each (the seed's source), and, where present, this project's columns: a row with `item_id` set is one event
with its `user_id`, `rank`, `event_type` and `event_id`. Postgres renders each event as a JSON line (the values
typed as stored, so a non-string item in a response is quarantined as in a file), read with a server-side cursor in
batches of `BATCH_ROWS`, in (occurred_at, id) order, which fixes dedup's "first seen". Each line carries the row's
`row_id` (an unknown field to the contract), so a quarantined line names its row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from recsys.database.connection import connect
from recsys.database.settings import DatabaseSettings, redacted, split_source_uri
from recsys.days import day_start
from recsys.errors import ConfigError
from recsys.store import NotFound

DEFAULT_TABLE = "exposure_events"
BATCH_ROWS = 50_000  # rows fetched per round trip: bounds the memory a day's read holds
_EVENT_COLUMNS = ("user_id", "item_id", "rank", "event_type", "event_id")


@dataclass(frozen=True)
class PostgresDay:
    """A day of events in a Postgres table, read like a raw file (`source`, `dated`, `pieces`)."""

    uri: str  # the raw URI as configured
    tenant: str
    surface: str
    day: dt.date
    database: DatabaseSettings
    dated = True  # the query selects the day: every line belongs to it

    @property
    def source(self) -> str:
        return redacted(self.uri)

    def _open(self) -> tuple[psycopg.Connection, str]:
        libpq, ours = split_source_uri(self.uri)
        try:
            conn = connect(self.database, libpq)
        except psycopg.OperationalError as err:
            raise ConfigError(f"cannot connect to the raw events database {self.source}: {err}") from None
        return conn, ours.get("table") or DEFAULT_TABLE

    def _query(self, conn: psycopg.Connection, table: str) -> tuple[sql.Composed, dict] | None:
        """The day's query, or None when the tenant is not in `tenants` (no events, as in the seed)."""
        relation = sql.SQL(".").join(sql.Identifier(part) for part in table.split("."))
        try:
            columns = {
                row[0]
                for row in conn.execute(
                    "SELECT attname FROM pg_attribute"
                    " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (table,),
                )
            }
        except psycopg.errors.UndefinedTable:
            raise NotFound(f"raw events table {table} does not exist in {self.source}") from None
        finally:
            conn.rollback()
        found = conn.execute(
            "SELECT id FROM tenants WHERE external_id = %s OR id::text = %s", (self.tenant, self.tenant)
        ).fetchone()
        if found is None:
            return None
        start = day_start(self.day)
        params = {
            "tenant": self.tenant,
            "tenant_id": found[0],
            "surface": self.surface,
            "start": start,
            "end": start + dt.timedelta(days=1),
        }
        return _day_query(relation, columns), params

    def has_events(self) -> bool:
        """Whether the table holds any row of this day (a cheap probe before a read)."""
        conn, table = self._open()
        with conn:
            query = self._query(conn, table)
            if query is None:
                return False
            statement, params = query
            probe = sql.SQL("SELECT EXISTS ({})").format(statement)
            return bool(conn.execute(probe, params).fetchone()[0])

    def pieces(self, size: int | None = None) -> Iterator[bytes]:
        """The day's events as JSON lines, a batch of rows at a time."""
        conn, table = self._open()
        with conn:
            query = self._query(conn, table)
            if query is None:
                return
            statement, params = query
            with conn.cursor(name="recsys_ingest_day") as cursor:
                cursor.itersize = BATCH_ROWS
                cursor.execute(statement, params)
                while rows := cursor.fetchmany(BATCH_ROWS):
                    yield "".join(row[0] + "\n" for row in rows).encode()


def _day_query(relation: sql.Composable, columns: set[str]) -> sql.Composed:
    """One JSON line per event of the day, in (occurred_at, id, item position) order."""

    def column(name: str, cast: str = "") -> sql.Composable:
        return sql.SQL("e.{}{}").format(sql.Identifier(name), sql.SQL(cast)) if name in columns else sql.SQL("NULL")

    def line(item: sql.Composable, rank: sql.Composable) -> sql.Composed:
        return sql.SQL(
            "json_build_object('v', 1, 'ts', to_char(e.occurred_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'tenant', %(tenant)s::text, 'surface', e.surface, "
            "'user_id', {user_id}, 'session_id', e.session_id, 'request_id', {request_id}, 'item_id', {item}, "
            "'rank', {rank}, 'event_type', {event_type}, 'event_id', {event_id}, 'row_id', e.id)::text"
        ).format(
            user_id=column("user_id"),
            request_id=column("request_id", "::text"),
            item=item,
            rank=rank,
            event_type=column("event_type"),
            event_id=column("event_id"),
        )

    day = sql.SQL(
        "e.tenant_id = %(tenant_id)s AND e.surface = %(surface)s "
        "AND e.occurred_at >= %(start)s AND e.occurred_at < %(end)s"
    )
    branches = []
    if "item_id" in columns:  # this project's rows: one event each
        branches.append(
            sql.SQL("SELECT {line} AS line, e.occurred_at, e.id, 0::bigint AS n FROM {rel} e WHERE {day}{own}").format(
                line=line(sql.SQL("e.item_id"), column("rank")),
                rel=relation,
                day=day,
                own=sql.SQL(" AND e.item_id IS NOT NULL") if "response" in columns else sql.SQL(""),
            )
        )
    if "response" in columns:  # the seed's rows: one exposure per item of the response (values as typed there)
        branches.append(
            sql.SQL(
                "SELECT {line} AS line, e.occurred_at, e.id, x.n FROM {rel} e "
                "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(e.response->'items') = 'array' "
                "THEN e.response->'items' ELSE '[]'::jsonb END) WITH ORDINALITY AS x(elem, n) "
                "WHERE {day}{seed}"
            ).format(
                line=line(sql.SQL("x.elem->'item_id'"), sql.SQL("x.elem->'rank'")),
                rel=relation,
                day=day,
                seed=sql.SQL(" AND e.item_id IS NULL") if "item_id" in columns else sql.SQL(""),
            )
        )
    if not branches:
        raise ConfigError("the raw events table has neither an item_id column nor a response column")
    union = sql.SQL(" UNION ALL ").join(branches)
    return sql.SQL("SELECT line FROM ({}) AS events ORDER BY occurred_at, id, n").format(union)
