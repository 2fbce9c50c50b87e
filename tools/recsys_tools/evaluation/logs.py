"""Log-based evaluation (`recsys eval --protocol logs`): the lists the API served, joined to what users did next.

Input: raw-event JSONL (plain or .gz; a file or a folder, local or s3://), read with the ingest's `RawFile` and
judged line by line by the raw contract (`recsys.events.parse.explain_line`); lines it rejects are counted by
reason, lines of another tenant or surface are skipped. Exposure lines with `source: "recsys-api"` are the served
lists (`recsys.serve.exposure.ServedList.lines`), grouped by `request_id` and ordered by `rank`; other exposures are
client events. A line repeated (same request and rank) is dropped; a second list under a request id already seen
(another `ts`, session or tenant) is a duplicate request: counted and skipped, the first kept (as the seed).

Outcomes (click, add_to_cart, purchase) join the list of their `request_id` when their `ts` falls within the
attribution window after the list's; the others are counted: without a request id, with one no list has, or
outside the window. Per list, relevant = the items with an attributed click (`reward="conversion"`: with an
add_to_cart or purchase). Metrics per list, averaged over all lists (a list without a relevant item scores 0: the
seed's definition, and the one an experiment can compare, since every variant keeps all its lists):
precision/recall/NDCG/MAP/hit rate @K and MRR (`recsys.evaluation.metrics`), ctr (a click on the list),
conversion (an add_to_cart or purchase). Over a set of lists: item_ctr (clicked shown items / shown items),
coverage@K (distinct items in the top K / distinct items shown or relevant), diversity@K (the seed's
normalised entropy of the top-K item counts, `metrics.aggregate_diversity`) and novelty@K (p(item) = the share of
lists showing it in their top K).

Then experiments (`recsys_tools.evaluation.experiments`) and off-policy estimates (`recsys_tools.evaluation.ope`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from recsys.evaluation.metrics import (
    FAMILIES,
    aggregate_diversity,
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)
from recsys.events.contract import parse_timestamp
from recsys.events.parse import explain_line
from recsys.ingest.sources import RAW_SUFFIXES, RawFile, firehose_day
from recsys.store import NotFound, open_store, split_uri

API_SOURCE = "recsys-api"  # recsys.serve.exposure.SOURCE (the tooling reads the lines, not the serving code)
CLICK = "click"
CONVERSIONS = ("add_to_cart", "purchase")
OUTCOMES = (CLICK, *CONVERSIONS)
_PER_LIST = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
    "precision": precision_at_k,
    "hit_rate": hit_rate_at_k,
}


class LogOptions(BaseModel):
    raw: str
    tenant: str = "demo"
    surface: str = "home"
    ks: tuple[int, ...] = (5, 10, 20)
    attribution_hours: float = Field(24.0, gt=0, description="outcomes join a list up to this long after it")
    reward: str = Field("click", pattern="^(click|conversion)$")
    experiment: str | None = Field(None, description="only this experiment (default: every one in the logs)")
    control: str | None = Field(None, description="the control variant (default: the first in sorted order)")
    split_weights: dict[str, float] | None = Field(None, description="expected split by variant (default equal)")
    aa_check: bool = False
    clip: float = Field(10.0, gt=0)
    min_propensity: float = Field(1e-3, gt=0, le=1)


@dataclass
class LoggedList:
    """One served list: its items in rank order and what followed it."""

    request_id: str
    ts: dt.datetime
    subject: str  # who experiments assign: the user, else the session
    user_id: str | None
    items: list[str]
    propensities: list[float | None]
    context: dict[str, str]
    clicks: set[str] = field(default_factory=set)
    conversions: set[str] = field(default_factory=set)

    @property
    def experiment(self) -> tuple[str, str] | None:
        experiment, variant = self.context.get("experiment_id"), self.context.get("experiment_variant")
        return (experiment, variant) if experiment and variant else None


@dataclass
class LogCounts:
    """What the join read, kept, and why it left lines out."""

    lines: int = 0
    rejected: Counter = field(default_factory=Counter)  # contract reason -> lines
    other_scope: int = 0  # another tenant or surface
    served_lines: int = 0
    client_exposures: int = 0
    duplicate_lines: int = 0
    duplicate_requests: int = 0
    other_events: int = 0
    outcomes: Counter = field(default_factory=Counter)  # event type -> lines
    attributed: int = 0
    no_request_id: int = 0
    unknown_request: int = 0
    outside_window: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "rejected_lines": dict(sorted(self.rejected.items())),
            "other_tenant_or_surface": self.other_scope,
            "served_exposure_lines": self.served_lines,
            "client_exposure_lines": self.client_exposures,
            "duplicate_exposure_lines": self.duplicate_lines,
            "duplicate_request_ids": self.duplicate_requests,
            "other_event_lines": self.other_events,
            "outcome_lines": dict(sorted(self.outcomes.items())),
            "attributed_outcomes": self.attributed,
            "unattributed_without_request_id": self.no_request_id,
            "unattributed_unknown_request_id": self.unknown_request,
            "unattributed_outside_window": self.outside_window,
        }


def log_files(uri: str) -> list[RawFile]:
    """The raw files at `uri` (one .jsonl[.gz] or Firehose object, or every one under a folder), in key order."""
    if uri.endswith(RAW_SUFFIXES) or firehose_day(uri) is not None:
        store, key = split_uri(uri)
        store.size(key)  # NotFound if it is not there
        return [RawFile(store, key, dated=False)]
    store = open_store(uri)
    keys = [key for key in store.list("") if key.endswith(RAW_SUFFIXES) or firehose_day(key) is not None]
    if not keys:
        raise NotFound(f"no raw .jsonl or .jsonl.gz file at {uri}")
    return [RawFile(store, key, dated=False) for key in sorted(keys)]


def _lines(file: RawFile) -> Iterator[bytes]:
    carry = b""
    for piece in file.pieces():
        *whole, carry = (carry + piece).split(b"\n")
        yield from whole
    if carry:
        yield carry


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def read_logs(options: LogOptions) -> tuple[list[LoggedList], LogCounts]:
    """The served lists of the logs with their attributed outcomes, and the counts of the join."""
    counts = LogCounts()
    lists: dict[str, LoggedList] = {}
    identity: dict[str, tuple] = {}
    ranks: dict[str, dict[int, tuple[str, float | None]]] = {}
    duplicates: set[str] = set()
    outcomes: list[tuple[str | None, str, str, dt.datetime]] = []
    for file in log_files(options.raw):
        for line in _lines(file):
            text = line.rstrip(b"\r")
            if not text.strip():
                continue
            counts.lines += 1
            verdict = explain_line(text)
            if verdict.reason is not None:
                counts.rejected[str(verdict.reason)] += 1
                continue
            record = json.loads(text)
            if _text(record.get("tenant")) != options.tenant or _text(record.get("surface")) != options.surface:
                counts.other_scope += 1
                continue
            kind, request = _text(record.get("event_type")), _text(record.get("request_id"))
            ts = parse_timestamp(record["ts"])
            if kind in OUTCOMES:
                counts.outcomes[kind] += 1
                outcomes.append((request, _text(record["item_id"]) or "", kind, ts))
                continue
            if kind != "exposure" or record.get("source") != API_SOURCE:
                counts.client_exposures += kind == "exposure"
                counts.other_events += kind != "exposure"
                continue
            rank = record.get("rank")
            if request is None or not isinstance(rank, int):
                counts.client_exposures += 1  # not a served-list line after all
                continue
            counts.served_lines += 1
            key = (ts, _text(record.get("session_id")), _text(record.get("user_id")))
            if request not in lists:
                context = {
                    name: str(record[name])
                    for name in ("segment", "manifest_version", "algo_version", "experiment_id", "experiment_variant")
                    if record.get(name) is not None
                }
                user = _text(record.get("user_id"))
                lists[request] = LoggedList(request, ts, user or key[1] or request, user, [], [], context)
                identity[request], ranks[request] = key, {}
            elif identity[request] != key:  # another list under a request id already seen
                duplicates.add(request)
                counts.duplicate_lines += 1
                continue
            if rank in ranks[request]:
                counts.duplicate_lines += 1
                continue
            propensity = record.get("propensity")
            valid = isinstance(propensity, int | float) and 0 < propensity <= 1
            ranks[request][rank] = (_text(record["item_id"]) or "", float(propensity) if valid else None)
    counts.duplicate_requests = len(duplicates)
    for request, logged in lists.items():
        for rank in sorted(ranks[request]):
            item, propensity = ranks[request][rank]
            logged.items.append(item)
            logged.propensities.append(propensity)
    window = dt.timedelta(hours=options.attribution_hours)
    for request, item, kind, ts in outcomes:
        logged = lists.get(request) if request else None
        if request is None:
            counts.no_request_id += 1
        elif logged is None:
            counts.unknown_request += 1
        elif not logged.ts <= ts <= logged.ts + window:
            counts.outside_window += 1
        else:
            counts.attributed += 1
            (logged.clicks if kind == CLICK else logged.conversions).add(item)
    served = sorted(lists.values(), key=lambda logged: (logged.ts, logged.request_id))
    return served, counts


def relevant(logged: LoggedList, reward: str) -> set[str]:
    return logged.clicks if reward == "click" else logged.conversions


def metric_names(ks: Sequence[int]) -> list[str]:
    """The per-list metrics, in the order of `per_list_values`' columns."""
    return ["ctr", "conversion", *(f"{f}@{k}" for k in sorted(set(ks)) for f in FAMILIES), "mrr"]


def per_list_values(lists: Sequence[LoggedList], ks: Sequence[int], reward: str) -> np.ndarray:
    """(lists, metrics) per `metric_names`: each list's value of each metric."""
    ks = sorted(set(ks))
    rows = []
    for logged in lists:
        rel = relevant(logged, reward)
        row = [float(bool(logged.clicks)), float(bool(logged.conversions))]
        row += [_PER_LIST[family](logged.items, rel, k) for k in ks for family in FAMILIES]
        row.append(reciprocal_rank(logged.items, rel))
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2 + len(ks) * len(FAMILIES) + 1)


def set_metrics(lists: Sequence[LoggedList], k: int, reward: str) -> dict[str, float]:
    """The metrics of a set of lists as a whole."""
    shown = sum(len(logged.items) for logged in lists)
    clicked = sum(len(logged.clicks & set(logged.items)) for logged in lists)
    if not lists:
        return {}
    tops = [logged.items for logged in lists]
    universe = {item for logged in lists for item in (*logged.items, *relevant(logged, reward))}
    in_top = Counter(item for items in tops for item in set(list(dict.fromkeys(items))[:k]))
    return {
        "item_ctr": clicked / shown if shown else 0.0,
        f"coverage@{k}": catalog_coverage(tops, max(len(universe), 1), k),
        f"diversity@{k}": aggregate_diversity(tops, k),
        f"novelty@{k}": novelty(tops, {item: n / len(lists) for item, n in in_top.items()}, k),
    }


def aa_halves(lists: Sequence[LoggedList]) -> None:
    """For an A/A check on logs without an experiment: each subject's lists into one of two halves, by a hash of
    the subject (sticky and deterministic, as experiments assign)."""
    for logged in lists:
        half = hashlib.sha256(f"aa-check:{logged.subject}".encode()).digest()[0] % 2
        logged.context["experiment_id"] = "aa-check"
        logged.context["experiment_variant"] = f"half-{half + 1}"


def arms(lists: Sequence[LoggedList], experiment: str | None = None) -> dict[str, dict[str, list[int]]]:
    """{experiment: {variant: indices of its lists}}, sorted, optionally only `experiment`."""
    out: dict[str, dict[str, list[int]]] = {}
    for index, logged in enumerate(lists):
        pair = logged.experiment
        if pair and (experiment is None or pair[0] == experiment):
            out.setdefault(pair[0], {}).setdefault(pair[1], []).append(index)
    return {name: dict(sorted(variants.items())) for name, variants in sorted(out.items())}


def subjects_per_variant(lists: Sequence[LoggedList], variants: Mapping[str, list[int]]) -> dict[str, int]:
    return {variant: len({lists[i].subject for i in indices}) for variant, indices in variants.items()}
