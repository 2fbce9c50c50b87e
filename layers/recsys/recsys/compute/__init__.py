"""Artifact computation: one module per artifact kind, pure pyarrow, deterministic.

Kinds built from events share one interface (KIND, SCHEMA, PARTIAL_SCHEMA, EVENT_COLUMNS, partial_params, partial,
build): per-day partial aggregates are computed once per UTC day and merged over a window by `build` (popularity, cooc,
implicit, session_seq, item_knn).
content_sim is built from the catalog instead (catalog.read_catalog -> content_sim.build_from_catalog).
"""

from recsys.compute import artifact, catalog, content_sim, cooc, implicit, item_knn, popularity, session_seq

EVENT_KINDS = {
    "popularity": popularity,
    "cooc": cooc,
    "implicit": implicit,
    "session_seq": session_seq,
    "item_knn": item_knn,
}

__all__ = [
    "EVENT_KINDS",
    "artifact",
    "catalog",
    "content_sim",
    "cooc",
    "implicit",
    "item_knn",
    "popularity",
    "session_seq",
]
