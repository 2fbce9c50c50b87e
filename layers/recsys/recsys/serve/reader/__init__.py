"""The serving side's artifact access: the current manifest of a (tenant, surface) and its artifacts, in memory.

reader.py     ArtifactReader: what the API holds (one per process), over one ObjectStore
manifests.py  ManifestCache (a TtlCache with stale-if-error and cached misses) and manifest_uri
cache.py      ArtifactCache: loaded artifacts by URI (immutable: no TTL), LRU within a byte budget
signals.py    ArtifactSignals (one manifest's `Signals`, each kind loaded on first use) and ArtifactArrays
loading.py    Parquet -> in-memory forms, checked against the kind registry's schemas
forms.py      the in-memory forms: PopularityTable, NeighborTable, ContentTable, ImplicitFooter, UserRows
errors.py     ArtifactIncompatible, ManifestIncompatible
"""

from recsys.serve.reader.cache import ArtifactCache
from recsys.serve.reader.errors import ArtifactIncompatible, ManifestIncompatible
from recsys.serve.reader.manifests import ManifestCache, manifest_uri
from recsys.serve.reader.reader import ArtifactReader, LoadedManifest
from recsys.serve.reader.signals import ArtifactArrays, ArtifactSignals
from recsys.serve.settings import DEFAULT_MANIFEST_TEMPLATE

__all__ = [
    "DEFAULT_MANIFEST_TEMPLATE",
    "ArtifactArrays",
    "ArtifactCache",
    "ArtifactIncompatible",
    "ArtifactReader",
    "ArtifactSignals",
    "LoadedManifest",
    "ManifestCache",
    "ManifestIncompatible",
    "manifest_uri",
]
