"""Offline evaluation for `recsys eval`: temporal, session and holdout protocols, baselines, reports, the suite.

- `run`: the temporal split of a raw window, ours against the baselines (`recsys eval run`, `--tune`).
- `sessions` / `holdout`: next-item prediction on sessions and leave-last-out on user histories (real data).
- `baselines`, `session_baselines`, `ease`: reference recommenders, computed independently of our artifacts.
- `report`: the `Report` model and `write_report` (report.json, report.md, report.png).
- `suite`: every figure of docs/evaluation.md in one command (`make eval-real`).

The metrics, the split and the gate are runtime code (recsys.evaluation), because the quality gate runs in a Lambda.
"""
