"""Shared fixtures: sample data paths, stores, raw-file writers, dummy AWS credentials for moto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.store import FileSystemStore

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RAW = ROOT / "examples" / "sample" / "raw"
SAMPLE_CATALOG = ROOT / "examples" / "sample" / "catalog.csv"


def event(**fields) -> dict:
    """A valid raw event for demo/home on 2026-01-01, with `fields` overriding."""
    base = {
        "v": 1,
        "ts": "2026-01-01T08:00:00Z",
        "tenant": "demo",
        "surface": "home",
        "session_id": "s1",
        "item_id": "A",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def jsonl(*events: dict | str) -> bytes:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events).encode()


@pytest.fixture
def store(tmp_path: Path) -> FileSystemStore:
    return FileSystemStore(tmp_path / "store")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
