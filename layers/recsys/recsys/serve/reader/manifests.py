"""Manifests: where a (tenant, surface)'s manifest is, how it is checked, and the TTL cache the reader keeps them in.

ManifestCache: manifests per (tenant, surface) in a TtlCache, with stale-if-error and cached misses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from recsys.contract.manifest import Manifest
from recsys.paths import Scope
from recsys.serve.observability import logger as log
from recsys.serve.reader.errors import ManifestIncompatible
from recsys.serve.settings import DEFAULT_MANIFEST_TTL
from recsys.serve.ttl_cache import Clock, TtlCache
from recsys.store import NotFound, StoreError

DEFAULT_ERROR_RETRY = 5.0
DEFAULT_MAX_MANIFEST_ENTRIES = 10_000

OnStale = Callable[[str, str, Exception], None]  # (tenant, surface, error)

_PLACEHOLDER = re.compile(r"\{(store|tenant|surface)\}")


def manifest_uri(template: str, store_uri: str | None, scope: Scope) -> str:
    """`template` with {store}, {tenant} and {surface} replaced (one pass, plain text, like the seed).

    The scope's tenant and surface are safe path segments (checked when it was made: that ValueError names the
    value, never the template).
    """
    values = {"tenant": scope.tenant, "surface": scope.surface}
    if "{store}" in template:
        if not store_uri:
            raise ValueError("the manifest template uses {store} but no store URI is configured")
        values["store"] = store_uri.rstrip("/")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def parse_manifest(data: bytes, tenant: str, surface: str) -> Manifest:
    """The manifest in `data`, checked like the seed (v == 1, RFC 3339 updated_at, the requested tenant/surface)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestIncompatible(f"{tenant}/{surface} manifest is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ManifestIncompatible(f"{tenant}/{surface} manifest is not a JSON object")
    version = raw.get("v")
    if type(version) is not int or version != 1:
        raise ManifestIncompatible(f"{tenant}/{surface} manifest has unsupported version v={version!r} (expected 1)")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ManifestIncompatible(f"{tenant}/{surface} manifest is invalid: {where}: {first['msg']}") from None
    if (manifest.tenant, manifest.surface) != (tenant, surface):
        raise ManifestIncompatible(
            f"manifest for {tenant}/{surface} names {manifest.tenant!r}/{manifest.surface!r} instead"
        )
    try:
        dt.datetime.fromisoformat(manifest.updated_at.replace("Z", "+00:00"))
    except ValueError:
        raise ManifestIncompatible(f"{tenant}/{surface} manifest updated_at is not RFC 3339") from None
    return manifest


@dataclass(frozen=True)
class CachedManifest:
    manifest: Manifest
    stale: bool  # True: the last refresh failed and this is the last good manifest


@dataclass(frozen=True)
class _ManifestEntry:
    manifest: Manifest | None = None  # None: missing (or `error`)
    stale: bool = False
    error: str | None = None  # a ManifestIncompatible message

    def result(self) -> CachedManifest | None:
        if self.error is not None:
            raise ManifestIncompatible(self.error)  # a fresh exception: re-raising one instance grows its traceback
        if self.manifest is None:
            return None
        return CachedManifest(self.manifest, self.stale)


class ManifestCache:
    """Manifests per (tenant, surface) for `ttl` seconds, in a TtlCache.

    `fetch(scope)` returns the manifest bytes, raising NotFound when there is none and StoreError on
    failure. A missing manifest is cached as None and an incompatible one as its error, both for the TTL. When a
    refresh fails with a StoreError and a good manifest was loaded before, that manifest keeps being served with
    stale=True, `refresh_failures` is incremented and `on_stale(tenant, surface, error)` is called; the refresh is
    retried after min(ttl, error_retry) seconds. With nothing good to fall back on, the StoreError propagates.
    One thread refreshes a key at a time; while it does, others get the expired entry instead of waiting. At most
    about `max_entries` keys are kept (misses of made-up surfaces are dropped first; good manifests are kept: they
    are what stale-if-error serves). An invalidate during a refresh wins.
    """

    def __init__(
        self,
        fetch: Callable[[Scope], bytes],
        *,
        ttl: float = DEFAULT_MANIFEST_TTL,
        clock: Clock = time.monotonic,
        on_stale: OnStale | None = None,
        error_retry: float = DEFAULT_ERROR_RETRY,
        max_entries: int = DEFAULT_MAX_MANIFEST_ENTRIES,
    ) -> None:
        self._fetch = fetch
        self.ttl = float(ttl)
        self.error_retry = float(error_retry)
        self.on_stale = on_stale
        self.refresh_failures = 0
        self._cache: TtlCache[Scope, _ManifestEntry] = TtlCache(
            clock=clock, max_entries=max_entries, evictable=lambda entry: entry.manifest is None
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, scope: Scope) -> CachedManifest | None:
        """The manifest (None if there is none); ManifestIncompatible; StoreError only without a last good one."""
        return self._cache.get(scope, lambda previous: self._refresh(scope, previous)).result()

    def _refresh(self, scope: Scope, previous: _ManifestEntry | None) -> tuple[_ManifestEntry, float]:
        tenant, surface = scope.tenant, scope.surface
        try:
            data = self._fetch(scope)
        except NotFound:
            log.info("artifact manifest not found", extra={"tenant": tenant, "surface": surface})
            return _ManifestEntry(), self.ttl
        except StoreError as err:
            if previous is None or previous.manifest is None:
                raise
            with self._lock:
                self.refresh_failures += 1
            log.warning(
                "artifact manifest refresh failed; serving the last good manifest",
                extra={
                    "tenant": tenant,
                    "surface": surface,
                    "manifest_version": previous.manifest.manifest_version,
                    "error": str(err),
                },
            )
            if self.on_stale is not None:
                try:
                    self.on_stale(tenant, surface, err)
                except Exception:
                    log.exception("on_stale callback failed")
            return _ManifestEntry(manifest=previous.manifest, stale=True), min(self.ttl, self.error_retry)
        try:
            manifest = parse_manifest(data, tenant, surface)
        except ManifestIncompatible as err:
            log.warning(
                "artifact manifest incompatible", extra={"tenant": tenant, "surface": surface, "error": str(err)}
            )
            return _ManifestEntry(error=str(err)), self.ttl
        if previous is None or previous.manifest is None or previous.manifest != manifest:
            log.info(
                "artifact manifest loaded",
                extra={
                    "tenant": tenant,
                    "surface": surface,
                    "hash": hashlib.sha256(data).hexdigest(),
                    "manifest_version": manifest.manifest_version,
                    "updated_at": manifest.updated_at,
                },
            )
        return _ManifestEntry(manifest=manifest), self.ttl

    def invalidate(self, tenant: str, surface: str | None = None) -> int:
        """Forget the tenant's manifests (one surface, or all): the next get fetches again. Returns how many."""
        return self._cache.invalidate(lambda key: key.tenant == tenant and surface in (None, key.surface))
