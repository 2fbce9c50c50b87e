"""`recsys db` and `recsys run` from Postgres, end to end as a user runs them, against a real server: synthetic days
loaded into Postgres give the artifacts (and so the manifest version) that the same days give from files."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.publish import service as registry
from recsys.store import FileSystemStore
from recsys_tools.synthetic import SyntheticSpec, generate, write_catalog
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def recsys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_tools.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_synthetic_days_from_postgres_publish_what_the_same_files_publish(tmp_path: Path, database_url: str) -> None:
    spec = SyntheticSpec(tenant="synth", seed=3, start=dt.date(2026, 2, 1), days=4, items=300, users=400)
    raw = tmp_path / "raw"
    generate(spec, raw)
    catalog = tmp_path / "catalog.csv"
    write_catalog(spec, catalog)
    migrated = recsys("db", "migrate", "--url", database_url)
    assert migrated.returncode == 0 and "0001_signal_store.sql" in migrated.stdout, migrated.stderr
    assert recsys("db", "migrate", "--url", database_url).stdout.strip() == "the schema is up to date"
    loaded = recsys(
        "db", "load-events", "--url", database_url, "--raw", str(raw), "--start", "2026-02-01", "--end", "2026-02-04"
    )
    assert loaded.returncode == 0 and "tenants: synth" in loaded.stdout, loaded.stderr

    versions = {}
    for name, source in (("files", str(raw)), ("postgres", database_url + "?table=exposure_events")):
        store = FileSystemStore(tmp_path / name)
        run = recsys(
            "run", "--tenant", "synth", "--surface", "home", "--store", store.uri, "--start", "2026-02-01",
            "--end", "2026-02-04", "--raw", source, "--catalog", str(catalog), "--json", "--quiet",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        output = json.loads(run.stdout)
        versions[name] = output["published"]["manifest_version"]
        manifest = registry.read_pointer(store, "synth", "home").manifest
        assert all(day["accepted"] > 0 for day in output["ingested"])
        versions[name + "_artifacts"] = {kind: a.version for kind, a in manifest.artifacts.items()}
    assert versions["files_artifacts"] == versions["postgres_artifacts"]  # the artifacts' content addresses
    assert versions["files"] == versions["postgres"]


def test_signals_published_into_postgres_are_listed_and_rolled_back(tmp_path: Path, database_url: str) -> None:
    store = FileSystemStore(tmp_path / "store")
    env = {"RECSYS_DATABASE__URL": database_url, "RECSYS_DATABASE__SIGNALS": "true"}
    sample = ROOT / "examples" / "sample"
    for end in ("2026-01-06", "2026-01-07"):
        run = recsys(
            "run", "--tenant", "demo", "--surface", "home", "--store", store.uri, "--start", "2026-01-01",
            "--end", end, "--raw", str(sample / "raw"), "--catalog", str(sample / "catalog.csv"), "--quiet",
            env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    listed = recsys("db", "signals", "--tenant", "demo", "--surface", "home", "--json", env=env)
    assert [(v["day"], v["current"]) for v in json.loads(listed.stdout)] == [
        ("2026-01-07", True),
        ("2026-01-06", False),
    ]
    rolled = recsys("rollback", "--tenant", "demo", "--surface", "home", "--store", store.uri, env=env)
    assert rolled.returncode == 0, rolled.stderr
    listed = recsys("db", "signals", "--tenant", "demo", "--surface", "home", env=env)
    assert listed.stdout.splitlines()[2].split()[2] == "yes"  # 2026-01-06 is current again
    refused = recsys("db", "signals", "--tenant", "demo", "--surface", "home")
    assert refused.returncode == 2 and "no database" in refused.stderr
