"""ingest_day against a filesystem store: partitions, dedup, quarantine, reports, idempotent reruns, sources."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from recsys import paths
from recsys.events import parse
from recsys.events.parse import DayScope
from recsys.ingest import sources
from recsys.ingest.service import dedupe, ingest_day, load_report
from recsys.ingest.sources import day_in_path, raw_files
from recsys.store import FileSystemStore, NotFound
from recsys.tables import from_parquet
from tests.conftest import event, jsonl

DAY = dt.date(2026, 1, 1)
SCOPE = DayScope("demo", "home", DAY, frozenset({"exposure", "click"}))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_three_malformed_lines_are_quarantined_and_the_day_is_kept(tmp_path: Path, store: FileSystemStore) -> None:
    good = [event(item_id=f"i{n}", session_id=f"s{n % 3}", user_id=f"u{n % 2}") for n in range(20)]
    lines = [
        *good[:5],
        "{not json",
        *good[5:10],
        json.dumps(event(item_id=...)),
        *good[10:],
        json.dumps(event(ts="2026-01-01 08:00")),
    ]
    _write(tmp_path / "raw" / "dt=2026-01-01" / "events.jsonl", jsonl(*lines))
    report = ingest_day(store, str(tmp_path / "raw"), SCOPE)
    assert (report.read, report.accepted, report.quarantined) == (23, 20, 3)
    assert report.reasons == {"invalid_timestamp": 1, "malformed_json": 1, "missing_field": 1}
    quarantined = [json.loads(line) for line in store.get(paths.quarantine("demo", "home", DAY)).data.splitlines()]
    assert [(q["line"], q["reason"]) for q in quarantined] == [
        (6, "malformed_json"),
        (12, "missing_field"),
        (23, "invalid_timestamp"),
    ]
    assert quarantined[0]["raw"] == "{not json" and quarantined[0]["source"].endswith("dt=2026-01-01/events.jsonl")
    canonical = from_parquet(store.get(paths.canonical_events("demo", "home", DAY)).data)
    assert canonical.num_rows == 20 and (report.distinct_items, report.distinct_sessions, report.distinct_users) == (
        20,
        3,
        2,
    )
    assert load_report(store, "demo", "home", DAY) == report


def test_duplicates_are_dropped_by_event_id_or_by_the_event_key(tmp_path: Path, store: FileSystemStore) -> None:
    lines = [
        event(item_id="A", event_id="e1"),
        event(item_id="B", event_id="e1"),  # same event_id: a duplicate even though the item differs
        event(item_id="C"),
        event(item_id="C"),  # same key fields
        event(item_id="C", ts="2026-01-01T10:00:00+02:00"),  # the same instant, written with an offset
        event(item_id="C", event_type="click"),  # a different event type is a different event
    ]
    _write(tmp_path / "raw" / "a.jsonl", jsonl(*lines))
    report = ingest_day(store, str(tmp_path / "raw"), SCOPE)
    canonical = from_parquet(store.get(paths.canonical_events("demo", "home", DAY)).data)
    assert (report.accepted, report.duplicates) == (3, 3)
    assert sorted(zip(canonical["item_id"].to_pylist(), canonical["event_type"].to_pylist(), strict=True)) == [
        ("A", "exposure"),
        ("C", "click"),
        ("C", "exposure"),
    ]


def test_canonical_partition_is_sorted_and_typed(tmp_path: Path, store: FileSystemStore) -> None:
    lines = [
        event(item_id="B", ts="2026-01-01T09:00:00Z"),
        event(item_id="A", ts="2026-01-01T08:00:00Z"),
        event(item_id="C", ts="2026-01-01T08:00:00Z", session_id="s0"),
    ]
    _write(tmp_path / "raw" / "x.jsonl", jsonl(*lines))
    ingest_day(store, str(tmp_path / "raw"), SCOPE)
    canonical = from_parquet(store.get(paths.canonical_events("demo", "home", DAY)).data)
    assert canonical["item_id"].to_pylist() == ["C", "A", "B"]
    assert str(canonical.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_rerun_rewrites_nothing_and_gives_identical_bytes(tmp_path: Path, store: FileSystemStore) -> None:
    _write(tmp_path / "raw" / "dt=2026-01-01" / "e.jsonl.gz", gzip.compress(jsonl(event(), "{bad")))
    ingest_day(store, str(tmp_path / "raw"), SCOPE)
    files = sorted(p for p in Path(store.root).rglob("*") if p.is_file() and not p.name.startswith("."))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    ingest_day(store, str(tmp_path / "raw"), SCOPE)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert before == after and len(files) == 3  # events.parquet, _ingest.json, _quarantine.jsonl


def test_fixed_raw_data_replaces_the_partition_and_clears_the_quarantine(
    tmp_path: Path, store: FileSystemStore
) -> None:
    raw = tmp_path / "raw" / "e.jsonl"
    _write(raw, jsonl(event(), "{bad"))
    ingest_day(store, str(raw.parent), SCOPE)
    _write(raw, jsonl(event(), event(item_id="B")))
    report = ingest_day(store, str(raw.parent), SCOPE)
    assert (report.accepted, report.quarantined, report.quarantine_uri) == (2, 0, None)
    assert not store.exists(paths.quarantine("demo", "home", DAY))


def test_a_day_without_events_gets_an_empty_partition(tmp_path: Path, store: FileSystemStore) -> None:
    (tmp_path / "raw").mkdir()
    report = ingest_day(store, str(tmp_path / "raw"), SCOPE)
    assert (report.files, report.read, report.accepted) == (0, 0, 0)
    assert from_parquet(store.get(paths.canonical_events("demo", "home", DAY)).data).num_rows == 0


def test_sources_prune_dated_folders_and_keep_undated_files(tmp_path: Path) -> None:
    for name in (
        "dt=2026-01-01/a.jsonl",
        "dt=2026-01-02/a.jsonl",
        "2026/01/01/b.jsonl.gz",
        "2026/01/02/b.jsonl",
        "flat.jsonl",
        "notes.txt",
    ):
        _write(tmp_path / name, b"")
    found = {(f.key, f.dated) for f in raw_files(str(tmp_path), DAY)}
    assert found == {("dt=2026-01-01/a.jsonl", True), ("2026/01/01/b.jsonl.gz", True), ("flat.jsonl", False)}
    assert [f.key for f in raw_files(str(tmp_path / "flat.jsonl"), DAY)] == ["flat.jsonl"]
    assert day_in_path("x/dt=2026-13-01/y.jsonl") is None


def test_a_day_whose_raw_files_vanished_keeps_its_partition(tmp_path: Path, store: FileSystemStore) -> None:
    raw = tmp_path / "raw" / "dt=2026-01-01" / "events.jsonl"
    _write(raw, jsonl(event(), event(item_id="B")))
    first = ingest_day(store, str(tmp_path / "raw"), SCOPE)
    raw.unlink()
    again = ingest_day(store, str(tmp_path / "raw"), SCOPE)
    assert again.kept_existing and again.accepted == first.accepted == 2
    assert from_parquet(store.get(paths.canonical_events("demo", "home", DAY)).data).num_rows == 2


def _events(**columns: list) -> pa.Table:
    """A table in the shape `dedupe` receives (RAW_SCHEMA strings, ts as a UTC timestamp, rank)."""
    rows = len(next(iter(columns.values())))
    base = {
        "tenant": ["demo"] * rows,
        "surface": ["home"] * rows,
        "session_id": ["s1"] * rows,
        "request_id": [None] * rows,
        "item_id": ["A"] * rows,
        "ts": [dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)] * rows,
        "event_type": ["exposure"] * rows,
        "event_id": [None] * rows,
        "rank": list(range(rows)),
    }
    base.update(columns)
    types = {"ts": pa.timestamp("us", tz="UTC"), "rank": pa.int64()}
    return pa.table({name: pa.array(values, types.get(name, pa.string())) for name, values in base.items()})


def test_dedupe_keeps_the_first_row_of_each_event_id_and_of_each_event_key() -> None:
    events = _events(
        event_id=["e1", None, "e1", None, None, "e2", None],
        item_id=["A", "K", "B", "K", "L", "A", "K"],
        request_id=["r", None, "r", "", None, "r", "r"],  # a null and an empty request_id are the same key
    )
    kept, duplicates = dedupe(events)
    assert duplicates == 2 and sorted(kept["rank"].to_pylist()) == [0, 1, 4, 5, 6]


def test_dedupe_without_duplicates_returns_the_table_as_it_is() -> None:
    events = _events(event_id=["e1", None, "e2"], item_id=["A", "A", "B"])
    assert dedupe(events) == (events, 0)
    assert dedupe(events)[0] is events


def test_dedupe_with_the_separator_inside_a_key_field() -> None:
    """A field holding \\x1f takes the joined-key path; true duplicates still go, different events stay."""
    events = _events(session_id=["a\x1fb", "a\x1fb", "a", "a\x1fb"], item_id=["A", "A", "A", "B"])
    kept, duplicates = dedupe(events)
    assert duplicates == 1 and sorted(kept["rank"].to_pylist()) == [0, 2, 3]


def test_raw_files_are_read_in_pieces(tmp_path: Path) -> None:
    data = jsonl(event(), "{bad", event(item_id="B")) + b"no newline at the end"
    _write(tmp_path / "a.jsonl", data)
    _write(tmp_path / "b.jsonl.gz", gzip.compress(data))
    for name in ("a.jsonl", "b.jsonl.gz"):
        (raw,) = raw_files(str(tmp_path / name), DAY)
        pieces = list(raw.pieces(size=7))
        assert b"".join(pieces) == data and max(len(p) for p in pieces) == 7
        assert b"".join(raw.pieces()) == data
    _write(tmp_path / "empty.jsonl", b"")
    assert list(raw_files(str(tmp_path / "empty.jsonl"), DAY)[0].pieces()) == []
    with pytest.raises(NotFound):
        list(raw_files(str(tmp_path / "missing.jsonl"), DAY)[0].pieces())


def test_small_pieces_and_blocks_give_the_same_bytes(
    tmp_path: Path, store: FileSystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [event(item_id=f"i{n % 7}", session_id=f"s{n % 3}", event_id=f"e{n % 11}") for n in range(40)]
    body = jsonl(*lines[:10], "{broken", "", "  ", *lines[10:30], json.dumps(event(rank=-1)), *lines[30:])
    _write(tmp_path / "raw" / "dt=2026-01-01" / "a.jsonl.gz", gzip.compress(body.replace(b"\n", b"\r\n")[:-2]))
    _write(tmp_path / "raw" / "dt=2026-01-01" / "b.jsonl", body)
    whole = ingest_day(store, str(tmp_path / "raw"), SCOPE)
    monkeypatch.setattr(sources, "RAW_PIECE_BYTES", 50)
    monkeypatch.setattr(parse, "BLOCK_BYTES", 120)
    small_store = FileSystemStore(tmp_path / "small")
    streamed = ingest_day(small_store, str(tmp_path / "raw"), SCOPE)
    # per file: 40 events of 11 event_ids, one malformed line, one negative rank; blank lines are not read
    assert (whole.read, whole.accepted, whole.duplicates, whole.quarantined) == (2 * 42, 11, 80 - 11, 2 * 2)
    assert whole.reasons == {"invalid_value": 2, "malformed_json": 2}
    assert streamed.model_dump(exclude={"canonical_uri", "quarantine_uri"}) == whole.model_dump(
        exclude={"canonical_uri", "quarantine_uri"}
    )
    for key in (paths.canonical_events("demo", "home", DAY), paths.quarantine("demo", "home", DAY)):
        assert small_store.get(key).data == store.get(key).data
