"""Array indexes built once per loaded artifact (or manifest), so that a request slices arrays instead of looking
strings up row by row.

  ItemVocabulary   item id <-> int32 code, one per manifest (ArtifactSignals): every artifact of the manifest is
                   translated into it, so candidates from different artifacts meet as integers
  Translation      one table's local item codes and its keys in a vocabulary's codes (made on first use, dropped
                   with the table or the vocabulary)
  SortedStrings    exact binary search over a sorted Arrow string array (UTF-8 byte order = code point order)
  gather_spans     CSR: the rows of several groups, concatenated in the order asked

A vocabulary only grows by translating tables (never by request input), so it holds at most the item ids of the
manifest's artifacts.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def plain_strings(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One string array (chunks combined, dictionary decoded)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def dictionary_parts(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(int32 indices, dictionary) of a string column, dictionary-encoding it if it is not yet.

    Chunks with different dictionaries are unified. A null value gets the index len(dictionary) and the returned
    dictionary then ends with a null, so `dictionary.take(indices)` gives back the column.
    """
    chunked = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    if not pa.types.is_dictionary(chunked.type):
        chunked = pc.dictionary_encode(chunked)
    if chunked.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], pa.string())
    if chunked.num_chunks > 1:
        chunked = chunked.unify_dictionaries()
    dictionary = plain_strings(chunked.chunk(0).dictionary)
    parts = []
    nulls = False
    for chunk in chunked.chunks:
        indices = chunk.indices
        if indices.null_count:
            nulls = True
            indices = pc.fill_null(indices, len(dictionary))
        parts.append(indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False))
    if nulls:
        dictionary = pa.concat_arrays([dictionary, pa.nulls(1, pa.string())])
    indices = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return np.ascontiguousarray(indices, dtype=np.int32), dictionary


def smallest_codes(codes: np.ndarray, size: int) -> np.ndarray:
    """`codes` (all in 0..size-1) as uint16 when they fit, else int32: the implicit row groups' item columns."""
    return codes.astype(np.uint16 if size <= 1 << 16 else np.int32, copy=False)


def smallest_ints(values: np.ndarray) -> np.ndarray:
    """Integers in the narrowest of int8..int64 that holds them all (counts are small; exact either way)."""
    if len(values) == 0:
        return values.astype(np.int8)
    low, high = int(values.min()), int(values.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.astype(dtype)
    return values.astype(np.int64, copy=False)


def gather_spans(offsets: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of CSR groups, concatenated in the order of `groups` (each group's rows in row order).

    Returns (rows, source): rows[j] is a row of group groups[source[j]]. Negative groups (absent) give no rows.
    """
    starts = offsets[groups]
    lengths = np.where(groups >= 0, offsets[groups + 1] - starts, 0)  # group -1 reads offsets[-1] and offsets[0]
    source = np.repeat(np.arange(len(groups)), lengths)
    rows = np.arange(len(source), dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return rows, source


class Keyed(Protocol):
    """A table translatable into a vocabulary: its item ids (local codes index `names`) and its keys."""

    names: pa.Array  # the table's item ids; local code i is names[i]
    keys: np.ndarray  # local code of each key (row or group), in key order


@dataclass(frozen=True, eq=False)
class Translation:
    """A table in a vocabulary's codes.

    codes     int32, the vocabulary code of each local code (-1 for a null name)
    padded    int32, vocabulary code -> the table's first key with that item, -1 if none, then one more -1: codes
              >= len(padded) - 1 were added to the vocabulary after this table and so are not in it
    complete  no local name is null (so every translated code is >= 0)
    """

    codes: np.ndarray
    padded: np.ndarray
    complete: bool

    @property
    def keys(self) -> np.ndarray:
        return self.padded[:-1]

    def key_of(self, code: int) -> int:
        return int(self.padded[code]) if 0 <= code < len(self.padded) - 1 else -1

    def keys_of(self, codes: np.ndarray) -> np.ndarray:
        """The key of each vocabulary code (-1 if the table has none; negative codes are never in it)."""
        # -1 (any negative code) and len(padded) - 1 (any later code) both read the padding
        return self.padded[np.minimum(np.maximum(codes, -1), len(self.padded) - 1)]


class ItemVocabulary:
    """Item ids and their int32 codes, in the order first seen (thread-safe; codes never change).

    Lookups of unknown ids give -1; only `intern` / `translation` add ids.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._chunks: list[pa.Array] = []  # the names as Arrow arrays: the value set of index_in
        self._translations: weakref.WeakKeyDictionary[Keyed, Translation] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self._names)

    def code(self, name: str) -> int:
        return self._codes.get(name, -1)

    def codes(self, names: Iterable[str]) -> np.ndarray:
        """The code of each name (-1 if unknown), int64."""
        get = self._codes.get
        return np.fromiter((get(name, -1) for name in names), np.int64)

    def name(self, code: int) -> str:
        return self._names[code]

    def names(self, codes: Sequence[int] | np.ndarray) -> list[str]:
        names = self._names
        return [names[code] for code in (codes.tolist() if isinstance(codes, np.ndarray) else codes)]

    def intern(self, names: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The code of each of `names` (int32, -1 for nulls), adding the ones not seen yet in their order."""
        names = plain_strings(names)
        with self._lock:
            return self._intern(names)

    def _intern(self, names: pa.Array) -> np.ndarray:
        if self._names:
            value_set = self._chunks[0] if len(self._chunks) == 1 else pa.concat_arrays(self._chunks)
            self._chunks = [value_set]
            found = pc.fill_null(pc.index_in(names, value_set=value_set), -1)
            codes = found.to_numpy(zero_copy_only=False).astype(np.int32)
        else:
            codes = np.full(len(names), -1, np.int32)
        valid = np.asarray(names.is_valid(), dtype=bool) if names.null_count else np.ones(len(names), bool)
        new = np.flatnonzero((codes < 0) & valid)
        if len(new):
            start = len(self._names)
            new_names = names.take(pa.array(new)).to_pylist()
            added = list(dict.fromkeys(new_names))
            self._names.extend(added)  # before the codes: a code another thread can see always has its name
            self._codes.update(zip(added, range(start, start + len(added)), strict=True))
            if len(added) == len(new_names):  # the usual case: a table's names are a dictionary (distinct)
                codes[new] = np.arange(start, start + len(added), dtype=np.int32)
            else:
                codes[new] = [self._codes[name] for name in new_names]
            self._chunks.append(pa.array(added, pa.string()))
        return codes

    def translation(self, table: Keyed) -> Translation:
        """`table` in this vocabulary's codes (computed once per table, interning its names)."""
        with self._lock:
            found = self._translations.get(table)
            if found is None:
                codes = self._intern(plain_strings(table.names))
                key_codes = codes[table.keys] if len(table.keys) else np.zeros(0, np.int32)
                padded = np.full(len(self._names) + 1, -1, np.int32)
                present = key_codes >= 0
                unique, first = np.unique(key_codes[present], return_index=True)
                padded[unique] = np.flatnonzero(present)[first]  # the first key of an item, like dict.setdefault
                complete = bool(len(codes) == 0 or codes.min() >= 0)
                found = self._translations[table] = Translation(codes, padded, complete)
            return found


class SortedStrings:
    """Exact lookups in a strictly ascending Arrow string array by binary search over its UTF-8 bytes."""

    def __init__(self, values: pa.Array) -> None:
        values = plain_strings(values)
        offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
        start, end = int(offsets[0]), int(offsets[-1])
        data = values.buffers()[2]
        self._data = data.to_pybytes()[start:end] if data is not None else b""
        self._offsets = (offsets - start).astype(np.int64)
        self.nbytes = len(self._data) + self._offsets.nbytes

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def find(self, value: str) -> int:
        """The position of `value`, or -1."""
        try:
            key = value.encode()
        except UnicodeEncodeError:  # lone surrogates: never in an Arrow (UTF-8) string
            return -1
        data, offsets = self._data, self._offsets
        low, high = 0, len(offsets) - 1
        while low < high:
            middle = (low + high) // 2
            if data[offsets[middle] : offsets[middle + 1]] < key:
                low = middle + 1
            else:
                high = middle
        if low < len(offsets) - 1 and data[offsets[low] : offsets[low + 1]] == key:
            return low
        return -1


def strictly_ascending(values: pa.Array) -> bool:
    """True if every value is greater than the one before (no nulls): the precondition of SortedStrings."""
    values = plain_strings(values)
    if values.null_count:
        return False
    if len(values) < 2:
        return True
    return bool(pc.all(pc.less(values.slice(0, len(values) - 1), values.slice(1))).as_py())
