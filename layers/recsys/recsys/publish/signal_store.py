"""The Postgres signal store: publish writes the signals of the manifest it makes current into Postgres (the
seed's DB-only mode), and the API can serve from there (recsys.serve.reader.database).

One version per (tenant, surface, day), the day being the last of the manifest's window: its manifest (the exact
bytes of the pointer), and every artifact's rows in the kind's table (recsys.database.artifact_tables). Publishing
is one transaction: the day's previous version and its rows go, the new ones come, `recsys_signal_current` moves;
the caller moves the artifact store's pointer inside it (`publishing`), so a publish that fails anywhere, the
conditional write included, leaves every table as it was. Republishing the version a day already holds rewrites no
rows. Days beyond `keep_days` (but the current one) are deleted with their rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator

import psycopg
from psycopg import sql

from recsys.compute import KINDS  # the registry, with the built-in kinds registered
from recsys.contract.manifest import Manifest
from recsys.database import artifact_tables
from recsys.database.connection import SharedConnection
from recsys.database.migrations import migrate
from recsys.errors import ManifestNotFound
from recsys.store import ObjectStore
from recsys.tables import from_parquet

_migrated: set[str] = set()  # the conninfos this process has migrated
_migrate_lock = threading.Lock()


def signal_day(manifest: Manifest) -> dt.date:
    """The day a version is stored under: the last day of its window (Window.end is inclusive)."""
    return manifest.window.end


class SignalStore:
    """Writes (publish, rollback) and reads (`recsys db`) of the signal store over one reused connection."""

    def __init__(self, connection: SharedConnection, keep_days: int = 10) -> None:
        self.connection = connection
        self.keep_days = keep_days

    def _conn(self) -> psycopg.Connection:
        conn = self.connection.get()
        key = str(conn.info.dsn)
        with _migrate_lock:
            if key not in _migrated:
                migrate(conn)
                _migrated.add(key)
        return conn

    @staticmethod
    def _tenant_id(conn: psycopg.Connection, tenant: str):
        conn.execute(
            "INSERT INTO tenants (external_id, name) VALUES (%s, %s) ON CONFLICT (external_id) DO NOTHING",
            (tenant, tenant),
        )
        return conn.execute("SELECT id FROM tenants WHERE external_id = %s", (tenant,)).fetchone()[0]

    @contextlib.contextmanager
    def publishing(self, store: ObjectStore, manifest: Manifest, pointer: bytes) -> Iterator[None]:
        """Store `manifest`'s signals and make them current; committed when the block (which moves the artifact
        store's pointer to `pointer`, the manifest's bytes) ends without an exception, else rolled back."""
        with self.connection.lock:
            conn = self._conn()
            with conn.transaction():
                tenant_id = self._tenant_id(conn, manifest.tenant)
                keys = (tenant_id, manifest.surface, signal_day(manifest))
                held = conn.execute(
                    "SELECT manifest_version, manifest FROM recsys_signal_versions "
                    "WHERE tenant_id = %s AND namespace = %s AND day = %s FOR UPDATE",
                    keys,
                ).fetchone()
                current = conn.execute(
                    "SELECT day, manifest_version FROM recsys_signal_current "
                    "WHERE tenant_id = %s AND namespace = %s FOR UPDATE",
                    keys[:2],
                ).fetchone()
                text = pointer.decode()
                if held == (manifest.manifest_version, text) and current == (keys[2], manifest.manifest_version):
                    yield  # a rerun of what is current: nothing to write
                    return
                conn.execute("DELETE FROM recsys_signal_current WHERE tenant_id = %s AND namespace = %s", keys[:2])
                if held is not None and held[0] == manifest.manifest_version:
                    conn.execute(
                        "UPDATE recsys_signal_versions SET manifest = %s, published_at = now() "
                        "WHERE tenant_id = %s AND namespace = %s AND day = %s",
                        (text, *keys),
                    )
                else:
                    self._write_version(conn, store, manifest, pointer, keys)
                conn.execute(
                    "INSERT INTO recsys_signal_current (tenant_id, namespace, day, manifest_version) "
                    "VALUES (%s, %s, %s, %s)",
                    (*keys, manifest.manifest_version),
                )
                self._prune(conn, tenant_id, manifest.surface)
                yield

    def _write_version(
        self, conn: psycopg.Connection, store: ObjectStore, manifest: Manifest, pointer: bytes, keys: tuple
    ) -> None:
        conn.execute("DELETE FROM recsys_signal_versions WHERE tenant_id = %s AND namespace = %s AND day = %s", keys)
        kinds = sorted(manifest.current)
        conn.execute(
            "INSERT INTO recsys_signal_versions (tenant_id, namespace, day, manifest_version, manifest, kinds) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (*keys, manifest.manifest_version, pointer.decode(), kinds),
        )
        text_keys = (str(keys[0]), keys[1], keys[2].isoformat())
        for kind in kinds:
            schema = KINDS.get(kind).schema
            statement = artifact_tables.copy_statement(kind, schema)  # ConfigError for a kind without a table
            table = from_parquet(store.get(store.key_of(manifest.current[kind])).data).select(schema.names)
            with conn.cursor().copy(statement) as copy:
                for block in artifact_tables.copy_rows(table, text_keys):
                    copy.write(block)

    def _prune(self, conn: psycopg.Connection, tenant_id, surface: str) -> None:
        conn.execute(
            "DELETE FROM recsys_signal_versions v WHERE tenant_id = %(t)s AND namespace = %(s)s "
            "AND day NOT IN (SELECT day FROM recsys_signal_versions WHERE tenant_id = %(t)s AND namespace = %(s)s "
            "ORDER BY day DESC LIMIT %(keep)s) "
            "AND NOT EXISTS (SELECT 1 FROM recsys_signal_current c "
            "WHERE c.tenant_id = v.tenant_id AND c.namespace = v.namespace AND c.day = v.day)",
            {"t": tenant_id, "s": surface, "keep": self.keep_days},
        )

    @contextlib.contextmanager
    def rolling_back(self, target: Manifest) -> Iterator[None]:
        """Make the stored version `target` current again (its day must still hold it), committed with the block."""
        with self.connection.lock:
            conn = self._conn()
            with conn.transaction():
                found = conn.execute(
                    "SELECT v.tenant_id, v.day FROM recsys_signal_versions v JOIN tenants t ON t.id = v.tenant_id "
                    "WHERE t.external_id = %s AND v.namespace = %s AND v.manifest_version = %s FOR UPDATE OF v",
                    (target.tenant, target.surface, target.manifest_version),
                ).fetchone()
                if found is None:
                    raise ManifestNotFound(
                        f"{target.tenant}/{target.surface} version {target.manifest_version} is no longer in the "
                        "signal store (RECSYS_DATABASE__KEEP_DAYS): publish it again instead"
                    )
                tenant_id, day = found
                conn.execute(
                    "UPDATE recsys_signal_versions SET manifest = %s "
                    "WHERE tenant_id = %s AND namespace = %s AND day = %s",
                    (target.to_bytes().decode(), tenant_id, target.surface, day),
                )
                conn.execute(
                    "INSERT INTO recsys_signal_current (tenant_id, namespace, day, manifest_version) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, namespace) "
                    "DO UPDATE SET day = EXCLUDED.day, manifest_version = EXCLUDED.manifest_version, "
                    "updated_at = now()",
                    (tenant_id, target.surface, day, target.manifest_version),
                )
                yield

    def versions(self, tenant: str, surface: str) -> list[dict]:
        """The stored versions of a tenant/surface, newest day first, with the rows of each kind."""
        with self.connection.lock:
            conn = self._conn()
            rows = conn.execute(
                "SELECT v.day, v.manifest_version, v.kinds, v.published_at, c.manifest_version IS NOT NULL "
                "FROM recsys_signal_versions v JOIN tenants t ON t.id = v.tenant_id "
                "LEFT JOIN recsys_signal_current c ON (c.tenant_id, c.namespace, c.day) = "
                "(v.tenant_id, v.namespace, v.day) "
                "WHERE t.external_id = %s AND v.namespace = %s ORDER BY v.day DESC",
                (tenant, surface),
            ).fetchall()
            found = []
            for day, version, kinds, published_at, current in rows:
                counts = {}
                for kind in kinds:
                    query = sql.SQL(
                        "SELECT count(*) FROM {} r JOIN tenants t ON t.id = r.tenant_id "
                        "WHERE t.external_id = %s AND r.namespace = %s AND r.day = %s"
                    ).format(sql.Identifier(artifact_tables.table_name(kind)))
                    counts[kind] = conn.execute(query, (tenant, surface, day)).fetchone()[0]
                found.append(
                    {
                        "day": day.isoformat(),
                        "manifest_version": version,
                        "current": current,
                        "published_at": published_at.isoformat(),
                        "rows": counts,
                    }
                )
            return found
