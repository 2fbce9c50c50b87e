"""Offline evaluation building blocks for `recsys eval`: pure, numpy-only, no AWS.

- `metrics`: ranking metrics for one user (precision, recall, NDCG, AP, hit rate, reciprocal rank @K) and over a
  dataset (catalog coverage, novelty), plus `evaluate_lists`, which averages them over the users of a split.
- `baselines`: reference recommenders computed from a training interactions table, independently of the product's
  artifacts (popularity, item-kNN cosine).
- `report`: the `Report` model and `write_report`, which writes report.json, report.md and report.png.
"""
