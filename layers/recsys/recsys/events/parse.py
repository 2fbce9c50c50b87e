"""Vectorized JSONL parsing and validation of raw events.

A source is streamed in blocks of whole lines (`BLOCK_BYTES`), each parsed by pyarrow's JSON reader in one call.
Only when that fails (broken JSON, a wrong type, invalid UTF-8) is the block bisected into line ranges, so the good
lines still go through the bulk path and each bad line is explained by the per-line contract (`RawEvent`). Field
rules are then applied column-wise; a line gets the reason of the first rule it breaks, in field order, as the
per-line contract would report it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from pydantic import ValidationError

from recsys.days import day_start
from recsys.events.contract import RAW_SCHEMA, RawEvent, Reason

_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=RAW_SCHEMA, unexpected_field_behavior="ignore")
_READ_OPTIONS = pj.ReadOptions(use_threads=True, block_size=16 << 20)
BLOCK_BYTES = 32 << 20  # raw bytes parsed and judged at a time: bounds memory, and gives pyarrow 2 blocks to thread
_IS_WHITESPACE = np.isin(np.arange(256), [9, 10, 13, 32])  # per byte value: JSON whitespace
# TS_PATTERN with the clock and the zone offset in range (hours <= 23, minutes and seconds <= 59), so that only the
# date is left to check; the bulk path's equivalent of the per-line contract's parse_timestamp.
_TS_IN_RANGE = r"^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
_EPOCH_TEXT = "1970-01-01T00:00:00Z"
# Among other lines pyarrow reads a `null` line as a row of nulls (so: missing_field); a `null` line read on its own
# gets the same verdict.
_NULL_ROW = dict.fromkeys(RAW_SCHEMA.names)
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
    """Accepted events and the rejected lines of one source.

    `events` has the RAW_SCHEMA columns but `v` (always 1) and the `ts` text, trimmed, plus `ts_utc` (the parsed `ts`).
    """

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
    """The non-blank lines of a block of whole lines: byte offsets and 1-based line numbers (numpy, int64 per line)."""

    def __init__(self, data: memoryview, first_number: int) -> None:
        buf = np.frombuffer(data, dtype=np.uint8)
        newlines = _newlines(buf)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(buf)]))
        nonblank = _has_content(buf, starts, ends)
        self.data = data
        self.newlines = len(newlines)  # the next block's first line is first_number + newlines
        self.starts = starts[nonblank]
        self.ends = ends[nonblank]
        self.numbers = np.flatnonzero(nonblank) + first_number

    def __len__(self) -> int:
        return len(self.starts)

    def chunk(self, lo: int, hi: int) -> memoryview:
        return self.data[self.starts[lo] : self.ends[hi - 1]]

    def text(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]].tobytes().rstrip(b"\r")

    def led_by_null(self) -> list[int]:
        """The lines whose first value is `null` (after any whitespace), in order."""
        first = np.frombuffer(self.data, dtype=np.uint8)[self.starts]
        maybe = np.flatnonzero((first == ord("n")) | _IS_WHITESPACE[first])  # few: looked at one by one
        return [int(i) for i in maybe if self.text(int(i)).lstrip(b" \t\r").startswith(b"null")]


def _newlines(buf: np.ndarray, step: int = 1 << 20) -> np.ndarray:
    """Positions of the newlines in `buf`, searched a MB at a time: the byte mask stays small, so it is reused
    instead of being a fresh block-sized allocation each time."""
    parts = [np.flatnonzero(buf[at : at + step] == 10) + at for at in range(0, len(buf), step)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)


def _has_content(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per line [starts, ends) of `buf`: True if it holds a byte that is not JSON whitespace."""
    has = ends > starts
    # A line that starts with a non-whitespace byte (nearly all: '{') has content; only the others need a full look.
    doubtful = np.flatnonzero(has)[_IS_WHITESPACE[buf[starts[has]]]]
    if len(doubtful):
        content = np.zeros(len(buf) + 1, dtype=bool)  # the extra False lets a line ending at len(buf) be reduced
        np.logical_not(_IS_WHITESPACE[buf], out=content[:-1])
        bounds = np.column_stack((starts[doubtful], ends[doubtful])).ravel()
        has[doubtful] = np.logical_or.reduceat(content, bounds)[::2]  # odd entries span the gaps between lines
    return has


def _blocks_of_lines(pieces: Iterable[bytes], block_bytes: int) -> Iterator[memoryview]:
    """Re-cut `pieces` (any sizes; lines may span them) into blocks of whole lines of at most about `block_bytes`.

    Every block but the last ends with a newline. A line longer than `block_bytes` gets a block of its own size.
    Blocks are views of the pieces: only a line that spans pieces is copied, into a block of its own.
    """
    carry = b""  # the start of a line that continues in the next piece
    for piece in pieces:
        start = 0
        if carry:
            first = piece.find(b"\n")
            if first < 0:
                carry += piece
                continue
            yield memoryview(carry + piece[: first + 1])
            start = first + 1
        last = piece.rfind(b"\n")
        view = memoryview(piece)
        while last + 1 - start > block_bytes:
            cut = piece.rfind(b"\n", start, start + block_bytes)
            if cut < 0:  # a line longer than a block
                cut = piece.find(b"\n", start + block_bytes)
            yield view[start : cut + 1]
            start = cut + 1
        if start <= last:
            yield view[start : last + 1]
        carry = piece[max(start, last + 1) :]
    if carry:
        yield memoryview(carry)


def _read_block(data: memoryview, expected_rows: int) -> pa.Table | None:
    """Parse a block in bulk; None if any line in it needs the per-line path."""
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS)
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
    except ValueError:  # an integer beyond Python's digit limit for int()
        return Reason.MALFORMED_JSON, "a number is too long to parse"
    except RecursionError:
        return Reason.MALFORMED_JSON, "nested too deeply to parse"
    if not isinstance(obj, dict):
        return Reason.MALFORMED_JSON, f"expected a JSON object, got {type(obj).__name__}"
    for name in RAW_SCHEMA.names:
        value = obj.get(name)
        # JSON can escape a lone UTF-16 surrogate ("\ud800"), which no UTF-8 column can hold.
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return Reason.INVALID_ENCODING, f"{name}: lone surrogate \\u{ord(value[exc.start]):04x} is not UTF-8"
    try:
        RawEvent.model_validate(obj)
    except ValidationError as exc:
        return _first_error(exc, obj)
    # Hand back the raw fields so the bulk rules (tenant, window, event_type) judge it like any other line.
    return {name: obj.get(name) for name in RAW_SCHEMA.names}


def _bulk_or_single(lines: _Lines) -> Iterator[tuple[pa.Table | None, int, int]]:
    """`_bulk_or_bisect` over all the lines, except that lines led by `null` are never given to pyarrow: its reader
    crashes (segfault) when a chunk it reads starts with `null`. They come out as single lines."""
    lo = 0
    for i in lines.led_by_null():
        if lo < i:
            yield from _bulk_or_bisect(lines, lo, i)
        yield None, i, i + 1
        lo = i + 1
    if lo < len(lines):
        yield from _bulk_or_bisect(lines, lo, len(lines))


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
    ok = pc.fill_null(pc.match_substring_regex(ts, _TS_IN_RANGE), False)
    text = pc.if_else(ok, ts, pa.scalar(_EPOCH_TEXT))  # all of one layout now: fields sit at fixed positions
    base = pc.strptime(pc.utf8_slice_codeunits(text, 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    valid = pc.and_(pc.and_(ok, pc.is_valid(base)), _real_dates(pc.utf8_slice_codeunits(text, 0, 10)))
    is_z = pc.ends_with(text, "Z")
    seconds = pc.cast(base, pa.int64())
    if pc.all(is_z).as_py():  # the usual case: no offsets to apply
        frac = pc.utf8_slice_codeunits(text, 20, -1)
    else:
        frac = pc.if_else(is_z, pc.utf8_slice_codeunits(text, 20, -1), pc.utf8_slice_codeunits(text, 20, -6))
        zone = pc.if_else(is_z, "+00:00", pc.utf8_slice_codeunits(text, -6))
        hours = pc.cast(pc.utf8_slice_codeunits(zone, 1, 3), pa.int64())
        minutes = pc.cast(pc.utf8_slice_codeunits(zone, 4, 6), pa.int64())
        sign = pc.if_else(pc.starts_with(zone, "-"), -1, 1)
        seconds = pc.subtract(seconds, pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60))))
    micros = pc.cast(pc.utf8_rpad(pc.utf8_slice_codeunits(frac, 0, 6), width=6, padding="0"), pa.int64())
    utc = pc.add(pc.multiply(seconds, 1_000_000), micros)
    return pc.if_else(valid, utc, pa.scalar(None, pa.int64()))


def _real_dates(dates: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per YYYY-MM-DD text: whether the date exists. strptime rolls impossible dates over (Feb 30 -> Mar 2), so a
    date is real when it reads back as written; checked once per distinct date (a day's file has one or two)."""
    distinct = pc.unique(dates)
    read_back = pc.strftime(pc.strptime(distinct, format="%Y-%m-%d", unit="s", error_is_null=True), format="%Y-%m-%d")
    return pc.is_in(dates, value_set=distinct.filter(pc.fill_null(pc.equal(read_back, distinct), False)))


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
    """Parse one raw JSONL buffer into the accepted events of `scope` and the rejected lines (see `parse_stream`)."""
    return parse_stream([data], source=source, scope=scope, dated=dated)


def parse_stream(
    pieces: Iterable[bytes], *, source: str, scope: DayScope, dated: bool, block_bytes: int | None = None
) -> ParsedEvents:
    """Parse one raw JSONL source, given as consecutive pieces of bytes (lines may span pieces), into the accepted
    events of `scope` and the rejected lines (sorted by line number).

    Parses and judges blocks of whole lines of about `block_bytes` (default BLOCK_BYTES) one at a time, so memory
    holds the accepted events plus one block; how the source is cut into pieces or blocks never changes the result.
    Accepted events keep source order, except that lines only the per-line contract could parse come last (dedup
    keeps the first occurrence, so this order is part of the result).

    `dated` says the source's path names the day (dt=YYYY-MM-DD or YYYY/MM/DD): then events of other days are
    quarantined as out_of_window. An undated source holds many days; events of other days are just not this
    day's (counted in `other_days`).
    """
    accepted: list[pa.Table] = []
    rejections: list[Rejection] = []
    singles: list[dict] = []  # lines pyarrow could not parse but the per-line contract accepts
    single_lines: list[tuple[int, bytes]] = []
    read = other_days = 0
    first_number = 1
    for block in _blocks_of_lines(pieces, block_bytes or BLOCK_BYTES):
        lines = _Lines(block, first_number)
        first_number += lines.newlines
        read += len(lines)
        if not len(lines):
            continue
        tables: list[pa.Table] = []
        positions: list[np.ndarray] = []  # of each bulk row, in `lines`
        for table, lo, hi in _bulk_or_single(lines):
            if table is not None:
                tables.append(table)
                positions.append(np.arange(lo, hi))
                continue
            number, text = int(lines.numbers[lo]), lines.text(lo)
            verdict = _NULL_ROW if text.strip(b" \t\r") == b"null" else explain_line(text)
            if isinstance(verdict, dict):
                singles.append(verdict)
                single_lines.append((number, text))
            else:
                rejections.append(_rejection(source, number, *verdict, text))
        judged = _judge(pa.concat_tables(tables) if tables else RAW_SCHEMA.empty_table(), scope, dated)
        bulk_positions = np.concatenate(positions) if positions else np.array([], dtype=np.int64)
        for row, reason, detail in judged.rejected:
            i = int(bulk_positions[row])
            rejections.append(_rejection(source, int(lines.numbers[i]), reason, detail, lines.text(i)))
        accepted.append(judged.events)
        other_days += judged.other_days
    if singles or not accepted:
        judged = _judge(pa.Table.from_pylist(singles, schema=RAW_SCHEMA), scope, dated)
        for row, reason, detail in judged.rejected:
            number, text = single_lines[row]
            rejections.append(_rejection(source, number, reason, detail, text))
        accepted.append(judged.events)
        other_days += judged.other_days
    rejections.sort(key=lambda r: r.line)
    return ParsedEvents(
        events=pa.concat_tables(accepted), rejections=rejections, read=read - other_days, other_days=other_days
    )


@dataclass
class _Judged:
    events: pa.Table  # the accepted rows, as in ParsedEvents
    rejected: list[tuple[int, Reason, str]]  # (row in the judged table, reason, detail)
    other_days: int


def _judge(raw: pa.Table, scope: DayScope, dated: bool) -> _Judged:
    """Apply the field rules and the run's scope, column-wise, to parsed lines."""
    columns = {name: raw[name] for name in RAW_SCHEMA.names}
    for name in (*_REQUIRED_STRINGS, *_OPTIONAL_STRINGS):
        columns[name] = _trim(raw[name])
    for name in _OPTIONAL_STRINGS:  # empty optional strings mean "not given"
        columns[name] = pc.if_else(pc.equal(columns[name], ""), pa.scalar(None, pa.string()), columns[name])
    columns["event_type"] = pc.fill_null(columns["event_type"], "exposure")
    table = pa.table(columns, schema=RAW_SCHEMA)
    ts_us = _parse_timestamps(raw["ts"])
    rows = np.arange(table.num_rows)

    other_days = 0
    if not dated and table.num_rows:
        here = pc.and_(pc.greater_equal(ts_us, scope.start_us), pc.less(ts_us, scope.start_us + 86_400_000_000))
        keep = pc.fill_null(pc.or_kleene(here, pc.is_null(ts_us)), True)
        other_days = table.num_rows - pc.sum(keep).as_py()
        table, ts_us, rows = table.filter(keep), ts_us.filter(keep), rows[np.asarray(keep)]

    reason = pa.nulls(table.num_rows, pa.string())
    detail = pa.nulls(table.num_rows, pa.string())
    for mask, code, text in reversed(_rules(table, ts_us, scope, dated)):
        hit = pc.fill_null(mask, False)
        if not pc.any(hit).as_py():
            continue  # most rules reject nothing: spare two passes
        reason = pc.if_else(hit, str(code), reason)
        detail = pc.if_else(hit, text, detail)
    bad = pc.is_valid(reason)
    rejected: list[tuple[int, Reason, str]] = []
    if pc.any(bad).as_py():
        rejected = [
            (int(row), Reason(code), text)
            for row, code, text in zip(
                rows[np.asarray(bad)], reason.filter(bad).to_pylist(), detail.filter(bad).to_pylist(), strict=True
            )
        ]
        good = pc.invert(bad)
        table, ts_us = table.filter(good), ts_us.filter(good)

    ts_utc = pc.cast(pc.cast(ts_us, pa.int64()), pa.timestamp("us", tz="UTC"))
    events = table.drop_columns(["v", "ts"]).append_column("ts_utc", ts_utc)  # v is always 1; ts is now ts_utc
    return _Judged(events=events, rejected=rejected, other_days=other_days)


def _rejection(source: str, line: int, reason: Reason, detail: str, text: bytes) -> Rejection:
    return Rejection(source, line, reason, detail, text.decode("utf-8", errors="replace")[:_RAW_EXCERPT])
