"""Vectorized JSONL parsing and validation of raw events: one contract, two paths to it.

The per-line contract decides every line: `explain_line` (json.loads, then `RawEvent`), then the run's scope (tenant,
surface, day, event types). The bulk path reaches the same verdicts faster: a source is streamed in blocks of whole
lines (`BLOCK_BYTES`), each read by pyarrow's JSON reader in one call, and the field rules are applied column-wise
(`_rules`, in the order `RawEvent` reports them, with the same details).

pyarrow reads some lines differently from json.loads, so before a block is read `_Lines.judged_alone` sends these
to the per-line path, whatever their neighbours:
- a line that does not start with `{` (a bare `null`, a byte order mark, an array...): never an event as it stands,
  and pyarrow's reader crashes on a chunk that starts with `null`;
- a line that is not UTF-8: pyarrow checks only the fields it keeps;
- a line holding `NaN` or `Inf`: pyarrow reads NaN, Inf and Infinity (signed) as numbers; they are not JSON;
- a long line that might nest deeper than json.loads can recurse, or hold an integer longer than Python converts
  (pyarrow has neither limit).
Lines pyarrow cannot read (bad JSON, a wrong type, a key given twice) are found by bisecting the block and are
judged alone too. Every line ends up with the verdict `parse_stream(..., bulk=False)` gives it, and the events keep
their lines' order.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
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
_IS_DIGIT = np.isin(np.arange(256), np.arange(ord("0"), ord("9") + 1))  # per byte value: an ASCII digit
# json.loads recurses once per nested array or object and gives up near Python's recursion limit (1,000 frames,
# less the caller's); pyarrow's parser does not recurse. A line pyarrow reads needs 2 bytes per level, so only a
# line longer than twice this depth can go that deep, and only one with more `[` and `{` bytes than this might.
_BULK_MAX_DEPTH = 512
# TS_PATTERN with the year, the clock and the zone offset in range (year >= 0001, hours <= 23, minutes and seconds
# <= 59), so that only the date is left to check; the bulk path's equivalent of the per-line contract's
# parse_timestamp.
_TS_IN_RANGE = (
    r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-\d{2}-\d{2}"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
)
_EPOCH_TEXT = "1970-01-01T00:00:00Z"
# The instants a Python datetime holds (years 1 to 9999 in UTC): the per-line contract rejects a ts outside them.
_UTC_RANGE_US = tuple(
    (moment.replace(tzinfo=dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    for moment in (dt.datetime.min, dt.datetime.max)
)
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
        newlines, capital_n, capital_i = _byte_positions(buf, (ord("\n"), ord("N"), ord("I")))
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(buf)]))
        nonblank = _has_content(buf, starts, ends)
        self.data = data
        self.newlines = len(newlines)  # the next block's first line is first_number + newlines
        self.starts = starts[nonblank]
        self.ends = ends[nonblank]
        self.numbers = np.flatnonzero(nonblank) + first_number
        self._constants = _constant_starts(buf, capital_n, capital_i)

    def __len__(self) -> int:
        return len(self.starts)

    def chunk(self, lo: int, hi: int) -> memoryview:
        return self.data[self.starts[lo] : self.ends[hi - 1]]

    def text(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]].tobytes().rstrip(b"\r")

    def judged_alone(self) -> np.ndarray:
        """The lines (ascending indices) pyarrow's reader might read otherwise than the per-line contract, so that
        only the per-line contract may judge them (see the module docstring). Cheap for a block of ordinary lines: a
        look at each line's first byte and length, and one pass over the block for its UTF-8 check (the `N` and `I`
        bytes that may start NaN or Inf were found with the newlines)."""
        buf = np.frombuffer(self.data, dtype=np.uint8)
        first = buf[self.starts]
        alone = first != ord("{")
        for i in np.flatnonzero(_IS_WHITESPACE[first]):  # led by whitespace (few): look past it
            alone[i] = not self.text(int(i)).lstrip(b" \t\r").startswith(b"{")
        alone[self._lines_at(self._constants)] = True
        if not _is_utf8(self.data):
            alone[self._not_utf8(buf)] = True
        # What json.loads cannot take needs long lines; ordinary blocks have none and skip these passes.
        lengths = self.ends - self.starts
        if (lengths > 2 * _BULK_MAX_DEPTH).any():  # might nest deeper than json.loads recurses
            openings = np.concatenate(_byte_positions(buf, (ord("["), ord("{"))))  # in strings too: only a false alarm
            alone |= np.bincount(self._lines_at(openings), minlength=len(self)) > _BULK_MAX_DEPTH
        digits = sys.get_int_max_str_digits()  # 0: no limit
        if digits and (lengths > digits).any():  # might hold an integer longer than int() converts
            alone[self._lines_at(np.array(_long_digit_runs(buf, digits), dtype=np.intp))] = True
        return np.flatnonzero(alone)

    def _lines_at(self, positions: np.ndarray) -> np.ndarray:
        """The line (index) holding each byte position; positions in blank lines cannot be asked for."""
        return np.searchsorted(self.starts, positions, side="right") - 1

    def _not_utf8(self, buf: np.ndarray) -> list[int]:
        """The lines that are not UTF-8, among those holding a byte >= 0x80 (a block that failed the UTF-8 check)."""
        high = np.zeros(len(buf) + 1, dtype=bool)  # the extra False lets a line ending at len(buf) be reduced
        np.greater_equal(buf, 0x80, out=high[:-1])
        bounds = np.column_stack((self.starts, self.ends)).ravel()
        candidates = np.flatnonzero(np.logical_or.reduceat(high, bounds)[::2])
        return [int(i) for i in candidates if not _decodes(self.text(int(i)))]


def _byte_positions(buf: np.ndarray, values: tuple[int, ...], step: int = 1 << 20) -> list[np.ndarray]:
    """Per byte value of `values`, its positions in `buf`, searched a MB at a time: the byte masks stay small, so
    they are reused instead of being fresh block-sized allocations, and each MB is read from memory once."""
    found: list[list[np.ndarray]] = [[] for _ in values]
    for at in range(0, len(buf), step):
        part = buf[at : at + step]
        for positions, value in zip(found, values, strict=True):
            positions.append(np.flatnonzero(part == value) + at)
    return [np.concatenate(parts) if parts else np.empty(0, dtype=np.intp) for parts in found]


def _constant_starts(buf: np.ndarray, capital_n: np.ndarray, capital_i: np.ndarray) -> np.ndarray:
    """Where `NaN` or `Inf` starts in `buf`, given the positions of its `N` and `I` bytes (inside strings too)."""
    hits = []
    for positions, rest in ((capital_n, b"aN"), (capital_i, b"nf")):
        positions = positions[positions + 2 < len(buf)]
        hits.append(positions[(buf[positions + 1] == rest[0]) & (buf[positions + 2] == rest[1])])
    return np.concatenate(hits)


def _is_utf8(data: memoryview) -> bool:
    """Whether `data` is UTF-8, checked by Arrow over the whole block at once (SIMD-fast)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32))
    try:
        pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _decodes(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _long_digit_runs(buf: np.ndarray, digits: int) -> list[int]:
    """A position inside each run of more than `digits` ASCII digits in `buf` (inside strings too), and maybe inside
    some runs of more than half as many: such a run covers two consecutive multiples of digits // 2 and everything
    between, so only those few stretches are looked at, not every byte."""
    step = max(digits // 2, 1)
    sampled = np.flatnonzero(_IS_DIGIT[buf[::step]]) * step
    pairs = sampled[:-1][np.diff(sampled) == step]  # two digits `step` apart: look between them
    return [int(at) for at in pairs if _IS_DIGIT[buf[at : at + step + 1]].all()]


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
    """Parse a block in bulk; None if any line in it needs the per-line path.

    The block's lines passed `judged_alone`, so they are UTF-8; and pyarrow refuses a `\\u` escape of a lone
    surrogate, so its string columns are UTF-8 too."""
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    return table if table.num_rows == expected_rows else None  # more rows: a line holds two objects


class _NotJson(ValueError):
    """NaN, Infinity or -Infinity: json.loads reads them, but they are not JSON."""


def _reject_constant(name: str) -> float:
    raise _NotJson(f"{name} is not valid JSON")


def _first_error(exc: ValidationError, obj: dict) -> tuple[Reason, str]:
    """The reason and detail of RawEvent's first error (in field order), worded as the bulk rules word them."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "event"
    kind = err["type"]
    if kind == "missing" or (kind.endswith("_type") and obj.get(name) is None):
        return Reason.MISSING_FIELD, f"{name}: required"
    if kind.endswith("_type"):
        return Reason.INVALID_TYPE, f"{name}: {err['msg']}"
    if name == "v":
        return Reason.UNSUPPORTED_VERSION, "v: only 1 is supported"
    if name == "ts":
        return Reason.INVALID_TIMESTAMP, "ts: not RFC 3339 with a zone"
    if kind == "string_too_short":
        return Reason.INVALID_VALUE, f"{name}: must not be empty"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = err["ctx"]["ge"] if kind == "greater_than_equal" else err["ctx"]["le"]
        return Reason.INVALID_VALUE, f"{name}: must be {'>=' if kind == 'greater_than_equal' else '<='} {bound}"
    return Reason.INVALID_VALUE, f"{name}: {err['msg']}"


@dataclass(frozen=True)
class LineVerdict:
    """What the per-line contract says of one line."""

    reason: Reason | None  # None: an event by the contract; the run's scope (tenant, day...) is judged later
    detail: str = ""
    # The line's RAW_SCHEMA fields as json.loads read them (empty when it is not a JSON object): the event when it
    # is one, and the ts that places even a rejected line on its day.
    fields: dict = field(default_factory=dict)


def explain_line(text: bytes) -> LineVerdict:
    """The per-line contract: the reason and detail for a bad line, the event's raw fields for a good one.

    Never raises on the line's content: whatever json.loads or the contract cannot take is a reason.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineVerdict(Reason.INVALID_ENCODING, f"not UTF-8 at byte {exc.start}")
    if decoded.startswith("\ufeff"):
        return LineVerdict(Reason.MALFORMED_JSON, "starts with a byte order mark (BOM)")
    try:
        obj = json.loads(decoded, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return LineVerdict(Reason.MALFORMED_JSON, exc.msg)
    except _NotJson as exc:
        return LineVerdict(Reason.MALFORMED_JSON, str(exc))
    except ValueError:  # an integer beyond Python's digit limit for int()
        return LineVerdict(Reason.MALFORMED_JSON, "a number is too long to parse")
    except RecursionError:
        return LineVerdict(Reason.MALFORMED_JSON, "nested too deeply to parse")
    if obj is None:  # `null` stands for an absent value: a `null` line is an event without fields
        obj = {}
    if not isinstance(obj, dict):
        return LineVerdict(Reason.MALFORMED_JSON, f"expected a JSON object, got {type(obj).__name__}")
    fields = {name: obj.get(name) for name in RAW_SCHEMA.names}
    for name, value in fields.items():
        # JSON can escape a lone UTF-16 surrogate ("\ud800"), which no UTF-8 column can hold.
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                detail = f"{name}: lone surrogate \\u{ord(value[exc.start]):04x} is not UTF-8"
                return LineVerdict(Reason.INVALID_ENCODING, detail, fields)
    try:
        RawEvent.model_validate(obj)
    except ValidationError as exc:
        return LineVerdict(*_first_error(exc, obj), fields)
    return LineVerdict(None, "", fields)


def _bulk_or_single(lines: _Lines) -> Iterator[tuple[pa.Table | None, int, int]]:
    """`_bulk_or_bisect` over the runs of lines between those `judged_alone`, which come out as single lines."""
    lo = 0
    for i in lines.judged_alone():
        if lo < i:
            yield from _bulk_or_bisect(lines, lo, int(i))
        yield None, int(i), int(i) + 1
        lo = int(i) + 1
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
    if not pc.all(is_z).as_py():  # an offset can move a time of year 1 or 9999 out of the years a datetime holds
        valid = pc.and_(valid, pc.and_(pc.greater_equal(utc, _UTC_RANGE_US[0]), pc.less_equal(utc, _UTC_RANGE_US[1])))
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
        rules.append((pc.invert(_on_day(ts_us, scope)), Reason.OUT_OF_WINDOW, f"ts: not on {scope.day} (UTC)"))
    return rules


def parse_events(data: bytes, *, source: str, scope: DayScope, dated: bool) -> ParsedEvents:
    """Parse one raw JSONL buffer into the accepted events of `scope` and the rejected lines (see `parse_stream`)."""
    return parse_stream([data], source=source, scope=scope, dated=dated)


def parse_stream(
    pieces: Iterable[bytes],
    *,
    source: str,
    scope: DayScope,
    dated: bool,
    block_bytes: int | None = None,
    bulk: bool = True,
) -> ParsedEvents:
    """Parse one raw JSONL source, given as consecutive pieces of bytes (lines may span pieces), into the accepted
    events of `scope` (in line order) and the rejected lines (sorted by line number).

    Parses and judges blocks of whole lines of about `block_bytes` (default BLOCK_BYTES) one at a time, so memory
    holds the accepted events plus one block; how the source is cut into pieces or blocks never changes the result.
    `bulk=False` judges every line with the per-line contract alone: the same result, many times slower; it is the
    reference the bulk path is held to.

    `dated` says the source's path names the day (dt=YYYY-MM-DD or YYYY/MM/DD): then events of other days are
    quarantined as out_of_window. An undated source holds many days; events of other days are just not this
    day's (counted in `other_days`).
    """
    accepted: list[pa.Table] = []
    rejections: list[Rejection] = []
    read = other_days = 0
    first_number = 1
    for block in _blocks_of_lines(pieces, block_bytes or BLOCK_BYTES):
        lines = _Lines(block, first_number)
        first_number += lines.newlines
        read += len(lines)
        if not len(lines):
            continue
        events, rejected, others = _judge_lines(lines, source, scope, dated, bulk)
        accepted.append(events)
        rejections.extend(rejected)
        other_days += others
    if not accepted:
        accepted.append(_judge(RAW_SCHEMA.empty_table(), scope, dated).events)
    rejections.sort(key=lambda r: r.line)
    return ParsedEvents(
        events=pa.concat_tables(accepted), rejections=rejections, read=read - other_days, other_days=other_days
    )


@dataclass(frozen=True)
class TypedRows:
    """Rows of a typed source (a database table) instead of JSON lines: `table` has RAW_SCHEMA's columns, read as
    pyarrow reads them from JSON (v, ts text, strings, rank); `odd` holds the rows whose values no typed column
    holds (a number where a string belongs, say) as JSON lines, for the per-line contract. `text(row)` is a row's
    JSON line for quarantine. Rows (and `odd`'s) are numbered from `first_line` in the source's order."""

    table: pa.Table
    rows: np.ndarray  # the line number of each table row
    odd: list[tuple[int, bytes]]  # (line number, JSON line)
    text: Callable[[int], bytes]  # the JSON line of a table row (by index)


def judge_rows(batches: Iterable[TypedRows], *, source: str, scope: DayScope, dated: bool) -> ParsedEvents:
    """`parse_stream` for typed rows: the same column-wise rules on the same columns (so the same verdicts as the
    JSON lines of the same values), without writing and parsing JSON."""
    accepted: list[pa.Table] = []
    rejections: list[Rejection] = []
    read = other_days = 0
    for batch in batches:
        read += batch.table.num_rows + len(batch.odd)
        table, numbers, texts = batch.table, batch.rows, batch.text
        passed = []  # odd rows the per-line contract reads (none expected): judged with the others, after them
        for line, text in batch.odd:
            verdict = explain_line(text)
            if verdict.reason is None:
                passed.append((line, text, verdict.fields))
            else:
                rejections.append(_rejection(source, line, verdict.reason, verdict.detail, text))
        if passed:
            extra = pa.Table.from_pylist([fields for _, _, fields in passed], schema=RAW_SCHEMA)
            table = pa.concat_tables([table.cast(RAW_SCHEMA), extra])
            numbers = np.concatenate([numbers, [line for line, _, _ in passed]])
            texts = _with_texts(batch, [text for _, text, _ in passed])
        judged = _judge(table, scope, dated)
        accepted.append(judged.events)
        other_days += judged.other_days
        for row, reason, detail in judged.rejected:
            rejections.append(_rejection(source, int(numbers[row]), reason, detail, texts(row)))
    if not accepted:
        accepted.append(_judge(RAW_SCHEMA.empty_table(), scope, dated).events)
    rejections.sort(key=lambda r: r.line)
    return ParsedEvents(
        events=pa.concat_tables(accepted), rejections=rejections, read=read - other_days, other_days=other_days
    )


def _with_texts(batch: TypedRows, more: list[bytes]) -> Callable[[int], bytes]:
    """The texts of `batch`'s table rows, then of `more` (rows appended to its table)."""
    rows = batch.table.num_rows
    return lambda row: batch.text(row) if row < rows else more[row - rows]


def _judge_lines(
    lines: _Lines, source: str, scope: DayScope, dated: bool, bulk: bool
) -> tuple[pa.Table, list[Rejection], int]:
    """A block's accepted events (in line order), rejected lines and count of other days' lines.

    Lines are read in bulk where they can be (`bulk`), the others by the per-line contract; what either path
    accepts is then judged together by the column-wise rules, in line order.
    """
    refused: list[tuple[int, LineVerdict]] = []  # lines the per-line contract rejects
    parsed: list[pa.Table | dict] = []  # in line order: tables read in bulk, fields the per-line contract accepted
    positions: list[np.ndarray | int] = []  # the line (index in `lines`) of each table row or fields
    ranges = _bulk_or_single(lines) if bulk else ((None, i, i + 1) for i in range(len(lines)))
    for table, lo, hi in ranges:
        if table is not None:
            parsed.append(table)
            positions.append(np.arange(lo, hi))
            continue
        verdict = explain_line(lines.text(lo))
        if verdict.reason is None:
            parsed.append(verdict.fields)
            positions.append(lo)
        else:
            refused.append((lo, verdict))
    tables = []
    for read_in_bulk, run in itertools.groupby(parsed, key=lambda part: isinstance(part, pa.Table)):
        if read_in_bulk:
            tables.extend(run)
        else:
            tables.append(pa.Table.from_pylist(list(run), schema=RAW_SCHEMA))
    judged = _judge(pa.concat_tables(tables) if tables else RAW_SCHEMA.empty_table(), scope, dated)
    rows = np.concatenate([np.atleast_1d(p) for p in positions]) if positions else np.empty(0, dtype=np.int64)
    rejected = [(int(rows[row]), reason, detail) for row, reason, detail in judged.rejected]
    # In an undated source a line whose ts is of another day is that day's, whatever else is wrong with it (as the
    # column-wise rules skip it before judging it): its own day quarantines it.
    elsewhere = _other_days([verdict.fields.get("ts") for _, verdict in refused], scope, dated)
    for (i, verdict), skip in zip(refused, elsewhere, strict=True):
        if not skip:
            rejected.append((i, verdict.reason, verdict.detail))
    rejections = [
        _rejection(source, int(lines.numbers[i]), reason, detail, lines.text(i)) for i, reason, detail in rejected
    ]
    return judged.events, rejections, judged.other_days + int(sum(elsewhere))


def _other_days(timestamps: list, scope: DayScope, dated: bool) -> list[bool]:
    """Per ts value (a string, or anything json.loads read): whether it is a valid ts of another day than the
    scope's, in an undated source."""
    if dated or not timestamps:
        return [False] * len(timestamps)
    texts = [ts if isinstance(ts, str) and ts.isascii() else None for ts in timestamps]  # a valid ts is ASCII
    ts_us = _parse_timestamps(pa.chunked_array([texts], pa.string()))
    return pc.fill_null(pc.invert(_on_day(ts_us, scope)), False).to_pylist()


def _on_day(ts_us: pa.ChunkedArray, scope: DayScope) -> pa.ChunkedArray:
    """Per UTC microsecond time: whether it falls on the scope's day (null where the time is)."""
    return pc.and_(pc.greater_equal(ts_us, scope.start_us), pc.less(ts_us, scope.start_us + 86_400_000_000))


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
        keep = pc.fill_null(pc.or_kleene(_on_day(ts_us, scope), pc.is_null(ts_us)), True)
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
