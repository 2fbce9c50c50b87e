"""The reader's in-memory forms of artifacts: numpy/pyarrow arrays only, built from an artifact's Arrow table.

  PopularityTable   popularity in rank order
  NeighborTable     a neighbour kind (cooc, session_seq, item_knn) in CSR form
  ContentTable      content_sim: tags and similar items as list offsets into flat arrays
  ImplicitFooter    implicit's Parquet footer and the user_id range of each row group
  UserRows          one implicit row group, users sorted for binary search

Items are int32 codes into the table's own dictionary (`names`); each manifest's ItemVocabulary translates them
once (recsys.serve.index). Python objects are made per lookup result, not per artifact row.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsys.ranking.signals import History, Interaction, Scored
from recsys.serve.index import (
    SortedStrings,
    dictionary_parts,
    plain_strings,
    smallest_codes,
    smallest_ints,
    strictly_ascending,
)


def _numbers(array: pa.Array | pa.ChunkedArray, dtype: Any, fill: Any = 0) -> np.ndarray:
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if array.null_count:
        array = pc.fill_null(array, fill)
    return np.ascontiguousarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """A string column's chunks, dictionary-encoded (artifact item columns are read as dictionaries already)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return [chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk) for chunk in chunks]


def _shared_dictionary(*columns: pa.Array | pa.ChunkedArray) -> tuple[list[np.ndarray], pa.Array]:
    """Each string column as int32 codes into one dictionary of unique names (the table's local item ids)."""
    parts = [_chunks(column) for column in columns]
    lengths = [sum(len(chunk) for chunk in chunks) for chunks in parts]
    value_type = pa.dictionary(pa.int32(), pa.string())
    combined = pa.chunked_array(
        [chunk.cast(value_type) if chunk.type != value_type else chunk for chunks in parts for chunk in chunks],
        type=value_type,
    )
    codes, names = dictionary_parts(combined)
    if len(pc.unique(names)) != len(names):  # a dictionary page with repeated values: encode the decoded strings
        codes, names = dictionary_parts(pc.dictionary_encode(pc.take(names, pa.array(codes))))
    bounds = np.cumsum([0, *lengths])
    return [codes[bounds[i] : bounds[i + 1]] for i in range(len(columns))], names


def _grouped_offsets(codes: np.ndarray, ranks: np.ndarray) -> np.ndarray | None:
    """CSR offsets of the runs of equal consecutive codes (plus len(codes) at the end), or None unless every code
    has one run and ranks increase within each run (the order artifacts are written in)."""
    n = len(codes)
    if n == 0:
        return np.zeros(1, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    offsets = np.append(starts, n).astype(np.int64)
    if len(np.unique(codes[starts])) != len(starts):
        return None
    run_start = np.zeros(n, np.bool_)
    run_start[starts] = True
    if n > 1 and not bool(np.all((np.diff(ranks) > 0) | run_start[1:])):
        return None
    return offsets


def _sorted_by_key(table: pa.Table, key: str, columns: tuple[str, ...]) -> pa.Table:
    """The table sorted by (key, rank), its string columns decoded first: artifacts are written sorted like this, and
    one that is not is sorted here rather than misread."""
    for name in columns:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, plain_strings(table.column(name)))
    return table.sort_by([(key, "ascending"), ("rank", "ascending")])


@dataclass(frozen=True, eq=False)
class PopularityTable:
    """popularity in rank order (score desc): row i is local item code i (`names`), first row of an item wins."""

    names: pa.Array
    keys: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> PopularityTable:
        ranks = _numbers(table.column("rank"), np.int64)
        if len(ranks) > 1 and not bool(np.all(np.diff(ranks) >= 0)):
            table = table.sort_by("rank")
        names = plain_strings(table.column("item_id"))
        scores = _numbers(table.column("score"), np.float64)
        counts = _numbers(table.column("count"), np.int64)
        keys = np.arange(len(names), dtype=np.int32)
        nbytes = names.nbytes + keys.nbytes + scores.nbytes + counts.nbytes + 8 * len(names)  # + a translation
        return cls(names, keys, scores, counts, nbytes)

    def top(self, n: int) -> list[Scored]:
        n = max(0, min(int(n), len(self.scores)))
        return [Scored(i, s) for i, s in zip(self.names.slice(0, n).to_pylist(), self.scores[:n].tolist(), strict=True)]


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """cooc / session_seq / item_knn in CSR form: rows offsets[g]:offsets[g+1] are group g's neighbours by rank.

    Items are int32 local codes into `names` (group g's item is keys[g]); `counts` only where a lookup needs them
    (cooc's co_visit_counts).
    """

    names: pa.Array
    keys: np.ndarray
    offsets: np.ndarray
    neighbors: np.ndarray
    scores: np.ndarray
    counts: np.ndarray | None
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table, neighbor_column: str, *, counts: bool = True) -> NeighborTable:
        ranks = _numbers(table.column("rank"), np.int64)
        (key_codes, neighbors), names = _shared_dictionary(table.column("item_id"), table.column(neighbor_column))
        offsets = _grouped_offsets(key_codes, ranks)
        if offsets is None:
            table = _sorted_by_key(table, "item_id", ("item_id", neighbor_column))
            (key_codes, neighbors), names = _shared_dictionary(table.column("item_id"), table.column(neighbor_column))
            offsets = _grouped_offsets(key_codes, np.arange(len(key_codes)))
            assert offsets is not None
        keys = key_codes[offsets[:-1]]
        scores = _numbers(table.column("score"), np.float64)
        kept_counts = smallest_ints(_numbers(table.column("count"), np.int64)) if counts else None
        nbytes = (
            names.nbytes
            + keys.nbytes
            + offsets.nbytes
            + neighbors.nbytes
            + scores.nbytes
            + (kept_counts.nbytes if kept_counts is not None else 0)
            + 4 * len(names)
            + 4 * len(keys)  # a translation: a code per name, a key per code
        )
        return cls(names, keys, offsets, neighbors, scores, kept_counts, nbytes)

    def span(self, group: int) -> tuple[int, int]:
        return int(self.offsets[group]), int(self.offsets[group + 1])

    def scored(self, group: int) -> list[Scored]:
        start, end = self.span(group)
        ids = self.names.take(pa.array(self.neighbors[start:end])).to_pylist()
        return [Scored(i, s) for i, s in zip(ids, self.scores[start:end].tolist(), strict=True)]

    def counts_of(self, group: int) -> dict[str, int]:
        start, end = self.span(group)
        if self.counts is None:
            raise ValueError("this table was loaded without counts")
        ids = self.names.take(pa.array(self.neighbors[start:end])).to_pylist()
        return dict(zip(ids, self.counts[start:end].tolist(), strict=True))


def _list_parts(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if lists.null_count:
        lists = pc.fill_null(lists, pa.scalar([], lists.type))
    return _numbers(lists.offsets, np.int64), lists.values


@dataclass(frozen=True, eq=False)
class ContentTable:
    """content_sim: row r's item is keys[r] (local code into `names`); tags and similar items/scores as list offsets
    into flat arrays (similar items as local codes)."""

    names: pa.Array
    keys: np.ndarray
    tag_offsets: np.ndarray
    tag_values: pa.Array
    similar_offsets: np.ndarray
    similar_items: np.ndarray
    score_offsets: np.ndarray
    similar_scores: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> ContentTable:
        tag_offsets, tag_values = _list_parts(table.column("tags"))
        similar_offsets, similar_values = _list_parts(table.column("similar_items"))
        score_offsets, score_values = _list_parts(table.column("similar_scores"))
        (keys, similar_items), names = _shared_dictionary(table.column("item_id"), similar_values)
        scores = _numbers(score_values, np.float64)
        tag_values = plain_strings(tag_values)
        nbytes = (
            names.nbytes
            + keys.nbytes
            + tag_offsets.nbytes
            + tag_values.nbytes
            + similar_offsets.nbytes
            + similar_items.nbytes
            + score_offsets.nbytes
            + scores.nbytes
            + 8 * len(names)  # a translation
        )
        return cls(names, keys, tag_offsets, tag_values, similar_offsets, similar_items, score_offsets, scores, nbytes)

    def tags(self, row: int) -> tuple[str, ...]:
        start, end = int(self.tag_offsets[row]), int(self.tag_offsets[row + 1])
        return tuple(tag for tag in self.tag_values.slice(start, end - start).to_pylist() if tag)

    def similar_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item positions, score positions, source) of the similar items of rows (in order; -1: none): item j of a
        row pairs with its score j, up to the shorter of the two lists (like zip)."""
        present = np.flatnonzero(rows >= 0)
        chosen = rows[present]
        item_starts = self.similar_offsets[chosen]
        score_starts = self.score_offsets[chosen]
        item_lengths = self.similar_offsets[chosen + 1] - item_starts
        lengths = np.minimum(item_lengths, self.score_offsets[chosen + 1] - score_starts)
        within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        items = np.repeat(item_starts, lengths) + within
        return items, np.repeat(score_starts, lengths) + within, np.repeat(present, lengths)

    def similar(self, row: int) -> list[Scored]:
        items, scores, _ = self.similar_rows(np.array([row]))
        ids = self.names.take(pa.array(self.similar_items[items])).to_pylist()
        return [Scored(i, s) for i, s in zip(ids, self.similar_scores[scores].tolist(), strict=True) if i is not None]


def _ordered_ranges(mins: list[str | None], maxes: list[str | None]) -> bool:
    """True if every range is known and both bounds are non-decreasing (row groups of a file sorted by the key)."""
    previous_low = previous_high = ""
    for low, high in zip(mins, maxes, strict=True):
        if low is None or high is None or low > high or low < previous_low or high < previous_high:
            return False
        previous_low, previous_high = low, high
    return True


@dataclass(frozen=True, eq=False)
class ImplicitFooter:
    """The implicit artifact's Parquet footer and the user_id range of each row group (from its statistics)."""

    size: int
    metadata: pq.FileMetaData
    mins: list[str | None]  # None: the row group has no usable statistics (it must be read to know)
    maxes: list[str | None]
    ordered: bool  # row groups are in user_id order with statistics: binary search applies
    nbytes: int

    @classmethod
    def from_metadata(cls, metadata: pq.FileMetaData, size: int) -> ImplicitFooter:
        mins: list[str | None] = []
        maxes: list[str | None] = []
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(0).statistics
            usable = stats is not None and stats.has_min_max and isinstance(stats.min, str)
            mins.append(stats.min if usable else None)
            maxes.append(stats.max if usable else None)
        ordered = _ordered_ranges(mins, maxes)
        strings = sum(sys.getsizeof(v) for v in mins + maxes)
        nbytes = metadata.serialized_size + strings + 16 * len(mins)
        return cls(size, metadata, mins, maxes, ordered, nbytes)

    def row_groups_for(self, user_id: str) -> list[int]:
        """The row groups whose [min, max] user_id range contains `user_id` (consecutive, as the file is sorted)."""
        metadata = self.metadata
        if self.ordered:
            first = bisect.bisect_left(self.maxes, user_id)  # type: ignore[arg-type]
            last = bisect.bisect_right(self.mins, user_id)  # type: ignore[arg-type]
            groups = range(first, last)
        else:
            groups = range(len(self.mins))
        return [
            g
            for g in groups
            if metadata.row_group(g).num_rows and (self.mins[g] is None or self.mins[g] <= user_id <= self.maxes[g])  # type: ignore[operator]
        ]


@dataclass(frozen=True, eq=False)
class UserRows:
    """One implicit row group, compact: users sorted for binary search, each with its row span (rank order);
    items as uint16/int32 codes into the group's own dictionary; counts in the narrowest int type."""

    users: SortedStrings
    starts: np.ndarray
    ends: np.ndarray
    item_names: pa.Array
    items: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    last_us: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> UserRows:
        ranks = _numbers(table.column("rank"), np.int64)
        user_codes, user_names = dictionary_parts(table.column("user_id"))
        offsets = _grouped_offsets(user_codes, ranks) if len(pc.unique(user_names)) == len(user_names) else None
        if offsets is None:
            table = _sorted_by_key(table, "user_id", ("user_id", "item_id"))
            user_codes, user_names = dictionary_parts(pc.dictionary_encode(table.column("user_id")))
            offsets = _grouped_offsets(user_codes, np.arange(len(user_codes)))
            assert offsets is not None
        users = user_names.take(pa.array(user_codes[offsets[:-1]]))
        starts, ends = offsets[:-1], offsets[1:]
        if not strictly_ascending(users):  # sort the users, not the rows (and drop a null user: never looked up)
            order = pc.sort_indices(users).to_numpy()
            order = order[np.asarray(users.take(pa.array(order)).is_valid(), dtype=bool)]
            users, starts, ends = users.take(pa.array(order)), starts[order], ends[order]
        items, item_names = dictionary_parts(table.column("item_id"))
        items = smallest_codes(items, len(item_names))
        scores = _numbers(table.column("score"), np.float64)
        counts = smallest_ints(_numbers(table.column("count"), np.int64))
        last_us = _numbers(table.column("last_ts").cast(pa.int64()), np.int64)
        index = SortedStrings(users)
        starts, ends = starts.astype(np.int32), ends.astype(np.int32)
        nbytes = (
            index.nbytes
            + starts.nbytes
            + ends.nbytes
            + item_names.nbytes
            + items.nbytes
            + scores.nbytes
            + counts.nbytes
            + last_us.nbytes
        )
        return cls(index, starts, ends, item_names, items, scores, counts, last_us, nbytes)

    def history(self, user_id: str) -> History | None:
        """The user's rows in this group (None if the group has none)."""
        position = self.users.find(user_id)
        if position < 0:
            return None
        start, end = int(self.starts[position]), int(self.ends[position])
        names = self.item_names.take(pa.array(self.items[start:end])).to_pylist()
        return History(names, self.scores[start:end], self.counts[start:end], self.last_us[start:end])

    def interactions(self, user_id: str) -> list[Interaction]:
        history = self.history(user_id)
        return history.interactions() if history is not None else []
