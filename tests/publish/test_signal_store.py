"""The Postgres signal store against a real server: publish writes it in one transaction with the pointer, rollback
moves it, and the API in database mode answers exactly as from the Parquet artifacts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from recsys.compute import KINDS
from recsys.contract.manifest import ArtifactRef
from recsys.database.connection import SharedConnection
from recsys.database.settings import DatabaseSettings
from recsys.days import Window
from recsys.errors import ManifestNotFound
from recsys.publish import service as registry
from recsys.publish.signal_store import SignalStore
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.settings import ServeSettings
from recsys.store import FileSystemStore, StoreError
from recsys.tables import content_version, from_parquet
from recsys_tools.local.runner import LocalPipeline
from tests.conftest import SAMPLE_CATALOG, SAMPLE_RAW

pytestmark = pytest.mark.slow

VOLATILE = ("request_id", "took_ms", "latency_ms", "generated_at", "served_at", "timings")


def run_sample(store: FileSystemStore, database_url: str, end: str = "2026-01-07", **env: str) -> dict:
    """The bundled sample through the real state machine, publishing into the signal store too."""
    settings = {
        "RECSYS_STORE": store.uri,
        "RECSYS_CATALOG_URI": str(SAMPLE_CATALOG),
        "RECSYS_DATABASE__URL": database_url,
        "RECSYS_DATABASE__SIGNALS": "true",
        **env,
    }
    with LocalPipeline(settings) as pipeline:
        run = pipeline.run(
            {"tenant": "demo", "surface": "home", "start": "2026-01-01", "end": end, "raw": str(SAMPLE_RAW)}
        )
    assert run.status == "SUCCEEDED", run.message
    return run.output


def signal_store(database_url: str, keep_days: int = 10) -> SignalStore:
    return SignalStore(SharedConnection(DatabaseSettings(url=database_url)), keep_days)


def snapshot(database_url: str) -> dict:
    """Everything the signal store holds, table by table (with each row's transaction id: a rewrite changes it)."""
    with psycopg.connect(database_url) as conn:
        tables = ["recsys_signal_versions", "recsys_signal_current", *(f"recsys_{kind}" for kind in KINDS.builtin)]
        return {
            table: sorted(map(repr, conn.execute(f"SELECT xmin::text, * FROM {table}").fetchall())) for table in tables
        }


def test_published_signals_are_the_artifacts_rows_exactly(tmp_path: Path, database_url: str) -> None:
    store = FileSystemStore(tmp_path / "store")
    output = run_sample(store, database_url)
    manifest = registry.read_pointer(store, "demo", "home").manifest
    assert output["published"]["manifest_version"] == manifest.manifest_version
    versions = signal_store(database_url).versions("demo", "home")
    assert [(v["day"], v["manifest_version"], v["current"]) for v in versions] == [
        ("2026-01-07", manifest.manifest_version, True)
    ]
    reader = SharedConnection(DatabaseSettings(url=database_url))
    from recsys.serve.reader.cache import ArtifactCache
    from recsys.serve.reader.database import DatabaseSignals

    signals = DatabaseSignals(manifest, ArtifactCache(), store, reader)
    for kind, ref in manifest.artifacts.items():
        schema = KINDS.get(kind).schema
        rows = signals._rows(kind)
        artifact = from_parquet(store.get(store.key_of(ref.uri)).data)
        assert rows.num_rows == ref.rows == versions[0]["rows"][kind]
        assert content_version(rows, schema) == ref.version, kind
        assert rows.equals(artifact.select(schema.names).cast(schema)), kind
    with psycopg.connect(database_url) as conn:  # the seed's tables, as views
        popular = conn.execute(
            "SELECT item_id, score FROM item_popularity_daily WHERE day = '2026-01-07' ORDER BY score DESC LIMIT 1"
        ).fetchone()
        tags = conn.execute("SELECT count(*) FROM item_tags WHERE namespace = 'home'").fetchone()[0]
    assert popular is not None and tags == manifest.artifacts["content_sim"].rows


def _requests(count: int, seed: int = 5) -> list[tuple[str, dict]]:
    """Recorded-style requests over the sample: known and unknown users, sessions, anchors, tags, explain."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        anchors = [f"i{rng.randrange(1, 130):05d}" for _ in range(rng.choice([0, 0, 1, 3]))]
        if rng.random() < 0.2:
            requests.append(("/v1/similar", {"surface": "home", "item_id": f"i{rng.randrange(1, 130):05d}", "k": 5}))
            continue
        body: dict = {"surface": rng.choice(["home", "home", "other"]), "k": rng.choice([5, 10, 20]), "user": {}}
        who = rng.random()
        if who < 0.7:
            body["user"]["user_id"] = f"u{rng.randrange(0, 70):05d}"
        else:
            body["user"]["session_id"] = f"s-{rng.randrange(50)}"
        if anchors:
            body["anchors"] = {"item_ids": anchors}
        if rng.random() < 0.15:
            body["constraints"] = {"max_per_tag": {"category:toys": 1}}
        if rng.random() < 0.3:
            body["options"] = {"explain": rng.choice(["summary", "full"]), "include_reasons": True}
        requests.append(("/v1/recommend", body))
    return requests


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def test_database_mode_answers_exactly_as_the_artifacts(tmp_path: Path, database_url: str, monkeypatch) -> None:
    store = FileSystemStore(tmp_path / "store")
    run_sample(store, database_url)
    auth = AuthSettings(DEV_AUTH_ENABLED=True, DEV_AUTH_DEFAULT_ROLES="admin")
    from_artifacts = TestClient(create_app(ServeSettings(RECSYS_STORE=store.uri), auth))
    monkeypatch.setenv("RECSYS_DATABASE__URL", database_url)
    from_database = TestClient(create_app(ServeSettings(RECSYS_STORE=store.uri, RECSYS_SERVE_FROM="database"), auth))
    headers = {"X-Dev-Org-Id": "demo"}
    statuses = []
    for path, body in _requests(300):
        expected = from_artifacts.post(path, headers=headers, json=body)
        actual = from_database.post(path, headers=headers, json=body)
        assert actual.status_code == expected.status_code, body
        assert _scrub(actual.json()) == _scrub(expected.json()), body
        statuses.append(expected.status_code)
        if expected.status_code == 200 and path == "/v1/recommend" and body["surface"] == "home":
            assert expected.json()["items"], body
    assert statuses.count(200) > 250  # the replay exercised ranking, not error paths


def test_a_failed_publish_leaves_every_table_as_it_was(tmp_path: Path, database_url: str) -> None:
    store = FileSystemStore(tmp_path / "store")
    run_sample(store, database_url, end="2026-01-06")
    before = snapshot(database_url)
    pointer = registry.read_pointer(store, "demo", "home").manifest
    # A new version (another window), whose pointer write then fails: the signal store must not keep any of it.
    artifacts = [ArtifactRef(kind=kind, **entry.model_dump()) for kind, entry in pointer.artifacts.items()]
    window = Window(start=pointer.window.start, end=pointer.window.end.replace(day=pointer.window.end.day + 1))
    moved = [a.model_copy(update={"window": window}) for a in artifacts]

    class FailingPointer(FileSystemStore):
        def put(self, key, data, **kwargs):
            if key.startswith("registry/current/"):
                raise StoreError("S3 is down")
            return super().put(key, data, **kwargs)

    with pytest.raises(StoreError, match="S3 is down"):
        registry.publish(FailingPointer(store.root), "demo", "home", window, moved, signals=signal_store(database_url))
    assert snapshot(database_url) == before
    assert registry.read_pointer(store, "demo", "home").manifest.manifest_version == pointer.manifest_version


def test_a_rerun_rewrites_nothing_and_rollback_moves_both_pointers(tmp_path: Path, database_url: str) -> None:
    store = FileSystemStore(tmp_path / "store")
    run_sample(store, database_url, end="2026-01-06")
    first = registry.read_pointer(store, "demo", "home").manifest.manifest_version
    run_sample(store, database_url, end="2026-01-07")
    second = registry.read_pointer(store, "demo", "home").manifest.manifest_version
    rows_before = snapshot(database_url)
    run_sample(store, database_url, end="2026-01-07")  # a rerun: unchanged
    after = snapshot(database_url)
    assert {t: rows for t, rows in after.items() if t != "recsys_signal_current"} == {
        t: rows for t, rows in rows_before.items() if t != "recsys_signal_current"
    }
    signals = signal_store(database_url)
    assert [(v["manifest_version"], v["current"]) for v in signals.versions("demo", "home")] == [
        (second, True),
        (first, False),
    ]
    registry.rollback(store, "demo", "home", signals=signals)
    assert registry.read_pointer(store, "demo", "home").manifest.manifest_version == first
    assert [v["current"] for v in signals.versions("demo", "home")] == [False, True]


def test_days_beyond_keep_days_leave_and_cannot_be_rolled_back_to(tmp_path: Path, database_url: str) -> None:
    store = FileSystemStore(tmp_path / "store")
    env = {"RECSYS_DATABASE__KEEP_DAYS": "1"}
    run_sample(store, database_url, end="2026-01-06", **env)
    old = registry.read_pointer(store, "demo", "home").manifest.manifest_version
    run_sample(store, database_url, end="2026-01-07", **env)
    signals = signal_store(database_url, keep_days=1)
    assert [v["day"] for v in signals.versions("demo", "home")] == ["2026-01-07"]
    current = registry.read_pointer(store, "demo", "home").manifest.manifest_version
    with pytest.raises(ManifestNotFound, match="no longer in the signal store"):
        registry.rollback(store, "demo", "home", to=old, signals=signals)
    assert registry.read_pointer(store, "demo", "home").manifest.manifest_version == current  # neither moved
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM recsys_cooc WHERE day = '2026-01-06'").fetchone()[0] == 0


def test_the_api_reports_no_signals_before_anything_was_published(tmp_path: Path, database_url: str, monkeypatch):
    store = FileSystemStore(tmp_path / "store")
    monkeypatch.setenv("RECSYS_DATABASE__URL", database_url)
    app = create_app(
        ServeSettings(RECSYS_STORE=store.uri, RECSYS_SERVE_FROM="database"), AuthSettings(DEV_AUTH_ENABLED=True)
    )
    response = TestClient(app).post(
        "/v1/recommend", headers={"X-Dev-Org-Id": "demo"}, json={"surface": "home", "k": 5, "user": {"user_id": "u"}}
    )
    expected = TestClient(create_app(ServeSettings(RECSYS_STORE=store.uri), AuthSettings(DEV_AUTH_ENABLED=True)))
    same = expected.post(
        "/v1/recommend", headers={"X-Dev-Org-Id": "demo"}, json={"surface": "home", "k": 5, "user": {"user_id": "u"}}
    )
    assert (response.status_code, _scrub(response.json())) == (same.status_code, _scrub(same.json()))
    assert json.dumps(response.json())  # a problem document, not a crash


def test_the_api_keeps_serving_its_last_manifest_while_postgres_refuses_it(tmp_path, database_url, monkeypatch):
    """A database that stops answering is a store outage: the last manifest read is served, flagged stale."""
    store = FileSystemStore(tmp_path / "store")
    run_sample(store, database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE api LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO api")
    monkeypatch.setenv("RECSYS_DATABASE__URL", database_url.replace("recsys@", "api@"))
    app = create_app(
        ServeSettings(RECSYS_STORE=store.uri, RECSYS_SERVE_FROM="database", RECSYS_ARTIFACT_MANIFEST_TTL=0),
        AuthSettings(DEV_AUTH_ENABLED=True),
    )
    client = TestClient(app)
    body = {"surface": "home", "k": 5, "user": {"user_id": "u00017"}}
    fresh = client.post("/v1/recommend", headers={"X-Dev-Org-Id": "demo"}, json=body).json()
    assert fresh["items"] and not any(w["code"] == "MANIFEST_STALE" for w in fresh.get("warnings", []))
    with psycopg.connect(database_url, autocommit=True) as conn:  # the API's role is locked out, its session ended
        conn.execute("ALTER ROLE api NOLOGIN")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'api'")
    stale = client.post("/v1/recommend", headers={"X-Dev-Org-Id": "demo"}, json=body).json()
    assert [w["code"] for w in stale["warnings"] if w["code"] == "MANIFEST_STALE"] == ["MANIFEST_STALE"]
    assert stale["items"] == fresh["items"]
    assert stale["meta"]["manifest_version"] == fresh["meta"]["manifest_version"]


def test_each_kinds_table_in_the_shipped_schema_holds_its_artifact_columns(database_url: str) -> None:
    """The migration is written by hand: a column added to a kind's schema must be added to its table too."""
    from recsys.contract.kinds import BUILTIN_KINDS
    from recsys.database import artifact_tables
    from recsys.database.migrations import migrate

    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        for kind in BUILTIN_KINDS:
            columns = conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (artifact_tables.table_name(kind),),
            ).fetchall()
            keys = [name for name, _ in columns[: len(artifact_tables.KEY_COLUMNS)]]
            assert keys == list(artifact_tables.KEY_COLUMNS), kind
            expected = artifact_tables.expected_columns(KINDS.get(kind).schema)
            assert columns[len(keys) :] == expected, kind
