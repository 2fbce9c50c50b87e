"""In-memory `Signals` for tests: artifacts as plain dicts.

    DictSignals(
        popularity={"a": 10.0},                          # item -> decayed score
        cooc={"a": {"b": 0.5}},                          # item -> {neighbour: cosine}
        cooc_counts={"a": {"b": 3}},                     # item -> {neighbour: sessions} (default: none)
        implicit={"u1": {"h1": (2.0, 100)}},             # user -> {item: (score, last_us) | (score, count, last_us)}
        session_seq={"h1": {"s1": 0.6}},                 # item -> {next item: transition share}
        content_sim={"a": {"t1": 0.8}},                  # item -> {neighbour: tag cosine}
        item_knn={"h1": {"k1": 0.3}},                    # item -> {neighbour: shrunk cosine over shared users}
        tags={"a": ("brand:x",)},                        # item -> tags (served with content_sim, like the artifact)
    )

A kind is available when its dict is given (content_sim: `content_sim` or `tags`), unless `available` says otherwise;
lookups of unavailable kinds return nothing, like the real implementation.
"""

from __future__ import annotations

from collections.abc import Mapping

from recsys.ranking.signals import Interaction, Scored


def _best_first(scores: Mapping[str, float]) -> list[Scored]:
    return [Scored(item, float(score)) for item, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


class DictSignals:
    def __init__(
        self,
        *,
        popularity: Mapping[str, float] | None = None,
        cooc: Mapping[str, Mapping[str, float]] | None = None,
        cooc_counts: Mapping[str, Mapping[str, int]] | None = None,
        implicit: Mapping[str, Mapping[str, tuple]] | None = None,
        session_seq: Mapping[str, Mapping[str, float]] | None = None,
        content_sim: Mapping[str, Mapping[str, float]] | None = None,
        tags: Mapping[str, tuple[str, ...] | list[str]] | None = None,
        item_knn: Mapping[str, Mapping[str, float]] | None = None,
        available: set[str] | frozenset[str] | None = None,
    ) -> None:
        given = {
            "popularity": popularity,
            "cooc": cooc if cooc is not None else cooc_counts,
            "implicit": implicit,
            "session_seq": session_seq,
            "content_sim": content_sim if content_sim is not None else tags,
            "item_knn": item_knn,
        }
        self.available = frozenset(
            available if available is not None else (k for k, v in given.items() if v is not None)
        )
        self._popularity = dict(popularity or {})
        self._cooc = {k: dict(v) for k, v in (cooc or {}).items()}
        self._cooc_counts = {k: dict(v) for k, v in (cooc_counts or {}).items()}
        self._implicit = {k: dict(v) for k, v in (implicit or {}).items()}
        self._session = {k: dict(v) for k, v in (session_seq or {}).items()}
        self._content = {k: dict(v) for k, v in (content_sim or {}).items()}
        self._tags = {k: tuple(v) for k, v in (tags or {}).items()}
        self._knn = {k: dict(v) for k, v in (item_knn or {}).items()}
        self.calls: list[tuple[str, object]] = []  # what ranking looked up, for tests of work done

    def popular(self, n: int) -> list[Scored]:
        self.calls.append(("popular", n))
        if "popularity" not in self.available:
            return []
        return _best_first(self._popularity)[:n]

    def popularity_of(self, item_id: str) -> float:
        self.calls.append(("popularity_of", item_id))
        if "popularity" not in self.available:
            return 0.0
        return float(self._popularity.get(item_id, 0.0))

    def co_visited(self, item_id: str) -> list[Scored]:
        self.calls.append(("co_visited", item_id))
        return _best_first(self._cooc.get(item_id, {})) if "cooc" in self.available else []

    def co_visit_counts(self, item_id: str) -> dict[str, int]:
        self.calls.append(("co_visit_counts", item_id))
        return dict(self._cooc_counts.get(item_id, {})) if "cooc" in self.available else {}

    def user_items(self, user_id: str) -> list[Interaction]:
        self.calls.append(("user_items", user_id))
        if "implicit" not in self.available:
            return []
        rows = []
        for item, row in self._implicit.get(user_id, {}).items():
            score, count, last_us = (row[0], 1, row[1]) if len(row) == 2 else row
            rows.append(Interaction(item, float(score), int(count), int(last_us)))
        return sorted(rows, key=lambda r: (-r.score, -r.last_us, r.item_id))

    def next_items(self, item_id: str) -> list[Scored]:
        self.calls.append(("next_items", item_id))
        return _best_first(self._session.get(item_id, {})) if "session_seq" in self.available else []

    def item_neighbors(self, item_id: str) -> list[Scored]:
        self.calls.append(("item_neighbors", item_id))
        return _best_first(self._knn.get(item_id, {})) if "item_knn" in self.available else []

    def similar_by_tags(self, item_id: str) -> list[Scored]:
        self.calls.append(("similar_by_tags", item_id))
        return _best_first(self._content.get(item_id, {})) if "content_sim" in self.available else []

    def tags(self, item_id: str) -> tuple[str, ...]:
        self.calls.append(("tags", item_id))
        return self._tags.get(item_id, ()) if "content_sim" in self.available else ()
