"""The API's database mode (RECSYS_SERVE_FROM=database): manifests and artifacts from the Postgres signal store
(recsys.publish.signal_store) instead of the artifact store, through the same caches, forms and ranking.

DatabaseReader is an ArtifactReader whose manifest is the current version's stored manifest (the pointer's exact
bytes), so answers name the same versions. DatabaseSignals loads a kind from its table: the rows, read back in
their artifact's order, are written as the artifact's Parquet (deterministic: the same bytes) and loaded by the
artifact path, after checking they hash to the manifest's version; a user's implicit rows are one indexed query,
cached like the artifact path's row groups. The rows of a day that now holds another version count as missing
until the manifest refreshes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from recsys.compute import KINDS  # the registry, with the built-in kinds registered
from recsys.contract.manifest import Manifest
from recsys.database import artifact_tables
from recsys.database.connection import SharedConnection
from recsys.paths import Scope
from recsys.publish.signal_store import signal_day
from recsys.ranking.signals import EMPTY_HISTORY, History
from recsys.serve.reader.cache import V
from recsys.serve.reader.errors import ArtifactIncompatible
from recsys.serve.reader.forms import UserRows
from recsys.serve.reader.loading import conform, load_parquet
from recsys.serve.reader.reader import ArtifactReader
from recsys.serve.reader.signals import ArtifactSignals
from recsys.store import NotFound, ObjectStore, StoreError
from recsys.tables import content_version, to_parquet

_CURRENT = (
    "SELECT v.manifest FROM recsys_signal_current c "
    "JOIN recsys_signal_versions v USING (tenant_id, namespace, day) JOIN tenants t ON t.id = c.tenant_id "
    "WHERE t.external_id = %s AND c.namespace = %s"
)
# Whether a version is still stored (its day may hold another one since), and the rows of its kinds' tables.
_HELD = sql.SQL(
    "EXISTS (SELECT 1 FROM recsys_signal_versions v JOIN tenants t ON t.id = v.tenant_id "
    "WHERE t.external_id = {tenant} AND v.namespace = {surface} AND v.day = {day} AND v.manifest_version = {version})"
)
_VERSION_ROWS = sql.SQL(
    "tenant_id = (SELECT id FROM tenants WHERE external_id = {tenant}) AND namespace = {surface} AND day = {day} "
    "AND {held}"
)


class DatabaseReader(ArtifactReader):
    """Manifests and signals from the signal store, for the API (one per process, thread-safe)."""

    def __init__(self, store: ObjectStore, connection: SharedConnection, **options: Any) -> None:
        super().__init__(store, **options)
        self.connection = connection

    def _fetch_manifest(self, scope: Scope) -> bytes:
        try:
            with self.connection.lock:
                row = self.connection.get().execute(_CURRENT, (scope.tenant, scope.surface)).fetchone()
        except psycopg.errors.UndefinedTable:
            raise NotFound("the signal store has no tables yet (nothing was published to it)") from None
        except psycopg.Error as err:
            raise StoreError(f"signal store: {err}") from None
        if row is None:
            raise NotFound(f"no current signals for {scope.tenant}/{scope.surface}")
        return row[0].encode()

    def _new_signals(self, manifest: Manifest) -> ArtifactSignals:
        return DatabaseSignals(
            manifest, self.artifacts, self.store, self.connection, clock=self.clock, retry_after=self.manifest_ttl
        )


class DatabaseSignals(ArtifactSignals):
    """One stored version's signals, each kind loaded from its table on first use."""

    def __init__(self, manifest: Manifest, cache, store: ObjectStore, connection: SharedConnection, **options) -> None:
        super().__init__(manifest, cache, store, **options)
        self.connection = connection

    def _exists(self, kind: str) -> bool:
        """A stored version holds every kind its manifest names (written in one transaction)."""
        with self._lock:
            failure = self._failures.get(kind)
            if failure is not None and self.clock() < failure.retry_at:
                return False
        return True

    def _read(self, kind: str, uri: str, load: Callable[[ObjectStore, str], V]) -> V:
        return load(self.store, uri)  # the loads below read the database, not the store

    def _rows(self, kind: str, where: sql.Composable | None = None) -> pa.Table:
        """The version's rows of `kind` (and `where`), in their artifact's order; NotFound if the day holds another
        version now; StoreError when the database fails."""
        schema = KINDS.get(kind).schema
        m = self.manifest
        keys = {
            "tenant": sql.Literal(m.tenant),
            "surface": sql.Literal(m.surface),
            "day": sql.Literal(signal_day(m)),
        }
        held = _HELD.format(**keys, version=sql.Literal(m.manifest_version))
        condition = _VERSION_ROWS.format(**keys, held=held)
        if where is not None:
            condition = sql.SQL("{} AND {}").format(condition, where)
        data = bytearray()
        try:
            with self.connection.lock:
                conn = self.connection.get()
                with conn.cursor().copy(artifact_tables.select_json(kind, schema, condition)) as copy:
                    for block in copy:
                        data += block
                # No rows: an empty artifact, or a version no longer stored (then the kind is missing).
                if where is None and not data and not conn.execute(sql.SQL("SELECT {}").format(held)).fetchone()[0]:
                    raise NotFound(f"{m.tenant}/{m.surface} version {m.manifest_version} left the signal store")
        except psycopg.Error as err:
            raise StoreError(f"signal store: {err}") from None
        return artifact_tables.parse_json(bytes(data), schema)

    def _whole(self, kind: str) -> Any:
        uri = self.uris.get(kind, "")

        def load(store: ObjectStore, key: str) -> Any:
            schema = KINDS.get(kind).schema
            rows = self._rows(kind)
            expected = self.manifest.artifacts[kind].version if kind in self.manifest.artifacts else None
            if expected is not None and content_version(rows, schema) != expected:
                raise ArtifactIncompatible(
                    f"{kind} rows in the signal store do not hash to the artifact's version {expected}", kind=kind
                )
            return load_parquet(kind, uri, to_parquet(rows, schema, kind=kind, canonical=True))

        return self._load(kind, None, load)

    def user_history(self, user_id: str) -> History:
        """The user's implicit rows: one indexed query, cached per user."""
        if "implicit" not in self.uris:
            return EMPTY_HISTORY
        uri = self.uris["implicit"]

        def load(store: ObjectStore, key: str) -> UserRows:
            rows = self._rows("implicit", sql.SQL("user_id = {}").format(sql.Literal(user_id)))
            return UserRows.from_table(conform("implicit", uri, rows))

        rows: UserRows | None = self._load("implicit", ("user", user_id), load)
        if rows is None:
            return EMPTY_HISTORY
        return rows.history(user_id) or EMPTY_HISTORY
