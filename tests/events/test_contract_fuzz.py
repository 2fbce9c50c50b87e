"""Hypothesis fuzz of the raw-line contract: the bulk path agrees with the per-line contract on every line, no line
aborts a day, and ingest's counts add up (accepted + duplicates + quarantined = read).

Lines are built from valid events, the same events with one field broken, odd timestamps, unknown fields holding
what pyarrow and json.loads read differently (bad UTF-8, NaN, deep nesting, huge integers, lone surrogates), and
hostile bytes (BOMs, `null`, random bytes, two objects on a line). Deterministic (derandomized) and bounded for CI.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.events.contract import Reason
from recsys.events.parse import DayScope, explain_line, parse_stream
from recsys.ingest.service import ingest_day
from recsys.store import FileSystemStore

DAY = dt.date(2026, 1, 1)
SCOPE = DayScope("demo", "home", DAY, frozenset({"exposure", "click", "purchase"}))
FUZZ = settings(
    derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Strings: mostly plain ids, with whitespace (trimmed), Unicode whitespace, lone surrogates and characters JSON
# escapes.
_TEXT = st.one_of(
    st.sampled_from(
        [
            "demo",
            "home",
            "s1",
            "A",
            "u1",
            "click",
            "exposure",
            "e-1",
            "",
            " ",
            " A ",
            "\u00a0B\u2003",
            "\ud800x",
            "\udfff",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    st.text(alphabet='AB \t\x1f\u3000é😀"\\/', max_size=6),
)
_EDGE_TIMESTAMP = st.builds(  # the calendar's edges, where an offset can leave the years 1 to 9999
    "{}T{}{}".format,
    st.sampled_from(["0001-01-01", "9999-12-31", "0000-12-31"]),
    st.sampled_from(["00:00:00", "00:30:00.5", "23:30:00", "23:59:59.999999"]),
    st.sampled_from(["Z", "+01:00", "-01:00", "+00:30", "-00:30"]),
)
_TIMESTAMP = st.one_of(
    _EDGE_TIMESTAMP,
    st.sampled_from(
        [
            "2026-01-01T08:00:00Z",
            "2026-01-01T00:00:00Z",
            "2026-01-01T23:59:59.9999999Z",
            "2026-01-02T00:00:00Z",
            "2025-12-31T23:59:59.999999Z",
            "2026-01-01T23:30:00-02:00",
            "2026-01-02T00:30:00+02:00",
            "2026-01-01T08:00:00",
            "2026-01-01t08:00:00z",
            "2026-02-30T08:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T08:00:60Z",
            "2026-01-01T08:00:00+24:00",
            "2026-01-01T08:00:00+01:60",
            "2026-01-01T08:00:00.Z",
            "2026-01-01T08:00:00.1234567890Z",
            "0000-01-01T00:00:00Z",
            "0000-12-31T23:30:00-01:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:30:00-01:00",
            "2026-01-01T08:00:00Z\n",
            " 2026-01-01T08:00:00Z",
            "٢٠٢٦-01-01T08:00:00Z",
            "2026-01-01T08:00:00.٥Z",
            "2026-01-01T08:00:00+0١:00",
            "",
        ]
    ),
    st.builds(
        lambda day, seconds, micros, offset: (
            (dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds, microseconds=micros)).isoformat()
            + offset
        ),
        st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
        st.integers(0, 86_399),
        st.sampled_from([0, 1, 999_999]),
        st.sampled_from(["Z", "+00:00", "-00:00", "+05:30", "-23:59", "+23:59"]),
    ),
)
_WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.sampled_from([1.0, -0.0, 2**63, 2**63 - 1, -1, [], {}, [1], {"a": 1}]),
    _TEXT,
)


@st.composite
def valid_events(draw) -> dict:
    event = {
        "v": 1,
        "ts": draw(
            st.sampled_from(["2026-01-01T08:00:00Z", "2026-01-01T00:00:00.5+01:00", "2026-01-01T22:00:00-01:59"])
        ),
        "tenant": draw(st.sampled_from(["demo", " demo ", "demo\u3000"])),
        "surface": "home",
        "session_id": draw(st.sampled_from(["s1", "s2", " s3"])),
        "item_id": draw(st.sampled_from(["A", "B", "é", "😀"])),
    }
    for name, values in (
        ("user_id", st.sampled_from(["u1", "", None, " u2 "])),
        ("request_id", st.sampled_from(["r1", "", None])),
        ("rank", st.integers(0, 2**63 - 1)),
        ("event_type", st.sampled_from(["click", "purchase", " exposure ", "", None])),
        ("event_id", st.sampled_from(["e1", "e2", "", None])),
    ):
        if draw(st.booleans()):
            event[name] = draw(values)
    return event


@st.composite
def broken_events(draw) -> dict:
    """A valid event with one field removed, replaced or joined by an odd value."""
    event = draw(valid_events())
    name = draw(st.sampled_from(["v", "ts", "tenant", "surface", "user_id", "session_id", "request_id", "item_id",
                                 "rank", "event_type", "event_id"]))  # fmt: skip
    change = draw(st.sampled_from(["drop", "wrong", "text", "timestamp", "timestamp"]))
    if change == "drop":
        event.pop(name, None)
    elif change == "wrong":
        event[name] = draw(_WRONG)
    elif change == "text":
        event[name] = draw(_TEXT)
    else:
        event["ts"] = draw(_TIMESTAMP)
    return event


_UNKNOWN_VALUES = st.one_of(  # JSON text of an unknown field's value, or what json.dumps never writes
    _WRONG.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(
        [b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"Inf", b"-Inf", b"nan", b"1e999", b"-1e-999", b"1E2"]
    ),
    st.integers(4290, 4310).map(lambda n: b"9" * n),  # around Python's int() digit limit
    # around json.loads' recursion limit (1,000 frames less the caller's), and well past it
    st.sampled_from([600, 900, 1000, 3000]).map(lambda depth: b"[" * depth + b"]" * depth),
    st.sampled_from([600, 900, 1000, 3000]).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from([b'"\\ud800"', b'"\\udc00"', b'"\\ud83d\\ude00"', b'"\\u0000"', b'"Inf"', b'"NaN"']),
)


@st.composite
def lines(draw) -> bytes:
    """One raw line (without its newline)."""
    kind = draw(st.sampled_from(["valid", "valid", "broken", "broken", "broken", "extra", "extra", "hostile", "blank"]))
    if kind == "blank":  # skipped, but they count in line numbers
        return draw(st.sampled_from([b"", b"  ", b"\r", b" \t"]))
    if kind in ("valid", "broken", "extra"):
        event = draw(valid_events() if kind != "broken" else broken_events())
        pairs = [(json.dumps(key), json.dumps(value, ensure_ascii=draw(st.booleans()))) for key, value in event.items()]
        # A lone surrogate is escaped (ensure_ascii) or written as its CESU-8 bytes, which are not UTF-8.
        pairs = [(key.encode(), value.encode("utf-8", "surrogatepass")) for key, value in pairs]
        if kind == "extra":  # unknown fields, written raw so that they can hold what json.dumps never writes
            for _ in range(draw(st.integers(1, 2))):
                key = draw(st.sampled_from([b'"x"', b'"V"', b'"TS"']))
                pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(_UNKNOWN_VALUES)))
            if draw(st.integers(0, 3)) == 0:  # bad UTF-8 inside an unknown string or key
                bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]))
                pairs.append((draw(st.sampled_from([b'"x"', b'"k' + bad + b'"'])), b'"a' + bad + b'"'))
        if draw(st.integers(0, 9)) == 0 and pairs:  # a key given twice: json.loads keeps the last value
            key, _ = draw(st.sampled_from(pairs))
            pairs.append((key, json.dumps(draw(_WRONG)).encode()))
        space = draw(st.sampled_from([b"", b" ", b"\t", b"  \r "]))
        line = b"{" + (b"," + space).join(key + b":" + space + value for key, value in pairs) + b"}"
        # Mostly nothing before the object: a line that does not start with `{` never reaches the bulk reader.
        lead = draw(st.sampled_from([b""] * 8 + [b" ", b"\t", b"\xef\xbb\xbf"]))
        return lead + line + draw(st.sampled_from([b"", b" ", b"\r"]))
    return draw(
        st.one_of(
            st.sampled_from(
                [
                    b"null",
                    b" null ",
                    b"null null",
                    b"nullx",
                    b"\xef\xbb\xbf",
                    b"\xef\xbb\xbfnull",
                    b"[1, 2]",
                    b"1",
                    b'"text"',
                    b"true",
                    b"{}",
                    b"{",
                    b"}",
                    b'{"v": 1} {"v": 1}',
                    b'{"v": 1}{}',
                    b'{"v": 1}\x00',
                    b'{"v": 1} x',
                    b'{"v": 1,}',
                    b"{'v': 1}",
                    b'{"v": NaN}',
                    b"\x0b",
                    b"\x00",
                    b'{"v":1,\r"ts":"2026-01-01T08:00:00Z"}',
                ]
            ),
            st.binary(max_size=40),
        )
    )


def _verdicts(result) -> list[tuple]:
    return [(r.line, r.reason, r.detail, r.raw) for r in result.rejections]


@settings(FUZZ, max_examples=300)
@given(
    st.lists(lines(), min_size=1, max_size=30),
    st.booleans(),
    st.sampled_from([None, 1, 200, 2000]),
)
def test_the_bulk_path_agrees_with_the_per_line_contract_on_every_line(
    raw_lines: list[bytes], dated: bool, block_bytes: int | None
) -> None:
    data = b"\n".join(raw_lines) + b"\n"
    bulk = parse_stream([data], source="x", scope=SCOPE, dated=dated, block_bytes=block_bytes)
    per_line = parse_stream([data], source="x", scope=SCOPE, dated=dated, bulk=False)
    assert _verdicts(bulk) == _verdicts(per_line)
    assert bulk.events.to_pylist() == per_line.events.to_pylist()
    assert (bulk.read, bulk.other_days) == (per_line.read, per_line.other_days)
    for line in raw_lines:  # and each line on its own: never an exception, always a verdict
        verdict = explain_line(line.rstrip(b"\r"))
        assert verdict.reason is None or (isinstance(verdict.reason, Reason) and verdict.detail)


PACKINGS = {
    "plain": (".jsonl", lambda body: body),
    "gzip": (".jsonl.gz", gzip.compress),
    "cut gzip": (".jsonl.gz", lambda body: gzip.compress(body)[:-5]),  # damaged: recorded, none of its lines read
}


@settings(FUZZ, max_examples=40)
@given(
    st.lists(
        st.tuples(st.lists(lines(), max_size=15), st.sampled_from(sorted(PACKINGS))),
        min_size=1,
        max_size=3,
    )
)
def test_ingest_counts_add_up_whatever_the_lines(files: list[tuple[list[bytes], str]]) -> None:
    """Through ingest_day (dedup, dated and undated files, gzip): accepted + duplicates + quarantined = read, and
    every non-blank line of a readable file is read or another day's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n, (file_lines, packing) in enumerate(files):
            suffix, pack = PACKINGS[packing]
            path = root / "raw" / ("dt=2026-01-01" if n % 2 else "flat") / f"part-{n}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pack(b"\n".join(file_lines)))
        report = ingest_day(FileSystemStore(root / "store"), str(root / "raw"), SCOPE)
    assert report.accepted + report.duplicates + report.quarantined == report.read
    assert sum(report.reasons.values()) == report.quarantined
    assert len(report.damaged_files) == sum(packing == "cut gzip" for _, packing in files)
    readable = [b"\n".join(file_lines) for file_lines, packing in files if packing != "cut gzip"]
    assert report.read + report.other_days == sum(
        1 for body in readable for line in body.split(b"\n") if line.strip(b" \t\r")
    )
