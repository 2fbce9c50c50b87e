"""`make eval-real`'s suite: the synthetic datasets it generates and the summary rows it writes."""

from __future__ import annotations

from pathlib import Path

from recsys.contract.report import Report
from recsys_tools.evaluation.run import OURS
from recsys_tools.evaluation.suite import SuiteOptions, _differences, _ndcg_row, synthetic_datasets


def test_synthetic_datasets_are_generated_once_and_deterministically(tmp_path: Path) -> None:
    options = SuiteOptions(real=str(tmp_path), out=str(tmp_path / "a"), seeds=1)
    first = synthetic_datasets(options)
    assert list(first) == ["sample", "synthetic-14d", "default-seed0"]
    assert Path(first["sample"][0]).name == "raw" and Path(first["sample"][1]).is_file()
    again = synthetic_datasets(SuiteOptions(real=str(tmp_path), out=str(tmp_path / "b"), seeds=1))
    day = "dt=2026-01-01/events.jsonl"
    assert (Path(first["default-seed0"][0]) / day).read_bytes() == (Path(again["default-seed0"][0]) / day).read_bytes()


COUNTS = {"confidence": 0.95, "better": 20, "worse": 5, "level": 15, "users": 40}


def _report() -> Report:
    results = {
        OURS: {"overall": {"ndcg@10": 0.25, "users": 40}},
        "popularity": {"overall": {"ndcg@10": 0.05, "users": 40}},
        "item-kNN": {"overall": {"ndcg@10": 0.2, "users": 40}},
    }
    comparisons = [
        {
            "first": OURS,
            "second": "popularity",
            "metric": "ndcg@10",
            "difference": 0.2,
            "low": 0.1,
            "high": 0.3,
            "verdict": "ahead",
            **COUNTS,
        },
        {
            "first": OURS,
            "second": "item-kNN",
            "metric": "ndcg@10",
            "difference": 0.05,
            "low": -0.01,
            "high": 0.1,
            "verdict": "level",
            **COUNTS,
        },
        {"first": OURS, "second": "nobody", "metric": "ndcg@10", "users": 0},
    ]
    return Report(ks=[10], results=results, comparisons=comparisons)


def test_summary_rows_show_ours_the_baselines_and_the_interval_against_item_knn() -> None:
    row = _ndcg_row("sample", "test", "defaults", _report())
    assert row == "| sample | test | defaults | 0.2500 | 0.0500 | 0.2000 | +0.0500 | -0.0100 .. +0.1000 | level | 40 |"
    lines = _differences(_report())
    assert lines[2:] == [
        "| popularity | ndcg@10 | +0.2000 | +0.1000 .. +0.3000 | ahead |",
        "| item-kNN | ndcg@10 | +0.0500 | -0.0100 .. +0.1000 | level |",
    ]  # a comparison without users has no interval and no row


def test_each_split_gets_its_report_its_table_and_its_differences(tmp_path: Path) -> None:
    from recsys_tools.evaluation.suite import HOLDOUT_TABLE, _split_section

    report = _report()
    for result in report.results.values():
        result["overall"].update({"hit_rate@10": 0.5, "ndcg@20": 0.3, "hit_rate@20": 0.6})
    lines = _split_section(tmp_path, lambda split: report, HOLDOUT_TABLE, lambda r: ["why"])
    assert lines[:5] == [
        "### validation",
        "",
        "| recommender | NDCG@10 | HR@10 | NDCG@20 | HR@20 | users |\n|---|---:|---:|---:|---:|---:|",
        f"| {OURS} | 0.2500 | 0.5000 | 0.3000 | 0.6000 | 40 |",
        "| popularity | 0.0500 | 0.5000 | 0.3000 | 0.6000 | 40 |",
    ]
    assert "### test" in lines and "why" in lines
    assert (tmp_path / "validation" / "report" / "report.json").is_file()
    assert (tmp_path / "test" / "report" / "report.md").is_file()
