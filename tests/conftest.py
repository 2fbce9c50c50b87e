"""Shared fixtures: sample data paths, stores, raw-file writers, dummy AWS credentials for moto."""

from __future__ import annotations

import itertools
import json
import os
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


@pytest.fixture
def sample_settings(store: FileSystemStore):
    """Settings for the bundled sample data, writing to the test's filesystem store."""
    from recsys.settings import Settings

    return Settings(store=store.uri, raw_uri=str(SAMPLE_RAW), catalog_uri=str(SAMPLE_CATALOG))


def run_steps(settings, start: str, end: str, kinds: list[str] | None = None) -> list:
    """Ingest and compute a window with the step functions the handlers call (no state machine)."""
    import datetime as dt

    from recsys.days import iter_days
    from recsys.pipeline import steps
    from recsys.pipeline.models import ComputeRequest, IngestRequest

    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    for day in iter_days(first, last):
        steps.ingest(IngestRequest(tenant="demo", surface="home", day=day), settings)
    return [
        steps.compute(
            ComputeRequest(tenant="demo", surface="home", start=first, end=last, kind=kind), settings
        ).artifact
        for kind in (kinds or settings.kinds)
    ]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (recsys_tools.local.postgres). Where no server binaries are
    installed, CI installs Debian's package (it runs as root); elsewhere the tests that need it skip, loudly."""
    from recsys_tools.local import postgres

    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    try:
        server = postgres.start(install=in_ci)
    except postgres.ServerUnavailable as err:
        if in_ci:
            pytest.fail(f"CI needs a PostgreSQL server: {err}")
        pytest.skip(f"SKIPPED: no PostgreSQL server for the database tests: {err}")
    yield server
    server.stop()


_databases = itertools.count()


@pytest.fixture
def database_url(postgres_server) -> str:
    """A new empty database on the session's server (one per test: no test sees another's rows)."""
    return postgres_server.create_database(f"test_{next(_databases)}")
