"""What the quality gate needs at run time: metrics, the temporal split, and lists ranked from a manifest.

- `metrics`: ranking metrics for one user (precision, recall, NDCG, AP, hit rate, reciprocal rank @K) and over a
  dataset (catalog coverage, novelty), plus `evaluate_lists`, which averages them over the users of a split.
- `split`: the interactions of a window and each user's relevant items on a held-out day.
- `lists`: `ManifestRanker`, the ranking library over a manifest's artifacts (no HTTP, no API service).
- `gate`: the quality gate of the state machine.

The offline tooling (`recsys eval`, baselines, reports) lives in recsys_tools.evaluation, outside the Lambda layer.
"""
