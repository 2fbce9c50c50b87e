"""Lambda sizing: every pipeline step of one day alone, each in a fresh process, as each runs in its own Lambda.

On AWS each state is its own invocation, so what must fit a function's memory is its largest single step, not the
local run's peak (all steps in one process). This runs plan, ingest, validate, every (day, kind) partial, every
kind's compute (a merge: the partials are built first, as BuildPartials does) and publish, one subprocess each
(`steps.py one ...`), and measures wall time and the process's own peak RSS (VmHWM at its end: wait4's figure would
include the parent's peak, which a forked child inherits). It then gives each function the memory its
largest step needs for the peak to stay at or below 70% of it (rounded up to 64 MB; Lambda's range is 128 to
10,240 MB), next to template.yaml's default.

With `--window-days N` the data set has N days: every day is ingested and its partials built (a backfill), and the
kinds are computed over all N. The invocations a daily run makes, once the window exists, are reported apart
(`daily`: plan, the last day's ingest and partials, validate, the N-day computes, publish), which is what
docs/explanation/costs.md prices.

Usage: .venv/bin/python benchmarks/steps.py --events 10m [--window-days 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import yaml
from common import PYTHON, RUNS, log, parse_size, proc_status, run_measured
from datasets import bench_spec, dataset_key, ensure

HEADROOM = 0.7  # the step's peak RSS stays at or below this share of the function's memory
RUN_ID = "bench-steps"
FUNCTION_OF = {"plan": "PlanFunction", "ingest": "IngestFunction", "validate": "ValidateFunction",
               "partial": "PartialsFunction", "compute": "ComputeFunction", "publish": "PublishFunction"}  # fmt: skip
MEMORY_PARAMETER = {"IngestFunction": "IngestMemorySize", "PartialsFunction": "PartialsMemorySize",
                    "ComputeFunction": "ComputeMemorySize", "PublishFunction": "PublishMemorySize"}  # fmt: skip


def one(step: str, request: dict, store: str, raw: str, catalog: str) -> None:
    """In the subprocess: one step function with the request, as its handler would call it."""
    from recsys.pipeline import models, steps
    from recsys.settings import load_settings

    settings = load_settings(store=store, raw_uri=raw, catalog_uri=catalog)
    call = {
        "plan": (steps.plan, models.PlanRequest),
        "ingest": (steps.ingest, models.IngestRequest),
        "validate": (steps.validate, models.ValidateRequest),
        "partial": (steps.partial, models.PartialRequest),
        "compute": (steps.compute, models.ComputeRequest),
        "publish": (steps.publish_run, models.PublishRequest),
    }
    function, model = call[step]
    result = function(model.model_validate(request), settings)
    print(json.dumps({"result": result.model_dump(mode="json"), "peak_rss_mb": proc_status()["VmHWM"]}))


def template_memory() -> dict[str, int]:
    """Each function's default MemorySize in template.yaml (parameters resolved to their defaults)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: {suffix: loader.construct_scalar(node)}
                                 if isinstance(node, yaml.ScalarNode) else None)  # fmt: skip
    template = yaml.load((Path(__file__).resolve().parents[1] / "template.yaml").read_text(), Loader=Loader)
    default = template["Globals"]["Function"].get("MemorySize", 128)
    out = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        memory = resource["Properties"].get("MemorySize", default)
        if isinstance(memory, dict):  # !Ref SomeParameter
            memory = template["Parameters"][memory["Ref"]]["Default"]
        out[name] = int(memory)
    return out


def measure(events: int, window_days: int = 1) -> dict:
    spec = bench_spec(events_per_day=events, days=window_days)
    dataset = ensure(spec, log=log)
    day, last = spec.day_list[0], spec.day_list[-1]
    store_dir = RUNS / f"steps-{dataset_key(spec)}"
    if store_dir.exists():
        import shutil

        shutil.rmtree(store_dir)
    store = f"file://{store_dir}"
    scope = {"tenant": spec.tenant, "surface": spec.surface, "run_id": RUN_ID}
    window = {"start": day.isoformat(), "end": last.isoformat()}
    rows: list[dict] = []

    def run(step: str, request: dict, label: str, daily: bool = True) -> dict:
        argv = [PYTHON, __file__, "one", step, json.dumps(request), store, str(dataset.raw), str(dataset.catalog)]
        measured = run_measured(argv).check()
        answer = measured.json()
        rows.append({"step": label, "function": FUNCTION_OF[step], "wall_s": round(measured.wall, 2),
                     "peak_rss_mb": round(answer["peak_rss_mb"]), "daily": daily})  # fmt: skip
        log(f"steps {label}: {measured.wall:.1f}s, {answer['peak_rss_mb']:.0f} MB")
        return answer["result"]

    plan = run("plan", {"input": {"tenant": spec.tenant, "surface": spec.surface, **window}, "run_id": RUN_ID}, "plan")
    for ingested in plan["days"]:
        latest = ingested == last.isoformat()
        run("ingest", {**scope, "day": ingested, "raw": plan["raw"]}, f"ingest {ingested}", daily=latest)
    run("validate", {**scope, **window, "days": [last.isoformat()]}, "validate")
    for item in plan["partials"]:
        latest = item["day"] == last.isoformat()
        run("partial", {**scope, **item}, f"partial {item['kind']} {item['day']}", daily=latest)
    artifacts = []
    for kind in plan["kinds"]:
        request = {**scope, **window, "kind": kind, "catalog": plan["catalog"]}
        artifacts.append(run("compute", request, f"compute {kind}")["artifact"])
    run("publish", {**scope, **window, "artifacts": artifacts}, "publish")

    defaults = template_memory()
    functions = {}
    for row in rows:
        entry = functions.setdefault(row["function"], {"peak_rss_mb": 0, "step": ""})
        if row["peak_rss_mb"] > entry["peak_rss_mb"]:
            entry.update(peak_rss_mb=row["peak_rss_mb"], step=row["step"])
    for name, entry in functions.items():
        needed = max(128, math.ceil(entry["peak_rss_mb"] / HEADROOM / 64) * 64)
        entry.update(needed_mb=needed, template_mb=defaults[name], parameter=MEMORY_PARAMETER.get(name),
                     share_of_template=round(entry["peak_rss_mb"] / defaults[name], 2))  # fmt: skip
    daily = [row for row in rows if row["daily"]]
    return {
        "events": events, "window_days": window_days, "start": day.isoformat(), "end": last.isoformat(),
        "headroom": HEADROOM, "steps": rows, "functions": functions,
        "daily": {"invocations": len(daily), "wall_s": round(sum(row["wall_s"] for row in daily), 1),
                  "by_function": {name: round(sum(r["wall_s"] for r in daily if r["function"] == name), 2)
                                  for name in dict.fromkeys(r["function"] for r in daily)}},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["one"]:
        step, request, store, raw, catalog = args[1:6]
        one(step, json.loads(request), store, raw, catalog)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="10m", help="events of the day (e.g. 1m, 10m)")
    parser.add_argument("--window-days", type=int, default=1, help="days of the data set and the window")
    parser.add_argument("--json", type=Path, help="write the results here")
    options = parser.parse_args(args)
    started = time.perf_counter()
    result = measure(parse_size(options.events), options.window_days)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="minutes")
    text = json.dumps(result, indent=2)
    if options.json:
        options.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
