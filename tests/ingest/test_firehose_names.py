"""Kinesis Data Firehose's default object names (no .jsonl, maybe .gz, in YYYY/MM/DD/HH/ delivery folders) are
raw files; other names without .jsonl are still skipped. A Firehose object's folder and name give the delivery
time, not the events' day, so the objects delivered on a day and the day after are read for it, as undated files.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from recsys.events.parse import DayScope
from recsys.ingest.service import ingest_day
from recsys.ingest.sources import firehose_day, raw_files
from recsys.store import FileSystemStore
from tests.conftest import event, jsonl

UUID = "c0d0ba2c-9b5c-4f41-8f5e-c6e6d6c1b8f7"
DAY = dt.date(2026, 1, 1)


@pytest.mark.parametrize(
    ("name", "day"),
    [
        (f"events-stream-1-2026-01-01-00-00-00-{UUID}", DAY),
        (f"events-stream-1-2026-01-01-23-59-58-{UUID}.gz", DAY),
        (f"raw/2026/01/02/00/my.stream_2-12-2026-01-02-00-04-10-{UUID.upper()}", dt.date(2026, 1, 2)),
        (f"s-1-2026-02-30-00-00-00-{UUID}", None),  # no such day
        (f"events-stream-2026-01-01-00-00-00-{UUID}", None),  # no stream version
        (f"events-stream-1-2026-01-01-00-00-{UUID}", None),  # no seconds
        (f"events-stream-1-2026-01-01-00-00-00-{UUID}.json", None),
        (f"events-stream-1-2026-01-01-00-00-00-{UUID}.gz.tmp", None),
        ("events-stream-1-2026-01-01-00-00-00-notauuid", None),
        ("_SUCCESS", None),
        ("notes.txt", None),
    ],
)
def test_firehose_default_names_and_junk(name: str, day: dt.date | None) -> None:
    assert firehose_day(name) == day


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_firehose_objects_are_read_for_their_delivery_day_and_the_day_before(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    late = event(ts="2026-01-01T23:59:59Z", item_id="late", session_id="s9")
    _write(raw / f"2026/01/01/08/events-1-2026-01-01-08-00-00-{UUID}.gz", gzip.compress(jsonl(event())))
    # Delivered after midnight: holds the last event of the 1st and the first of the 2nd.
    second = jsonl(late, event(ts="2026-01-02T00:00:01Z", item_id="B"))
    _write(raw / f"2026/01/02/00/events-1-2026-01-02-00-00-30-{UUID}", second)
    _write(raw / f"2026/01/03/00/events-1-2026-01-03-00-00-30-{UUID}", jsonl(event(ts="2026-01-03T00:00:01Z")))
    _write(raw / "2026/01/01/08/notes.txt", b"not events")
    _write(raw / "2026/01/01/08/_SUCCESS", b"")

    names = {day: [Path(f.key).name[:10] for f in raw_files(str(raw), day)] for day in (DAY, dt.date(2026, 1, 2))}
    assert names == {DAY: ["events-1-2", "events-1-2"], dt.date(2026, 1, 2): ["events-1-2", "events-1-2"]}
    assert not any(f.dated for f in raw_files(str(raw), DAY))
    store = FileSystemStore(tmp_path / "store")
    report = ingest_day(store, str(raw), DayScope("demo", "home", DAY, frozenset({"exposure"})))
    assert (report.files, report.accepted, report.quarantined, report.other_days) == (2, 2, 0, 1)
    # A single Firehose object as the raw location works too.
    single = raw / f"2026/01/02/00/events-1-2026-01-02-00-00-30-{UUID}"
    assert [f.key for f in raw_files(str(single), DAY)] == [single.name]


def test_firehose_objects_under_moto_s3(aws_credentials) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="raw-events")
        key = f"events/2026/01/01/10/stream-1-2026-01-01-10-15-00-{UUID}.gz"
        s3.put_object(Bucket="raw-events", Key=key, Body=gzip.compress(jsonl(event(), event(item_id="B"))))
        s3.put_object(Bucket="raw-events", Key="events/2026/01/01/10/manifest", Body=b"{}")
        files = raw_files("s3://raw-events/events", DAY)
        assert [f.key for f in files] == [key.removeprefix("events/")]
        assert b"".join(files[0].pieces()).count(b"\n") == 2
