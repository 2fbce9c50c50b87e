"""The Postgres event source: one (tenant, surface, UTC day) of an `exposure_events` table, judged by the same
contract as raw lines, quarantined the same way, written to the same canonical partitions.

The raw URI is a libpq URI, e.g. `postgresql://recsys@db:5432/recsys?table=exposure_events` (`table` may be
schema-qualified; default exposure_events); credentials come from the URI, libpq's environment (PGPASSWORD,
~/.pgpass) or RECSYS_DATABASE__SECRET_ARN. The table has the seed's shape (migrations/0001): the tenant by
`tenant_id` (tenants.external_id or its id), one row per served response whose `response.items` become one exposure
event each (the seed's source), and, where present, this project's columns: a row with `item_id` set is one event
with its `user_id`, `rank`, `event_type` and `event_id`.

The day's events are streamed by COPY (query) TO STDOUT as CSV, in (occurred_at, id, item position) order (which
fixes dedup's "first seen"), read by pyarrow's CSV reader in blocks into the columns pyarrow's JSON reader gives
for raw lines (`ts` as RFC 3339 UTC text, strings, rank), then judged by the same column-wise rules
(`recsys.events.parse.judge_rows`): typed columns need no JSON. A response item whose values no typed column holds
(a numeric item_id, a fractional rank) comes as its JSON text and is judged by the per-line contract. A quarantined
row's `raw` is its event as a JSON line with the table row's `row_id`; its `line` is its position in the day's read.
COPY streams rows as the query produces them and a thread receives them while the previous block is judged, with at
most QUEUED_BYTES waiting: bounded memory, like a server-side cursor, without a Python object per row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv
from psycopg import sql

from recsys.database.connection import connect
from recsys.database.settings import DatabaseSettings, redacted, split_source_uri
from recsys.days import day_start
from recsys.errors import ConfigError
from recsys.events.contract import RAW_SCHEMA
from recsys.events.parse import DayScope, ParsedEvents, TypedRows, judge_rows
from recsys.store import NotFound

DEFAULT_TABLE = "exposure_events"
QUEUED_BYTES = 64 << 20  # received rows not judged yet: bounds the memory a day's read holds
CSV_BLOCK_BYTES = 16 << 20  # CSV bytes the reader parses at a time
JUDGED_ROWS = 250_000  # rows judged at a time
# What the query selects, in order: RAW_SCHEMA's fields but v, then a response item's values as JSON text where no
# typed column holds them, then the table row's id.
_STRINGS = ("ts", "surface", "user_id", "session_id", "request_id", "item_id", "event_type", "event_id")
_CSV_COLUMNS = (*_STRINGS[:6], "rank", *_STRINGS[6:], "item_json", "rank_json", "row_id")
_CSV_TYPES = {name: pa.string() for name in (*_STRINGS, "item_json", "rank_json")} | {
    "rank": pa.int64(),
    "row_id": pa.int64(),
}
_DAY = sql.SQL(
    "e.tenant_id = %(tenant_id)s AND e.surface = %(surface)s AND e.occurred_at >= %(start)s AND e.occurred_at < %(end)s"
)


@dataclass(frozen=True)
class PostgresDay:
    """A day of events in a Postgres table, read like a raw file (`source`, `dated`, `parse`)."""

    uri: str  # the raw URI as configured
    tenant: str
    surface: str
    day: dt.date
    database: DatabaseSettings
    dated = True  # the query selects the day: every event belongs to it

    @property
    def source(self) -> str:
        return redacted(self.uri)

    def _open(self) -> tuple[psycopg.Connection, str]:
        libpq, ours = split_source_uri(self.uri)
        return connect(self.database, libpq), ours.get("table") or DEFAULT_TABLE

    def _query(self, conn: psycopg.Connection, table: str) -> tuple[sql.Composed, sql.Composed, dict] | None:
        """The day's query, a probe for any row of the day, and their parameters; None when the tenant is not in
        `tenants` (no events, as in the seed)."""
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
        params = {"tenant_id": found[0], "surface": self.surface, "start": start, "end": start + dt.timedelta(days=1)}
        probe = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} e WHERE {})").format(relation, _DAY)
        return _day_query(relation, columns), probe, params

    def has_events(self) -> bool:
        """Whether the table holds any row of this day (a cheap probe before a read)."""
        conn, table = self._open()
        with conn:
            query = self._query(conn, table)
            if query is None:
                return False
            _, probe, params = query
            return bool(conn.execute(probe, params).fetchone()[0])

    def parse(self, scope: DayScope) -> ParsedEvents:
        return judge_rows(self._batches(), source=self.source, scope=scope, dated=True)

    def _batches(self) -> Iterator[TypedRows]:
        options = dict(
            read_options=pcsv.ReadOptions(column_names=list(_CSV_COLUMNS), block_size=CSV_BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types=_CSV_TYPES,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # COPY's CSV: NULL is empty, an empty string is ""
            ),
        )
        line, pending, rows = 1, [], 0
        with _Received(self._copy) as stream:
            # The reader's batches are small (a read's worth): judging is per call, so judge many at once.
            for batch in itertools.chain(pcsv.open_csv(stream, **options), [None]):
                if batch is not None:
                    pending.append(batch)
                    rows += batch.num_rows
                if pending and (batch is None or rows >= JUDGED_ROWS):
                    yield self._typed(pa.Table.from_batches(pending).combine_chunks(), line)
                    line, pending, rows = line + rows, [], 0

    def _copy(self) -> Iterator[bytes]:
        conn, table = self._open()
        with conn:
            query = self._query(conn, table)
            if query is None:
                return
            statement, _, params = query
            with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(statement), params) as copy:
                yield from copy

    def _typed(self, rows: pa.Table, first_line: int) -> TypedRows:
        numbers = np.arange(first_line, first_line + rows.num_rows)
        odd_rows = pa.compute.or_(rows["item_json"].is_valid(), rows["rank_json"].is_valid())
        odd = [(int(numbers[i]), self._line(rows, i)) for i in np.flatnonzero(np.asarray(odd_rows))]
        kept = rows.filter(pa.compute.invert(odd_rows)) if odd else rows
        columns = {name: kept[name] for name in _STRINGS} | {"rank": kept["rank"]}
        columns["v"] = pa.chunked_array([pa.array(np.ones(kept.num_rows, dtype=np.int64))])
        columns["tenant"] = pa.chunked_array([pa.array([self.tenant] * kept.num_rows, pa.string())])
        table = pa.table({name: columns[name] for name in RAW_SCHEMA.names}, schema=RAW_SCHEMA)
        kept_numbers = numbers[~np.asarray(odd_rows)] if odd else numbers
        return TypedRows(table, kept_numbers, odd, lambda i: self._line(kept, int(i)))

    def _line(self, rows: pa.Table, i: int) -> bytes:
        """Row `i` as the raw JSON line of its event (with its table row's id), as the contract would read it."""
        row = rows.slice(i, 1).to_pylist()[0]
        parts = [f'"v":1,"tenant":{json.dumps(self.tenant)}']
        for name in ("ts", "surface", "user_id", "session_id", "request_id"):
            parts.append(f'"{name}":{json.dumps(row[name])}')
        item = row["item_json"] if row["item_json"] is not None else json.dumps(row["item_id"])
        rank = row["rank_json"] if row["rank_json"] is not None else json.dumps(row["rank"])
        parts += [f'"item_id":{item}', f'"rank":{rank}']
        for name in ("event_type", "event_id", "row_id"):
            parts.append(f'"{name}":{json.dumps(row[name])}')
        return ("{" + ",".join(parts) + "}").encode()


class _Received(io.RawIOBase):
    """A readable stream over `produce()`'s blocks, received on a thread (at most QUEUED_BYTES ahead)."""

    def __init__(self, produce) -> None:
        self._produce = produce
        self._blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=max(1, QUEUED_BYTES >> 16))
        self._stop = threading.Event()
        self._rest = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._receive, name="recsys-postgres-source", daemon=True)

    def __enter__(self) -> _Received:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a receiver waiting on a full queue, then let it finish
            with contextlib.suppress(queue.Empty):
                self._blocks.get(timeout=0.05)
        self._thread.join()
        self.close()

    def _receive(self) -> None:
        try:
            pending = bytearray()
            for data in self._produce():
                pending += data
                if len(pending) >= 1 << 16:
                    self._blocks.put(bytes(pending))
                    pending.clear()
                if self._stop.is_set():
                    return
            if pending:
                self._blocks.put(bytes(pending))
        except BaseException as err:  # noqa: BLE001  (handed to the reading thread, which raises it)
            self._blocks.put(err)
        finally:
            self._blocks.put(None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest and not self._done:
            block = self._blocks.get()
            if block is None:
                self._done = True
            elif isinstance(block, BaseException):
                raise block
            else:
                self._rest = memoryview(block)
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def _day_query(relation: sql.Composable, columns: set[str]) -> sql.Composed:
    """The day's events as _CSV_COLUMNS, in (occurred_at, id, item position) order."""

    def column(name: str, cast: str = "") -> sql.Composable:
        if name not in columns:
            return sql.SQL("NULL::text")
        return sql.SQL("e.{}{}").format(sql.Identifier(name), sql.SQL(cast))

    def select(item: sql.Composable, rank: sql.Composable, item_json: sql.Composable, rank_json: sql.Composable):
        return sql.SQL(
            # The UTC time as RFC 3339 text, as a raw line would give it (DateStyle ISO: 2026-01-01 08:00:00.5).
            "translate((e.occurred_at AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z', e.surface, {user_id}, "
            "e.session_id, {request_id}, {item}, {rank}, {event_type}, {event_id}, {item_json}, {rank_json}, e.id"
        ).format(
            user_id=column("user_id"),
            request_id=column("request_id", "::text"),
            item=item,
            rank=rank,
            event_type=column("event_type"),
            event_id=column("event_id"),
            item_json=item_json,
            rank_json=rank_json,
        )

    branches = []
    if "item_id" in columns:  # this project's rows: one event each
        rank = sql.SQL("e.rank") if "rank" in columns else sql.SQL("NULL::bigint")
        own = sql.SQL(" AND e.item_id IS NOT NULL") if "response" in columns else sql.SQL("")
        branches.append(
            sql.SQL("SELECT {}, e.occurred_at AS at, 0::bigint AS n FROM {} e WHERE {}{}").format(
                select(sql.SQL("e.item_id"), rank, sql.SQL("NULL::text"), sql.SQL("NULL::text")), relation, _DAY, own
            )
        )
    if "response" in columns:  # the seed's rows: one exposure per item of the response (values as typed there)
        item, rank = sql.SQL("x.elem->'item_id'"), sql.SQL("x.elem->'rank'")
        is_integer = sql.SQL(
            "(jsonb_typeof({r}) = 'number' AND ({r})::text ~ '^-?[0-9]+$' "
            "AND ({r})::text::numeric BETWEEN -9223372036854775808 AND 9223372036854775807)"
        ).format(r=rank)
        seed = sql.SQL(" AND e.item_id IS NULL") if "item_id" in columns else sql.SQL("")
        branches.append(
            sql.SQL(
                "SELECT {}, e.occurred_at AS at, x.n FROM {} e "
                "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(e.response->'items') = 'array' "
                "THEN e.response->'items' ELSE '[]'::jsonb END) WITH ORDINALITY AS x(elem, n) WHERE {}{}"
            ).format(
                select(
                    sql.SQL("CASE WHEN jsonb_typeof({i}) = 'string' THEN {i} #>> '{{}}' END").format(i=item),
                    sql.SQL("CASE WHEN {ok} THEN ({r})::text::bigint END").format(ok=is_integer, r=rank),
                    sql.SQL("CASE WHEN jsonb_typeof({i}) NOT IN ('string', 'null') THEN ({i})::text END").format(
                        i=item
                    ),
                    sql.SQL("CASE WHEN jsonb_typeof({r}) <> 'null' AND NOT {ok} THEN ({r})::text END").format(
                        r=rank, ok=is_integer
                    ),
                ),
                relation,
                _DAY,
                seed,
            )
        )
    if not branches:
        raise ConfigError("the raw events table has neither an item_id column nor a response column")
    union = sql.SQL(" UNION ALL ").join(branches)
    names = sql.SQL(", ").join(sql.Identifier(name) for name in _CSV_COLUMNS)
    return sql.SQL("SELECT {} FROM ({}) AS events ({}, at, n) ORDER BY at, row_id, n").format(names, union, names)
