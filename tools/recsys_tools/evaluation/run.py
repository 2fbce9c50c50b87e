"""`recsys eval`: a temporal split of raw events, the real pipeline on the train days, the real ranking for every
test user, and the same metrics for reference baselines computed independently of the product's artifacts.

Split: the last `test_days` days are the test window; the `train_days` days before them are the train window.
Relevant items of a test user = the distinct items they interacted with in the test window that they had not
interacted with in the train window (the product excludes seen items, so re-consumption is not counted).
Cold users have no train history; warm users have some.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from recsys.contract.report import Report
from recsys.days import Window, day_start
from recsys.evaluation.lists import ManifestRanker
from recsys.evaluation.metrics import (
    aggregate_diversity,
    compare,
    evaluate_lists,
    intra_list_diversity,
    ndcg_at_k,
    seen_share,
)
from recsys.evaluation.split import WindowInteractions, interactions, relevant_items
from recsys.ingest.sources import day_in_path
from recsys.pipeline import steps
from recsys.pipeline.models import ComputeRequest, IngestRequest
from recsys.publish.service import publish
from recsys.serve.tenant_config import EffectiveConfig
from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import Settings, fill_scope
from recsys.store import ObjectStore, open_store
from recsys_tools.evaluation.baselines import interactions as baseline_index
from recsys_tools.evaluation.baselines import item_knn_baseline, item_probabilities, popularity_baseline

OURS = "recsys (blend)"
TUNED_SIGNALS = ("pop", "cooc", "session", "content", "knn")
TUNED_WEIGHT_VALUES = (0.0, 0.01, 0.05, 0.125, 0.25, 0.5, 1.0, 2.0)
TUNED_DECAYS = {"history_decay": (0.6, 0.7, 0.8, 0.9, 1.0), "anchor_decay": (0.25, 0.5, 0.75, 1.0)}
TUNE_METRIC = "ndcg@10"
DEFAULTS = EffectiveConfig().model_dump()


class Split(BaseModel):
    train: Window
    test: Window


class EvalOptions(BaseModel):
    tenant: str = "demo"
    surface: str = "home"
    raw: str
    catalog: str | None = None
    store: str
    train_days: int | None = Field(None, description="default: every day before the test window")
    test_days: int = 1
    end: dt.date | None = Field(None, description="last test day; default the last day found in the raw data")
    ks: tuple[int, ...] = (5, 10, 20)
    config: dict | None = Field(None, description="a tenant config to evaluate with (and to start --tune from)")
    tune: bool = False
    tune_trials: int = Field(8, ge=0, description="random blend-weight settings --tune tries after the decays")
    tune_days: int = Field(2, ge=1, description="--tune validates on the last tune_days train days")
    tune_min_users: int = Field(30, ge=1, description="--tune refuses a validation window with fewer users")
    seed: int = 7


def raw_days(raw: str) -> list[dt.date]:
    """The days the raw location's dated folders name (dt=YYYY-MM-DD/ or YYYY/MM/DD/)."""
    store = open_store(raw)
    return sorted({day for key in store.list("") if (day := day_in_path(key)) is not None})


def make_split(options: EvalOptions) -> Split:
    days = raw_days(options.raw)
    end = options.end or (days[-1] if days else None)
    if end is None:
        raise ValueError("no dated raw folders found: pass --end (and lay raw files out as dt=YYYY-MM-DD/)")
    test = Window(start=end - dt.timedelta(days=options.test_days - 1), end=end)
    train_end = test.start - dt.timedelta(days=1)
    first = days[0] if days else train_end
    train_start = train_end - dt.timedelta(days=options.train_days - 1) if options.train_days else first
    if train_start > train_end:
        raise ValueError(f"no train days before the test window {test}")
    return Split(train=Window(start=train_start, end=train_end), test=test)


def build(options: EvalOptions, settings: Settings, split: Split) -> ObjectStore:
    """Ingest every day of the split and publish the train window's artifacts: the real pipeline code."""
    store = open_store(options.store)
    settings = settings.model_copy(update={"store": store.uri})
    for day in Window(start=split.train.start, end=split.test.end).days:
        steps.ingest(IngestRequest(tenant=options.tenant, surface=options.surface, day=day, raw=options.raw), settings)
    kinds = [k for k in settings.kinds if options.catalog or k != "content_sim"]
    refs = [
        steps.compute(
            ComputeRequest(
                tenant=options.tenant,
                surface=options.surface,
                start=split.train.start,
                end=split.train.end,
                kind=kind,
                catalog=fill_scope(options.catalog, options.tenant, options.surface),
            ),
            settings,
        ).artifact
        for kind in kinds
    ]
    publish(store, options.tenant, options.surface, split.train, refs, promote=True, run_id="eval")
    return store


def recommend_all(
    store: ObjectStore,
    options: EvalOptions,
    users: list[str],
    now: dt.datetime,
    weights: dict[str, float] | None = None,
) -> dict[str, list[str]]:
    """Top-max(K) for every user over the current manifest, ranked as POST /v1/recommend ranks them."""
    ranker = ManifestRanker.open(store, options.tenant, options.surface)
    k = max(options.ks)
    return {user: ranker.top(user, k, now, weights=weights) for user in users}


def add_diversity(
    results: dict[str, dict[str, dict[str, float]]],
    lists: dict[str, dict[str, list[str]]],
    relevant: dict[str, set[str]],
    k: int,
    tags: Callable[[str], tuple[str, ...]] | None,
) -> list[str]:
    """Add `diversity@K` (the seed's normalised entropy of the items' slots) and, with catalog tags, `ild@K`
    (intra-list diversity: 1 - tag Jaccard, averaged over the pairs of each list) to each recommender's overall
    results; returns the note that reports them."""
    users = [user for user, items in relevant.items() if items]
    parts = []
    for name, recs in lists.items():
        evaluated = [recs.get(user, []) for user in users]
        overall = results[name]["overall"]
        overall[f"diversity@{k}"] = aggregate_diversity(evaluated, k)
        text = f"{name} diversity@{k} {overall[f'diversity@{k}']:.4f}"
        if tags is not None:
            overall[f"ild@{k}"] = intra_list_diversity(evaluated, tags, k)
            text += f", ild@{k} {overall[f'ild@{k}']:.4f}"
        parts.append(text)
    what = "normalised entropy of the items' top-K slots" + ("; ild = intra-list tag diversity" if tags else "")
    return [f"diversity, overall users ({what}): " + "; ".join(parts)]


def _item_popularity(train: WindowInteractions) -> dict[str, float]:
    users = max(len(set(train.table["user_id"].to_pylist())), 1)
    counts = train.table.group_by("item_id", use_threads=False).aggregate([([], "count_all")])
    return {
        item: n / users for item, n in zip(counts["item_id"].to_pylist(), counts["count_all"].to_pylist(), strict=True)
    }


def score(
    lists: dict[str, dict[str, list[str]]],
    relevant: dict[str, set[str]],
    train: WindowInteractions,
    ks: tuple[int, ...],
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per recommender, overall and for cold / warm users."""
    seen = train.by_user()
    catalog = len(set(train.table["item_id"].to_pylist()))
    popularity = item_probabilities(train.table)
    segments = {
        "overall": relevant,
        "cold": {u: r for u, r in relevant.items() if u not in seen},
        "warm": {u: r for u, r in relevant.items() if u in seen},
    }
    return {
        name: {
            segment: evaluate_lists(
                {u: recs[u] for u in users}, users, ks=ks, catalog_size=catalog, item_popularity=popularity
            )
            for segment, users in segments.items()
        }
        for name, recs in lists.items()
    }


@dataclass
class TuneStep:
    """One step of --tune: the settings tried against the current ones, and whether the best one was taken."""

    knob: str
    best: dict
    difference: float
    standard_error: float
    taken: bool

    def describe(self) -> str:
        verdict = "taken" if self.taken else "not taken"
        return (
            f"{self.knob}: best {self.best or 'none'} {self.difference:+.4f} on the confirming half "
            f"(one standard error {self.standard_error:.4f}): {verdict}"
        )


@dataclass
class TuneResult:
    """What --tune chose: `settings` ({} = the defaults), the validation scores and the steps that led there."""

    settings: dict
    default_score: float
    score: float
    users: int
    steps: list[TuneStep]

    @property
    def kept_defaults(self) -> bool:
        return not any(step.taken for step in self.steps)

    def note(self, window: Window) -> str:
        head = f"validation {TUNE_METRIC} on {window.start}..{window.end}, {self.users} users"
        steps = "; ".join(step.describe() for step in self.steps)
        if self.kept_defaults:
            return f"tuned settings: kept {self.settings or 'the defaults'} ({head}: {self.default_score:.4f}; {steps})"
        return (
            f"tuned settings {self.settings} ({head}: {self.score:.4f} vs defaults {self.default_score:.4f}; {steps})"
        )


def choose(default: list[float], candidates: list[tuple[dict, list[float]]]) -> tuple[dict, int, float, float]:
    """Pick on one half of the validation users, confirm on the other: the candidate with the best mean on the
    even-numbered users is taken only if, on the odd-numbered users (which played no part in picking it), it beats
    the defaults by more than one standard error of the paired per-user difference; else {} (keep the defaults).
    Returns (chosen, best index, difference, SE), the last two measured on the confirming half.

    Confirming on users the pick never saw keeps the best of many noisy candidates from looking better than it is.
    `default` and each candidate's scores are per validation user, in the same user order.
    """
    if not candidates:
        return {}, -1, 0.0, 0.0
    base = np.asarray(default, dtype=np.float64)
    means = [float(np.mean(np.asarray(scores)[0::2])) if len(scores) else 0.0 for _, scores in candidates]
    best = int(np.argmax(means))  # the first of equal means: candidates come in a fixed order
    picked = np.asarray(candidates[best][1], dtype=np.float64)
    if not len(base) or means[best] <= float(np.mean(base[0::2])):
        return {}, best, 0.0, 0.0
    diffs = (picked - base)[1::2]
    difference = float(diffs.mean()) if len(diffs) else 0.0
    error = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("inf")
    return (candidates[best][0] if difference > error else {}), best, difference, error


def tune_candidates(trials: int, seed: int) -> list[dict]:
    """`trials` random blend-weight settings (never all zero), the same for the same seed."""
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < trials:
        weights = {name: rng.choice(TUNED_WEIGHT_VALUES) for name in TUNED_SIGNALS}
        if any(weights.values()):
            out.append({"weights": weights})
    return out


def _per_user(lists: dict[str, list[str]], relevant: dict[str, set[str]], users: list[str]) -> list[float]:
    k = int(TUNE_METRIC.partition("@")[2])
    return [ndcg_at_k(lists.get(user, []), relevant[user], k) for user in users]


def validation_split(split: Split, tune_days: int) -> Split:
    """The last `tune_days` train days held out, the days before them as train (deployment-shaped: several days
    of new users and items, not one day's handful)."""
    test = Window(start=split.train.end - dt.timedelta(days=tune_days - 1), end=split.train.end)
    train_end = test.start - dt.timedelta(days=1)
    if train_end < split.train.start:
        raise ValueError(f"--tune needs more than {tune_days} train days (the last {tune_days} are held out)")
    return Split(train=Window(start=split.train.start, end=train_end), test=test)


def tune_settings(options: EvalOptions, settings: Settings, split: Split) -> tuple[TuneResult, Split]:
    """Tenant settings (blend weights, history_decay, anchor_decay) chosen on a validation window held out from
    the end of the train window: the defaults unless a setting beats them by more than one standard error."""
    validation = validation_split(split, options.tune_days)
    tuning = options.model_copy(update={"store": options.store.rstrip("/") + "-tuning"})
    store = build(tuning, settings, validation)
    train = interactions(store, options.tenant, options.surface, validation.train)
    relevant = relevant_items(train, interactions(store, options.tenant, options.surface, validation.test))
    users = sorted(relevant)
    if len(users) < options.tune_min_users:
        raise ValueError(
            f"--tune: the validation window {validation.test.start}..{validation.test.end} has {len(users)} users "
            f"with new items, fewer than the minimum {options.tune_min_users}; hold out more days (--tune-days) or "
            "evaluate on more data"
        )
    documents = TenantDocuments(store)
    now = day_start(validation.test.start)

    def scores(config: dict) -> list[float]:
        stored = documents.get(options.tenant, "config")
        version = stored.version if stored else None
        documents.put(options.tenant, "config", config, if_match=version, actor="recsys eval --tune")  # {}: defaults
        return _per_user(recommend_all(store, options, users, now), relevant, users)

    current: dict = dict(options.config or {})
    current_scores = default = scores(current)
    steps: list[TuneStep] = []
    # Greedy, one knob at a time, each step taken only when it beats the current settings by more than one
    # standard error: first the decays (where datasets disagree most), then random blend weights.
    groups = [
        (name, [{name: value} for value in values if value != DEFAULTS[name]]) for name, values in TUNED_DECAYS.items()
    ]
    groups.append(("weights", tune_candidates(options.tune_trials, options.seed)))
    for knob, changes in groups:
        if not changes:
            continue
        tried = [({**current, **change}, scores({**current, **change})) for change in changes]
        chosen, best, difference, error = choose(current_scores, tried)
        steps.append(TuneStep(knob, tried[best][0], difference, error, taken=bool(chosen)))
        if chosen:
            current, current_scores = chosen, tried[best][1]
    result = TuneResult(
        settings=current,
        default_score=float(np.mean(default)),
        score=float(np.mean(current_scores)),
        users=len(users),
        steps=steps,
    )
    return result, validation


def run_eval(options: EvalOptions, settings: Settings) -> Report:
    split = make_split(options)
    notes = []
    chosen: dict = dict(options.config or {})
    if options.tune:
        result, validation = tune_settings(options, settings, split)
        chosen = result.settings
        notes.append(result.note(validation.test))
    elif options.config:
        notes.append(f"tenant config {options.config}")
    store = build(options, settings, split)
    if chosen:
        documents = TenantDocuments(store)
        current = documents.get(options.tenant, "config")
        config = dict(current.data) if current else {}
        config.update({key: value for key, value in chosen.items() if key != "weights"})
        if "weights" in chosen:
            config["weights"] = {**config.get("weights", {}), **chosen["weights"]}
        actor = "recsys eval --tune" if options.tune else "recsys eval --config"
        documents.put(options.tenant, "config", config, if_match=current.version if current else None, actor=actor)
        notes.append(f"wrote {chosen} to the tenant config of {options.tenant} in {store.uri}")
    train = interactions(store, options.tenant, options.surface, split.train)
    test = interactions(store, options.tenant, options.surface, split.test)
    relevant = relevant_items(train, test)
    users = sorted(relevant)
    k = max(options.ks)
    metric = f"ndcg@{10 if 10 in options.ks else k}"  # the metric ours is compared with each baseline on
    indexed = baseline_index(train.table)  # index the train interactions once for both baselines
    lists = {
        OURS: recommend_all(store, options, users, day_start(split.test.start)),
        "popularity": popularity_baseline(indexed, users, k),
        "item-kNN": item_knn_baseline(indexed, users, k),
    }
    seen = train.by_user()
    results = score(lists, relevant, train, options.ks)
    beyond = 10 if 10 in options.ks else k
    tags = ManifestRanker.open(store, options.tenant, options.surface).signals.tags if options.catalog else None
    notes += add_diversity(results, lists, relevant, beyond, tags)
    notes.append(
        "share of recommended slots holding an item the user had already seen in the train window: "
        + ", ".join(f"{name} {seen_share(recommended, seen):.4f}" for name, recommended in lists.items())
    )
    return Report(
        dataset={
            "raw": options.raw,
            "catalog": options.catalog,
            "tenant": options.tenant,
            "surface": options.surface,
            "train_users": len(train.by_user()),
            "test_users": len(users),
            "train_interactions": train.table.num_rows,
        },
        split={
            "train": [str(split.train.start), str(split.train.end)],
            "test": [str(split.test.start), str(split.test.end)],
        },
        ks=list(options.ks),
        results=results,
        comparisons=[
            {"first": OURS, "second": name, **compare(lists[OURS], lists[name], relevant, metric)}
            for name in lists
            if name != OURS
        ],
        notes=notes,
    )


def write(report: Report, out_dir: Path) -> list[Path]:
    from recsys_tools.evaluation.report import write_report

    return write_report(report, out_dir)
