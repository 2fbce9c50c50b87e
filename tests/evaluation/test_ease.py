"""EASE on hand-computed matrices: the Gram matrix, the SPD inverse, B, scoring, ties, recency rows, the cache.

The tiny matrix of test_baselines (users x items, binary):
        a  b  c  d
  u1    1  1  .  .
  u2    1  1  1  .
  u3    .  1  1  .
  u4    .  .  1  1
X^T X (co-users, the diagonal = users per item):
        a  b  c  d
  a     2  2  1  0
  b     2  3  2  0
  c     1  2  3  1
  d     0  0  1  1
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recsys_tools.evaluation import ease
from recsys_tools.evaluation.baselines import interactions

ROWS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "b"), ("u3", "c"), ("u4", "c")]
ROWS += [("u4", "d"), ("u1", "a")]  # (u1, a) twice: still binary


def _data(rows=ROWS):
    return interactions(pa.table({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows]}))


def test_gram_counts_co_users_once_per_user() -> None:
    expected = [[2, 2, 1, 0], [2, 3, 2, 0], [1, 2, 3, 1], [0, 0, 1, 1]]
    assert ease.gram(_data()).tolist() == expected


def test_gram_in_several_groups_of_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease, "_PAIRS", 5)  # u1 (4 pairs), u2 (9), u3 (4), u4 (4) fall into different groups
    assert ease.gram(_data()).tolist() == [[2, 2, 1, 0], [2, 3, 2, 0], [1, 2, 3, 1], [0, 0, 1, 1]]


def test_spd_inverse_of_a_2x2() -> None:
    # [[2, 1], [1, 2]]^-1 = 1/3 [[2, -1], [-1, 2]]
    inverse = ease.spd_inverse(np.array([[2.0, 1.0], [1.0, 2.0]]))
    np.testing.assert_allclose(inverse, np.array([[2, -1], [-1, 2]]) / 3, atol=1e-12)


def test_spd_inverse_by_blocks_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease, "_LEAF", 2)  # 7x7: Cholesky, triangular inverse and product all go by blocks
    rng = np.random.default_rng(0)
    a = rng.random((7, 7))
    matrix = a @ a.T + 7 * np.eye(7)
    original = matrix.copy()
    np.testing.assert_allclose(ease.spd_inverse(matrix), np.linalg.inv(original), atol=1e-12)
    np.testing.assert_array_equal(matrix, original)  # not overwritten by default


def test_ease_weights_by_hand() -> None:
    # u1: a, b; u2: a.  G = [[2, 1], [1, 1]], lambda 1: G + I = [[3, 1], [1, 2]], P = 1/5 [[2, -1], [-1, 3]]
    # B[a, b] = -P[a, b] / P[b, b] = (1/5) / (3/5) = 1/3; B[b, a] = -P[b, a] / P[a, a] = (1/5) / (2/5) = 1/2
    weights = ease.ease_weights(_data([("u1", "a"), ("u1", "b"), ("u2", "a")]), 1.0)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [[0, 1 / 3], [1 / 2, 0]], atol=1e-6)


def test_ease_refuses_a_catalog_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease, "MAX_ITEMS", 3)
    with pytest.raises(ValueError, match="more than 3 items is refused"):
        ease.ease_weights(_data(), 10.0)
    with pytest.raises(ValueError, match="lambda must be > 0"):
        ease.ease_weights(_data(), 0.0)


def test_top_k_scores_excludes_seen_and_breaks_ties_by_index() -> None:
    weights = np.array(
        [
            [0, 1, 2, 2],
            [1, 0, 0, 5],
            [0, 0, 0, 0],
            [3, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    # rows: user 0 has item 0 -> scores (., 1, 2, 2): 2 and 3 tie at 2 -> [2, 3, 1]
    #       user 1 has items 0 (weight 1) and 1 (weight 0.5) -> (., ., 2, 2 + 2.5 = 4.5) -> [3, 2]
    #       user 2 has nothing -> all 0: ties by index
    indptr = np.array([0, 1, 3, 3])
    indices = np.array([0, 0, 1])
    values = np.array([1.0, 1.0, 0.5], dtype=np.float32)
    assert ease.top_k(weights, indptr, indices, values, k=3) == [[2, 3, 1], [3, 2], [0, 1, 2]]
    assert ease.top_k(weights, indptr, indices, values, k=1, chunk=2) == [[2], [3], [0]]
    # without exclude_seen, user 1's own items compete: 1 -> 1 * 1 + 0.5 * 0 = 1, 0 -> 0 + 0.5 = 0.5
    assert ease.top_k(weights, indptr, indices, values, k=4, exclude_seen=False)[1] == [3, 2, 1, 0]


def test_binary_rows_are_the_users_items() -> None:
    data = _data()  # users u1..u4, items a..d
    indptr, indices, values = ease.binary_rows(data, np.array([1, -1, 3]))  # u2, a cold user, u4
    assert indptr.tolist() == [0, 3, 3, 5]
    assert indices.tolist() == [0, 1, 2, 2, 3]
    assert values.tolist() == [1, 1, 1, 1, 1]


def test_recency_rows_weigh_by_rank_from_the_latest() -> None:
    # history (oldest first) 2, 0, 2, 1: latest 1 -> 1; 2 -> 0.5 (its latest use, rank 1); 0 -> 0.25
    indptr, indices, values = ease.recency_rows([[2, 0, 2, 1], []], 0.5)
    assert indptr.tolist() == [0, 3, 3]
    assert indices.tolist() == [0, 1, 2]
    assert values.tolist() == [0.25, 1.0, 0.5]
    with pytest.raises(ValueError, match="decay"):
        ease.recency_rows([[1]], 0.0)


def test_recency_changes_the_ranking() -> None:
    # item 0 points to 2, item 1 points to 3 (stronger). The latest item is 0: with decay 0.1 its neighbour wins.
    weights = np.zeros((4, 4), dtype=np.float32)
    weights[0, 2], weights[1, 3] = 1.0, 2.0
    binary = ease.recency_rows([[0, 1, 0]], 1.0)
    recent = ease.recency_rows([[1, 0]], 0.1)
    assert ease.top_k(weights, *binary, k=1) == [[3]]
    assert ease.top_k(weights, *recent, k=1) == [[2]]


def test_the_cache_computes_once_per_data_and_lambda(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    first = ease.ease_weights_cached(data, 10.0, tmp_path)
    monkeypatch.setattr(ease, "ease_weights", lambda *_: pytest.fail("recomputed despite the cache"))
    again = ease.ease_weights_cached(data, 10.0, tmp_path)
    np.testing.assert_array_equal(np.asarray(again), first)
    assert len(list(tmp_path.glob("ease-*-10.npy"))) == 1
    with pytest.raises(pytest.fail.Exception):
        ease.ease_weights_cached(data, 20.0, tmp_path)  # another lambda is another entry
    with pytest.raises(pytest.fail.Exception):
        ease.ease_weights_cached(_data(ROWS[:-2]), 10.0, tmp_path)  # other data too
