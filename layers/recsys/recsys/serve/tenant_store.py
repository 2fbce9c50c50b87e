"""Tenant config, rules and API keys as JSON objects in the artifact store, moved by conditional writes only.

Layout (relative to the store root):
  tenants/{tenant}/{kind}/versions/{version}.json   every version (immutable, create-exclusive);
                                                    version = sha256 of the document's canonical JSON
  tenants/{tenant}/{kind}/current.json              the current pointer {version, previous, updated_at, updated_by},
                                                    moved by compare-and-swap (If-Match / If-None-Match)
  api-keys/{hash}.json                              one API key: {tenant, roles, name, created_at, expires_at,
                                                    revoked_at}; the key itself is never stored, only its hash
kind is "config" or "rules". A version is its content's hash, so the HTTP ETag of a document is its version and
writing the same document twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from recsys.paths import safe_segment
from recsys.serve.ttl_cache import TtlCache
from recsys.store import NotFound, ObjectStore, PreconditionFailed, TransientStoreError

KINDS = ("config", "rules")
API_KEY_PREFIX = "rsk_"
JSON = "application/json"

# A put retries this many lost compare-and-swaps (each one re-read and re-checked) before giving up.
MAX_CAS_ATTEMPTS = 5

_HASH = re.compile(r"^[0-9a-f]{64}$")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def _parse_iso(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal documents give equal bytes (and so equal versions)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# --- tenant documents ------------------------------------------------------------------------------------------


class VersionMismatch(Exception):
    """If-Match named a version that is not the current one (the API answers 409 RECSYS_VERSION_MISMATCH)."""

    def __init__(self, expected: str, current: str | None) -> None:
        detail = f"current version is {current}" if current else "there is no current version"
        super().__init__(f"If-Match {expected} does not match: {detail}")
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class Document:
    """One version of a tenant's config or rules, as the current pointer names it."""

    data: Any
    version: str
    updated_at: str | None = None
    updated_by: str | None = None
    # Set by `put` (not part of a document's identity): the version it replaced (None: there was none), and whether
    # it changed anything at all.
    previous: str | None = dataclasses.field(default=None, compare=False)
    changed: bool = dataclasses.field(default=False, compare=False)

    @property
    def etag(self) -> str:
        """The HTTP ETag (strong): the quoted version."""
        return f'"{self.version}"'


def normalize_if_match(value: str) -> str:
    """The seed's comparison form: spaces and double quotes trimmed. A weak W/"…" value keeps its "W/" and so
    never equals a version (weak comparison is not allowed for If-Match)."""
    return value.strip().strip('"').strip()


@dataclass(frozen=True)
class _Current:
    version: str
    etag: str  # the pointer object's ETag: what the compare-and-swap conditions on


class TenantDocuments:
    """Versioned tenant config and rules in `store`. Thread-safe (all state is in the store)."""

    def __init__(self, store: ObjectStore, *, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.store = store
        self._clock = clock

    @staticmethod
    def _prefix(tenant: str, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown tenant document kind {kind!r}: use one of {KINDS}")
        return f"tenants/{safe_segment(tenant, 'tenant')}/{kind}"

    def _version_key(self, tenant: str, kind: str, version: str) -> str:
        return f"{self._prefix(tenant, kind)}/versions/{version}.json"

    def _pointer_key(self, tenant: str, kind: str) -> str:
        return f"{self._prefix(tenant, kind)}/current.json"

    def _current(self, tenant: str, kind: str) -> tuple[_Current, dict] | None:
        try:
            blob = self.store.get(self._pointer_key(tenant, kind))
        except NotFound:
            return None
        pointer = json.loads(blob.data)
        return _Current(version=pointer["version"], etag=blob.etag), pointer

    def get(self, tenant: str, kind: str) -> Document | None:
        """The current document, or None if none was ever written."""
        found = self._current(tenant, kind)
        if found is None:
            return None
        current, pointer = found
        data = json.loads(self.store.get(self._version_key(tenant, kind, current.version)).data)
        return Document(data, current.version, pointer.get("updated_at"), pointer.get("updated_by"))

    def get_version(self, tenant: str, kind: str, version: str) -> Document | None:
        """Any stored version (current or not), or None."""
        if not _HASH.match(version):
            return None
        try:
            blob = self.store.get(self._version_key(tenant, kind, version))
        except NotFound:
            return None
        return Document(json.loads(blob.data), version)

    def put(self, tenant: str, kind: str, data: Any, *, if_match: str | None, actor: str | None) -> Document:
        """Make `data` the current document.

        `if_match` (an ETag or bare version; None = unconditional) must name the current version, else
        VersionMismatch. Writing the current version again is a no-op. The pointer only moves by compare-and-swap:
        a lost race re-reads the pointer and re-checks `if_match`, so a concurrent change is never overwritten
        blindly; an unconditional put retries up to MAX_CAS_ATTEMPTS times, then raises TransientStoreError.
        """
        body = canonical_json(data)
        version = hashlib.sha256(body).hexdigest()
        expected = normalize_if_match(if_match) if if_match is not None else None
        version_written = False
        for _ in range(MAX_CAS_ATTEMPTS):
            found = self._current(tenant, kind)
            current, pointer = found if found is not None else (None, {})
            if expected is not None and (current is None or (expected != "*" and expected != current.version)):
                raise VersionMismatch(if_match or "", current.version if current else None)
            if current is not None and current.version == version:
                previous = pointer.get("previous")
                return Document(data, version, pointer.get("updated_at"), pointer.get("updated_by"), previous=previous)
            if not version_written:
                # Immutable and content-addressed: an existing object already holds exactly these bytes.
                self.store.create(self._version_key(tenant, kind, version), body, content_type=JSON)
                version_written = True
            updated_at = _iso(self._clock())
            new_pointer = {
                "version": version,
                "previous": current.version if current else None,
                "updated_at": updated_at,
                "updated_by": actor,
            }
            payload = json.dumps(new_pointer, sort_keys=True).encode()
            try:
                if current is None:
                    self.store.put(self._pointer_key(tenant, kind), payload, content_type=JSON, if_none_match=True)
                else:
                    self.store.put(self._pointer_key(tenant, kind), payload, content_type=JSON, if_match=current.etag)
            except (PreconditionFailed, NotFound):
                continue  # someone else moved (or removed) the pointer: re-read and decide again
            return Document(
                data, version, updated_at, actor, previous=current.version if current else None, changed=True
            )
        raise TransientStoreError(
            f"{self.store.uri}: {self._pointer_key(tenant, kind)} kept changing; gave up after {MAX_CAS_ATTEMPTS} tries"
        )


# --- API keys --------------------------------------------------------------------------------------------------


def hash_api_key(key: str, secret: str = "") -> str:
    """The stored form of an API key (the seed's): hex HMAC-SHA256(secret, key), or SHA-256(key) without a secret."""
    if secret:
        return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """What is stored for one API key (never the key itself)."""

    key_hash: str
    tenant: str
    roles: frozenset[str]
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def active(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "roles": sorted(self.roles),
            "name": self.name,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
        }

    @classmethod
    def from_json(cls, key_hash: str, doc: dict[str, Any]) -> ApiKeyRecord:
        created_at = _parse_iso(doc.get("created_at"))
        if created_at is None:
            raise ValueError(f"api key {key_hash[:12]}: created_at is missing")
        return cls(
            key_hash=key_hash,
            tenant=safe_segment(doc["tenant"], "tenant"),
            roles=frozenset(doc.get("roles") or ()),
            name=str(doc.get("name") or ""),
            created_at=created_at,
            expires_at=_parse_iso(doc.get("expires_at")),
            revoked_at=_parse_iso(doc.get("revoked_at")),
        )


class ApiKeys:
    """API keys stored by hash at `api-keys/{hash}.json`.

    `lookup` caches records (and unknown hashes) for `ttl` seconds per process, so a request does not read S3 each
    time; a revocation therefore takes effect in other processes within `ttl`. Expiry is checked on every lookup.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        ttl: float = 60.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._now = now
        self._cache: TtlCache[str, ApiKeyRecord | None] = TtlCache(clock=clock, max_entries=max_entries)

    @staticmethod
    def _key(key_hash: str) -> str:
        if not _HASH.match(key_hash):
            raise ValueError(f"invalid api key hash {key_hash!r}: expected 64 lowercase hex digits")
        return f"api-keys/{key_hash}.json"

    def create(
        self,
        tenant: str,
        roles: Iterable[str],
        name: str,
        expires_at: dt.datetime | None = None,
        *,
        secret: str = "",
    ) -> tuple[str, ApiKeyRecord]:
        """A new key for `tenant`: (plaintext key, shown once; its record). `secret` = API_KEY_HASH_SECRET."""
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKeyRecord(
            key_hash=hash_api_key(key, secret),
            tenant=safe_segment(tenant, "tenant"),
            roles=frozenset(role.strip() for role in roles if role.strip()),
            name=name,
            created_at=self._now(),
            expires_at=expires_at,
        )
        body = json.dumps(record.to_json(), sort_keys=True).encode()
        if not self.store.create(self._key(record.key_hash), body, content_type=JSON):
            raise RuntimeError("api key hash collision")  # 256 random bits: not expected to happen
        return key, record

    def get(self, key_hash: str) -> tuple[ApiKeyRecord, str] | None:
        """A record (whatever its state) and its object's ETag, uncached; None if there is none."""
        try:
            blob = self.store.get(self._key(key_hash))
        except NotFound:
            return None
        return ApiKeyRecord.from_json(key_hash, json.loads(blob.data)), blob.etag

    def _record(self, key_hash: str) -> ApiKeyRecord | None:
        found = self.get(key_hash)
        return found[0] if found else None

    def lookup(self, key: str, secret: str = "") -> ApiKeyRecord | None:
        """The record of an active key; None if the key is unknown, revoked or expired."""
        if not key or len(key) > 256:
            return None
        key_hash = hash_api_key(key, secret)
        record = self._cache.get(key_hash, lambda _previous: (self._record(key_hash), self.ttl))
        return record if record is not None and record.active(self._now()) else None

    def revoke(self, key_hash: str) -> ApiKeyRecord | None:
        """Mark the key revoked (idempotent, by compare-and-swap); None if there is no such key."""
        for _ in range(MAX_CAS_ATTEMPTS):
            found = self.get(key_hash)
            if found is None:
                return None
            record, etag = found
            if record.revoked_at is None:
                record = dataclasses.replace(record, revoked_at=self._now())
                body = json.dumps(record.to_json(), sort_keys=True).encode()
                try:
                    self.store.put(self._key(key_hash), body, content_type=JSON, if_match=etag)
                except (PreconditionFailed, NotFound):
                    continue  # changed or deleted meanwhile: re-read
            self._cache.discard(key_hash)
            return record
        raise TransientStoreError(f"{self.store.uri}: api key {key_hash[:12]} kept changing; revoke gave up")
