"""Ranking: candidates, scores, filters and rules, and selection over the signals a manifest serves.

Pure: no I/O (every lookup goes through `SignalArrays`), no clock, no randomness but exploration's seeded draws, no
HTTP types; it imports nothing from `recsys.serve`.
The API maps its wire models to `RecommendQuery` / `SimilarQuery` and `Ranking` back.

  types       the queries, Knobs, TagConstraints, Detail, Scope; Ranking, RankedItem, RankingWarning; signal names
  signals     SignalArrays (what ranking reads: the reader's ArtifactArrays), History, Scored, Interaction
  candidates  who the request is for and the lookups that propose items, numbered together
  scoring     each signal as an array over the candidates, and the weighted blend
  filters     tags, the required-tags filter, the constraint warnings
  rules       merchandising rule evaluation (blocks, pins, boosts)
  selection   the final order and the walk to k
  diversity   MMR re-ranking and per-tag caps over the top of the order (off by default)
  exploration epsilon-greedy slots with their propensities (off by default)
  output      ranked items with reasons and explain; SIGNAL_UNAVAILABLE warnings
  recommend   rank(query, arrays, rules)
  similar     similar(query, arrays)
"""

from recsys.ranking.recommend import rank
from recsys.ranking.similar import similar

__all__ = ["rank", "similar"]
