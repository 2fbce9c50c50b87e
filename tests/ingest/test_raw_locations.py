"""Raw locations that do not exist are errors, not empty days; damaged .gz files are recorded against their day.

Covered end to end too: the state machine ends a run whose raw location is missing with `NotFound` (the pointer
stays), and `recsys run` says so in one line naming the location.
"""

from __future__ import annotations

import datetime as dt
import gzip
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from recsys import paths
from recsys.errors import ConfigError
from recsys.events.parse import DayScope
from recsys.ingest.service import ingest_day, load_report
from recsys.ingest.sources import raw_files
from recsys.settings import GateLimits
from recsys.store import FileSystemStore, NotFound, StoreError
from recsys.tables import from_parquet
from recsys.validate.gates import evaluate
from recsys_tools.local.runner import LocalPipeline
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW, event, jsonl

DAY = dt.date(2026, 1, 1)
SCOPE = DayScope("demo", "home", DAY, frozenset({"exposure", "click"}))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("form", ["directory", "file-uri", "jsonl", "jsonl.gz", "dated-jsonl-of-another-day"])
def test_a_raw_location_that_does_not_exist_is_not_found(tmp_path: Path, form: str) -> None:
    missing = {
        "directory": str(tmp_path / "nope"),
        "file-uri": f"file://{tmp_path / 'nope'}",
        "jsonl": str(tmp_path / "nope.jsonl"),
        "jsonl.gz": f"file://{tmp_path / 'raw' / 'nope.jsonl.gz'}",
        "dated-jsonl-of-another-day": str(tmp_path / "dt=2026-01-05" / "nope.jsonl"),  # checked on every day
    }[form]
    with pytest.raises(NotFound, match=f"{missing} does not exist"):
        raw_files(missing, DAY)


def test_a_missing_location_is_not_mistaken_for_raw_files_that_vanished(tmp_path: Path, store: FileSystemStore) -> None:
    raw = tmp_path / "raw"
    _write(raw / "dt=2026-01-01" / "events.jsonl", jsonl(event()))
    assert ingest_day(store, str(raw), SCOPE).accepted == 1
    with pytest.raises(NotFound, match="raw location .*/rwa does not exist"):
        ingest_day(store, str(tmp_path / "rwa"), SCOPE)  # a typo: an error, not "kept the events ingested before"
    (raw / "dt=2026-01-01" / "events.jsonl").unlink()  # the location exists, the day's files are gone: kept
    assert ingest_day(store, str(raw), SCOPE).kept_existing


def test_an_existing_empty_directory_is_an_empty_day(tmp_path: Path, store: FileSystemStore) -> None:
    (tmp_path / "raw").mkdir()
    report = ingest_day(store, f"file://{tmp_path / 'raw'}", SCOPE)
    assert (report.files, report.read, report.accepted, report.kept_existing) == (0, 0, 0, False)


def test_a_raw_location_that_is_some_other_file_is_a_config_error(tmp_path: Path) -> None:
    _write(tmp_path / "events.json", jsonl(event()))
    with pytest.raises(ConfigError, match="only .jsonl and .jsonl.gz files are read"):
        raw_files(str(tmp_path / "events.json"), DAY)


def test_s3_locations(aws_credentials: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="raw")
        s3.put_object(Bucket="raw", Key="events/demo/dt=2026-01-01/a.jsonl", Body=jsonl(event()))
        s3.put_object(Bucket="raw", Key="events/demo/dt=2026-01-02/a.jsonl", Body=jsonl(event()))
        assert [f.source for f in raw_files("s3://raw/events/demo", DAY)] == [
            "s3://raw/events/demo/dt=2026-01-01/a.jsonl"
        ]
        assert raw_files("s3://raw/events/demo", dt.date(2026, 1, 3)) == []  # exists, no file of the day
        # S3 has no folders: a prefix with no object under it does not exist (a typo), whatever the day.
        with pytest.raises(NotFound, match="raw location s3://raw/events/dmeo does not exist"):
            raw_files("s3://raw/events/dmeo", DAY)
        with pytest.raises(NotFound, match="raw file s3://raw/events/demo/b.jsonl does not exist"):
            raw_files("s3://raw/events/demo/b.jsonl", DAY)
        with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
            raw_files("s3://no-such-bucket/events", DAY)


def _damaged(good: bytes) -> dict[str, bytes]:
    packed = gzip.compress(good)
    crc_off = bytearray(packed)
    crc_off[-8] ^= 0xFF  # the trailer's CRC-32
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2] ^= 0xFF
    return {
        "truncated": packed[: len(packed) // 2],
        "crc": bytes(crc_off),
        "corrupt": bytes(corrupt),
        "not-gzip": good,
        "trailing-garbage": packed + b"garbage!",
    }


@pytest.mark.parametrize("damage", sorted(_damaged(b"")))
def test_a_damaged_gz_file_is_recorded_against_its_day_and_fails_its_error_budget(
    tmp_path: Path, store: FileSystemStore, damage: str
) -> None:
    day = tmp_path / "raw" / "dt=2026-01-01"
    lines = [event(item_id=f"i{n}", session_id=f"s{n}") for n in range(200)]
    _write(day / "a.jsonl", jsonl(event(item_id="GOOD")))
    _write(day / "b.jsonl.gz", _damaged(jsonl(*lines))[damage])
    _write(day / "c.jsonl.gz", gzip.compress(jsonl(event(item_id="ALSO-GOOD"), "{bad")))
    report = ingest_day(store, str(tmp_path / "raw"), SCOPE)  # does not raise: the other files are ingested
    assert [d.source for d in report.damaged_files] == [f"file://{day}/b.jsonl.gz"]
    assert report.damaged_files[0].error
    canonical = from_parquet(store.get(paths.canonical_events("demo", "home", DAY)).data)
    assert sorted(canonical["item_id"].to_pylist()) == ["ALSO-GOOD", "GOOD"]  # none of the damaged file's lines
    assert (report.files, report.read, report.accepted, report.quarantined) == (3, 3, 2, 1)
    assert load_report(store, "demo", "home", DAY) == report

    (budget,) = [r for r in evaluate([report], {}, GateLimits()) if r.gate == "error_budget"]
    assert not budget.passed and report.error_rate == 1.0
    assert f"1 damaged raw file(s) count as 100% (file://{day}/b.jsonl.gz: " in budget.message
    (relaxed,) = [r for r in evaluate([report], {}, GateLimits(max_error_rate=1)) if r.gate == "error_budget"]
    assert relaxed.passed  # a budget of 100% lets the day publish without the damaged file


def _pipeline_input(raw: str) -> dict:
    return {
        "tenant": "demo",
        "surface": "home",
        "start": "2026-01-01",
        "end": "2026-01-02",
        "raw": raw,
        "catalog": str(SAMPLE_CATALOG),
        "kinds": ["popularity"],
    }


def test_the_state_machine_fails_a_run_whose_raw_location_is_missing(store: FileSystemStore, tmp_path: Path) -> None:
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        assert pipeline.run(_pipeline_input(str(SAMPLE_RAW))).status == "SUCCEEDED"
        served = store.get(paths.current_manifest("demo", "home")).data
        failed = pipeline.run(_pipeline_input(str(tmp_path / "nope")))
    assert failed.status == "FAILED" and failed.error == "NotFound"
    assert failed.message == f"NotFound: raw location {tmp_path / 'nope'} does not exist"
    assert store.get(paths.current_manifest("demo", "home")).data == served


def test_recsys_run_reports_a_missing_raw_location_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    run = subprocess.run(
        [sys.executable, "-m", "recsys_tools.cli", "run", "--tenant", "demo", "--surface", "home", "--quiet"]
        + ["--start", "2026-01-01", "--end", "2026-01-01", "--raw", str(missing), "--kinds", "popularity"]
        + ["--store", f"file://{tmp_path / 'store'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert run.stderr == f"recsys: run failed: NotFound: raw location {missing} does not exist\n"
