"""Content similarity: items sharing catalog tags, built from the catalog rather than from events.

Similarity is the cosine over tag sets, |A ∩ B| / sqrt(|A| * |B|). A tag carried by more than
content_sim_max_tag_items items is too common to discriminate, so it creates no pairs, but it still counts in |A|
and is still listed in `tags`.

SCHEMA (the artifact), one row per catalog item, sorted by item_id:
  item_id         string not null
  tags            list<string>      the item's catalog tags (as read by catalog.read_catalog: normalized, sorted)
  similar_items   list<string>      at most content_sim_top_k other items; score desc, item_id asc; never itself
  similar_scores  list<float64>     the cosine of each similar item, aligned with similar_items
Items without similar items have empty lists.

How it is computed. Items with the same pairing tags (the tags not too common) and the same number of tags form a
*signature*; they score the same against every other item. Signatures, not items, are paired by their shared
pairing tags. Within one neighbour signature the items tie on score and are ordered by item_id, so only the first
top_k + 1 items of each neighbour signature can reach anyone's list: each signature gets its top_k + 1 list from
those candidates, and each of its items takes that list without itself, cut to top_k.

Cost, with S signatures and m_t items in signature t:
  signature pairs  sum over pairing tags of (signatures carrying it) ** 2
  candidates       sum over paired signatures (s, t) of min(m_t, top_k + 1)
Both are at most the item pairs the plain self-join on tag produces (sum over pairing tags of items(tag) ** 2),
reached when every item has its own tag set; catalogs whose items repeat tag sets cost far less. Pairs are built
and ranked in blocks of about _BLOCK_CANDIDATES candidates, so the working memory is that of one block besides
the result (top_k + 1 entries per signature, top_k per item).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute.pairs import concat_ranges, exclusive_cumsum, unique_counts
from recsys.contract.kinds import KINDS, ArtifactKind
from recsys.settings import ComputeParams

KIND = "content_sim"

SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("similar_items", pa.list_(pa.string())),
        pa.field("similar_scores", pa.list_(pa.float64())),
    ]
)

# Candidate rows scored and sorted at once: bounds the working memory on catalogs without repeated tag sets.
_BLOCK_CANDIDATES = 1 << 20

_SORT_KEYS = [("signature", "ascending"), ("score", "descending"), ("item", "ascending")]


@dataclass(frozen=True)
class _Signatures:
    """Items grouped by (pairing tag set, tag count); only items with at least one pairing tag have one.

    Signatures are numbered by their first item. Items are positions in the catalog sorted by item_id.
    """

    of_item: np.ndarray  # int64 per item: its signature, -1 without pairing tags
    members: np.ndarray  # int64 item positions grouped by signature, ascending within one
    member_start: np.ndarray  # int64, S + 1 offsets into members
    size: np.ndarray  # int64 per signature: the tag count |A| of its items
    tag_signature: np.ndarray  # int64 (signature, tag) rows sorted by signature then tag
    tag_code: np.ndarray  # int64 tag code of each row
    tag_start: np.ndarray  # int64, S + 1 offsets into the rows

    @property
    def count(self) -> int:
        return len(self.size)


def _item_tags(tags: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """(item, tag code) of every distinct non-null, non-empty tag of every item, sorted by item then code; and the
    number of tag codes."""
    lists = tags.combine_chunks()
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    present = pc.and_(pc.is_valid(flat), pc.not_equal(flat, ""))
    encoded = pc.dictionary_encode(flat.filter(present))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    num_codes = len(encoded.dictionary)
    items = parents.filter(present).to_numpy(zero_copy_only=False).astype(np.int64)
    stride = max(num_codes, 1)
    keys, _ = unique_counts(items * stride + codes)
    item, code = np.divmod(keys, stride)
    return item, code, num_codes


def _signatures(sizes: np.ndarray, pair_item: np.ndarray, pair_code: np.ndarray) -> _Signatures:
    """Signatures of the items, from their tag counts (`sizes`) and pairing tags (pair_item, pair_code), sorted by
    item then code."""
    n = len(sizes)
    pairing_count = np.bincount(pair_item, minlength=n)
    keyed = np.flatnonzero(pairing_count)
    # The exact key of an item: its tag count, then its pairing tag codes, as one binary string.
    key_lengths = pairing_count[keyed] + 1
    key_offsets = exclusive_cumsum(key_lengths)
    words = np.empty(key_offsets[-1], np.uint32)
    is_size = np.zeros(key_offsets[-1], bool)
    is_size[key_offsets[:-1]] = True
    words[is_size] = sizes[keyed]
    words[~is_size] = pair_code
    keys = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(keyed), [None, pa.py_buffer(key_offsets * 4), pa.py_buffer(words)]
    )
    encoded = pc.dictionary_encode(keys)
    signature = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    count = len(encoded.dictionary)

    of_item = np.full(n, -1, np.int64)
    of_item[keyed] = signature
    members = keyed[np.argsort(signature, kind="stable")]
    member_start = exclusive_cumsum(np.bincount(signature, minlength=count))
    first = members[member_start[:-1]]
    tag_lengths = pairing_count[first]
    rows = concat_ranges(exclusive_cumsum(pairing_count)[first], tag_lengths)
    return _Signatures(
        of_item=of_item,
        members=members,
        member_start=member_start,
        size=sizes[first],
        tag_signature=np.repeat(np.arange(count, dtype=np.int64), tag_lengths),
        tag_code=pair_code[rows],
        tag_start=exclusive_cumsum(tag_lengths),
    )


@dataclass(frozen=True)
class _TagIndex:
    """The signatures carrying each tag code, ascending: carriers[start[code] : start[code] + count[code]]."""

    carriers: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, signatures: _Signatures, num_codes: int) -> _TagIndex:
        count = np.bincount(signatures.tag_code, minlength=num_codes)
        carriers = signatures.tag_signature[np.argsort(signatures.tag_code, kind="stable")]
        return cls(carriers=carriers, start=exclusive_cumsum(count), count=count)


def _signature_lists(signatures: _Signatures, num_codes: int, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, scores, offsets): each signature's best top_k + 1 items, of other signatures or its own, score desc
    then item asc, concatenated in signature order; offsets has S + 1 entries."""
    index = _TagIndex.of(signatures, num_codes)
    # The items of a signature that can reach a list (see the module docstring), and an upper bound of the
    # candidates each signature draws, to cut the signatures into blocks of bounded work (at least one each).
    reach = np.minimum(np.diff(signatures.member_start), top_k + 1)
    tag_reach = np.bincount(signatures.tag_code, weights=reach[signatures.tag_signature], minlength=num_codes)
    cost = np.bincount(signatures.tag_signature, weights=tag_reach[signatures.tag_code], minlength=signatures.count)
    cumulative_cost = np.cumsum(cost)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    first = 0
    while first < signatures.count:
        done = cumulative_cost[first - 1] if first else 0.0
        last = max(first + 1, int(np.searchsorted(cumulative_cost, done + _BLOCK_CANDIDATES, side="right")))
        blocks.append(_block_lists(signatures, index, reach, first, last, top_k))
        first = last
    if not blocks:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(1, np.int64)
    items, scores, lengths = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    return items, scores, exclusive_cumsum(lengths)


def _block_lists(
    signatures: _Signatures, index: _TagIndex, reach: np.ndarray, first: int, last: int, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, scores, list length per signature) of the signatures first..last-1, as in _signature_lists."""
    rows = slice(signatures.tag_start[first], signatures.tag_start[last])
    codes = signatures.tag_code[rows]
    # Signature pairs sharing a tag, one row per shared tag, then counted per pair.
    left = np.repeat(signatures.tag_signature[rows] - first, index.count[codes])
    right = index.carriers[concat_ranges(index.start[codes], index.count[codes])]
    pairs, shared = unique_counts(left * signatures.count + right)
    left, right = np.divmod(pairs, signatures.count)
    # The same float64 operations, in the same order, as the cosine's definition: scores must match bit for bit.
    size = signatures.size.astype(np.float64)
    score = shared.astype(np.float64) / np.sqrt(size[left + first] * size[right])
    # Each pair brings the first items of its neighbour signature; rank them within each signature of the block.
    taken = reach[right]
    candidates = pa.table(
        {
            "signature": np.repeat(left, taken),
            "score": np.repeat(score, taken),
            "item": signatures.members[concat_ranges(signatures.member_start[right], taken)],
        }
    )
    ordered = candidates.take(pc.sort_indices(candidates, sort_keys=_SORT_KEYS))
    per_signature = np.bincount(ordered.column("signature").to_numpy(), minlength=last - first)
    rank = np.arange(ordered.num_rows) - np.repeat(exclusive_cumsum(per_signature)[:-1], per_signature)
    keep = rank <= top_k
    return (
        ordered.column("item").to_numpy()[keep],
        ordered.column("score").to_numpy()[keep],
        np.minimum(per_signature, top_k + 1),
    )


def _item_lists(
    signatures: _Signatures, items: np.ndarray, scores: np.ndarray, offsets: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(similar items, scores, offsets per item): each item's signature list without the item, cut to top_k;
    empty for items without a signature."""
    n = len(signatures.of_item)
    # Where each item sits in its own signature's list, if it made the list (at most once): its list is the
    # entries before that place and the entries after it, so no per-entry filtering is needed.
    owner_signature = np.repeat(np.arange(signatures.count, dtype=np.int64), np.diff(offsets))
    own = signatures.of_item[items] == owner_signature
    self_place = np.full(n, -1, np.int64)
    self_place[items[own]] = np.flatnonzero(own) - offsets[owner_signature[own]]

    signature = signatures.of_item
    keyed = signature >= 0
    start = np.where(keyed, offsets[signature], 0)
    listed = np.where(keyed, offsets[signature + 1] - start, 0)
    has_self = self_place >= 0
    length = np.minimum(listed - has_self, top_k)
    before = np.where(has_self, np.minimum(self_place, length), length)
    segment_starts = np.column_stack((start, start + before + 1)).ravel()
    segment_lengths = np.column_stack((before, length - before)).ravel()
    positions = concat_ranges(segment_starts, segment_lengths)
    return items[positions], scores[positions], exclusive_cumsum(length)


# Bumped whenever build_from_catalog changes meaning, so a recorded build of the old algorithm is not reused.
BUILD_ALGORITHM = 1


def build_params(params: ComputeParams) -> dict:
    """What the artifact depends on besides the catalog's bytes: a recorded build is reused only if these match."""
    return {
        "algorithm": BUILD_ALGORITHM,
        "content_sim_top_k": params.content_sim_top_k,
        "content_sim_max_tag_items": params.content_sim_max_tag_items,
    }


def build_from_catalog(catalog: pa.Table, params: ComputeParams) -> pa.Table:
    """The content_sim artifact (SCHEMA) of `catalog` (item_id, tags); ValueError on duplicate item_ids."""
    catalog = catalog.select(["item_id", "tags"]).sort_by("item_id")
    if pc.count_distinct(catalog.column("item_id")).as_py() != catalog.num_rows:
        raise ValueError("catalog has duplicate item_ids")
    top_k = params.content_sim_top_k
    tag_item, tag_code, num_codes = _item_tags(catalog.column("tags"))
    sizes = np.bincount(tag_item, minlength=catalog.num_rows)
    pairing = (np.bincount(tag_code, minlength=num_codes) <= params.content_sim_max_tag_items)[tag_code]
    signatures = _signatures(sizes, tag_item[pairing], tag_code[pairing])
    items, scores, offsets = _signature_lists(signatures, num_codes, top_k)
    similar, similar_scores, item_offsets = _item_lists(signatures, items, scores, offsets, top_k)
    item_offsets = pa.array(item_offsets).cast(pa.int32())  # a checked cast: raises rather than wraps
    out = pa.table(
        {
            "item_id": catalog.column("item_id"),
            "tags": catalog.column("tags"),
            "similar_items": pa.ListArray.from_arrays(
                item_offsets, pc.take(catalog.column("item_id").combine_chunks(), pa.array(similar))
            ),
            "similar_scores": pa.ListArray.from_arrays(item_offsets, pa.array(similar_scores)),
        }
    )
    return out.cast(SCHEMA)


# This module's entry in the kind registry (the reader's form, the ranking signal, the columns read as dictionaries).
ENTRY = KINDS.register(
    ArtifactKind.from_module(
        sys.modules[__name__],
        form="content",
        signal="content",
        dictionary_columns=("item_id", "similar_items.list.element"),
    )
)
