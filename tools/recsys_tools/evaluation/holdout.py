"""The user top-N protocol (per-user leave-last-out) on a `user_id item_id` sequences file, through the product's
real pipeline and ranking, against popularity, item-kNN, EASE and recency-weighted EASE.

Data. The sequences file (optionally gzipped) has one interaction per line, `user item` (e.g. the SASRec
preprocessing of Amazon reviews, /work/shared/data/real/README.md), each user's lines in time order. Ids become
"u<user>" and "i<item>".

Splits (`split_sequences`), for the users with at least MIN_INTERACTIONS (3) interactions:
- validation: train = all but the last two interactions, target = the second to last;
- test: train = all but the last, target = the last.
Users with fewer interactions put all of them in train and are not evaluated. Relevant = {target}. A target that
is also among the user's train items stays relevant: with exclude-seen it is simply a miss, and the report says
how many such users there are.

Timestamps. The file has none, only each user's order. `write_events` puts every interaction on ONE UTC day
(DAY, 2020-01-01), the user's k-th interaction (k = 0, 1, ...) at 00:00:00 + k seconds: each user's order is kept
(recent items, session_seq transitions), all users share the same clock (users are not ordered against each other,
which the data cannot tell anyway), and no day-based decay or window (popularity and implicit half-lives) weighs
one interaction against another. session_id = user_id, so the session kinds (cooc, session_seq) learn from each
user's whole sequence. Every event is a "purchase" (the data are reviews of bought games).

Ours = `run.build` on the train events (ingest, every kind but content_sim: there is no catalog, publish), then
one ranking per evaluated user over the served manifest (`lists.ManifestRanker`, the ranking the API calls), as
`run.recommend_all` does (k = max(ks), the request time is the end of DAY).

Baselines use the same train interactions: popularity and item-kNN (`baselines`; its shrink chosen on the
validation split), EASE and recency-weighted EASE (`ease`). EASE's lambda and the recency decay are chosen on the
validation split only (`tune_ease`, NDCG@10), whichever split is reported; B is cached under work_dir/ease/ and
the choice in work_dir/ease/choice-*.json, so a second run only scores.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from recsys.contract.report import Report
from recsys.days import Window, day_start
from recsys.evaluation.metrics import compare, evaluate_lists, seen_share
from recsys.settings import Settings
from recsys_tools.evaluation import ease
from recsys_tools.evaluation.baselines import Interactions, item_knn_baseline, item_probabilities, popularity_baseline
from recsys_tools.evaluation.baselines import interactions as index_interactions
from recsys_tools.evaluation.run import OURS, EvalOptions, Split, build, recommend_all

DAY = dt.date(2020, 1, 1)
MIN_INTERACTIONS = 3
SPLITS = ("validation", "test")
TUNING_METRIC = "ndcg@10"
EASE = "EASE"
RECENCY_EASE = "EASE (recency-weighted)"


class HoldoutOptions(BaseModel):
    sequences: str = Field(description="the `user item` sequences file (.txt or .txt.gz), each user's lines in order")
    work_dir: str = Field(description="raw events, stores and the EASE cache are written here")
    split: Literal["validation", "test"] = "test"
    tenant: str = "demo"
    surface: str = "home"
    ks: tuple[int, ...] = (10, 20)
    weights: dict[str, float] | None = Field(None, description="blend weight overrides for ours, as in a request")
    ease: bool = Field(True, description="include EASE and recency-weighted EASE (minutes per lambda on 20k+ items)")
    ease_lambdas: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0, 1000.0)
    recency_decays: tuple[float, ...] = (0.7, 0.8, 0.9, 1.0)
    knn_shrinks: tuple[float, ...] = Field(
        (0.0, 10.0, 50.0), description="item-kNN's shrink grid, chosen on the validation split (0 = the reference)"
    )


@dataclass(frozen=True)
class Holdout:
    """One split: every user's train items in time order, and the held-out target of each evaluated user."""

    split: str
    train: dict[str, list[str]]
    targets: dict[str, str]

    def users(self) -> list[str]:
        """The evaluated users, sorted."""
        return sorted(self.targets)

    def relevant(self) -> dict[str, set[str]]:
        return {user: {self.targets[user]} for user in self.users()}

    def table(self) -> pa.Table:
        """The train interactions as (user_id, item_id) rows: the baselines' input."""
        users = [user for user, items in self.train.items() for _ in items]
        items = [item for history in self.train.values() for item in history]
        return pa.table({"user_id": pa.array(users, pa.string()), "item_id": pa.array(items, pa.string())})


def read_sequences(path: Path | str) -> dict[str, list[str]]:
    """{"u<user>": ["i<item>", ...]} in file order (a user's lines need not be contiguous; their order is kept)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    sequences: dict[str, list[str]] = {}
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{path}:{number}: expected `user_id item_id`, got {line.strip()!r}")
            sequences.setdefault(f"u{parts[0]}", []).append(f"i{parts[1]}")
    return sequences


def split_sequences(sequences: Mapping[str, Sequence[str]], split: str) -> Holdout:
    """The validation or test split of the module docstring."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    held = 2 if split == "validation" else 1
    train: dict[str, list[str]] = {}
    targets: dict[str, str] = {}
    for user, items in sequences.items():
        if len(items) >= MIN_INTERACTIONS:
            train[user] = list(items[:-held])
            targets[user] = items[-held]
        else:
            train[user] = list(items)
    return Holdout(split=split, train=train, targets=targets)


def event_lines(train: Mapping[str, Sequence[str]], tenant: str, surface: str, day: dt.date = DAY) -> Iterator[str]:
    """One raw event (JSON, no newline) per train interaction: the k-th of a user at day 00:00:00 + k seconds."""
    start = day_start(day)
    for user, items in train.items():
        if len(items) > 86_400:
            raise ValueError(f"user {user} has {len(items)} interactions: more than the seconds of one day")
        for k, item in enumerate(items):
            ts = (start + dt.timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            yield json.dumps(
                {
                    "v": 1,
                    "ts": ts,
                    "tenant": tenant,
                    "surface": surface,
                    "user_id": user,
                    "session_id": user,
                    "item_id": item,
                    "event_type": "purchase",
                },
                separators=(",", ":"),
            )


def write_events(holdout: Holdout, raw_dir: Path | str, tenant: str, surface: str, day: dt.date = DAY) -> Path:
    """Write the split's train events to raw_dir/dt=DAY/events.jsonl (replaced); returns the file."""
    path = Path(raw_dir) / f"dt={day.isoformat()}" / "events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".jsonl.tmp")  # not *.jsonl: never read by an ingest running meanwhile
    with partial.open("w", encoding="utf-8") as handle:
        for line in event_lines(holdout.train, tenant, surface, day):
            handle.write(line + "\n")
    partial.replace(path)
    return path


def prepare_holdout(
    sequences_path: Path | str, work_dir: Path | str, tenant: str = "demo", surface: str = "home"
) -> dict[str, Holdout]:
    """Read the sequences, split them both ways and write each split's raw events to work_dir/raw/{split}/."""
    sequences = read_sequences(sequences_path)
    splits = {}
    for split in SPLITS:
        splits[split] = split_sequences(sequences, split)
        write_events(splits[split], Path(work_dir) / "raw" / split, tenant, surface)
    return splits


# --- ours ---------------------------------------------------------------------------------------------------------


def _eval_options(options: HoldoutOptions, split: str) -> EvalOptions:
    work = Path(options.work_dir).resolve()
    return EvalOptions(
        tenant=options.tenant,
        surface=options.surface,
        raw=str(work / "raw" / split),
        store=f"file://{work / 'store' / split}",
        ks=options.ks,
    )


def recommend_ours(
    options: HoldoutOptions, settings: Settings, holdout: Holdout
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Build the store from work_dir/raw/{split} with the real pipeline, then top-max(ks) for every evaluated
    user, ranked as the API ranks them. Returns the lists and the seconds each part took (build, recommend)."""
    eval_options = _eval_options(options, holdout.split)
    started = time.perf_counter()
    store = build(eval_options, settings, Split(train=Window(start=DAY, end=DAY), test=Window(start=DAY, end=DAY)))
    built = time.perf_counter()
    now = day_start(DAY + dt.timedelta(days=1))
    lists = recommend_all(store, eval_options, holdout.users(), now, options.weights)
    return lists, {"build": built - started, "recommend": time.perf_counter() - built}


# --- EASE -----------------------------------------------------------------------------------------------------------


def _item_positions(data: Interactions, holdout: Holdout, users: Sequence[str]) -> list[list[int]]:
    """Each user's train items as item indices of `data`, in time order."""
    return [np.searchsorted(data.items, np.asarray(holdout.train.get(u, []), dtype=str)).tolist() for u in users]


def ease_lists(
    data: Interactions,
    weights: np.ndarray,
    holdout: Holdout,
    users: Sequence[str],
    k: int,
    decay: float = 1.0,
) -> dict[str, list[str]]:
    """EASE top-k for `users` (exclude seen), the rows binary (decay 1) or recency-weighted (decay < 1)."""
    if decay == 1.0:
        csr = ease.binary_rows(data, data.user_index(users))
    else:
        csr = ease.recency_rows(_item_positions(data, holdout, users), decay)
    picked = ease.top_k(weights, *csr, k)
    return {user: data.items[chosen].tolist() for user, chosen in zip(users, picked, strict=True)}


@dataclass(frozen=True)
class EaseChoice:
    lam: float
    decay: float
    by_lambda: dict[str, float]  # validation NDCG@10 per lambda (binary rows)
    by_decay: dict[str, float]  # validation NDCG@10 per decay, with the chosen lambda


def tune_item_knn(options: HoldoutOptions, validation: Holdout) -> tuple[float, dict[str, float]]:
    """item-kNN's shrink maximizing NDCG@10 on the validation split (the first of equal values in grid order), and
    the score of each; the baseline gets the same care as our own settings."""
    data = index_interactions(validation.table())
    users, relevant = validation.users(), validation.relevant()
    by_shrink = {
        f"{shrink:g}": evaluate_lists(item_knn_baseline(data, users, 10, shrink=shrink), relevant, ks=(10,))[
            TUNING_METRIC
        ]
        for shrink in options.knn_shrinks
    }
    return float(max(by_shrink, key=lambda name: by_shrink[name])), by_shrink


def _ease_dir(options: HoldoutOptions) -> Path:
    return Path(options.work_dir) / "ease"


def tune_ease(options: HoldoutOptions, validation: Holdout) -> EaseChoice:
    """lambda, then the recency decay (with that lambda's B), maximizing NDCG@10 on the validation split; the
    first of equal values in grid order wins. The choice is cached by data and grid."""
    data = index_interactions(validation.table())
    grid = json.dumps([list(options.ease_lambdas), list(options.recency_decays)])
    key = f"{ease.data_key(data)}-{hashlib.sha256(grid.encode()).hexdigest()[:12]}"
    cached = _ease_dir(options) / f"choice-{key}.json"
    if cached.exists():
        return EaseChoice(**json.loads(cached.read_text()))
    users, relevant = validation.users(), validation.relevant()
    by_lambda: dict[str, float] = {}
    for lam in options.ease_lambdas:
        weights = ease.ease_weights_cached(data, lam, _ease_dir(options))
        lists = ease_lists(data, weights, validation, users, 10)
        by_lambda[f"{lam:g}"] = evaluate_lists(lists, relevant, ks=(10,))[TUNING_METRIC]
        del weights
    lam = float(max(by_lambda, key=lambda name: by_lambda[name]))  # max keeps the first of equal values
    weights = ease.ease_weights_cached(data, lam, _ease_dir(options))
    by_decay = {
        f"{decay:g}": evaluate_lists(ease_lists(data, weights, validation, users, 10, decay), relevant, ks=(10,))[
            TUNING_METRIC
        ]
        for decay in options.recency_decays
    }
    decay = float(max(by_decay, key=lambda name: by_decay[name]))
    choice = EaseChoice(lam=lam, decay=decay, by_lambda=by_lambda, by_decay=by_decay)
    cached.write_text(json.dumps(choice.__dict__, sort_keys=True))
    return choice


# --- the protocol ---------------------------------------------------------------------------------------------------


def targets_in_train(holdout: Holdout) -> int:
    """Evaluated users whose target is among their own train items (a re-purchase: a miss with exclude-seen)."""
    return sum(holdout.targets[user] in set(holdout.train[user]) for user in holdout.targets)


def run_holdout(options: HoldoutOptions, settings: Settings) -> Report:
    """The protocol of the module docstring on options.split; results under the segment "overall"."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    splits = prepare_holdout(options.sequences, options.work_dir, options.tenant, options.surface)
    holdout = splits[options.split]
    seconds["prepare"] = time.perf_counter() - started
    users, relevant = holdout.users(), holdout.relevant()
    k = max(options.ks)
    ours, timed = recommend_ours(options, settings, holdout)
    seconds.update(timed)
    lists = {OURS: ours}
    notes = []

    started = time.perf_counter()
    table = holdout.table()
    data = index_interactions(table)
    lists["popularity"] = popularity_baseline(data, users, k)
    seconds["popularity"] = time.perf_counter() - started
    started = time.perf_counter()
    shrink, by_shrink = tune_item_knn(options, splits["validation"])
    lists["item-kNN"] = item_knn_baseline(data, users, k, shrink=shrink)
    seconds["item-kNN"] = time.perf_counter() - started
    notes.append(f"item-kNN shrink {shrink:g}, chosen on the validation split by NDCG@10 (per shrink {by_shrink})")
    if options.ease:
        started = time.perf_counter()
        choice = tune_ease(options, splits["validation"])
        seconds["EASE tuning (validation)"] = time.perf_counter() - started
        started = time.perf_counter()
        weights = ease.ease_weights_cached(data, choice.lam, _ease_dir(options))
        lists[EASE] = ease_lists(data, weights, holdout, users, k)
        lists[RECENCY_EASE] = ease_lists(data, weights, holdout, users, k, choice.decay)
        del weights
        seconds["EASE"] = time.perf_counter() - started
        notes.append(
            f"EASE lambda {choice.lam:g} and recency decay {choice.decay:g}, chosen on the validation split by "
            f"NDCG@10 (per lambda {choice.by_lambda}; per decay with that lambda {choice.by_decay})"
        )

    catalog = data.n_items
    popularity = item_probabilities(data)
    results = {}
    shares = {}
    for name, recommended in lists.items():
        metrics = evaluate_lists(recommended, relevant, ks=options.ks, catalog_size=catalog, item_popularity=popularity)
        shares[name] = seen_share(recommended, holdout.train)
        results[name] = {"overall": {**metrics, "seen_share": shares[name]}}
    metric = f"ndcg@{10 if 10 in options.ks else k}"
    comparisons = [
        {"first": OURS, "second": name, **compare(lists[OURS], lists[name], relevant, metric)}
        for name in lists
        if name != OURS
    ]
    repeated = targets_in_train(holdout)
    notes.append(
        f"{repeated} of {len(users)} evaluated users have their target among their own train items "
        "(a miss for every recommender here, all exclude seen items)"
    )
    notes.append(
        "share of recommended slots holding an item the user already has in train: "
        + ", ".join(f"{name} {share:.4f}" for name, share in shares.items())
    )
    notes.append("wall time (s): " + ", ".join(f"{part} {value:.1f}" for part, value in seconds.items()))
    return Report(
        title=f"User top-N holdout ({options.split})",
        dataset={
            "sequences": options.sequences,
            "tenant": options.tenant,
            "surface": options.surface,
            "users": len(holdout.train),
            "evaluated_users": len(users),
            "items": catalog,
            "train_interactions": table.num_rows,
            "targets_in_train": repeated,
            "weights": options.weights,
        },
        split={
            "protocol": "leave-last-out per user (users with >= 3 interactions)",
            "split": options.split,
            "target": "second to last interaction" if options.split == "validation" else "last interaction",
            "events_day": DAY.isoformat(),
        },
        ks=list(options.ks),
        results=results,
        comparisons=comparisons,
        notes=notes,
    )
