"""The registry of artifact kinds: what each kind is, in one entry that compute, publish, the reader and settings read.

An `ArtifactKind` holds a kind's name, its artifact schema, its lookup key column, the columns the reader keeps as
Parquet dictionaries, where it is built from (per-day partials of the canonical events, or the catalog) with the
hooks that build it, the name of the reader's in-memory form and the ranking signal it feeds. The hooks are plain
functions the entry holds; the form is a name, which the reader maps to its loader (`recsys.serve.reader.loading`),
so that nothing here (or in compute) depends on the serving side.

`BUILTIN_KINDS` is the one list of the built-in kinds, in their canonical order (the default `RECSYS_KINDS`). Each
one is a module of `recsys.compute` of the same name that registers its entry when imported (`recsys.compute` imports
them all). Other kinds register an entry the same way (`KINDS.register`), e.g. a test's toy kind.

This module imports nothing above pyarrow and `recsys.days`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from recsys.days import Window

BUILTIN_KINDS = ("popularity", "cooc", "implicit", "content_sim", "session_seq", "item_knn")

Source = Literal["events", "catalog"]

# The reader's generic form: the artifact read whole as a pyarrow Table (its schema's column types).
TABLE_FORM = "table"

# Hook signatures. `params` is the Settings' ComputeParams and `weights` its event weights (typed loosely here: the
# contract sits below the settings).
PartialParams = Callable[[Any, Mapping[str, float]], dict]
Partial = Callable[[pa.Table, Any, Mapping[str, float]], pa.Table]
Build = Callable[[Sequence[tuple[dt.date, pa.Table]], Window, Any], pa.Table]
BuildFromSum = Callable[[pa.Table, Window, Any], pa.Table]
CatalogParams = Callable[[Any], dict]
CatalogBuild = Callable[[pa.Table, Any], pa.Table]


@dataclass(frozen=True, eq=False)
class ArtifactKind:
    """One artifact kind. `source` "events" needs partial_schema, event_columns, partial_params, partial and build;
    "catalog" needs build_params and build_from_catalog (the catalog table of recsys.compute.catalog).
    `from_module` builds the entry of a kind module that follows compute's names."""

    name: str
    schema: pa.Schema
    source: Source
    key_column: str = ""  # the lookup key (items, users, anchors) counted as the ref's `keys`; default: column 0
    dictionary_columns: tuple[str, ...] = ()  # item/user columns the reader reads as Arrow dictionaries
    form: str = TABLE_FORM  # the reader's in-memory form (recsys.serve.reader.loading.FORMS)
    signal: str | None = None  # the ranking signal it feeds (recsys.serve.tenant_config.SIGNAL_NAMES), if any
    # source "events": per-day partials, merged over a window
    partial_schema: pa.Schema | None = None
    event_columns: tuple[str, ...] = ()  # the canonical columns `partial` reads
    partial_params: PartialParams | None = None  # the knobs a partial depends on (they key its cache)
    partial: Partial | None = None
    build: Build | None = None
    # an additive kind (its partials add up per key pair): how they sum (a recsys.compute.window_sum.WindowSum) and
    # the build from that sum; build(partials) must equal build_from_sum(window_sum.of_partials(partials))
    window_sum: Any = None
    build_from_sum: BuildFromSum | None = None
    # source "catalog": one build from the catalog, reused while the catalog and knobs are the same
    build_params: CatalogParams | None = None  # the knobs a build depends on (they key its build record)
    build_from_catalog: CatalogBuild | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"artifact kind name {self.name!r}: use letters, digits and '_'")
        if not self.key_column:
            object.__setattr__(self, "key_column", self.schema.names[0])
        columns = (self.key_column, *self.dictionary_columns)  # nested columns by path: "similar_items.list.element"
        missing_columns = [column for column in columns if column.split(".")[0] not in self.schema.names]
        if missing_columns:
            raise ValueError(f"{self.name}: columns {missing_columns} are not in its schema")
        required = {
            "events": ("partial_schema", "partial_params", "partial", "build"),
            "catalog": ("build_params", "build_from_catalog"),
        }
        if self.source not in required:
            raise ValueError(f"{self.name}: source must be 'events' or 'catalog', not {self.source!r}")
        absent = [hook for hook in required[self.source] if getattr(self, hook) is None]
        if absent:
            raise ValueError(f"{self.name}: a kind built from {self.source} needs {absent}")
        if (self.window_sum is None) != (self.build_from_sum is None):
            raise ValueError(f"{self.name}: window_sum and build_from_sum go together")

    @classmethod
    def from_module(cls, module: Any, **options: Any) -> ArtifactKind:
        """The entry of a kind module (or any object) holding KIND and SCHEMA, and either PARTIAL_SCHEMA,
        EVENT_COLUMNS, partial_params, partial and build (built from events; an additive kind also WINDOW_SUM and
        build_from_sum) or build_params and build_from_catalog (built from the catalog). `options`: the other fields
        (form, signal, dictionary_columns, key_column)."""
        if hasattr(module, "build_from_catalog"):
            hooks: dict[str, Any] = {"source": "catalog", "build_params": module.build_params}
            hooks["build_from_catalog"] = module.build_from_catalog
        else:
            hooks = {"source": "events", "partial_schema": module.PARTIAL_SCHEMA}
            hooks["event_columns"] = tuple(module.EVENT_COLUMNS)
            hooks.update(partial_params=module.partial_params, partial=module.partial, build=module.build)
            if hasattr(module, "WINDOW_SUM"):
                hooks.update(window_sum=module.WINDOW_SUM, build_from_sum=module.build_from_sum)
        return cls(name=module.KIND, schema=module.SCHEMA, **hooks, **options)


class KindRegistry:
    """Artifact kinds by name, the built-in ones first in `BUILTIN_KINDS` order, then others in registration order."""

    def __init__(self, builtin: Sequence[str] = BUILTIN_KINDS) -> None:
        self.builtin = tuple(builtin)
        self._kinds: dict[str, ArtifactKind] = {}
        self._lock = threading.Lock()

    def register(self, kind: ArtifactKind) -> ArtifactKind:
        """Add `kind` (registering the same entry again is a no-op); ValueError if its name is taken."""
        with self._lock:
            existing = self._kinds.get(kind.name)
            if existing is not None and existing is not kind:
                raise ValueError(f"artifact kind {kind.name!r} is already registered")
            self._kinds[kind.name] = kind
        return kind

    def unregister(self, name: str) -> None:
        """Remove a kind that is not built in (a test's, or a plugin's)."""
        if name in self.builtin:
            raise ValueError(f"{name!r} is a built-in artifact kind")
        with self._lock:
            self._kinds.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every known kind: the built-in ones (registered or not yet imported) in canonical order, then the rest."""
        with self._lock:
            extra = tuple(name for name in self._kinds if name not in self.builtin)
        return self.builtin + extra

    def get(self, name: str) -> ArtifactKind:
        """The entry of `name`; KeyError if it is unknown, or built in but not imported yet (import recsys.compute)."""
        kind = self._kinds.get(name)
        if kind is None:
            hint = " (built in: import recsys.compute first)" if name in self.builtin else ""
            raise KeyError(f"unknown artifact kind {name!r}{hint}")
        return kind

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[ArtifactKind]:
        """The registered entries, in `names()` order."""
        return iter([self._kinds[name] for name in self.names() if name in self._kinds])


KINDS = KindRegistry()
"""The process's registry: recsys.compute registers the built-in kinds into it on import."""
