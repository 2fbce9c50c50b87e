"""recsys.compute.pairs: the int-code core of cooc and item_knn, against hand-computed counts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recsys.compute import pairs


def _triples(a: np.ndarray, b: np.ndarray, count: np.ndarray) -> list[tuple[int, int, int]]:
    return list(zip(a.tolist(), b.tolist(), count.tolist(), strict=True))


def test_sorted_codes_order_as_the_strings_do_across_columns() -> None:
    dictionary, (first, second) = pairs.sorted_codes(pa.array(["b", "a", "c"]), pa.chunked_array([["c", "d"], ["a"]]))
    assert dictionary.to_pylist() == ["a", "b", "c", "d"]
    assert first.tolist() == [1, 0, 2]
    assert second.tolist() == [2, 3, 0]


def test_distinct_pairs_sorts_by_group_then_item_and_drops_repeats() -> None:
    group, item = pairs.distinct_pairs(np.array([1, 0, 1, 0, 1]), np.array([2, 1, 0, 1, 2]), n_items=3)
    assert list(zip(group.tolist(), item.tolist(), strict=True)) == [(0, 1), (1, 0), (1, 2)]


def test_unique_counts_and_sum_by_pair() -> None:
    keys, counts = pairs.unique_counts(np.array([5, 3, 5, 5, 1]))
    assert keys.tolist() == [1, 3, 5] and counts.tolist() == [1, 1, 3]
    summed = pairs.sum_by_pair(np.array([1, 0, 1]), np.array([2, 1, 2]), np.array([3, 4, 5]), n_items=3)
    assert _triples(*summed) == [(0, 1, 4), (1, 2, 8)]


def test_rank_in_segments_and_top_k_order() -> None:
    assert pairs.rank_in_segments(np.array([0, 0, 0, 2, 5, 5])).tolist() == [1, 2, 3, 1, 1, 2]
    key = np.array([1, 0, 1, 0, 1])
    score = np.array([0.5, 0.1, 0.9, 0.7, 0.5])
    other = np.array([3, 1, 2, 0, 1])
    rows, rank = pairs.top_k_order(key, [-score, other], k=2)
    # key 0: 0.7 (row 3), 0.1 (row 1); key 1: 0.9 (row 2), then 0.5 ties broken by other: row 4 (1) before row 0 (3)
    assert rows.tolist() == [3, 1, 2, 4] and rank.tolist() == [1, 2, 1, 2]


def test_sorted_codes_of_dictionary_chunks_match_the_plain_strings() -> None:
    plain = [["b", "a", "c"], ["c", "d"], ["e", "a"]]
    encoded = pa.chunked_array([pa.array(chunk).dictionary_encode() for chunk in plain])
    other = pa.array(["d", "f", "a"])  # a plain string column beside the encoded one
    dictionary, (first, second) = pairs.sorted_codes(encoded, other)
    assert dictionary.to_pylist() == ["a", "b", "c", "d", "e", "f"]
    assert first.tolist() == [1, 0, 2, 2, 3, 4, 0] and second.tolist() == [3, 5, 0]


def test_lexsort_order_is_numpys_lexsort() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 2000))
        key = rng.integers(0, int(rng.integers(1, 10 ** int(rng.integers(1, 18)))), n)
        score = rng.choice([0.0, -0.0, 0.5, 1 / 3, -1.5, 1e-300], n) * rng.integers(1, 4, n)  # ties, -0.0 == 0.0
        count = rng.integers(-5, int(rng.integers(1, 2**40)), n)
        tie = rng.permutation(n)  # makes the order total
        columns = [key, -score, -count, tie]
        assert pairs.lexsort_order(columns).tolist() == np.lexsort(columns[::-1]).tolist()
    assert pairs.lexsort_order([np.zeros(0, np.int64)]).tolist() == []


@pytest.mark.parametrize("packed_in", [32, 63])
@pytest.mark.parametrize("primary", ["float", "int", "ties", "small_ints"])
def test_top_k_order_with_crowded_keys_equals_the_full_sort(
    primary: str, packed_in: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys with more than k rows take the pre-selection on packed levels; the result must equal sorting every row.
    if packed_in == 63:
        monkeypatch.setattr(pairs, "_NARROW_KEY_BITS", 0)
    rng = np.random.default_rng(1)
    n = 5000
    key = rng.integers(0, 40, n)
    first = {
        "float": -rng.random(n),
        "int": -rng.integers(0, 10**12, n),  # wider than the level: scaled
        "ties": -rng.choice([0.0, 1e-9, 2e-9, 0.25, 1 / 3], n),  # closer than one scaled level apart
        "small_ints": -rng.integers(0, 4, n),  # every column exact in the level (2 + 3 + 13 bits)
    }[primary]
    second, tie = rng.integers(0, 5, n), rng.permutation(n)
    for k in (1, 7, 50, 200):
        rows, rank = pairs.top_k_order(key, [first, second, tie], k)
        order = np.lexsort([tie, second, first, key])
        ranks = pairs.rank_in_segments(key[order])
        assert rows.tolist() == order[ranks <= k].tolist() and rank.tolist() == ranks[ranks <= k].tolist()


# Groups (sessions or users) of distinct items, sorted by group then item:
# g0 {0, 1, 2}, g1 {1, 2}, g2 {2}, g3 {0, 2}
GROUP = np.array([0, 0, 0, 1, 1, 2, 3, 3])
ITEM = np.array([0, 1, 2, 1, 2, 2, 0, 2])


def test_co_counts_counts_each_pair_once_per_group() -> None:
    assert _triples(*pairs.co_counts(GROUP, ITEM, 3, diagonal=False)) == [(0, 1, 1), (0, 2, 2), (1, 2, 2)]


def test_co_counts_drops_pairs_below_min_count() -> None:
    assert _triples(*pairs.co_counts(GROUP, ITEM, 3, diagonal=False, min_count=2)) == [(0, 2, 2), (1, 2, 2)]
    assert _triples(*pairs.co_counts(GROUP, ITEM, 3, diagonal=False, min_count=3)) == []


def test_co_counts_with_the_diagonal_counts_the_groups_of_each_item() -> None:
    assert _triples(*pairs.co_counts(GROUP, ITEM, 3, diagonal=True)) == [
        (0, 0, 2),
        (0, 1, 1),
        (0, 2, 2),
        (1, 1, 2),
        (1, 2, 2),
        (2, 2, 4),
    ]


@pytest.mark.parametrize("budget", [1, 2, 3, 7, 100])
@pytest.mark.parametrize("diagonal", [False, True])
def test_co_counts_does_not_depend_on_the_batch_size(
    budget: int, diagonal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    group, item = pairs.distinct_pairs(rng.integers(0, 40, 400), rng.integers(0, 25, 400), n_items=25)
    whole = _triples(*pairs.co_counts(group, item, 25, diagonal=diagonal))
    monkeypatch.setattr(pairs, "BATCH_PAIRS", budget)
    assert _triples(*pairs.co_counts(group, item, 25, diagonal=diagonal)) == whole
    # and against a brute force over the groups
    expected: dict[tuple[int, int], int] = {}
    for g in np.unique(group):
        members = item[group == g].tolist()
        for i, a in enumerate(members):
            for b in members[i if diagonal else i + 1 :]:
                expected[(a, b)] = expected.get((a, b), 0) + 1
    assert whole == [(a, b, c) for (a, b), c in sorted(expected.items())]


def test_co_counts_of_nothing_is_empty() -> None:
    empty = np.zeros(0, np.int64)
    assert _triples(*pairs.co_counts(empty, empty, 0, diagonal=True)) == []


@pytest.mark.parametrize("budget", [1, 3, 1000])
def test_ranked_neighbors_lists_both_directions_in_item_ranges(budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pairs, "BATCH_PAIRS", budget)
    items = pa.array(["a", "b", "c", "d"])
    # pairs a<b: (a,b) 3, (a,c) 1, (b,c) 2, (c,d) 2; score = count; rank by score desc, then neighbor
    table = pairs.ranked_neighbors(
        items,
        np.array([0, 0, 1, 2]),
        np.array([1, 2, 2, 3]),
        np.array([3, 1, 2, 2]),
        lambda item, neighbor, count: count.astype(np.float64),
        lambda score, count, neighbor: [-score, neighbor],
        k=2,
    )
    assert list(zip(*(table.column(name).to_pylist() for name in ("item_id", "neighbor_id", "rank")), strict=True)) == [
        ("a", "b", 1),
        ("a", "c", 2),
        ("b", "a", 1),
        ("b", "c", 2),
        ("c", "b", 1),
        ("c", "d", 2),
        ("d", "c", 1),
    ]


def test_order_levels_never_put_a_later_row_on_a_lower_level() -> None:
    # The pre-selection's soundness: levels are non-decreasing along the exact order and fit the bits given, for
    # integer columns exact, clipped or scaled, floats scaled, in any mix and room.
    for seed in range(300):
        rng = np.random.default_rng(seed)
        n = 2000
        columns = [
            -rng.integers(0, 10 ** int(rng.integers(1, 13)), n),  # -count: wide or narrow
            -rng.integers(0, int(rng.integers(1, 10**6)), n),
            rng.integers(0, 5, n),
            rng.random(n),
            rng.permutation(n),
        ][int(rng.integers(0, 3)) :]
        room = int(rng.integers(1, 60))
        level, bits = pairs._order_levels(columns, room)
        order = np.lexsort(columns[::-1])
        assert np.all(np.diff(level[order]) >= 0), seed
        assert bits <= room and int(level.max()) < 1 << max(bits, 1), seed
