"""`make eval-real`: every figure of docs/evaluation.md in one run, validation and test, real and synthetic data.

- Real sessions (`recsys_tools.evaluation.sessions`, YOOCHOOSE in session-rec's format): the next item of anonymous
  sessions, ours against popularity, association rules, sequential rules, session-kNN and V-STAN.
- Real user histories (`recsys_tools.evaluation.holdout`, Amazon Video Games in SASRec's format): each user's last item
  held out, ours against popularity, item-kNN and EASE (plain and recency-weighted).
- Synthetic (`recsys_tools.evaluation.run`, the temporal protocol): the bundled sample, the generator's 14-day dataset
  and its default dataset under `seeds` seeds. Validation = the last train day held out (the days before it as train);
  test = the last day. Each is run with the default settings and with STABLE_TASTES, the tenant setting these
  datasets' validation days choose (docs/evaluation.md).

Every report goes to <out>/<dataset>/<split>[-<config>]/report.{json,md,png}; <out>/summary.md has the tables.
Settings are chosen on the validation splits only: the test splits are measured once, after.

Usage: python -m recsys_tools.evaluation.suite --real ../shared/data/real --out .out/eval-real [--seeds 10] [--no-ease]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from recsys.contract.report import Report
from recsys.settings import Settings
from recsys_tools.evaluation.report import write_report
from recsys_tools.evaluation.run import OURS, EvalOptions, make_split, run_eval
from recsys_tools.synthetic import SyntheticSpec, generate, write_catalog

SAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sample"
STABLE_TASTES = {"history_decay": 1.0}
"""The synthetic tenants' setting: the generator's users never change taste, and every validation day prefers it."""

SPLITS = ("validation", "test")
EASE_LAMBDAS = (20.0, 50.0, 100.0)
"""EASE's regularisation grid (validation): 50 beat 500 by 0.0014 NDCG@10, so the grid stays low; ~200 s each."""
EASE_DECAYS = (0.6, 0.7, 0.8, 1.0)


class SuiteOptions(BaseModel):
    real: str = Field(description="the shared real data: yoochoose-100k/ and amazon-video-games/ inside")
    out: str = Field(description="reports and the summary go here (and converted data, stores, caches)")
    seeds: int = Field(10, ge=0, description="seeds of the generator's default dataset")
    ease: bool = Field(True, description="include EASE on the user histories (minutes per lambda)")


def synthetic_datasets(options: SuiteOptions) -> dict[str, tuple[str, str]]:
    """{name: (raw dir, catalog)}: the bundled sample, the 14-day dataset and the default dataset's seeds,
    generated under <out>/data (deterministic: the same spec gives the same bytes)."""
    data = Path(options.out) / "data"
    specs = {"synthetic-14d": SyntheticSpec(days=14, users=3000, items=800, taste_groups=10)}
    specs |= {f"default-seed{seed}": SyntheticSpec(seed=seed) for seed in range(options.seeds)}
    out = {"sample": (str(SAMPLE / "raw"), str(SAMPLE / "catalog.csv"))}
    for name, spec in specs.items():
        raw, catalog = data / name / "raw", data / name / "catalog.csv"
        if not raw.exists():
            generate(spec, raw)
            write_catalog(spec, catalog)
        out[name] = (str(raw), str(catalog))
    return out


def _temporal(name: str, raw: str, catalog: str, split: str, config: dict | None, options: SuiteOptions) -> Report:
    label = f"{split}-stable" if config else split
    work = Path(options.out) / name / label
    base = EvalOptions(raw=raw, catalog=catalog, store=f"file://{work / 'store'}", config=config)
    if split == "validation":  # the last train day is the validation day; the test day is never read
        base = base.model_copy(update={"end": make_split(base).train.end})
    report = run_eval(base, Settings())
    write_report(report, work / "report")
    return report


def _ndcg_row(name: str, split: str, config: str, report: Report) -> str:
    overall = {recommender: result.get("overall", {}) for recommender, result in report.results.items()}
    versus = next((c for c in report.comparisons if c["second"] == "item-kNN"), {})
    interval = f"{versus['low']:+.4f} .. {versus['high']:+.4f}" if "low" in versus else "–"
    return (
        f"| {name} | {split} | {config} | {overall[OURS].get('ndcg@10', 0):.4f} | "
        f"{overall['popularity'].get('ndcg@10', 0):.4f} | {overall['item-kNN'].get('ndcg@10', 0):.4f} | "
        f"{versus.get('difference', 0):+.4f} | {interval} | {versus.get('verdict', '–')} | "
        f"{overall[OURS].get('users', 0)} |"
    )


def synthetic_section(options: SuiteOptions, progress: Callable[[str], None]) -> list[str]:
    lines = [
        "## Synthetic (temporal protocol)",
        "",
        "| dataset | split | settings | ours | popularity | item-kNN | ours − item-kNN | 95% interval | verdict "
        "| users |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, (raw, catalog) in synthetic_datasets(options).items():
        for split in SPLITS:
            for config in (None, STABLE_TASTES):
                progress(f"synthetic {name} {split} {config or 'defaults'}")
                report = _temporal(name, raw, catalog, split, config, options)
                lines.append(_ndcg_row(name, split, "history_decay 1" if config else "defaults", report))
    return lines


def _differences(report: Report) -> list[str]:
    lines = [
        "| against | metric | difference | 95% interval | verdict |",
        "|---|---|---:|---|---|",
    ]
    for c in report.comparisons:
        if "low" not in c:
            continue
        lines.append(
            f"| {c['second']} | {c['metric']} | {c['difference']:+.4f} | {c['low']:+.4f} .. {c['high']:+.4f} | "
            f"{c['verdict']} |"
        )
    return lines


# A result table: its header, then one row per recommender from its results.
Table = tuple[str, Callable[[str, dict], str]]

SESSIONS_TABLE: Table = (
    "| recommender | HR@20 all | MRR@20 all | HR@20 new-target | MRR@20 new-target |\n|---|---:|---:|---:|---:|",
    lambda name, r: (
        f"| {name} | {r['all']['hit_rate@20']:.4f} | {r['all']['mrr@20']:.4f} | "
        f"{r['new-target']['hit_rate@20']:.4f} | {r['new-target']['mrr@20']:.4f} |"
    ),
)
HOLDOUT_TABLE: Table = (
    "| recommender | NDCG@10 | HR@10 | NDCG@20 | HR@20 | users |\n|---|---:|---:|---:|---:|---:|",
    lambda name, r: (
        f"| {name} | {r['overall']['ndcg@10']:.4f} | {r['overall']['hit_rate@10']:.4f} | "
        f"{r['overall']['ndcg@20']:.4f} | {r['overall']['hit_rate@20']:.4f} | {r['overall']['users']} |"
    ),
)


def _split_section(
    work: Path, run: Callable[[str], Report], table: Table, describe: Callable[[Report], list[str]]
) -> list[str]:
    """Run each split, write its report under work/<split>/report, and render its table and differences."""
    lines: list[str] = []
    header, row = table
    for split in SPLITS:
        report = run(split)
        write_report(report, work / split / "report")
        lines += [f"### {split}", "", header, *(row(name, r) for name, r in report.results.items())]
        lines += ["", *describe(report), "", *_differences(report), ""]
    return lines


def sessions_section(options: SuiteOptions, progress: Callable[[str], None]) -> list[str]:
    from recsys_tools.evaluation.sessions import SessionEvalOptions, run_sessions

    work = Path(options.out) / "yoochoose"
    data = str(Path(options.real) / "yoochoose-100k")

    def run(split: str) -> Report:
        progress(f"sessions {split}")
        return run_sessions(SessionEvalOptions(data=data, work=str(work / "work"), split=split), Settings())

    def describe(report: Report) -> list[str]:
        every, new = report.dataset.get("positions"), report.dataset.get("new_target_positions")
        return [f"Positions: {every} all, {new} new-target. Ours minus each baseline, new-target positions:"]

    head = ["## Real sessions: YOOCHOOSE (session next-item)", ""]
    return head + _split_section(work, run, SESSIONS_TABLE, describe)


def holdout_section(options: SuiteOptions, progress: Callable[[str], None]) -> list[str]:
    from recsys_tools.evaluation.holdout import HoldoutOptions, run_holdout

    work = Path(options.out) / "amazon"
    sequences = str(Path(options.real) / "amazon-video-games" / "sequences.txt.gz")

    def run(split: str) -> Report:
        progress(f"holdout {split}")
        holdout = HoldoutOptions(
            sequences=sequences,
            work_dir=str(work / "work"),
            split=split,
            ease=options.ease,
            ease_lambdas=EASE_LAMBDAS,
            recency_decays=EASE_DECAYS,
        )
        return run_holdout(holdout, Settings())

    def describe(report: Report) -> list[str]:
        return [*(f"- {note}" for note in report.notes), "", "Ours minus each baseline:"]

    head = ["## Real user histories: Amazon Video Games (last item held out)", ""]
    return head + _split_section(work, run, HOLDOUT_TABLE, describe)


def run_suite(options: SuiteOptions, progress: Callable[[str], None] = lambda _: None) -> str:
    """Run everything; returns the summary Markdown (also written to <out>/summary.md)."""
    started = time.perf_counter()
    lines = [f"# Evaluation suite ({dt.date.today()})", ""]
    lines += sessions_section(options, progress)
    lines += holdout_section(options, progress)
    lines += synthetic_section(options, progress)
    lines += ["", f"Total {time.perf_counter() - started:.0f} s."]
    text = "\n".join(lines) + "\n"
    Path(options.out).mkdir(parents=True, exist_ok=True)
    (Path(options.out) / "summary.md").write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_tools.evaluation.suite", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--real", required=True, help="the shared real data folder (e.g. ../shared/data/real)")
    parser.add_argument("--out", default=".out/eval-real", help="reports and summary.md (default .out/eval-real)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the generator's default dataset (10)")
    parser.add_argument("--no-ease", action="store_true", help="skip EASE (minutes) on the user histories")
    args = parser.parse_args(argv)
    options = SuiteOptions(real=args.real, out=args.out, seeds=args.seeds, ease=not args.no_ease)
    sys.stdout.write(run_suite(options, lambda step: print(f"eval-real: {step}", file=sys.stderr, flush=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
