"""Session next-item evaluation on real session data (YOOCHOOSE clicks as prepared by session-rec): the data
converted to our raw events, the real pipeline on a train part, the real ranking (the code of POST /v1/recommend)
replayed over the sessions of a test part, session baselines, and a paired bootstrap per position.

Data: a directory with `train.tsv.gz` and `valid.tsv.gz` (tab-separated, header `SessionId ItemId Time`, Unix
seconds with a fraction). It is read where it is, never copied into the repository.

Splits (`prepare_yoochoose`):
  validation  train = train.tsv without the sessions whose first click is on or after the start of the validation
              day (the UTC day before train's last click: 2014-04-05 for yoochoose-100k, whose last clicks spill
              30 minutes into 2014-04-06); test = those sessions. For choosing settings.
  test        train = all of train.tsv; test = valid.tsv. For reporting.
The sessions of a test part are replayed, never trained on: only the train part is converted and ingested.

Replay (`replay`): each test session sorted by time (ties: file order) is [i0, ..., in]; at each position p the
visitor has seen i0..ip and the target is i(p+1); targets the train part never clicked are skipped. Ours gets the
request `recommend_all` of `recsys_tools.evaluation.run` sends, for an anonymous visitor: user = a session id of its own
("replay-<SessionId>", unknown to the artifacts), anchors = the items seen so far, most recent first, each once (at
its most recent occurrence), at most MAX_ANCHORS; k = 20; `now` = the time of click ip (rules are the only reader
of `now`). A "new-target" position is one whose target is not among i0..ip: a recommender that never re-shows
what the visitor just saw (ours, and every baseline here) can only hit those.

Metrics per recommender and segment ("all", "new-target"): `metrics.evaluate_lists` with one unit per position
(relevant = {target}), so hit_rate@20, mrr (the lists have 20 items, so it is MRR@20, also reported as
"mrr@20"), ndcg@20, ..., coverage and novelty, and "users" = the number of positions. Ours is compared with each
baseline on new-target MRR@20 and HR@20 by `metrics.paired_bootstrap` over positions.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import BaseModel, Field

from recsys.contract.report import Report
from recsys.days import Window
from recsys.evaluation.lists import ManifestRanker
from recsys.evaluation.metrics import evaluate_lists, paired_bootstrap
from recsys.events.parse import DayScope, parse_events
from recsys.serve.models import MAX_ANCHORS
from recsys.settings import Settings
from recsys.store import ObjectStore, open_store
from recsys_tools.evaluation import session_baselines as sb
from recsys_tools.evaluation.run import EvalOptions, Split, build

OURS = "recsys (blend)"
K = 20
SEGMENTS = ("all", "new-target")
COMPARED_METRICS = ("mrr@20", "hit_rate@20")
TRAIN_FILE, VALID_FILE = "train.tsv.gz", "valid.tsv.gz"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- reading and converting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clicks:
    """Clicks of a TSV, sorted by session id (numeric order), then time, then file order.

    session / item: ids as in the file (str); ts_us: Unix microseconds, exact (parsed from the text, not a float).
    """

    session: np.ndarray
    item: np.ndarray
    ts_us: np.ndarray

    def __len__(self) -> int:
        return len(self.session)

    def take(self, rows: np.ndarray) -> Clicks:
        return Clicks(self.session[rows], self.item[rows], self.ts_us[rows])

    def sessions(self) -> Iterable[tuple[str, np.ndarray]]:
        """(session id, its rows), in order."""
        if not len(self):
            return
        starts = np.flatnonzero(np.concatenate(([True], self.session[1:] != self.session[:-1])))
        ends = np.concatenate((starts[1:], [len(self)]))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            yield str(self.session[start]), np.arange(start, end)

    def first_click_us(self) -> dict[str, int]:
        return {session: int(self.ts_us[rows[0]]) for session, rows in self.sessions()}


def _micros(text: str) -> int:
    """'1396437466.94' -> 1396437466940000, exactly (at most 6 fraction digits are kept, truncated)."""
    whole, _, fraction = text.strip().partition(".")
    return int(whole) * 1_000_000 + int((fraction + "000000")[:6])


def read_clicks(path: Path | str) -> Clicks:
    """Read a `SessionId ItemId Time` TSV (gzipped or not) into `Clicks`."""
    table = pacsv.read_csv(
        str(path),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in ("SessionId", "ItemId", "Time")}),
    )
    missing = {"SessionId", "ItemId", "Time"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)} (expected SessionId, ItemId, Time)")
    session = np.asarray(table["SessionId"].to_pylist(), dtype=str)
    item = np.asarray(table["ItemId"].to_pylist(), dtype=str)
    ts_us = np.fromiter((_micros(t) for t in table["Time"].to_pylist()), dtype=np.int64, count=table.num_rows)
    numeric = np.fromiter((int(s) for s in session), dtype=np.int64, count=len(session))
    order = np.lexsort((np.arange(len(session)), ts_us, numeric))
    return Clicks(session[order], item[order], ts_us[order])


def rfc3339(ts_us: int) -> str:
    """Unix microseconds -> '2014-04-01T01:02:03.940000Z' (UTC, always 6 fraction digits)."""
    return (_EPOCH + dt.timedelta(microseconds=int(ts_us))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_day(ts_us: int) -> dt.date:
    return (_EPOCH + dt.timedelta(microseconds=int(ts_us))).date()


def session_id(raw: str) -> str:
    return f"s{raw}"


def write_events(clicks: Clicks, out_dir: Path | str, tenant: str, surface: str) -> dict[str, int]:
    """Write `clicks` as raw click events, out_dir/dt=YYYY-MM-DD/events.jsonl (each event's UTC day), one line per
    click in (ts, session, file order) order; returns {day: events}. Anonymous: no user_id. Deterministic: the same
    clicks give the same bytes. Existing files of the written days are replaced."""
    out = Path(out_dir)
    order = np.lexsort((np.arange(len(clicks)), clicks.session, clicks.ts_us))
    days: dict[str, list[str]] = {}
    for row in order.tolist():
        ts = int(clicks.ts_us[row])
        event = {
            "v": 1,
            "ts": rfc3339(ts),
            "tenant": tenant,
            "surface": surface,
            "session_id": session_id(str(clicks.session[row])),
            "item_id": str(clicks.item[row]),
            "event_type": "click",
        }
        days.setdefault(str(utc_day(ts)), []).append(json.dumps(event, separators=(",", ":")))
    for day, lines in days.items():
        folder = out / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {day: len(lines) for day, lines in sorted(days.items())}


def convert_sessions(
    tsv_gz_path: Path | str,
    out_dir: Path | str,
    tenant: str,
    surface: str,
    exclude_sessions: Iterable[str] = (),
) -> dict[str, int]:
    """Convert a `SessionId ItemId Time` TSV to raw click events under out_dir/dt=YYYY-MM-DD/events.jsonl, leaving
    out the sessions in `exclude_sessions` (SessionIds as in the file); returns {day: events written}.

    Each event: {"v": 1, "ts": RFC 3339 UTC with microseconds, "tenant", "surface", "session_id": "s<SessionId>",
    "item_id": "<ItemId>", "event_type": "click"} (docs/reference/raw-events.md); see `write_events`.
    """
    clicks = read_clicks(tsv_gz_path)
    excluded = np.asarray(sorted(set(map(str, exclude_sessions))), dtype=str)
    keep = ~np.isin(clicks.session, excluded) if len(excluded) else np.ones(len(clicks), dtype=bool)
    return write_events(clicks.take(np.flatnonzero(keep)), out_dir, tenant, surface)


def check_raw(out_dir: Path | str, tenant: str, surface: str, event_types: Iterable[str] = ("click",)) -> int:
    """Parse every dt=*/events.jsonl under out_dir with the ingest's own parser, for its day; returns the accepted
    events. ValueError on the first file with a rejected line."""
    accepted = 0
    for path in sorted(Path(out_dir).glob("dt=*/events.jsonl")):
        day = dt.date.fromisoformat(path.parent.name.removeprefix("dt="))
        data = path.read_bytes()
        parsed = parse_events(
            data, source=str(path), scope=DayScope(tenant, surface, day, frozenset(event_types)), dated=True
        )
        if parsed.rejections:
            first = parsed.rejections[0]
            raise ValueError(f"{path}: line {first.line} rejected: {first.reason} {first.detail}")
        lines = data.count(b"\n")
        if parsed.events.num_rows != lines:
            raise ValueError(f"{path}: {parsed.events.num_rows} events accepted of {lines} lines")
        accepted += parsed.events.num_rows
    return accepted


# --- splits -------------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A split ready to evaluate: the train part as raw events in `raw`, over `window`, and both parts' clicks."""

    split: str
    raw: Path
    window: Window
    train: Clicks
    test: Clicks
    notes: list[str] = field(default_factory=list)


def split_clicks(
    train: Clicks, valid: Clicks, split: Literal["validation", "test"], validation_day: dt.date | None = None
) -> tuple[Clicks, Clicks, str]:
    """(train part, test part, a note) of a split; see the module docstring."""
    if split == "test":
        return train, valid, "test split: train = train.tsv, test = valid.tsv"
    if split != "validation":
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    day = validation_day or utc_day(int(train.ts_us.max())) - dt.timedelta(days=1)
    start_us = int((dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - _EPOCH) / dt.timedelta(microseconds=1))
    late = {s for s, first in train.first_click_us().items() if first >= start_us}
    held = np.isin(train.session, np.asarray(sorted(late), dtype=str))
    note = (
        f"validation split: test = the {len(late)} train.tsv sessions whose first click is on or after {day} "
        f"00:00 UTC; train = the other sessions of train.tsv"
    )
    return train.take(np.flatnonzero(~held)), train.take(np.flatnonzero(held)), note


def prepare_yoochoose(
    data_dir: Path | str,
    work_dir: Path | str,
    split: Literal["validation", "test"] = "test",
    tenant: str = "yoochoose",
    surface: str = "home",
    validation_day: dt.date | None = None,
) -> Prepared:
    """Build a split of the yoochoose data in data_dir: the train part converted to raw events (checked with the
    ingest's parser) under work_dir/<split>/raw (replaced), and both parts' clicks."""
    data = Path(data_dir)
    train, test, note = split_clicks(
        read_clicks(data / TRAIN_FILE), read_clicks(data / VALID_FILE), split, validation_day
    )
    raw = Path(work_dir) / split / "raw"
    if raw.exists():
        shutil.rmtree(raw)
    days = write_events(train, raw, tenant, surface)
    if check_raw(raw, tenant, surface) != len(train):
        raise ValueError(f"{raw}: not every converted click was accepted")
    first, last = (dt.date.fromisoformat(d) for d in (min(days), max(days)))
    return Prepared(split=split, raw=raw, window=Window(start=first, end=last), train=train, test=test, notes=[note])


# --- replay -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """One prediction: session `session` after `seen` (its clicks so far, oldest first), at time ts_us."""

    session: str
    index: int
    seen: tuple[str, ...]
    target: str
    ts_us: int

    @property
    def key(self) -> str:
        return f"{self.session}:{self.index}"

    @property
    def new_target(self) -> bool:
        return self.target not in self.seen


def positions(test: Clicks, known_items: set[str]) -> list[Position]:
    """Every position of every test session whose target the train part knows (session order, then position)."""
    out = []
    for session, rows in test.sessions():
        items = [str(i) for i in test.item[rows]]
        for p in range(len(items) - 1):
            if items[p + 1] in known_items:
                out.append(Position(session, p, tuple(items[: p + 1]), items[p + 1], int(test.ts_us[rows[p]])))
    return out


def anchors(seen: Sequence[str]) -> list[str]:
    """The items seen so far, most recent first, each at its most recent occurrence, at most MAX_ANCHORS."""
    return list(dict.fromkeys(reversed(seen)))[:MAX_ANCHORS]


def recommend_positions(
    store: ObjectStore,
    tenant: str,
    surface: str,
    replayed: Sequence[Position],
    weights: dict[str, float] | None = None,
) -> dict[str, list[str]]:
    """Top-K for every position over the current manifest, ranked as POST /v1/recommend ranks an anonymous
    visitor's request with the items seen so far as anchors (as `run.recommend_all`)."""
    ranker = ManifestRanker.open(store, tenant, surface)
    return {
        position.key: ranker.top(
            f"replay-{position.session}",
            K,
            _EPOCH + dt.timedelta(microseconds=position.ts_us),
            anchors=anchors(position.seen),
            weights=weights,
        )
        for position in replayed
    }


def baseline_lists(
    recommender: Callable[[Sequence[str], int], list[str]], replayed: Sequence[Position]
) -> dict[str, list[str]]:
    return {p.key: recommender(p.seen, K) for p in replayed}


def baselines(train: Clicks, **overrides: dict) -> dict[str, Callable[[Sequence[str], int], list[str]]]:
    """The session baselines trained on `train` (their default settings, or overrides[name] as keyword arguments)."""
    index = sb.index_sessions(train.session, train.item, train.ts_us / 1e6)
    return {
        "popularity": sb.Popularity(index).recommend,
        "AR": sb.AssociationRules(index).recommend,
        "SR": sb.SequentialRules(index, **overrides.get("SR", {})).recommend,
        "session-kNN": sb.SessionKNN(index, **overrides.get("session-kNN", {})).recommend,
        "V-STAN": sb.VSTAN(index, **overrides.get("V-STAN", {})).recommend,
    }


def ranks(lists: dict[str, list[str]], replayed: Sequence[Position]) -> np.ndarray:
    """Per position, the 1-based rank of the target in its top-K list, 0 when it is not there."""
    out = np.zeros(len(replayed), dtype=np.int64)
    for row, position in enumerate(replayed):
        top = list(dict.fromkeys(lists.get(position.key, ())))[:K]
        if position.target in top:
            out[row] = top.index(position.target) + 1
    return out


def per_position(rank: np.ndarray, metric: str) -> np.ndarray:
    """hit_rate@20 (1/0) or mrr@20 (1/rank, 0 for a miss) per position, from `ranks`."""
    if metric == "hit_rate@20":
        return (rank > 0).astype(np.float64)
    if metric == "mrr@20":
        return np.where(rank > 0, 1.0 / np.maximum(rank, 1), 0.0)
    raise ValueError(f"metric {metric!r}: use hit_rate@20 or mrr@20")


# --- the protocol -------------------------------------------------------------------------------------------------


class SessionEvalOptions(BaseModel):
    data: str = Field(description="a directory with train.tsv.gz and valid.tsv.gz (SessionId ItemId Time)")
    work: str = Field(description="a directory for the converted raw events and the store (<work>/<split>/...)")
    split: Literal["validation", "test"] = "test"
    tenant: str = "yoochoose"
    surface: str = "home"
    weights: dict[str, float] | None = Field(None, description="blend weights for every request, e.g. {'knn': 0}")
    validation_day: dt.date | None = Field(None, description="default: the UTC day before train's last click")
    baselines: dict[str, dict] = Field(default_factory=dict, description="keyword overrides, e.g. {'SR': {'steps': 5}}")


@dataclass
class Replay:
    """What a run measured: the positions and, per recommender, the rank of the target (0 = missed) per position."""

    positions: list[Position]
    ranks: dict[str, np.ndarray]
    seconds: dict[str, float]

    @property
    def new_target(self) -> np.ndarray:
        return np.asarray([p.new_target for p in self.positions], dtype=bool)


def build_store(prepared: Prepared, options: SessionEvalOptions, settings: Settings) -> str:
    """The real pipeline on the train part (every kind but content_sim: there is no catalog), published and
    promoted into a fresh store under <work>/<split>/store; returns its URI."""
    store_dir = Path(options.work) / options.split / "store"
    if store_dir.exists():
        shutil.rmtree(store_dir)
    evaluation = EvalOptions(
        tenant=options.tenant, surface=options.surface, raw=str(prepared.raw), store=f"file://{store_dir}"
    )
    # run.build ingests split.train.start..split.test.end and computes over split.train: with test = train it
    # ingests the train days only (the test part is never converted, so there would be nothing else to ingest).
    store = build(evaluation, settings, Split(train=prepared.window, test=prepared.window))
    return store.uri


def replay(options: SessionEvalOptions, settings: Settings) -> tuple[Prepared, Replay]:
    """Prepare the split, build the store, and rank every position with ours and every baseline."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    prepared = prepare_yoochoose(
        options.data, options.work, options.split, options.tenant, options.surface, options.validation_day
    )
    uri = build_store(prepared, options, settings)
    seconds["pipeline"] = time.perf_counter() - start
    replayed = positions(prepared.test, set(prepared.train.item.tolist()))
    start = time.perf_counter()
    store = open_store(uri)
    result = {
        OURS: ranks(recommend_positions(store, options.tenant, options.surface, replayed, options.weights), replayed)
    }
    seconds[OURS] = time.perf_counter() - start
    start = time.perf_counter()
    for name, recommend in baselines(prepared.train, **options.baselines).items():
        result[name] = ranks(baseline_lists(recommend, replayed), replayed)
        seconds[name] = time.perf_counter() - start
        start = time.perf_counter()
    return prepared, Replay(replayed, result, seconds)


def _lists_from_ranks(rank: np.ndarray, replayed: Sequence[Position]) -> dict[str, list[str]]:
    """A stand-in top-K list per position that puts the target at its rank (for `evaluate_lists`). The fillers
    are distinct (evaluate_lists counts a repeated item once) and never an item id (ids are never empty)."""
    fillers = [f"\0{j}" for j in range(K)]
    return {
        p.key: [*fillers[: int(r) - 1], p.target] if r else [] for p, r in zip(replayed, rank.tolist(), strict=True)
    }


def score(replay_result: Replay) -> dict[str, dict[str, dict[str, float]]]:
    """{recommender: {segment: metrics}}: `evaluate_lists` with one unit per position (see the module docstring)."""
    everything = {p.key: {p.target} for p in replay_result.positions}
    segments = {
        "all": everything,
        "new-target": {p.key: {p.target} for p in replay_result.positions if p.new_target},
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, rank in replay_result.ranks.items():
        lists = _lists_from_ranks(rank, replay_result.positions)
        out[name] = {}
        for segment, relevant in segments.items():
            metrics = evaluate_lists(lists, relevant, ks=(K,))
            if "mrr" in metrics:
                metrics[f"mrr@{K}"] = metrics["mrr"]  # the lists hold K items: MRR is MRR@K
            out[name][segment] = metrics
    return out


def comparisons(replay_result: Replay, segment: str = "new-target") -> list[dict]:
    """Ours against each baseline on the positions of `segment`, paired bootstrap per position."""
    mask = replay_result.new_target if segment == "new-target" else np.ones(len(replay_result.positions), bool)
    ours = replay_result.ranks[OURS][mask]
    out = []
    for name, rank in replay_result.ranks.items():
        if name == OURS:
            continue
        for metric in COMPARED_METRICS:
            result = paired_bootstrap(per_position(ours, metric), per_position(rank[mask], metric), metric)
            out.append({"first": OURS, "second": name, "segment": segment, "unit": "position", **result})
    return out


def run_sessions(options: SessionEvalOptions, settings: Settings | None = None) -> Report:
    """The session next-item protocol end to end; a `Report` with segments "all" and "new-target"."""
    settings = settings or Settings()
    start = time.perf_counter()
    prepared, result = replay(options, settings)
    total = time.perf_counter() - start
    return Report(
        title=f"Session next-item evaluation ({options.split} split)",
        dataset={
            "data": options.data,
            "tenant": options.tenant,
            "surface": options.surface,
            "train_clicks": len(prepared.train),
            "train_sessions": len(set(prepared.train.session.tolist())),
            "test_clicks": len(prepared.test),
            "test_sessions": len(set(prepared.test.session.tolist())),
            "positions": len(result.positions),
            "new_target_positions": int(result.new_target.sum()),
        },
        split={"name": options.split, "train": [str(prepared.window.start), str(prepared.window.end)]},
        ks=[K],
        results=score(result),
        comparisons=comparisons(result),
        notes=[
            *prepared.notes,
            "one unit per position: 'users' counts positions; the request's now is the time of the last seen click",
            f"weights override: {options.weights}" if options.weights else "weights: the tenant's defaults",
            "seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in result.seconds.items()) + f", total {total:.1f}",
        ],
    )
