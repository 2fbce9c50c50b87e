"""Artifact computation: one module per artifact kind, pure pyarrow, deterministic.

Each kind module declares its `ArtifactKind` entry (recsys.contract.kinds) and registers it when imported; this
package imports the built-in ones, named in `recsys.contract.kinds.BUILTIN_KINDS` (a module of the kind's name).
Kinds built from events give per-day partial aggregates, computed once per UTC day, and merge them over a window
(`build`): popularity, cooc, implicit, session_seq, item_knn. content_sim is built from the catalog instead
(catalog.read_catalog -> its `build_from_catalog`). `service.compute_kind` runs either through the registry.
"""

from importlib import import_module
from types import ModuleType

from recsys.contract.kinds import BUILTIN_KINDS, KINDS

BUILTIN_MODULES: dict[str, ModuleType] = {name: import_module(f"{__name__}.{name}") for name in BUILTIN_KINDS}

# The built-in kinds built from events, as modules (their SCHEMA, partial, build, ...): read KINDS for new code.
EVENT_KINDS = {name: module for name, module in BUILTIN_MODULES.items() if KINDS.get(name).source == "events"}

__all__ = ["BUILTIN_MODULES", "EVENT_KINDS", "KINDS"]
