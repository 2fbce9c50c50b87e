"""ArtifactReader: what the API holds (one per process): signals(tenant, surface) -> LoadedManifest | None.

Fixes over the seed's artifact mode: the last good manifest is served when a refresh fails (reported as stale),
misses are cached for the TTL too, artifact memory is bounded, concurrent misses load once, and the implicit
artifact is never loaded whole: a user's rows are read from the row groups whose user_id statistics contain them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from recsys.contract.manifest import Manifest
from recsys.paths import Scope
from recsys.serve.reader.cache import DEFAULT_CACHE_BYTES, ArtifactCache
from recsys.serve.reader.manifests import DEFAULT_ERROR_RETRY, Clock, ManifestCache, OnStale, manifest_uri
from recsys.serve.reader.signals import ArtifactSignals
from recsys.serve.settings import DEFAULT_MANIFEST_TEMPLATE, DEFAULT_MANIFEST_TTL
from recsys.store import ObjectStore

FALLBACK_SURFACE = "default"


@dataclass(frozen=True)
class LoadedManifest:
    manifest: Manifest
    signals: ArtifactSignals
    stale: bool  # the manifest's refresh failed: this is the last good one
    fallback: bool = False  # the requested surface has no manifest: this is the "default" surface's


class ArtifactReader:
    """Manifests and artifacts for the API: one per process, shared by all requests (thread-safe).

    Every manifest and artifact is read from `store`: a URI is resolved with `store.key_of(uri)`. `template` is
    RECSYS_ARTIFACT_MANIFEST_TEMPLATE: {store} becomes the store's absolute URI (what manifests record), {tenant}
    and {surface} safe path segments; the manifests it names must be inside the store.
    """

    def __init__(
        self,
        store: ObjectStore,
        template: str = DEFAULT_MANIFEST_TEMPLATE,
        manifest_ttl: float = DEFAULT_MANIFEST_TTL,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Clock = time.monotonic,
        *,
        on_stale: OnStale | None = None,
        error_retry: float = DEFAULT_ERROR_RETRY,
    ) -> None:
        if "{tenant}" not in template or "{surface}" not in template:
            raise ValueError("the manifest template must contain {tenant} and {surface}")
        try:
            store.key_of(manifest_uri(template, store.uri, Scope("tenant", "surface")))
        except ValueError:
            raise ValueError(
                f"the manifest template {template!r} names objects outside the store {store.uri}"
            ) from None
        self.store = store
        self.template = template
        self.clock = clock
        self.manifest_ttl = float(manifest_ttl)
        self.manifests = ManifestCache(
            self._fetch_manifest, ttl=manifest_ttl, clock=clock, on_stale=on_stale, error_retry=error_retry
        )
        self.artifacts = ArtifactCache(cache_bytes)
        self._signals: dict[tuple[str, str], ArtifactSignals] = {}
        self._lock = threading.Lock()

    def manifest_uri(self, scope: Scope) -> str:
        return manifest_uri(self.template, self.store.uri, scope)

    def _fetch_manifest(self, scope: Scope) -> bytes:
        return self.store.get(self.store.key_of(self.manifest_uri(scope))).data

    def signals(self, scope: Scope) -> LoadedManifest | None:
        """The surface's manifest and signals, else the `default` surface's; None when neither has a manifest.

        Raises ManifestIncompatible, or StoreError (no last good manifest).
        """
        fallback = False
        cached = self.manifests.get(scope)
        if cached is None and scope.surface != FALLBACK_SURFACE:
            cached = self.manifests.get(Scope(scope.tenant, FALLBACK_SURFACE))
            fallback = cached is not None
        if cached is None:
            return None
        return LoadedManifest(cached.manifest, self._signals_for(cached.manifest), cached.stale, fallback)

    def signals_of(self, manifest: Manifest) -> LoadedManifest:
        """The signals of a given manifest version (the console ranks with a stored one): its artifacts go through
        the shared artifact cache, but the version is not cached as its surface's."""
        return LoadedManifest(manifest, self._new_signals(manifest), stale=False)

    def _signals_for(self, manifest: Manifest) -> ArtifactSignals:
        key = (manifest.tenant, manifest.surface)
        with self._lock:
            signals = self._signals.get(key)
            if signals is not None and signals.manifest.current == manifest.current:
                return signals
            signals = self._new_signals(manifest)
            self._signals[key] = signals
            return signals

    def _new_signals(self, manifest: Manifest) -> ArtifactSignals:
        return ArtifactSignals(manifest, self.artifacts, self.store, clock=self.clock, retry_after=self.manifest_ttl)

    def invalidate(self, tenant: str, surface: str | None = None, artifacts: bool = False) -> int:
        """Forget the tenant's manifests (one surface or all) and, with `artifacts`, every loaded artifact (of all
        tenants: they are shared by URI). Returns how many cache entries were dropped."""
        dropped = self.manifests.invalidate(tenant, surface)
        with self._lock:
            for key in [k for k in self._signals if k[0] == tenant and (surface is None or k[1] == surface)]:
                del self._signals[key]
        if artifacts:
            dropped += self.artifacts.invalidate_all()
        return dropped

    def invalidate_tenant_artifacts(self, tenant: str, surface: str | None = None) -> int:
        """Drop the loaded artifacts the tenant's manifests (one surface or all) name, not other tenants'. Call it
        before `invalidate`, which forgets those manifests. Returns how many cache entries were dropped."""
        with self._lock:
            uris = {
                uri
                for (owner, name), signals in self._signals.items()
                if owner == tenant and (surface is None or name == surface)
                for uri in signals.uris.values()
            }
        return self.artifacts.invalidate_uris(uris)
