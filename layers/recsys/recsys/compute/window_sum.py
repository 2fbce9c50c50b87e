"""The window sum of an additive kind: its per-day partials added up over a window, and rolled from day to day.

cooc, session_seq and item_knn merge their partials by adding integers per pair of keys: sessions holding both
items, transitions from one item to the next, the days a user touched an item. Their window's partials therefore
reduce to one table, the window sum: one row per key pair whose total is not 0, sorted by the pair. The next day's
window sum is the previous one plus the new day's partial minus the partial of the day that left the window.
Integer arithmetic: the rolled sum is exactly the sum of every partial again (a test checks it), at a cost that
follows the pairs of the window instead of its days times their pairs (the daily 30-day run).

A kind declares its sum with a `WindowSum` (the key columns, the partial's column it adds or none for "each row
counts 1", and the sum's column) and builds its artifact from the sum (`build_from_sum`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recsys.compute import pairs

# The dictionary type of the sum's key columns: written to Parquet and read back as dictionaries (never one string
# per row), and coded through their dictionaries by recsys.compute.pairs.sorted_codes.
KEY_TYPE = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True)
class WindowSum:
    """How a kind's partials add up: per (keys[0], keys[1]), the sum of the partial's `added` column (None: each
    partial row adds 1) goes to the column `total`."""

    keys: tuple[str, str]
    added: str | None
    total: str

    @property
    def schema(self) -> pa.Schema:
        """The window sum's schema: both keys as dictionary-encoded strings, then the int64 total."""
        return pa.schema(
            [
                pa.field(self.keys[0], KEY_TYPE, nullable=False),
                pa.field(self.keys[1], KEY_TYPE, nullable=False),
                pa.field(self.total, pa.int64(), nullable=False),
            ]
        )

    def of_partials(self, partials: Sequence[pa.Table]) -> pa.Table:
        """The sum of `partials` (each a day's partial)."""
        days = [table for table in partials if table.num_rows]
        if len(days) == 1:  # a partial is its own sum: distinct pairs, sorted, none counted 0
            return self._of_one(days[0])
        return self.combine([(table, 1, self.added) for table in days])

    def _of_one(self, partial: pa.Table) -> pa.Table:
        keys = [
            column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
            for column in (partial.column(name) for name in self.keys)
        ]
        if self.added is None:
            total = pa.repeat(pa.scalar(1, pa.int64()), partial.num_rows)
        else:
            total = partial.column(self.added).cast(pa.int64())
        return pa.table([*keys, total], schema=self.schema)

    def roll(self, previous: pa.Table, added: Sequence[pa.Table], dropped: Sequence[pa.Table]) -> pa.Table:
        """`previous` (a window sum) plus the partials of the days that entered the window, minus those that left.

        The days' changes are summed on their own (a day's pairs, not the window's) and merged into the previous
        sum, which is already sorted by pair: a binary search per changed pair, no sort of the window's pairs.
        ValueError if a total would fall below 0: `dropped` held a pair `previous` did not count (not its days).
        """
        changes = [(table, 1) for table in added] + [(table, -1) for table in dropped]
        changes = [(table, sign) for table, sign in changes if table.num_rows]
        if not previous.num_rows:
            return self.combine([(table, sign, self.added) for table, sign in changes])
        first, second = self.keys
        tables = [previous, *(table for table, _ in changes)]
        firsts, (previous_first, *change_firsts) = pairs.sorted_codes(*(table.column(first) for table in tables))
        seconds, (previous_second, *change_seconds) = pairs.sorted_codes(*(table.column(second) for table in tables))
        n = len(seconds)
        keys = previous_first * n + previous_second  # the codes order as the ids do: still sorted, distinct
        totals = previous.column(self.total).to_numpy().astype(np.int64, copy=False)
        if changes:
            a, b, change = pairs.sum_by_pair(
                np.concatenate(change_firsts),
                np.concatenate(change_seconds),
                np.concatenate([self._values(table, sign, self.added) for table, sign in changes]),
                n,
            )
            keys, totals = _merge_sorted(keys, totals, a * n + b, change)
        return self._table(firsts, seconds, keys // n, keys % n, totals)

    def combine(self, terms: Sequence[tuple[pa.Table, int, str | None]]) -> pa.Table:
        """sum(sign * table[column]) per key pair over the (table, sign, column) `terms` (column None: 1 per row);
        rows whose total is 0 are left out. Tables may hold the keys as strings or dictionaries; a table without
        rows (an empty day, however it was written) adds nothing."""
        terms = [term for term in terms if term[0].num_rows]
        if not terms:
            return self.schema.empty_table()
        first, second = self.keys
        firsts, first_codes = pairs.sorted_codes(*(table.column(first) for table, _, _ in terms))
        seconds, second_codes = pairs.sorted_codes(*(table.column(second) for table, _, _ in terms))
        # Each term is sorted by its key pair, so the stacked keys are sorted runs (sum_by_pair merges them).
        a, b, total = pairs.sum_by_pair(
            np.concatenate(first_codes),
            np.concatenate(second_codes),
            np.concatenate([self._values(table, sign, column) for table, sign, column in terms]),
            len(seconds),
        )
        return self._table(firsts, seconds, a, b, total)

    @staticmethod
    def _values(table: pa.Table, sign: int, column: str | None) -> np.ndarray:
        if column is None:
            return np.full(table.num_rows, sign, np.int64)
        return sign * table.column(column).to_numpy().astype(np.int64, copy=False)

    def _table(self, firsts: pa.Array, seconds: pa.Array, a: np.ndarray, b: np.ndarray, total: np.ndarray) -> pa.Table:
        """The window sum of the code pairs (a, b) (sorted) and their totals, without the pairs whose total is 0."""
        if total.size and total.min() < 0:
            raise ValueError(f"window sum: a total of {self.total} fell below 0 (a dropped day it did not count)")
        kept = total != 0
        return pa.table(
            [_compact(firsts, a[kept]), _compact(seconds, b[kept]), pa.array(total[kept], pa.int64())],
            schema=self.schema,
        )


def _merge_sorted(
    keys: np.ndarray, totals: np.ndarray, change_keys: np.ndarray, changes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted `keys` with their `totals`, plus distinct sorted `change_keys` with their `changes`: a key
    in both adds up, a new one is inserted in order."""
    at = np.searchsorted(keys, change_keys)
    found = at < keys.size
    found[found] = keys[at[found]] == change_keys[found]
    totals = totals.copy()
    totals[at[found]] += changes[found]
    new = ~found
    # A new key goes before the row at its position, after the new keys before it (np.insert's result, without its
    # sort of the positions: they are sorted already).
    placed = at[new] + np.arange(np.count_nonzero(new))
    kept = np.ones(keys.size + placed.size, bool)
    kept[placed] = False
    merged_keys, merged_totals = np.empty(kept.size, keys.dtype), np.empty(kept.size, totals.dtype)
    merged_keys[kept], merged_totals[kept] = keys, totals
    merged_keys[placed], merged_totals[placed] = change_keys[new], changes[new]
    return merged_keys, merged_totals


def _compact(dictionary: pa.Array, codes: np.ndarray) -> pa.DictionaryArray:
    """`codes` into the sorted `dictionary` as a dictionary array holding only the entries they use (still sorted):
    a pair whose total fell to 0 takes its ids out of the sum's dictionary."""
    used = np.zeros(len(dictionary), bool)
    used[codes] = True
    if used.all():
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), pa.int32()), dictionary)
    renumbered = (np.cumsum(used) - 1).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(renumbered[codes], pa.int32()), dictionary.filter(pa.array(used)))
