"""What a daily run and the API cost on AWS, from measured step durations (benchmarks/steps.py) and list prices.

    .venv/bin/python benchmarks/costs.py [--steps .out/bench-runs/steps-{size}-x30.json ...]

For each data set: every invocation a daily run makes once the window exists (plan, the new day's ingest and
partials, validate, quality, the 30-day computes, publish, release), priced as Lambda bills it: memory (template.yaml's
default for the function) x duration x the arm64 price per GB-second, plus a price per request; Step Functions state
transitions; S3 requests. Durations are this machine's (2 cores), process start included: on Lambda a function with
more than 1,769 MB gets more than one vCPU, so the CPU-bound steps are if anything faster there. Prices: us-east-1
list prices, December 2026 (PRICES below); check the AWS pricing pages for your region.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RUNS
from steps import template_memory

# USD, us-east-1, arm64, on-demand list prices.
PRICES = {
    "lambda_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "sfn_transition": 0.025 / 1000,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "s3_gb_month": 0.023,
    "alarm_metric_month": 0.10,
    "custom_metric_month": 0.30,
    "logs_ingested_gb": 0.50,
    "http_api_request": 1.00 / 1e6,
    "xray_trace": 5.00 / 1e6,
}
# Invocations the steps benchmark does not run: the quality gate (off by default: returns at once) and release.
UNMEASURED = {"QualityGateFunction": 0.6, "ReleaseFunction": 0.5}
# State transitions of a daily run of one target: the pipeline's states and Map iterations, and its share of the
# daily run's (Targets, the Map iteration's two states, CountFailures, AnyFailed, the end).
TRANSITIONS_FIXED = 14
DAYS_PER_MONTH = 30.4


def daily_cost(steps: dict, memory: dict[str, int]) -> dict:
    rows = [row for row in steps["steps"] if row["daily"]]
    seconds: dict[str, float] = {}
    for row in rows:
        seconds[row["function"]] = seconds.get(row["function"], 0.0) + row["wall_s"]
    seconds.update(UNMEASURED)
    gb_seconds = {name: memory[name] / 1024 * value for name, value in seconds.items()}
    invocations = len(rows) + len(UNMEASURED)
    lambda_cost = sum(gb_seconds.values()) * PRICES["lambda_gb_second"] + invocations * PRICES["lambda_request"]
    partials = sum(1 for row in rows if row["function"] == "PartialsFunction")
    kinds = sum(1 for row in rows if row["function"] == "ComputeFunction")
    transitions = TRANSITIONS_FIXED + 2 * (1 + partials + kinds)
    # Reads: the window's partials per kind, the day's partition per partial, manifests; writes: partition, report,
    # quarantine, partials, artifacts, manifest, pointer, lease renewals (one per step).
    gets = steps["window_days"] * kinds + partials + 20
    puts = 3 + partials + kinds + 3 + invocations
    return {
        "estimated": steps.get("estimated", ""),
        "events_per_day": steps["events"],
        "window_days": steps["window_days"],
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "gb_seconds": round(sum(gb_seconds.values()), 1),
        "invocations": invocations,
        "lambda_usd": lambda_cost,
        "sfn_usd": transitions * PRICES["sfn_transition"],
        "s3_requests_usd": gets * PRICES["s3_get"] + puts * PRICES["s3_put"],
    }


def extrapolated(day_steps: dict, window_steps: dict, window_days: int) -> dict:
    """A daily run of a size whose window was not measured: its own day's steps (ingest, partials, publish: measured
    at that size), and the computes of a measured window scaled by the ratio of the windows' events (the merges grow
    about linearly with them)."""
    factor = day_steps["events"] * window_days / (window_steps["events"] * window_steps["window_days"])
    rows = [row | {"daily": True} for row in day_steps["steps"] if row["function"] != "ComputeFunction"]
    rows += [row | {"wall_s": row["wall_s"] * factor} for row in window_steps["steps"]
             if row["function"] == "ComputeFunction"]  # fmt: skip
    measured = f"{window_steps['window_days']} x {window_steps['events']:,}"
    label = f"{window_days}-day window; computes: the measured {measured}"
    return {"events": day_steps["events"], "window_days": window_days, "steps": rows,
            "estimated": label + (f" x {factor:g}" if factor != 1 else "")}  # fmt: skip


def render(days: list[dict]) -> str:
    lines = [
        "| events per day | Lambda GB-s per run | Lambda | Step Functions | S3 requests | per day | per month |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for day in days:
        total = day["lambda_usd"] + day["sfn_usd"] + day["s3_requests_usd"]
        note = f" (estimated {day['estimated']})" if day["estimated"] else ""
        lines.append(
            f"| {day['events_per_day']:,}{note} | {day['gb_seconds']:,.0f} | ${day['lambda_usd']:.4f} "
            f"| ${day['sfn_usd']:.4f} | ${day['s3_requests_usd']:.5f} | ${total:.4f} | ${total * DAYS_PER_MONTH:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = sorted(RUNS.glob("steps-*-x30.json"))
    parser.add_argument("--steps", type=Path, nargs="*", default=default, help="steps.py results (--window-days 30)")
    parser.add_argument(
        "--extrapolate",
        nargs=3,
        metavar=("DAY_JSON", "WINDOW_JSON", "WINDOW_DAYS"),
        help="also price a larger day: its one-day steps.py result, a measured window to scale, its window's days",
    )
    args = parser.parse_args(argv)
    memory = template_memory()
    measured = [json.loads(path.read_text()) for path in args.steps]
    if args.extrapolate:
        day, window = (json.loads(Path(path).read_text()) for path in args.extrapolate[:2])
        measured.append(extrapolated(day, window, int(args.extrapolate[2])))
    days = sorted((daily_cost(steps, memory) for steps in measured), key=lambda d: d["events_per_day"])
    print(json.dumps({"prices": PRICES, "memory_mb": memory, "days": days}, indent=2))
    print(render(days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
