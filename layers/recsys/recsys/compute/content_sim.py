"""Content similarity: items sharing catalog tags, built from the catalog rather than from events.

Similarity is the cosine of IDF-weighted tag vectors: a tag carried by df of the catalog's N items weighs
w = ln(N / df), so a tag on every item weighs nothing, and

    sim(A, B) = sum over t in A ∩ B of w_t² / (|A| |B|),   |A| = sqrt(sum over t in A of w_t²).

Which pairs are scored is bounded, whatever the tag distribution: an item's candidates are the items sharing one
of its *generating* tags, its tags from the rarest up as long as the items they bring together stay within
content_sim_max_tag_items (its rarest tag always generates). Its most specific tags weigh most, so its best
neighbours share them; a broad tag (a category on 40% of a catalog) generates nothing for an item that has rarer
ones, but counts in every score it is shared in. A list is thus not always symmetric. The result is the exact top k
of the weighted cosine among those candidates; how much of the unrestricted top k it recalls is measured by
`benchmarks/content_catalogs.py` (docs/reference/artifacts.md#content_sim).

SCHEMA (the artifact), one row per catalog item, sorted by item_id:
  item_id         string not null
  tags            list<string>      the item's catalog tags (as read by catalog.read_catalog: normalized, sorted)
  similar_items   list<string>      at most content_sim_top_k other items; score desc, item_id asc; never itself
  similar_scores  list<float64>     the weighted cosine of each similar item, aligned with similar_items
Items without similar items have empty lists.

How it is computed. Items with the same weighted tag set form a *signature*; they score the same against every
other item. Signatures, not items, are paired by their shared tags (pairing tags; broad tags among signatures
without a pairing tag), and each candidate pair's broad tags in common are then added to its score. Within one
neighbour signature the items tie on score and are ordered by item_id, so only the first top_k + 1 items of each
neighbour signature can reach anyone's list: each signature gets its top_k + 1 list from those candidates, and each
of its items takes that list without itself, cut to top_k.

Cost, with m_t items in signature t: the signature pairs, at most sum over pairing tags of (signatures carrying
it) ** 2 (plus the same over broad tags among signatures without a pairing tag), and the candidates, sum over
paired signatures (s, t) of min(m_t, top_k + 1). Pairs are built and ranked in blocks of about _BLOCK_CANDIDATES
candidates, so the working memory is that of one block besides the result.
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

# Tags whose sharing is found through a 64-bit mask per signature when scoring (see _Scoring).
_PROFILE_TAGS = 64
# Squared weights become integers at this scale (2 ** 30): a tag on 1 item of 10 million weighs ln(1e7) ** 2 = 260,
# so a signature's sum stays far below 2 ** 53, where float64 stops holding every integer.
WEIGHT_SCALE = float(1 << 30)

_SORT_KEYS = [("signature", "ascending"), ("score", "descending"), ("item", "ascending")]


@dataclass(frozen=True)
class _Signatures:
    """Items grouped by their weighted tag set; only items with at least one weighted tag have one.

    Signatures are numbered by their first item. Items are positions in the catalog sorted by item_id.
    """

    of_item: np.ndarray  # int64 per item: its signature, -1 without weighted tags
    members: np.ndarray  # int64 item positions grouped by signature, ascending within one
    member_start: np.ndarray  # int64, S + 1 offsets into members
    norm: np.ndarray  # float64 per signature: sqrt(sum of its tags' squared weights)
    tag_signature: np.ndarray  # int64 (signature, tag) rows sorted by signature then tag
    tag_code: np.ndarray  # int64 tag code of each row
    tag_start: np.ndarray  # int64, S + 1 offsets into the rows

    @property
    def count(self) -> int:
        return len(self.norm)

    def rows(self, keep: np.ndarray) -> _TagRows:
        """The (signature, tag) rows where `keep` (a mask over the rows), with their offsets per signature."""
        signature, code = self.tag_signature[keep], self.tag_code[keep]
        return _TagRows(signature, code, exclusive_cumsum(np.bincount(signature, minlength=self.count)))


@dataclass(frozen=True)
class _TagRows:
    """Some of the signatures' (signature, tag) rows, sorted by signature then tag, with offsets per signature."""

    signature: np.ndarray
    code: np.ndarray
    start: np.ndarray  # S + 1 offsets


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


def _signatures(n: int, tag_item: np.ndarray, tag_code: np.ndarray, squared: np.ndarray) -> _Signatures:
    """Signatures of `n` items from their weighted tags (tag_item, tag_code), sorted by item then code;
    `squared` is each tag code's squared weight."""
    tag_count = np.bincount(tag_item, minlength=n)
    keyed = np.flatnonzero(tag_count)
    # The exact key of an item: its tag codes, as one binary string.
    key_offsets = exclusive_cumsum(tag_count[keyed])
    keys = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(),
        len(keyed),
        [None, pa.py_buffer(key_offsets * 4), pa.py_buffer(tag_code.astype(np.uint32))],
    )
    encoded = pc.dictionary_encode(keys)
    signature = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    count = len(encoded.dictionary)

    of_item = np.full(n, -1, np.int64)
    of_item[keyed] = signature
    members = keyed[np.argsort(signature, kind="stable")]
    member_start = exclusive_cumsum(np.bincount(signature, minlength=count))
    first = members[member_start[:-1]]
    tag_lengths = tag_count[first]
    rows = concat_ranges(exclusive_cumsum(tag_count)[first], tag_lengths)
    tag_signature = np.repeat(np.arange(count, dtype=np.int64), tag_lengths)
    codes = tag_code[rows]
    return _Signatures(
        of_item=of_item,
        members=members,
        member_start=member_start,
        norm=np.sqrt(np.bincount(tag_signature, weights=squared[codes], minlength=count)),
        tag_signature=tag_signature,
        tag_code=codes,
        tag_start=exclusive_cumsum(tag_lengths),
    )


@dataclass(frozen=True)
class _TagIndex:
    """The signatures carrying each tag code (among some rows), ascending: carriers[start[c] : start[c] + count[c]]."""

    carriers: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, rows: _TagRows, num_codes: int) -> _TagIndex:
        count = np.bincount(rows.code, minlength=num_codes)
        carriers = rows.signature[np.argsort(rows.code, kind="stable")]
        return cls(carriers=carriers, start=exclusive_cumsum(count), count=count)


@dataclass(frozen=True)
class _Scoring:
    """What scores a candidate pair found through generating tags: the squared tag weights, the signatures' norms,
    and every other tag the two share (added to the generating tags' weight).

    Weights are integers (squared weight x WEIGHT_SCALE, rounded), so every sum is exact in float64 and the same in
    any order: scores do not depend on how pairs were found. "Which of the left signature's other tags does the
    right one carry" is asked for tens of millions of pairs: the _PROFILE_TAGS most carried tags (the broad ones,
    in most pairs) are bits of a 64-bit mask per signature, whose AND is summed by byte through a table; the other
    tags are looked up by binary search in their sorted (signature, tag) keys."""

    weight: np.ndarray  # float64 per tag code: integer-valued squared weight
    norm: np.ndarray  # per signature: sqrt of its tags' summed weights
    rest: _TagRows  # each signature's other tags (not generating, not in the profile)
    rest_profile: np.ndarray  # uint64 per signature: its other tags of the profile
    profile: np.ndarray  # uint64 per signature: every tag of the profile it carries
    byte_weights: np.ndarray  # float64 [8, 256]: summed weights of the profile tags of each byte value
    other_keys: np.ndarray  # signature * num_codes + code of the rows outside the profile, ascending
    other_bloom: np.ndarray  # uint64 per signature: a bit per tag outside the profile (hashed): "maybe carries"
    bloom_bit: np.ndarray  # uint64 per tag code: its bit in other_bloom
    num_codes: int

    @classmethod
    def of(cls, signatures: _Signatures, generating: np.ndarray, weight: np.ndarray, num_codes: int) -> _Scoring:
        carriers = np.bincount(signatures.tag_code, minlength=num_codes)
        tags = np.argsort(-carriers, kind="stable")[:_PROFILE_TAGS]
        tags = tags[carriers[tags] > 0]
        bit = np.full(num_codes, -1, np.int64)
        bit[tags] = np.arange(len(tags))
        row_bit = bit[signatures.tag_code]
        in_profile = row_bit >= 0
        masks = np.zeros(len(row_bit), np.uint64)
        masks[in_profile] = np.left_shift(np.uint64(1), row_bit[in_profile].astype(np.uint64))
        profile = np.bitwise_or.reduceat(masks, signatures.tag_start[:-1]) if len(masks) else masks
        rest_masks = np.where(generating, np.uint64(0), masks)
        rest_profile = np.bitwise_or.reduceat(rest_masks, signatures.tag_start[:-1]) if len(masks) else masks
        byte_weights = np.zeros((8, 256), np.float64)
        values = np.arange(256)
        for position, code in enumerate(tags):
            byte, offset = divmod(position, 8)
            byte_weights[byte, (values >> offset) & 1 == 1] += weight[code]
        others = ~in_profile
        bloom_bit = ((np.arange(num_codes, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(58)).astype(
            np.uint64
        )
        other_masks = np.where(others, np.left_shift(np.uint64(1), bloom_bit[signatures.tag_code]), np.uint64(0))
        other_bloom = (
            np.bitwise_or.reduceat(other_masks, signatures.tag_start[:-1]) if len(other_masks) else other_masks
        )
        return cls(
            weight=weight,
            norm=signatures.norm,
            rest=signatures.rows(~generating & others),
            rest_profile=rest_profile,
            profile=profile,
            byte_weights=byte_weights,
            other_keys=signatures.tag_signature[others] * num_codes + signatures.tag_code[others],
            other_bloom=other_bloom,
            bloom_bit=bloom_bit,
            num_codes=num_codes,
        )

    def rest_shared(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Per pair, the summed weight of the left signature's other tags (not generating) that the right one
        carries too."""
        common = self.rest_profile[left] & self.profile[right]
        shared = np.zeros(len(left), np.float64)
        for byte in range(8):
            shared += self.byte_weights[byte, ((common >> np.uint64(8 * byte)) & np.uint64(255)).astype(np.intp)]
        counts = np.diff(self.rest.start)[left]
        if counts.any() and len(self.other_keys):
            pair = np.repeat(np.arange(len(left)), counts)
            codes = self.rest.code[concat_ranges(self.rest.start[left], counts)]
            # The hashed bit rules most tags out; a binary search confirms the rest.
            maybe = (self.other_bloom[right[pair]] >> self.bloom_bit[codes]) & np.uint64(1) == np.uint64(1)
            pair, codes = pair[maybe], codes[maybe]
            wanted = right[pair] * self.num_codes + codes
            found = np.minimum(np.searchsorted(self.other_keys, wanted), len(self.other_keys) - 1)
            hit = self.other_keys[found] == wanted
            shared += np.bincount(pair[hit], weights=self.weight[codes[hit]], minlength=len(left))
        return shared


def _generating(signatures: _Signatures, frequency: np.ndarray, budget: int) -> np.ndarray:
    """Per (signature, tag) row: whether it generates candidates. A signature's tags do, from the rarest up, as long
    as the items they bring together stay within `budget` (the rarest always does): the candidates of a signature
    are bounded whatever the tag distribution, and they come from its most specific tags, the heaviest in its
    scores."""
    df = frequency[signatures.tag_code]
    order = np.lexsort((signatures.tag_code, df, signatures.tag_signature))
    # Rows stay grouped by signature (sorted by it first), rarest tag first within each.
    brought = np.cumsum(df[order])
    first_of = np.repeat(signatures.tag_start[:-1], np.diff(signatures.tag_start))
    before = brought - df[order] - np.where(first_of > 0, brought[np.maximum(first_of - 1, 0)], 0)
    keep = np.zeros(len(df), bool)
    keep[order] = (before + df[order] <= budget) | (np.arange(len(df)) == first_of)
    return keep


def _signature_lists(
    signatures: _Signatures, generating: _TagRows, scoring: _Scoring, num_codes: int, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, scores, lengths): each signature gets its best top_k + 1 items (of other signatures or its own,
    score desc then item asc) among the signatures carrying one of its `generating` tags; the lists are
    concatenated in signature order, `lengths` has one entry per signature."""
    index = _TagIndex.of(signatures.rows(np.ones(len(signatures.tag_code), bool)), num_codes)
    # The items of a signature that can reach a list (see the module docstring), and an upper bound of the
    # candidates each signature draws, to cut the signatures into blocks of bounded work (at least one each).
    reach = np.minimum(np.diff(signatures.member_start), top_k + 1)
    tag_reach = np.bincount(signatures.tag_code, weights=reach[signatures.tag_signature], minlength=num_codes)
    cost = np.bincount(generating.signature, weights=tag_reach[generating.code], minlength=signatures.count)
    cumulative_cost = np.cumsum(cost)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    first = 0
    while first < signatures.count:
        done = cumulative_cost[first - 1] if first else 0.0
        last = max(first + 1, int(np.searchsorted(cumulative_cost, done + _BLOCK_CANDIDATES, side="right")))
        blocks.append(_block_lists(signatures, generating, index, scoring, reach, first, last, top_k))
        first = last
    if not blocks:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int64)
    items, scores, lengths = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    return items, scores, lengths


def _block_lists(
    signatures: _Signatures,
    generating: _TagRows,
    index: _TagIndex,
    scoring: _Scoring,
    reach: np.ndarray,
    first: int,
    last: int,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, scores, list length per signature) of the signatures first..last-1, as in _signature_lists."""
    rows = slice(generating.start[first], generating.start[last])
    codes = generating.code[rows]
    # Signature pairs sharing a generating tag, one row per shared tag, then their squared weights summed per pair
    # (in a fixed order: the same float operations on every run).
    left = np.repeat(generating.signature[rows], index.count[codes])
    right = index.carriers[concat_ranges(index.start[codes], index.count[codes])]
    weight = np.repeat(scoring.weight[codes], index.count[codes])
    order = np.argsort(left * signatures.count + right, kind="stable")
    keys = left[order] * signatures.count + right[order]
    is_start = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
    pair = np.cumsum(is_start) - 1
    shared = np.bincount(pair, weights=weight[order], minlength=int(is_start.sum()))  # sums in row order
    left, right = np.divmod(keys[is_start], signatures.count)
    shared = shared + scoring.rest_shared(left, right)
    score = shared / (scoring.norm[left] * scoring.norm[right])
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
    per_signature = np.bincount(ordered.column("signature").to_numpy() - first, minlength=last - first)
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
BUILD_ALGORITHM = 2  # 2: IDF-weighted cosine, broad tags scored but not paired


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
    n = catalog.num_rows
    tag_item, tag_code, num_codes = _item_tags(catalog.column("tags"))
    frequency = np.bincount(tag_code, minlength=num_codes)
    # ln(N / df) squared, as an integer count of 2 ** -30: a tag on every item weighs 0 and is left out
    squared = np.round(np.log(n / np.maximum(frequency, 1)) ** 2 * WEIGHT_SCALE)
    weighted = squared[tag_code] > 0
    signatures = _signatures(n, tag_item[weighted], tag_code[weighted], squared)
    generating = _generating(signatures, frequency, params.content_sim_max_tag_items)
    scoring = _Scoring.of(signatures, generating, squared, num_codes)
    lists = _signature_lists(signatures, signatures.rows(generating), scoring, num_codes, top_k)
    items, scores, offsets = lists[0], lists[1], exclusive_cumsum(lists[2])
    similar, similar_scores, item_offsets = _item_lists(signatures, items, scores, offsets, top_k)
    item_offsets = pa.array(item_offsets).cast(pa.int32())  # a checked cast: raises rather than wraps
    out = pa.table(
        {
            "item_id": catalog.column("item_id"),
            "tags": catalog.column("tags"),
            "similar_items": pa.ListArray.from_arrays(
                item_offsets, pc.take(catalog.column("item_id").combine_chunks(), pa.array(similar, pa.int64()))
            ),
            "similar_scores": pa.ListArray.from_arrays(item_offsets, pa.array(similar_scores, pa.float64())),
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
