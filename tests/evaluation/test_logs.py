"""Log-based evaluation: served lists in the API's exposure format joined to outcomes; experiments with planted
winners, A/A and sample-ratio checks; off-policy estimates that recover a planted policy's value."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from recsys import paths
from recsys.contract.report import Report
from recsys.serve.exposure import ServedItem, ServedList
from recsys.store import FileSystemStore
from recsys_tools import cli
from recsys_tools.evaluation import ope
from recsys_tools.evaluation.experiments import chi2_sf, sample_ratio
from recsys_tools.evaluation.log_run import run_logs
from recsys_tools.evaluation.logs import LogOptions, read_logs

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
POOL = [f"i{j:03d}" for j in range(60)]


def _ts(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome(request_id: str | None, item: str, at: dt.datetime, kind: str = "click", **extra: str) -> str:
    record = {"v": 1, "ts": _ts(at), "tenant": "demo", "surface": "home", "session_id": "s", "item_id": item}
    record |= {"event_type": kind, **({"request_id": request_id} if request_id else {}), **extra}
    return json.dumps(record)


def served(n: int, items: list[str], variant: str | None = None, *, propensities=None, **extra) -> ServedList:
    return ServedList(
        request_id=f"r{n}",
        tenant="demo",
        surface="home",
        segment=extra.pop("segment", "default"),
        served_at=T0 + dt.timedelta(seconds=n),
        items=[
            ServedItem(item, rank, 1.0 - rank / 100, propensities[rank] if propensities else None)
            for rank, item in enumerate(items)
        ],
        user_id=extra.pop("user_id", f"u{n}"),
        experiment_id="exp" if variant else None,
        experiment_variant=variant,
        **extra,
    )


def write(folder: Path, exposures: list[str], outcomes: list[str]) -> Path:
    """Exposures gzipped as the store sink writes them, outcomes as plain JSONL."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "exposures.jsonl.gz").write_bytes(gzip.compress("".join(f"{x}\n" for x in exposures).encode()))
    (folder / "outcomes.jsonl").write_text("".join(f"{x}\n" for x in outcomes))
    return folder


def experiment_logs(folder: Path, rates: dict[str, float], lists: dict[str, int], seed: int = 3) -> Path:
    """`lists[v]` lists per variant v, each clicked (on one of its top 3 items) with probability `rates[v]`."""
    rng = random.Random(seed)
    exposures, outcomes = [], []
    n = 0
    for variant, count in lists.items():
        for _ in range(count):
            items = rng.sample(POOL, 10)
            exposures += served(n, items, variant).lines()
            if rng.random() < rates[variant]:
                outcomes.append(outcome(f"r{n}", items[rng.randrange(3)], T0 + dt.timedelta(seconds=n, minutes=3)))
            n += 1
    return write(folder, exposures, outcomes)


def comparison(report, metric: str = "ctr") -> dict:
    return next(c for c in report.comparisons if c["metric"] == metric)


def test_a_planted_winner_is_named_ahead(tmp_path: Path) -> None:
    raw = experiment_logs(tmp_path / "raw", {"A": 0.08, "B": 0.16}, {"A": 1200, "B": 1200})
    evaluation = run_logs(LogOptions(raw=str(raw), ks=(5, 10)))
    report = evaluation.report
    ctr = comparison(report)
    assert (ctr["first"], ctr["second"], ctr["verdict"]) == ("exp / B", "exp / A", "ahead")
    assert 0 < ctr["low"] < ctr["difference"] < ctr["high"]
    assert abs(ctr["difference"] - 0.08) < 0.03
    assert comparison(report, "ndcg@10")["verdict"] == "ahead"
    b = report.results["exp / B"]["overall"]
    assert b["lists"] == 1200 and b["ctr_low"] < b["ctr"] < b["ctr_high"]
    assert b["hit_rate@10"] == b["ctr"]  # every click is on a shown item
    assert report.results["all lists"]["overall"]["lists"] == 2400
    assert evaluation.aa_passed is None


def test_an_a_a_test_comes_out_level_and_passes_the_check(tmp_path: Path) -> None:
    raw = experiment_logs(tmp_path / "raw", {"A": 0.1, "B": 0.1}, {"A": 1000, "B": 1000})
    evaluation = run_logs(LogOptions(raw=str(raw), ks=(10,), aa_check=True))
    assert {c["verdict"] for c in evaluation.report.comparisons} == {"level"}
    assert evaluation.aa_passed is True
    winner = experiment_logs(tmp_path / "ab", {"A": 0.05, "B": 0.2}, {"A": 1000, "B": 1000})
    assert run_logs(LogOptions(raw=str(winner), ks=(10,), aa_check=True)).aa_passed is False


def test_the_a_a_check_splits_subjects_in_halves_without_an_experiment(tmp_path: Path) -> None:
    rng = random.Random(5)
    exposures, outcomes = [], []
    for n in range(1500):
        items = rng.sample(POOL, 5)
        exposures += served(n, items).lines()
        if rng.random() < 0.1:
            outcomes.append(outcome(f"r{n}", items[0], T0 + dt.timedelta(seconds=n + 60)))
    raw = write(tmp_path / "raw", exposures, outcomes)
    evaluation = run_logs(LogOptions(raw=str(raw), ks=(5,), aa_check=True))
    assert evaluation.aa_passed is True
    assert set(evaluation.report.results) == {"all lists", "aa-check / half-1", "aa-check / half-2"}


def test_sample_ratio_mismatch_is_flagged_on_60_40_not_on_50_50(tmp_path: Path) -> None:
    skewed = experiment_logs(tmp_path / "skewed", {"A": 0.1, "B": 0.1}, {"A": 600, "B": 400})
    even = experiment_logs(tmp_path / "even", {"A": 0.1, "B": 0.1}, {"A": 500, "B": 500})

    def check(raw: Path, **options) -> list:
        table = next(t for t in run_logs(LogOptions(raw=str(raw), ks=(10,), **options)).report.tables)
        assert table.title == "Sample ratio"
        return table.rows[0]

    assert check(skewed)[-1] == "MISMATCH" and float(check(skewed)[-2]) < 1e-6
    assert check(even)[-1] == "ok"
    assert check(skewed, split_weights={"A": 60, "B": 40})[-1] == "ok"  # the split it was meant to have
    assert sample_ratio({"A": 600, "B": 400})["mismatch"] and not sample_ratio({"A": 510, "B": 490})["mismatch"]
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, abs=1e-9)  # the textbook 95% quantile
    assert chi2_sf(7.814727903251178, 3) == pytest.approx(0.05, abs=1e-9)


def _simulated(n_lists: int, rng: np.random.Generator, epsilon: float, pool: int, slots: int):
    """A per-slot epsilon-greedy logging policy over a pool of items per slot, clicks by a position-based model."""
    click = rng.uniform(0.05, 0.6, size=(slots, pool))  # P(click | item, slot), position bias included
    greedy = np.zeros(slots, dtype=int)  # the logging policy's favourite (not the best) at each slot
    shown = np.where(rng.random((n_lists, slots)) < epsilon, rng.integers(0, pool, (n_lists, slots)), greedy[None, :])
    logging = np.where(shown == greedy[None, :], 1 - epsilon + epsilon / pool, epsilon / pool)
    reward = (rng.random((n_lists, slots)) < click[np.arange(slots)[None, :], shown]).astype(float)
    return click, shown, logging, reward


def test_off_policy_estimates_recover_a_planted_policy_value() -> None:
    rng = np.random.default_rng(11)
    slots, pool, epsilon = 3, 5, 0.5
    click, shown, logging, reward = _simulated(6000, rng, epsilon, pool, slots)
    best = click.argmax(axis=1)  # the planted target: the best item at each slot, deterministically
    target = (shown == best[None, :]).astype(float)
    discount = ope.position_discount(np.arange(slots))
    truth = float(np.mean(discount * click[np.arange(slots), best]))
    logged_value = float(
        np.mean(discount * (click * (1 / pool)).sum(axis=1) * epsilon + discount * click[:, 0] * (1 - epsilon))
    )
    position = np.tile(np.arange(slots), len(shown))
    common = {
        "reward": reward.ravel(),
        "logging_propensity": logging.ravel(),
        "target_propensity": target.ravel(),
        "position": position,
        "group": np.repeat(np.arange(len(shown)), slots),
    }
    plain = ope.estimate(ope.Slots(**common))
    model = click[position, shown.ravel()]  # an exact reward model: DR's variance drops
    exact = ope.estimate(ope.Slots(**common, reward_estimate=model, target_estimate=click[position, best[position]]))
    wrong = ope.estimate(ope.Slots(**common, reward_estimate=model * 0 + 0.3, target_estimate=model * 0 + 0.3))
    assert abs(truth - logged_value) > 0.05  # the target is far from what was logged
    for found in (*plain.values(), exact["dr"], wrong["dr"]):
        assert found.low <= truth <= found.high, (found, truth)
        assert found.high - found.low < 0.06
    assert exact["dr"].high - exact["dr"].low < plain["ips"].high - plain["ips"].low
    same = ope.estimate(ope.Slots(**{**common, "target_propensity": logging.ravel()}))
    assert same["ips"].value == pytest.approx(float(np.mean(discount[position] * reward.ravel())))


def test_off_policy_estimates_from_logged_lists(tmp_path: Path) -> None:
    """The logs path: epsilon-greedy lists in the API's format; the greedy target's value is known."""
    rng = np.random.default_rng(4)
    slots, pool, epsilon = 3, 5, 0.3
    click, shown, logging, reward = _simulated(4000, rng, epsilon, pool, slots)
    exposures, outcomes = [], []
    for n, (row, props, clicked) in enumerate(zip(shown, logging, reward, strict=True)):
        items = [f"s{slot}-i{item}" for slot, item in enumerate(row)]  # a pool per slot: no repeats in a list
        exposures += served(n, items, propensities=list(props)).lines()
        outcomes += [outcome(f"r{n}", items[k], T0 + dt.timedelta(seconds=n + 30)) for k in np.flatnonzero(clicked)]
    raw = write(tmp_path / "raw", exposures, outcomes)
    report = run_logs(LogOptions(raw=str(raw), ks=(3,))).report
    table = next(t for t in report.tables if t.title == "Off-policy estimates")
    truth = float(np.mean(ope.position_discount(np.arange(slots)) * click[:, 0]))  # greedy = item 0 everywhere
    rows = {(row[0], row[1]): row for row in table.rows}
    for estimator in ("IPS", "SNIPS", "DR"):
        low, high = (float(x) for x in rows[("greedy (no exploration)", estimator)][3].split(" .. "))
        assert low <= truth <= high, (estimator, low, truth, high)


def test_attribution_window_duplicates_and_unattributed_outcomes(tmp_path: Path) -> None:
    first = served(1, ["a", "b", "c"])
    again = ServedList(**{**first.__dict__, "served_at": T0 + dt.timedelta(hours=1), "items": [ServedItem("x", 0, 1)]})
    client = json.dumps({**json.loads(first.lines()[0]), "request_id": "r1", "source": "web"})
    other = json.dumps({**json.loads(served(2, ["a"]).lines()[0]), "tenant": "acme"})
    exposures = [*first.lines(), *first.lines(), *again.lines(), client, other, "{not json"]
    outcomes = [
        outcome("r1", "a", T0 + dt.timedelta(seconds=1, hours=1)),  # attributed
        outcome("r1", "a", T0 + dt.timedelta(seconds=1, hours=2)),  # attributed again (one relevant item)
        outcome("r1", "b", T0 + dt.timedelta(hours=25)),  # after a 24 h window
        outcome("r1", "c", T0 - dt.timedelta(minutes=1)),  # before the list
        outcome(None, "a", T0 + dt.timedelta(minutes=5)),  # no request id
        outcome("r9", "a", T0 + dt.timedelta(minutes=5)),  # no such list
        outcome("r1", "c", T0 + dt.timedelta(minutes=9), kind="purchase"),
    ]
    raw = write(tmp_path / "raw", exposures, outcomes)
    lists, counts = read_logs(LogOptions(raw=str(raw)))
    assert [(x.request_id, x.items, x.clicks, x.conversions) for x in lists] == [("r1", ["a", "b", "c"], {"a"}, {"c"})]
    found = counts.to_json()
    assert found["duplicate_exposure_lines"] == 4 and found["duplicate_request_ids"] == 1
    assert found["client_exposure_lines"] == 1 and found["other_tenant_or_surface"] == 1
    assert found["rejected_lines"] == {"malformed_json": 1}
    assert found["outcome_lines"] == {"click": 6, "purchase": 1}
    assert (found["attributed_outcomes"], found["unattributed_outside_window"]) == (3, 2)
    assert (found["unattributed_without_request_id"], found["unattributed_unknown_request_id"]) == (1, 1)
    longer, _ = read_logs(LogOptions(raw=str(raw), attribution_hours=26))
    assert longer[0].clicks == {"a", "b"}
    conversion = run_logs(LogOptions(raw=str(raw), ks=(3,), reward="conversion")).report.results["all lists"]["overall"]
    assert conversion["ndcg@3"] == pytest.approx(0.5) and conversion["conversion"] == 1.0  # c at rank 3: 1/log2(4)


def test_the_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = experiment_logs(tmp_path / "raw", {"A": 0.05, "B": 0.2}, {"A": 300, "B": 300})
    out = tmp_path / "report"
    args = ["eval", "--protocol", "logs", "--raw", str(raw), "--out", str(out), "--k", "5,10"]
    assert cli.main([*args, "--control", "B", "--attribution-hours", "2", "--clip", "5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png"]
    report = json.loads((out / "report.json").read_text())
    assert report["title"] == "Log-based evaluation" and report["split"]["attribution_hours"] == 2
    ctr = next(c for c in report["comparisons"] if c["metric"] == "ctr")
    assert (ctr["first"], ctr["verdict"]) == ("exp / A", "behind")
    md = (out / "report.md").read_text()
    assert "## Differences" in md and "## Sample ratio" in md and "| exp / A | exp / B | ctr |" in md
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    # --report-store keeps report.json where the console reads it.
    store = FileSystemStore(tmp_path / "store")
    assert cli.main([*args, "--report-store", store.uri]) == 0
    (kept,) = list(store.list(paths.reports_prefix("demo", "home")))
    assert kept.endswith("-logs.json") and Report.model_validate_json(store.get(kept).data).title == report["title"]
    capsys.readouterr()
    assert cli.main([*args, "--aa-check"]) == 1  # a real difference fails an A/A check
    assert "A/A check FAILED" in capsys.readouterr().out
    assert cli.main(["eval", "--protocol", "logs"]) == 2
    assert cli.main([*args, "--split-weights", "A=x"]) == 2
