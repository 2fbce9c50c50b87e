"""The Postgres event source against a real server: the same contract, quarantine and canonical partitions as files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

from recsys.database.migrations import migrate
from recsys.database.settings import DatabaseSettings
from recsys.events.parse import DayScope
from recsys.ingest import postgres as pg_source
from recsys.ingest.service import ingest_day
from recsys.settings import Settings
from recsys.store import FileSystemStore, NotFound, StoreError
from recsys_tools.database import load_events
from tests.conftest import SAMPLE_RAW

DAY = dt.date(2026, 1, 1)
TYPES = frozenset(Settings().event_types)


def scope(day: dt.date = DAY, tenant: str = "demo", surface: str = "home") -> DayScope:
    return DayScope(tenant, surface, day, TYPES)


def partition(store: FileSystemStore, report) -> bytes:
    return store.get(store.key_of(report.canonical_uri)).data


@pytest.fixture
def db(database_url: str):
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn)
        yield conn


def tenant_id(conn: psycopg.Connection, tenant: str = "demo"):
    return conn.execute(
        "INSERT INTO tenants (external_id, name) VALUES (%s, %s) ON CONFLICT (external_id) "
        "DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (tenant, tenant),
    ).fetchone()[0]


def test_the_sample_days_from_postgres_give_the_same_canonical_bytes_as_from_files(db, database_url, tmp_path: Path):
    days = [DAY + dt.timedelta(days=n) for n in range(7)]
    loaded = load_events(db, str(SAMPLE_RAW), days)
    assert loaded.loaded > 3000 and loaded.tenants == ["demo"]
    files, table = FileSystemStore(tmp_path / "files"), FileSystemStore(tmp_path / "table")
    for day in days:
        from_files = ingest_day(files, str(SAMPLE_RAW), scope(day))
        from_table = ingest_day(table, database_url, scope(day))
        assert partition(files, from_files) == partition(table, from_table)
        assert (from_table.accepted, from_table.duplicates, from_table.distinct_users) == (
            from_files.accepted,
            from_files.duplicates,
            from_files.distinct_users,
        )
        assert from_table.files == 1 and from_table.quarantined == 0


def test_a_rerun_rewrites_nothing_and_small_batches_read_the_same(db, database_url, tmp_path, monkeypatch):
    load_events(db, str(SAMPLE_RAW), [DAY])
    store = FileSystemStore(tmp_path / "store")
    first = ingest_day(store, database_url, scope())
    monkeypatch.setattr(pg_source, "JUDGED_ROWS", 7)  # many small blocks
    again = ingest_day(store, database_url, scope())
    assert again.canonical_etag == first.canonical_etag and again.accepted == first.accepted


def test_seed_rows_become_one_exposure_per_response_item_and_bad_values_are_quarantined(db, database_url, tmp_path):
    tid = tenant_id(db)
    at = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)
    insert = (
        "INSERT INTO exposure_events (tenant_id, occurred_at, request_id, surface, session_id, response) "
        "VALUES (%s, %s, %s, %s, %s, %s)"
    )
    items = {"items": [{"item_id": "A", "rank": 1}, {"item_id": 7, "rank": 2}, {"item_id": "B", "rank": 3}]}
    db.execute(insert, (tid, at, "r1", "home", "s1", json.dumps(items)))
    db.execute(insert, (tid, at, "r2", "home", "s1", json.dumps({"items": []})))  # nothing shown: no event
    db.execute(insert, (tid, at, "r3", "home", "s1", json.dumps({"items": [{"item_id": "C", "rank": -1}]})))
    db.execute(insert, (tid, at, "r4", "other", "s1", json.dumps({"items": [{"item_id": "D"}]})))  # another surface
    db.execute(
        "INSERT INTO exposure_events (tenant_id, occurred_at, surface, session_id, user_id, item_id, event_type) "
        "VALUES (%s, %s, 'home', '  ', 'u1', 'E', 'click'), (%s, %s, 'home', 's2', 'u1', 'F', 'teleport')",
        (tid, at, tid, at),
    )
    store = FileSystemStore(tmp_path / "store")
    report = ingest_day(store, database_url + "?table=exposure_events", scope())
    assert report.accepted == 2 and report.read == 6
    assert report.reasons == {"invalid_type": 1, "invalid_value": 2, "unknown_event_type": 1}
    events = sorted((row["item_id"], row["rank"], row["request_id"]) for row in _canonical_rows(store, report))
    assert events == [("A", 1, "r1"), ("B", 3, "r1")]
    quarantined = [json.loads(line) for line in store.get(store.key_of(report.quarantine_uri)).data.splitlines()]
    assert {q["source"] for q in quarantined} == {database_url + "?table=exposure_events"}
    assert all('"row_id"' in q["raw"] for q in quarantined)  # each names its table row


def _canonical_rows(store, report) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(store.root / store.key_of(report.canonical_uri)).to_pylist()


def test_a_table_in_the_seeds_own_shape_is_read(database_url, tmp_path):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), external_id text UNIQUE)")
        conn.execute("CREATE SCHEMA app")
        conn.execute(
            "CREATE TABLE app.events (id bigserial, tenant_id uuid, occurred_at timestamptz, request_id uuid, "
            "surface text, session_id text, response jsonb NOT NULL)"
        )
        tid = conn.execute("INSERT INTO tenants (external_id) VALUES ('demo') RETURNING id").fetchone()[0]
        conn.execute(
            "INSERT INTO app.events (tenant_id, occurred_at, request_id, surface, session_id, response) VALUES "
            "(%s, '2026-01-01T23:30:00-02:00', gen_random_uuid(), 'home', 's1', '{\"items\": [{\"item_id\": \"A\"}]}'),"
            "(%s, '2026-01-01T10:00:00Z', gen_random_uuid(), 'home', 's1', '{\"items\": [{\"item_id\": \"B\"}]}')",
            (tid, tid),
        )
    store = FileSystemStore(tmp_path / "store")
    by_uuid = ingest_day(store, database_url + "?table=app.events", scope())
    assert by_uuid.accepted == 1  # 23:30 at -02:00 is on January 2nd in UTC
    assert ingest_day(store, database_url + "?table=app.events", scope(DAY + dt.timedelta(days=1))).accepted == 1


def test_an_unknown_tenant_has_no_events_and_a_missing_table_is_an_error(db, database_url, tmp_path):
    store = FileSystemStore(tmp_path / "store")
    report = ingest_day(store, database_url, scope(tenant="nobody"))
    assert report.accepted == 0 and report.files == 0
    with pytest.raises(NotFound, match="no_such_table"):
        ingest_day(store, database_url + "?table=no_such_table", scope())


def test_a_day_whose_rows_were_deleted_keeps_its_partition(db, database_url, tmp_path):
    load_events(db, str(SAMPLE_RAW), [DAY])
    store = FileSystemStore(tmp_path / "store")
    first = ingest_day(store, database_url, scope())
    db.execute("DELETE FROM exposure_events")
    kept = ingest_day(store, database_url, scope())
    assert kept.kept_existing and kept.accepted == first.accepted


def test_credentials_come_from_the_secret_and_never_reach_reports(
    db, database_url, postgres_server, tmp_path, aws_credentials
):
    """The password is checked (scram for this role), and comes from a Secrets Manager secret (moto)."""
    import boto3
    from moto import mock_aws

    db.execute("CREATE ROLE reader LOGIN PASSWORD 's3cret'")
    db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    hba = postgres_server.root / "data" / "pg_hba.conf"
    hba.write_text("host all reader 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    db.execute("SELECT pg_reload_conf()")
    load_events(db, str(SAMPLE_RAW), [DAY])
    url = database_url.replace("recsys@", "ignored@")
    store = FileSystemStore(tmp_path / "store")
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        wrong = secrets.create_secret(Name="wrong", SecretString=json.dumps({"username": "reader", "password": "x"}))
        right = secrets.create_secret(Name="db", SecretString=json.dumps({"username": "reader", "password": "s3cret"}))
        with pytest.raises(StoreError, match='password authentication failed for user "reader"'):
            ingest_day(store, url, scope(), DatabaseSettings(secret_arn=wrong["ARN"]))
        report = ingest_day(store, url, scope(), DatabaseSettings(secret_arn=right["ARN"]))
    assert report.accepted > 0
    with_password = url.replace("ignored@", "reader:s3cret@")
    assert "s3cret" not in pg_source.PostgresDay(with_password, "demo", "home", DAY, DatabaseSettings()).source


ODD_ITEMS = [
    {"item_id": 7},
    {"item_id": "A", "rank": 2.5},
    {"item_id": "B", "rank": 2**70},
    {"item_id": "B2", "rank": 2**62},  # 19 digits, an int64
    {"item_id": None},
    {"rank": 1},
    {"item_id": "C", "rank": "1"},
    {"item_id": ["x"]},
    {"item_id": {"id": "x"}},
    {"item_id": " D ", "rank": 3},
    {"item_id": "", "rank": 1},
    {"item_id": "E", "rank": -5},
    {"item_id": "F", "rank": True},
    {"item_id": "G", "rank": None},
    {"item_id": 'H\n\t"\\,', "rank": 0},
    "not an object",
]


def test_response_items_get_the_verdicts_their_json_lines_get(db, database_url, tmp_path):
    """Each response item is judged as the raw line of the same values would be: same reasons, same details, same
    accepted events."""
    tid = tenant_id(db)
    at = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)
    db.execute(
        "INSERT INTO exposure_events (tenant_id, occurred_at, request_id, surface, session_id, response) "
        "VALUES (%s, %s, 'r1', 'home', 's1', %s)",
        (tid, at, json.dumps({"items": ODD_ITEMS})),
    )
    raw = tmp_path / "raw" / "dt=2026-01-01"
    raw.mkdir(parents=True)
    lines = []
    for item in ODD_ITEMS:
        fields = {"v": 1, "ts": "2026-01-01T09:30:00Z", "tenant": "demo", "surface": "home", "session_id": "s1"}
        fields["request_id"] = "r1"
        if isinstance(item, dict):
            fields |= item
        lines.append(json.dumps(fields))
    (raw / "events.jsonl").write_text("\n".join(lines) + "\n")
    files, table = FileSystemStore(tmp_path / "files"), FileSystemStore(tmp_path / "table")
    from_files = ingest_day(files, str(tmp_path / "raw"), scope())
    from_table = ingest_day(table, database_url, scope())
    assert partition(files, from_files) == partition(table, from_table)
    assert from_table.reasons == from_files.reasons and from_table.accepted == from_files.accepted == 4

    def verdicts(store, report):
        quarantined = store.get(store.key_of(report.quarantine_uri)).data.splitlines()
        return sorted((q["line"], q["reason"], q["detail"]) for q in map(json.loads, quarantined))

    assert verdicts(table, from_table) == verdicts(files, from_files)
