"""Profile every pipeline stage of one day, sequentially and in-process, under cProfile.

The same step functions the Lambda handlers call (recsys.pipeline.steps: plan, ingest, validate, compute per kind,
quality, publish), one after the other on a fresh store, without the state machine: no parallel compute steps, so
each stage's wall time, CPU time and peak RSS (VmHWM, reset before each stage) are its own. cProfile sees the
calling thread only; work pyarrow does on its own threads is charged to the Python call that waited for it.

Usage: .venv/bin/python benchmarks/profile_stages.py --raw DIR --catalog CSV --day 2026-01-01 --store DIR [--top 12]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import pstats
import resource
import shutil
import time
from pathlib import Path

from common import SURFACE, TENANT, proc_status, reset_peak_rss


def _top(profile: cProfile.Profile, limit: int) -> dict[str, list[dict]]:
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename
        for marker in ("site-packages/", "layers/recsys/", "lib/python3"):
            if marker in filename:
                short = filename.split(marker, 1)[1]
                break
        label = f"{short}:{line}({name})" if short != "~" else name
        rows.append({"function": label, "calls": ncalls, "tottime": tottime, "cumtime": cumtime})
    by_self = sorted(rows, key=lambda r: r["tottime"], reverse=True)[:limit]
    ours = [r for r in rows if r["function"].startswith(("recsys/", "fastapi/", "starlette/", "mangum/"))]
    by_cum = sorted(ours, key=lambda r: r["cumtime"], reverse=True)[:limit]
    return {"self": by_self, "recsys_cumulative": by_cum}


def profile_run(raw: str, catalog: str, day: dt.date, store: Path, top: int) -> dict:
    from recsys.pipeline import models, steps
    from recsys.settings import load_settings

    shutil.rmtree(store, ignore_errors=True)
    settings = load_settings(store=f"file://{store}")
    scope = {"tenant": TENANT, "surface": SURFACE, "run_id": "profile"}
    stages: list[dict] = []
    peak_reset = True

    def stage(name: str, call):
        nonlocal peak_reset
        peak_reset = reset_peak_rss() and peak_reset
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        try:
            result = call()
        finally:
            profile.disable()
        wall = time.perf_counter() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        status = proc_status()
        stages.append(
            {
                "stage": name,
                "wall_s": wall,
                "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
                "sys_s": cpu1.ru_stime - cpu0.ru_stime,
                "peak_rss_mb": status["VmHWM"],
                "rss_after_mb": status["VmRSS"],
                "top": _top(profile, top),
            }
        )
        return result

    request = models.RunRequest(tenant=TENANT, surface=SURFACE, start=day, end=day, raw=raw, catalog=catalog)
    plan = stage("plan", lambda: steps.plan(models.PlanRequest(input=request, run_id="profile"), settings))
    for planned_day in plan.days:
        stage(
            f"ingest {planned_day}",
            lambda d=planned_day: steps.ingest(models.IngestRequest(**scope, day=d, raw=plan.raw), settings),
        )
    window = {"start": plan.start, "end": plan.end}
    stage("validate", lambda: steps.validate(models.ValidateRequest(**scope, **window, days=plan.days), settings))
    computed = []
    for kind in plan.kinds:
        computed.append(
            stage(
                f"compute {kind}",
                lambda k=kind: steps.compute(
                    models.ComputeRequest(**scope, **window, kind=k, catalog=plan.catalog), settings
                ),
            )
        )
    quality = stage(
        "quality",
        lambda: steps.quality(
            models.QualityRequest(**scope, **window, kinds=plan.kinds, catalog=plan.catalog), settings
        ),
    )
    artifacts = [c.artifact for c in computed]
    stage(
        "publish",
        lambda: steps.publish_run(
            models.PublishRequest(**scope, **window, artifacts=artifacts, quality=quality), settings
        ),
    )
    return {"stages": stages, "peak_reset": peak_reset, "total_wall_s": sum(s["wall_s"] for s in stages)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--day", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print(json.dumps(profile_run(args.raw, args.catalog, args.day, args.store, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
