"""The vectorized parser: quarantine reasons, trimming, windows, and agreement with the per-line contract."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pytest

from recsys.events import parse
from recsys.events.contract import RawEvent, Reason, parse_timestamp
from recsys.events.parse import (
    DayScope,
    _byte_positions,
    _parse_timestamps,
    explain_line,
    parse_events,
    parse_stream,
)
from tests.conftest import event, jsonl

SCOPE = DayScope("demo", "home", dt.date(2026, 1, 1), frozenset({"exposure", "click", "purchase"}))

BAD_LINES = [
    ('{"v":1,"ts":"2026-01-01T08:00:00Z","tenant":"demo"', Reason.MALFORMED_JSON),
    ("[1, 2]", Reason.MALFORMED_JSON),
    (json.dumps(event(item_id=...)), Reason.MISSING_FIELD),
    (json.dumps(event(item_id=None)), Reason.MISSING_FIELD),
    (json.dumps(event(item_id=7)), Reason.INVALID_TYPE),
    (json.dumps(event(v=2)), Reason.UNSUPPORTED_VERSION),
    (json.dumps(event(v=1.0)), Reason.INVALID_TYPE),
    (json.dumps(event(v=...)), Reason.MISSING_FIELD),
    (json.dumps(event(ts="2026-01-01T08:00:00")), Reason.INVALID_TIMESTAMP),
    (json.dumps(event(ts="2026-01-01t08:00:00z")), Reason.INVALID_TIMESTAMP),
    (json.dumps(event(ts="2026-02-30T08:00:00Z")), Reason.INVALID_TIMESTAMP),
    (json.dumps(event(ts=1767254400)), Reason.INVALID_TYPE),
    (json.dumps(event(session_id="   ")), Reason.INVALID_VALUE),
    (json.dumps(event(rank=-1)), Reason.INVALID_VALUE),
    (json.dumps(event(rank="1")), Reason.INVALID_TYPE),
    (json.dumps(event(rank=2**63)), Reason.INVALID_VALUE),
    (json.dumps(event(rank=10**30)), Reason.INVALID_VALUE),
    (json.dumps(event(item_id="\ud800x")), Reason.INVALID_ENCODING),
    (json.dumps(event(user_id="u\udfff")), Reason.INVALID_ENCODING),
    (json.dumps(event(event_type="refund")), Reason.UNKNOWN_EVENT_TYPE),
    (json.dumps(event(tenant="other")), Reason.TENANT_MISMATCH),
    (json.dumps(event(surface="pdp")), Reason.SURFACE_MISMATCH),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_bad_line_is_quarantined_with_its_reason(line: str, reason: Reason) -> None:
    good = event(item_id="GOOD")
    result = parse_events(jsonl(good, line, good), source="raw.jsonl", scope=SCOPE, dated=True)
    assert [(r.line, r.reason) for r in result.rejections] == [(2, reason)]
    assert result.events["item_id"].to_pylist() == ["GOOD", "GOOD"]
    assert result.read == 3
    assert result.rejections[0].raw == line and result.rejections[0].source == "raw.jsonl"


def test_invalid_utf8_is_quarantined() -> None:
    data = (
        jsonl(event()) + b'{"v":1,"ts":"2026-01-01T08:00:00Z","tenant":"demo","surface":"home",'
        b'"session_id":"s1","item_id":"\xff"}\n'
    )
    result = parse_events(data, source="raw.jsonl", scope=SCOPE, dated=True)
    assert [(r.line, r.reason) for r in result.rejections] == [(2, Reason.INVALID_ENCODING)]
    assert result.events.num_rows == 1


@pytest.mark.parametrize(("line", "reason"), BAD_LINES[2:])
def test_bulk_rules_agree_with_the_per_line_contract(line: str, reason: Reason) -> None:
    """Lines pyarrow parses in bulk get the same reason as RawEvent (plus run scope) would give them."""
    verdict = explain_line(line.encode())
    if verdict.reason is not None:
        assert verdict.reason == reason
    else:  # valid per RawEvent: only the run's scope rejects it
        assert reason in (Reason.UNKNOWN_EVENT_TYPE, Reason.TENANT_MISMATCH, Reason.SURFACE_MISMATCH)


def test_fields_are_trimmed_and_empty_optionals_become_null() -> None:
    line = event(item_id=" A ", session_id=" s1 ", user_id="", request_id=" r1 ", event_type=" click ")
    result = parse_events(jsonl(line), source="x", scope=SCOPE, dated=True)
    row = result.events.to_pylist()[0]
    assert (row["item_id"], row["session_id"], row["user_id"], row["request_id"], row["event_type"]) == (
        "A",
        "s1",
        None,
        "r1",
        "click",
    )


def test_event_type_defaults_to_exposure_and_unknown_fields_are_ignored() -> None:
    result = parse_events(jsonl(event(extra={"nested": [1, 2]})), source="x", scope=SCOPE, dated=True)
    assert result.events["event_type"].to_pylist() == ["exposure"]


def test_timestamps_with_offsets_and_fractions_are_normalized_to_utc() -> None:
    lines = [
        event(ts="2026-01-01T10:30:00+02:00"),
        event(ts="2026-01-01T08:00:00.1234567Z"),
        event(ts="2025-12-31T23:30:00-01:00"),
    ]
    result = parse_events(jsonl(*lines), source="x", scope=SCOPE, dated=True)
    assert [t.isoformat() for t in result.events["ts_utc"].to_pylist()] == [
        "2026-01-01T08:30:00+00:00",
        "2026-01-01T08:00:00.123456+00:00",
        "2026-01-01T00:30:00+00:00",
    ]


def test_dated_source_quarantines_other_days_and_undated_source_skips_them() -> None:
    lines = jsonl(event(), event(ts="2026-01-02T00:00:00Z"), event(ts="2026-01-01T23:30:00-02:00"))
    dated = parse_events(lines, source="x", scope=SCOPE, dated=True)
    assert [(r.line, r.reason) for r in dated.rejections] == [(2, Reason.OUT_OF_WINDOW), (3, Reason.OUT_OF_WINDOW)]
    undated = parse_events(lines, source="x", scope=SCOPE, dated=False)
    assert undated.rejections == [] and undated.other_days == 2 and undated.read == 1
    assert undated.events.num_rows == 1


def test_blank_lines_and_crlf_are_fine() -> None:
    data = jsonl(event()).replace(b"\n", b"\r\n") + b"\n   \n" + jsonl(event(item_id="B"))
    result = parse_events(data, source="x", scope=SCOPE, dated=True)
    assert result.events["item_id"].to_pylist() == ["A", "B"] and result.read == 2 and not result.rejections


def test_duplicate_keys_last_wins_like_json_loads() -> None:
    line = (
        '{"v":1,"ts":"2026-01-01T08:00:00Z","tenant":"demo","surface":"home","session_id":"s","item_id":"A",'
        '"item_id":"B"}'
    )
    result = parse_events(jsonl(line), source="x", scope=SCOPE, dated=True)
    assert result.events["item_id"].to_pylist() == ["B"]


def test_many_bad_lines_among_many_good_ones_are_all_found() -> None:
    lines: list[dict | str] = [event(item_id=f"i{n}") for n in range(5000)]
    for position in (0, 1234, 1235, 4999):
        lines[position] = "{broken"
    result = parse_events(jsonl(*lines), source="x", scope=SCOPE, dated=True)
    assert [r.line for r in result.rejections] == [1, 1235, 1236, 5000]
    assert result.events.num_rows == 4996


def test_parse_timestamp_rejects_bad_zones() -> None:
    assert parse_timestamp("2026-01-01T08:00:00-00:30").isoformat() == "2026-01-01T08:30:00+00:00"
    for text in ("2026-01-01T08:00:00+24:00", "2026-01-01T08:00:00+01:75", "2026-01-01T08:00:00"):
        with pytest.raises(ValueError):
            parse_timestamp(text)


def test_raw_event_contract_accepts_the_seed_example() -> None:
    seed = (
        '{"v": 1, "ts": "2026-01-01T08:00:00Z", "tenant": "demo", "surface": "home", "session_id": "s1", '
        '"item_id": "A", "rank": 1}'
    )
    assert RawEvent.model_validate_json(seed).rank == 1


# Streaming: a source is cut into pieces (reads) and blocks (parsed together); the result must not depend on either.

STREAM_LINES = [
    json.dumps(event(item_id="A")),  # 1
    "",  # 2: empty
    "{broken",  # 3: malformed
    "   \t",  # 4: whitespace only
    " " + json.dumps(event(item_id="B")),  # 5: leading whitespace, still an event
    json.dumps(event(item_id=...)),  # 6: missing item_id (found by the bulk rules)
    "\r",  # 7: a bare CR is blank too
    json.dumps(event(item_id="C", ts="2026-01-02T00:00:00Z")),  # 8: another day
    json.dumps(event(item_id="D" * 300)),  # 9: longer than the small blocks below
    json.dumps(event(item_id="E")),  # 10: the last line, without a newline
]


def _stream_source(crlf: bool) -> bytes:
    return ("\r\n" if crlf else "\n").join(STREAM_LINES).encode()


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("crlf", [False, True])
def test_the_result_does_not_depend_on_pieces_or_blocks(crlf: bool) -> None:
    data = _stream_source(crlf)
    ends = [len(data)] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    cuts = [(None, None), (1, None), (7, 1), (64, 50), (1000, 7)] + [(None, end) for end in ends]
    for piece_size, block_bytes in cuts:  # block sizes ending exactly at every line put each line at a block edge
        pieces = [data] if piece_size is None else _pieces(data, piece_size)
        result = parse_stream(pieces, source="x", scope=SCOPE, dated=True, block_bytes=block_bytes)
        assert [(r.line, r.reason) for r in result.rejections] == [
            (3, Reason.MALFORMED_JSON),
            (6, Reason.MISSING_FIELD),
            (8, Reason.OUT_OF_WINDOW),
        ], (piece_size, block_bytes)
        assert result.events["item_id"].to_pylist() == ["A", "B", "D" * 300, "E"], (piece_size, block_bytes)
        assert result.read == 7
        assert result.rejections[0].raw == "{broken"  # without the CR of a CRLF line


def test_blank_lines_only_and_an_empty_source_give_nothing() -> None:
    for data in (b"", b"\n", b"\n\n \r\n\t", b" "):
        result = parse_stream(_pieces(data, 1) if data else [], source="x", scope=SCOPE, dated=True, block_bytes=1)
        assert (result.read, result.events.num_rows, result.rejections) == (0, 0, [])
        assert result.events.schema == parse_events(jsonl(event()), source="x", scope=SCOPE, dated=True).events.schema


def test_a_null_line_is_a_row_of_nulls_wherever_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's JSON reader reads a `null` line among others as a row of nulls, but crashes (segfault) when one
    starts a chunk it reads; so null lines never reach it and get that verdict anyway."""
    good = json.dumps(event())
    cases = [["null", good], [good, "null", good], [good, " null\t", good], ["null", "null", good, "null"]]
    monkeypatch.setattr(parse, "_READ_OPTIONS", pj.ReadOptions(use_threads=True, block_size=len(good) + 1))
    for lines, block_bytes in itertools.product(cases, (None, 1)):
        result = parse_stream([jsonl(*lines)], source="x", scope=SCOPE, dated=True, block_bytes=block_bytes)
        nulls = [number for number, line in enumerate(lines, 1) if "null" in line]
        assert [(r.line, r.reason, r.detail) for r in result.rejections] == [
            (number, Reason.MISSING_FIELD, "v: required") for number in nulls
        ]
        assert result.events.num_rows == len(lines) - len(nulls) and result.read == len(lines)
        assert result.rejections[0].raw == lines[nulls[0] - 1]


def test_a_line_led_by_null_but_not_null_is_malformed() -> None:
    good = json.dumps(event())
    result = parse_events(jsonl(good, "null " + good, "nullx", good), source="x", scope=SCOPE, dated=True)
    assert [(r.line, r.reason, r.detail) for r in result.rejections] == [
        (2, Reason.MALFORMED_JSON, "Extra data"),
        (3, Reason.MALFORMED_JSON, "Extra data"),
    ]


def test_events_keep_their_line_order_whichever_path_read_them() -> None:
    """Dedup keeps the first occurrence, so the order of the events is part of the result: a line only the
    per-line contract can parse keeps its place among the lines read in bulk."""
    # pyarrow rejects a key given twice with different types; json.loads keeps the last value.
    twice = json.dumps(event(item_id=5))[:-1] + ', "item_id": "B"}'
    other_day = json.dumps(event(item_id=5, ts="2026-01-02T08:00:00Z"))[:-1] + ', "item_id": "D"}'
    data = jsonl(event(item_id="A"), twice, event(item_id="C"), other_day)
    for block_bytes, bulk in itertools.product((None, 1), (True, False)):
        result = parse_stream(
            _pieces(data, 10), source="x", scope=SCOPE, dated=True, block_bytes=block_bytes, bulk=bulk
        )
        assert result.events["item_id"].to_pylist() == ["A", "B", "C"]
        assert [(r.line, r.reason, r.raw) for r in result.rejections] == [(4, Reason.OUT_OF_WINDOW, other_day)]


TIMESTAMPS = [  # text, microseconds since the epoch (None: invalid), worked out by hand
    ("2026-01-01T00:00:00Z", 1_767_225_600_000_000),
    ("2026-01-01T00:00:00.5Z", 1_767_225_600_500_000),
    ("2024-02-29T23:59:59.9999999Z", 1_709_251_199_999_999),  # leap day; the 7th fraction digit is cut
    ("1969-12-31T23:59:59.5Z", -500_000),
    ("2023-02-29T00:00:00Z", None),  # no such day
    ("2026-04-31T00:00:00Z", None),
    ("2026-01-01T24:00:00Z", None),
    ("2026-01-01T23:60:00Z", None),
    ("2026-01-01T23:59:60Z", None),  # no leap seconds
    ("2026-01-01T00:00:00+23:59", 1_767_225_600_000_000 - (23 * 3600 + 59 * 60) * 1_000_000),
    ("2026-01-01T00:00:00.25-00:30", 1_767_225_600_000_000 + 30 * 60 * 1_000_000 + 250_000),
    ("2026-01-01T00:00:00+24:00", None),
    ("2026-01-01T00:00:00+01:60", None),
    ("2026-01-01T00:00:00", None),
    (None, None),
]


@pytest.mark.parametrize("with_offsets", [False, True])
def test_timestamps_are_parsed_to_utc_microseconds(with_offsets: bool) -> None:
    cases = [(text, us) for text, us in TIMESTAMPS if with_offsets or text is None or text[-6] not in "+-"]
    parsed = _parse_timestamps(pa.chunked_array([[text for text, _ in cases]], pa.string()))
    assert parsed.to_pylist() == [us for _, us in cases]
    for text, us in cases:  # the per-line contract agrees
        if text is None:
            continue
        if us is None:
            with pytest.raises(ValueError):
                parse_timestamp(text)
        else:
            assert parse_timestamp(text) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def test_bytes_are_found_across_search_steps() -> None:
    data = b"ab\n\ncd\nefNghij\n\nk"
    buf = np.frombuffer(data, dtype=np.uint8)
    for step in (1, 2, 3, 100):
        newlines, capital_n = _byte_positions(buf, (10, ord("N")), step=step)
        assert newlines.tolist() == [2, 3, 6, 14, 15] and capital_n.tolist() == [9]
    assert [p.tolist() for p in _byte_positions(np.frombuffer(b"", dtype=np.uint8), (10,))] == [[]]


HOSTILE_LINES = {
    # an integer past Python's 4,300-digit conversion limit (ValueError inside json.loads)
    "huge_integer": ('{"v": 1, "rank": ' + "9" * 4301 + "}").encode(),
    # arrays nested past the recursion limit (RecursionError inside json.loads)
    "deep_nesting": ('{"v": 1, "extra": ' + "[" * 5000 + "]" * 5000 + "}").encode(),
    # a ts at the calendar's edge that overflows when converted, on a line with another bad field
    "edge_timestamp": json.dumps(
        {"v": 1, "ts": "0001-01-01T00:00:00+01:00", "tenant": "demo", "surface": "home", "item_id": 5}
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES))
def test_a_hostile_line_is_quarantined_and_never_aborts_the_day(name: str) -> None:
    bad = HOSTILE_LINES[name]
    verdict = explain_line(bad)
    assert isinstance(verdict.reason, Reason) and verdict.detail
    good = jsonl(event())
    parsed = parse_events(good + bad + b"\n" + good, source="raw.jsonl", scope=SCOPE, dated=True)
    assert parsed.events.num_rows == 2
    assert [rejected.line for rejected in parsed.rejections] == [2]


# One contract: lines pyarrow's reader reads otherwise than json.loads are judged by the per-line contract, in
# bulk as alone. Each case sits among good lines (so the bulk path reads the block) and must get the same verdict.
GOOD = json.dumps(event()).encode()
WITH_EXTRA = GOOD[:-1] + b', "x": '  # then an unknown field's value and "}"
OTHER_READINGS = {
    "bom": (b"\xef\xbb\xbf" + GOOD, Reason.MALFORMED_JSON, "starts with a byte order mark (BOM)"),
    "null": (b"null", Reason.MISSING_FIELD, "v: required"),
    "bad_utf8_in_unknown_value": (
        WITH_EXTRA + b'"\xff"}',
        Reason.INVALID_ENCODING,
        f"not UTF-8 at byte {len(WITH_EXTRA) + 1}",
    ),
    "bad_utf8_in_unknown_key": (
        GOOD[:-1] + b', "\xc3": 1}',
        Reason.INVALID_ENCODING,
        f"not UTF-8 at byte {len(GOOD) + 2}",
    ),
    "nan": (WITH_EXTRA + b"NaN}", Reason.MALFORMED_JSON, "NaN is not valid JSON"),
    "minus_infinity": (WITH_EXTRA + b"[-Infinity]}", Reason.MALFORMED_JSON, "-Infinity is not valid JSON"),
    "inf": (WITH_EXTRA + b"Inf}", Reason.MALFORMED_JSON, "Expecting value"),
    "deep_unknown": (
        WITH_EXTRA + b"[" * 2000 + b"]" * 2000 + b"}",
        Reason.MALFORMED_JSON,
        "nested too deeply to parse",
    ),
    "huge_unknown": (WITH_EXTRA + b"7" * 4301 + b"}", Reason.MALFORMED_JSON, "a number is too long to parse"),
    "two_objects": (GOOD + b" " + GOOD, Reason.MALFORMED_JSON, "Extra data"),
    **{
        name: (json.dumps(event(ts=ts)).encode(), Reason.INVALID_TIMESTAMP, "ts: not RFC 3339 with a zone")
        for name, ts in (
            ("year_0", "0000-01-01T00:00:00Z"),
            ("before_year_1_in_utc", "0001-01-01T00:00:00+01:00"),
            ("after_year_9999_in_utc", "9999-12-31T23:30:00-01:00"),
        )
    },
}


@pytest.mark.parametrize("name", sorted(OTHER_READINGS))
@pytest.mark.parametrize("dated", [True, False])
def test_lines_pyarrow_reads_otherwise_get_the_per_line_verdict_in_bulk(name: str, dated: bool) -> None:
    line, reason, detail = OTHER_READINGS[name]
    data = b"\n".join([GOOD] * 3 + [line] + [GOOD] * 3) + b"\n"
    for bulk in (True, False):
        result = parse_stream([data], source="x", scope=SCOPE, dated=dated, bulk=bulk)
        assert [(r.line, r.reason, r.detail) for r in result.rejections] == [(4, reason, detail)], bulk
        assert (result.events.num_rows, result.read, result.other_days) == (6, 7, 0)


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (json.dumps(event(v=2)), "v: only 1 is supported"),
        (json.dumps(event(ts="2026-01-01T08:00:00")), "ts: not RFC 3339 with a zone"),
        (json.dumps(event(item_id=" ")), "item_id: must not be empty"),
        (json.dumps(event(rank=-1)), "rank: must be >= 0"),
        (json.dumps(event(v=...)), "v: required"),
    ],
)
def test_the_per_line_contract_words_a_rule_as_the_bulk_rules_do(line: str, detail: str) -> None:
    (bulk,) = parse_events(jsonl(line), source="x", scope=SCOPE, dated=True).rejections
    assert bulk.detail == detail == explain_line(line.encode()).detail


@pytest.mark.parametrize(
    "ts",
    [
        "2026-01-01T08:00:00Z\n",  # Python's `$` matches before a trailing newline; RE2's (the bulk path's) does not
        "2026-01-01T08:00:00.\u0665Z",  # Python's `\d` matches any decimal digit
        "\u0662\u0660\u0662\u0666-01-01T08:00:00Z",
    ],
)
def test_the_per_line_contract_reads_timestamps_as_the_bulk_path(ts: str) -> None:
    verdict = explain_line(json.dumps(event(ts=ts)).encode())
    assert (verdict.reason, verdict.detail) == (Reason.INVALID_TIMESTAMP, "ts: not RFC 3339 with a zone")
    with pytest.raises(ValueError):
        parse_timestamp(ts)


def test_in_an_undated_source_a_bad_line_of_another_day_is_that_days() -> None:
    """Whichever path judges it, a line whose ts is of another day is skipped by this day (its own quarantines
    it): here a missing v (found by the bulk rules) and a wrong type (found by the per-line contract)."""
    data = jsonl(
        event(),
        event(ts="2026-01-05T08:00:00Z", v=...),
        event(ts="2026-01-05T08:00:00Z", item_id=5),
        event(ts="not a time", item_id=5),
    )
    for bulk in (True, False):
        result = parse_stream([data], source="x", scope=SCOPE, dated=False, bulk=bulk)
        assert [(r.line, r.reason) for r in result.rejections] == [(4, Reason.INVALID_TIMESTAMP)]
        assert (result.events.num_rows, result.read, result.other_days) == (1, 2, 2)


def test_typed_rows_are_judged_like_their_json_lines():
    """judge_rows (a database's typed rows) gives what parse_stream gives for the same events as JSON lines; a row
    handed over as an odd JSON line is judged by the per-line contract, and joins the others if it passes."""
    from recsys.events.contract import RAW_SCHEMA
    from recsys.events.parse import TypedRows, judge_rows

    lines = [
        {"v": 1, "ts": "2026-01-01T08:00:00Z", "tenant": "demo", "surface": "home", "session_id": "s1", "item_id": "A"},
        {"v": 1, "ts": "2026-01-01T08:00:01Z", "tenant": "demo", "surface": "home", "session_id": " ", "item_id": "B"},
    ]
    odd = b'{"v":1,"ts":"2026-01-01T08:00:02Z","tenant":"demo","surface":"home","session_id":"s1","item_id":"C"}'
    table = pa.Table.from_pylist(lines, schema=RAW_SCHEMA)
    scope = DayScope("demo", "home", dt.date(2026, 1, 1), frozenset({"exposure"}))
    texts = [json.dumps(line).encode() for line in lines]
    typed = judge_rows(
        [TypedRows(table, np.array([1, 2]), [(3, odd)], lambda row: texts[row])],
        source="db",
        scope=scope,
        dated=True,
    )
    as_lines = parse_stream([b"\n".join([*texts, odd]) + b"\n"], source="db", scope=scope, dated=True)
    assert typed.events.equals(as_lines.events)
    assert [(r.line, r.reason, r.detail, r.raw) for r in typed.rejections] == [
        (r.line, r.reason, r.detail, r.raw) for r in as_lines.rejections
    ]
    assert typed.read == as_lines.read == 3
