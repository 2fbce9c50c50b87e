"""Vectorized JSONL parsing and validation of raw events.

The whole buffer is parsed by pyarrow's JSON reader in one call. Only when that fails (broken JSON, a wrong type,
invalid UTF-8) is the buffer bisected into line ranges, so the good lines still go through the bulk path and each
bad line is explained by the per-line contract (`RawEvent`). Field rules are then applied column-wise; a line gets
the reason of the first rule it breaks, in field order, as the per-line contract would report it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from pydantic import ValidationError

from recsys.days import day_start
from recsys.events.contract import RAW_SCHEMA, TS_PATTERN, RawEvent, Reason

_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=RAW_SCHEMA, unexpected_field_behavior="ignore")
_READ_OPTIONS = pj.ReadOptions(use_threads=True, block_size=16 << 20)
_WHITESPACE = np.array([9, 10, 13, 32], dtype=np.uint8)
_RAW_EXCERPT = 4096  # quarantine keeps this many characters of a rejected line
_REQUIRED_STRINGS = ("tenant", "surface", "session_id", "item_id")
_OPTIONAL_STRINGS = ("user_id", "request_id", "event_type", "event_id")


@dataclass(frozen=True)
class Rejection:
    """One quarantined line."""

    source: str
    line: int
    reason: Reason
    detail: str
    raw: str

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "line": self.line,
            "reason": str(self.reason),
            "detail": self.detail,
            "raw": self.raw,
        }


@dataclass
class ParsedEvents:
    """Accepted events (RAW_SCHEMA columns, trimmed, plus `ts_utc`) and the rejected lines of one source."""

    events: pa.Table
    rejections: list[Rejection] = field(default_factory=list)
    read: int = 0  # non-blank lines that belong to this day (or cannot be placed on another day)
    other_days: int = 0  # valid-timestamp lines of another day in an undated source: not this day's, not errors


@dataclass(frozen=True)
class DayScope:
    """What a run accepts: events of this tenant, surface and UTC day with a known event_type."""

    tenant: str
    surface: str
    day: dt.date
    event_types: frozenset[str]

    @property
    def start_us(self) -> int:
        return int(day_start(self.day).timestamp()) * 1_000_000


class _Lines:
    """Byte offsets of the lines of a buffer (numpy, no per-line Python)."""

    def __init__(self, data: bytes) -> None:
        buf = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(buf == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(buf)]))
        content = np.concatenate(([0], np.cumsum(~np.isin(buf, _WHITESPACE), dtype=np.int64)))
        nonblank = content[ends] - content[starts] > 0
        self.data = data
        self.starts = starts[nonblank]
        self.ends = ends[nonblank]
        self.numbers = np.flatnonzero(nonblank) + 1  # 1-based line numbers in the source

    def __len__(self) -> int:
        return len(self.starts)

    def chunk(self, lo: int, hi: int) -> bytes:
        return self.data[self.starts[lo] : self.ends[hi - 1]]

    def text(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]].rstrip(b"\r")


def _read_block(data: bytes, expected_rows: int) -> pa.Table | None:
    """Parse a block in bulk; None if any line in it needs the per-line path."""
    try:
        table = pj.read_json(io.BytesIO(data), read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS)
        if table.num_rows != expected_rows:
            return None
        for name in ("ts", *_REQUIRED_STRINGS, *_OPTIONAL_STRINGS):
            table.column(name).validate(full=True)  # pyarrow does not check UTF-8 while parsing
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    return table


def _first_error(exc: ValidationError, obj: dict) -> tuple[Reason, str]:
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "event"
    kind = err["type"]
    if kind == "missing" or (kind.endswith("_type") and obj.get(name) is None):
        return Reason.MISSING_FIELD, f"{name}: required"
    if kind.endswith("_type"):
        return Reason.INVALID_TYPE, f"{name}: {err['msg']}"
    if name == "v":
        return Reason.UNSUPPORTED_VERSION, f"v: {obj.get('v')!r} (only 1 is supported)"
    if name == "ts":
        return Reason.INVALID_TIMESTAMP, f"ts: {obj.get('ts')!r} is not RFC 3339 with a zone"
    return Reason.INVALID_VALUE, f"{name}: {err['msg']}"


def explain_line(text: bytes) -> tuple[Reason, str] | dict:
    """The per-line contract: a (reason, detail) for a bad line, or the event's raw fields for a good one."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reason.INVALID_ENCODING, f"not UTF-8 at byte {exc.start}"
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return Reason.MALFORMED_JSON, exc.msg
    if not isinstance(obj, dict):
        return Reason.MALFORMED_JSON, f"expected a JSON object, got {type(obj).__name__}"
    try:
        RawEvent.model_validate(obj)
    except ValidationError as exc:
        return _first_error(exc, obj)
    # Hand back the raw fields so the bulk rules (tenant, window, event_type) judge it like any other line.
    return {name: obj.get(name) for name in RAW_SCHEMA.names}


def _bulk_or_bisect(lines: _Lines, lo: int, hi: int) -> Iterator[tuple[pa.Table | None, int, int]]:
    """Yield (table, lo, hi) for ranges parsed in bulk and (None, i, i+1) for single lines that failed."""
    table = _read_block(lines.chunk(lo, hi), hi - lo)
    if table is not None:
        yield table, lo, hi
    elif hi - lo == 1:
        yield None, lo, hi
    else:
        mid = (lo + hi) // 2
        yield from _bulk_or_bisect(lines, lo, mid)
        yield from _bulk_or_bisect(lines, mid, hi)


def _parse_timestamps(ts: pa.ChunkedArray) -> pa.ChunkedArray:
    """RFC 3339 strings -> int64 microseconds since the epoch (UTC); null where the text is not valid."""
    ok = pc.fill_null(pc.match_substring_regex(ts, TS_PATTERN), False)
    parts = pc.extract_regex(pc.if_else(ok, ts, pa.scalar("1970-01-01T00:00:00Z")), TS_PATTERN)
    base_text = pc.struct_field(parts, "base")
    base = pc.strptime(base_text, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    # strptime rolls impossible dates over (Feb 30 -> Mar 2); a round trip rejects them like the per-line contract.
    real_date = pc.equal(pc.strftime(base, format="%Y-%m-%dT%H:%M:%S"), base_text)
    frac = pc.utf8_slice_codeunits(pc.struct_field(parts, "frac"), 1, 7)
    micros = pc.cast(pc.utf8_rpad(frac, width=6, padding="0"), pa.int64())
    zone = pc.struct_field(parts, "zone")
    is_z = pc.equal(zone, "Z")
    hours = pc.cast(pc.if_else(is_z, "0", pc.utf8_slice_codeunits(zone, 1, 3)), pa.int64())
    minutes = pc.cast(pc.if_else(is_z, "0", pc.utf8_slice_codeunits(zone, 4, 6)), pa.int64())
    sign = pc.if_else(pc.starts_with(zone, "-"), -1, 1)
    offset = pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    valid = pc.and_(
        pc.and_(ok, pc.fill_null(real_date, False)), pc.and_(pc.less_equal(hours, 23), pc.less_equal(minutes, 59))
    )
    seconds = pc.subtract(pc.cast(base, pa.int64()), offset)
    utc = pc.add(pc.multiply(seconds, 1_000_000), micros)
    return pc.if_else(valid, utc, pa.scalar(None, pa.int64()))


def _trim(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_trim_whitespace(column)


def _rules(table: pa.Table, ts_us: pa.ChunkedArray, scope: DayScope, dated: bool) -> list[tuple[pa.Array, Reason, str]]:
    """(mask, reason, detail) per rule, in the order the per-line contract reports them."""
    rules: list[tuple[pa.Array, Reason, str]] = [
        (pc.is_null(table["v"]), Reason.MISSING_FIELD, "v: required"),
        (pc.not_equal(table["v"], 1), Reason.UNSUPPORTED_VERSION, "v: only 1 is supported"),
        (pc.is_null(table["ts"]), Reason.MISSING_FIELD, "ts: required"),
        (pc.is_null(ts_us), Reason.INVALID_TIMESTAMP, "ts: not RFC 3339 with a zone"),
    ]
    for name in ("tenant", "surface", "session_id", "item_id"):
        rules.append((pc.is_null(table[name]), Reason.MISSING_FIELD, f"{name}: required"))
        rules.append((pc.equal(table[name], ""), Reason.INVALID_VALUE, f"{name}: must not be empty"))
    rules.append((pc.less(table["rank"], 0), Reason.INVALID_VALUE, "rank: must be >= 0"))
    known = pa.array(sorted(scope.event_types))
    rules.append(
        (
            pc.invert(pc.is_in(table["event_type"], known)),
            Reason.UNKNOWN_EVENT_TYPE,
            f"event_type: not one of {sorted(scope.event_types)}",
        )
    )
    rules.append(
        (pc.not_equal(table["tenant"], scope.tenant), Reason.TENANT_MISMATCH, f"tenant: run is for {scope.tenant!r}")
    )
    rules.append(
        (
            pc.not_equal(table["surface"], scope.surface),
            Reason.SURFACE_MISMATCH,
            f"surface: run is for {scope.surface!r}",
        )
    )
    if dated:
        outside = pc.or_(pc.less(ts_us, scope.start_us), pc.greater_equal(ts_us, scope.start_us + 86_400_000_000))
        rules.append((outside, Reason.OUT_OF_WINDOW, f"ts: not on {scope.day} (UTC)"))
    return rules


def parse_events(data: bytes, *, source: str, scope: DayScope, dated: bool) -> ParsedEvents:
    """Parse one raw JSONL buffer into the accepted events of `scope` and the rejected lines.

    `dated` says the source's path names the day (dt=YYYY-MM-DD or YYYY/MM/DD): then events of other days are
    quarantined as out_of_window. An undated source holds many days; events of other days are just not this
    day's (counted in `other_days`).
    """
    lines = _Lines(data)
    tables: list[pa.Table] = []
    line_numbers: list[np.ndarray] = []
    rejections: list[Rejection] = []
    singles: list[dict] = []
    single_numbers: list[int] = []
    if len(lines):
        for table, lo, hi in _bulk_or_bisect(lines, 0, len(lines)):
            if table is not None:
                tables.append(table)
                line_numbers.append(lines.numbers[lo:hi])
                continue
            verdict = explain_line(lines.text(lo))
            if isinstance(verdict, dict):
                singles.append(verdict)
                single_numbers.append(int(lines.numbers[lo]))
            else:
                reason, detail = verdict
                rejections.append(_rejection(source, int(lines.numbers[lo]), reason, detail, lines.text(lo)))
    if singles:
        tables.append(pa.Table.from_pylist(singles, schema=RAW_SCHEMA))
        line_numbers.append(np.array(single_numbers, dtype=np.int64))
    raw = pa.concat_tables(tables) if tables else RAW_SCHEMA.empty_table()
    numbers = np.concatenate(line_numbers) if line_numbers else np.array([], dtype=np.int64)

    columns = {name: raw[name] for name in RAW_SCHEMA.names}
    for name in (*_REQUIRED_STRINGS, *_OPTIONAL_STRINGS):
        columns[name] = _trim(raw[name])
    for name in _OPTIONAL_STRINGS:  # empty optional strings mean "not given"
        columns[name] = pc.if_else(pc.equal(columns[name], ""), pa.scalar(None, pa.string()), columns[name])
    columns["event_type"] = pc.fill_null(columns["event_type"], "exposure")
    table = pa.table(columns, schema=RAW_SCHEMA)
    ts_us = _parse_timestamps(raw["ts"])

    other_days = 0
    if not dated and table.num_rows:
        here = pc.and_(pc.greater_equal(ts_us, scope.start_us), pc.less(ts_us, scope.start_us + 86_400_000_000))
        keep = pc.fill_null(pc.or_kleene(here, pc.is_null(ts_us)), True)
        other_days = table.num_rows - pc.sum(keep).as_py() if table.num_rows else 0
        table, ts_us, numbers = table.filter(keep), ts_us.filter(keep), numbers[np.asarray(keep)]

    reason = pa.nulls(table.num_rows, pa.string())
    detail = pa.nulls(table.num_rows, pa.string())
    for mask, code, text in reversed(_rules(table, ts_us, scope, dated)):
        hit = pc.fill_null(mask, False)
        reason = pc.if_else(hit, str(code), reason)
        detail = pc.if_else(hit, text, detail)
    bad = pc.is_valid(reason)
    if pc.any(bad).as_py():
        bad_np = np.asarray(bad)
        for number, code, text in zip(
            numbers[bad_np], reason.filter(bad).to_pylist(), detail.filter(bad).to_pylist(), strict=True
        ):
            i = int(np.searchsorted(lines.numbers, number))
            rejections.append(_rejection(source, int(number), Reason(code), text, lines.text(i)))
        good = pc.invert(bad)
        table, ts_us = table.filter(good), ts_us.filter(good)

    events = table.append_column("ts_utc", pc.cast(pc.cast(ts_us, pa.int64()), pa.timestamp("us", tz="UTC")))
    rejections.sort(key=lambda r: r.line)
    return ParsedEvents(events=events, rejections=rejections, read=len(lines) - other_days, other_days=other_days)


def _rejection(source: str, line: int, reason: Reason, detail: str, text: bytes) -> Rejection:
    return Rejection(source, line, reason, detail, text.decode("utf-8", errors="replace")[:_RAW_EXCERPT])
