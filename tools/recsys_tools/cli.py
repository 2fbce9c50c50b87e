"""`recsys`: run the pipeline locally through the real state machine, inspect and roll back manifests.

Exit codes: 0 ok, 1 the run (or the operation) failed, 2 usage or configuration error.
Errors are one line on stderr; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from recsys import __version__, paths
from recsys.days import Window, parse_day
from recsys.errors import ConfigError, RecsysError
from recsys.pipeline.models import RunRequest
from recsys.publish import service as registry
from recsys.serve.problems import Problem
from recsys.settings import StoreSettings, load_settings
from recsys.store import StoreError, open_store
from recsys_tools.local.runner import Execution, LocalPipeline, StepEvent

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_STORE = StoreSettings().store  # RECSYS_STORE, else file://.out


class UsageError(Exception):
    """Bad arguments: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 itself; keep it one line
        raise UsageError(message)


def _day(text: str) -> dt.date:
    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store_uri(text: str) -> str:
    """Normalize the store URI (file:// paths absolute) so manifests record where things really are."""
    return open_store(text).uri


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="recsys", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"recsys {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def scoped(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--tenant", required=True)
        sub.add_argument("--surface", required=True)
        sub.add_argument(
            "--store",
            default=DEFAULT_STORE,
            help="store URI: file://DIR or s3://BUCKET[/PREFIX] (default: $RECSYS_STORE or file://.out)",
        )
        return sub

    run = scoped("run", "run a window through statemachine/pipeline.asl.json locally (moto), real handlers")
    run.add_argument(
        "--start",
        type=_day,
        help="first day, YYYY-MM-DD (with --end; both omitted: the RECSYS_WINDOW_DAYS window ending yesterday)",
    )
    run.add_argument("--end", type=_day, help="last day, inclusive")
    run.add_argument("--raw", help="raw events: a directory, a .jsonl[.gz] file or s3://bucket/prefix")
    run.add_argument("--catalog", help="catalog CSV or JSONL (needed for content_sim)")
    run.add_argument("--kinds", help="comma-separated artifact kinds (default: RECSYS_KINDS, all six)")
    run.add_argument("--promote", action="store_true", help="move the pointer even for a window older than current")
    run.add_argument("--json", action="store_true", help="print the execution output as JSON instead of a summary")
    run.add_argument("--quiet", action="store_true", help="no progress lines")

    manifest = commands.add_parser("manifest", help="inspect manifests")
    manifest_commands = manifest.add_subparsers(dest="manifest_command", required=True, parser_class=_Parser)
    for name, help_text in (
        ("show", "print the current manifest as JSON"),
        ("history", "list manifest versions, newest first"),
    ):
        sub = manifest_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--tenant", required=True)
        sub.add_argument("--surface", required=True)
        sub.add_argument("--store", default=DEFAULT_STORE)
        if name == "history":
            sub.add_argument("--json", action="store_true")

    rollback = scoped("rollback", "move the current pointer to an earlier manifest version (CAS)")
    rollback.add_argument("--to", help="manifest version (default: the current manifest's previous version)")

    serve = commands.add_parser(
        "serve",
        help="run the recommend API locally (uvicorn; dev auth on)",
        description="run the recommend API locally (uvicorn; dev auth on)",
    )
    serve.add_argument("--store", default=DEFAULT_STORE, help="store URI holding the manifests and artifacts")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-dev-auth",
        action="store_true",
        help="require real auth (X-API-Key with API_KEY_ENABLED=true) instead of the X-Dev-Org-Id header",
    )
    serve.add_argument("--no-console", action="store_true", help="leave out the operator console (/console)")

    recommend = scoped("recommend", "recommendations for one user (or --users FILE), same code as /v1/recommend")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id")
    who.add_argument("--users", help="file with one user id per line (batch mode; needs --out)")
    recommend.add_argument("--out", help="batch output: one JSON line per user")
    recommend.add_argument("--k", type=int, help="how many items (1..200, default 20)")
    recommend.add_argument("--anchors", help="comma-separated anchor item ids")
    recommend.add_argument("--segment", help="segment (default 'default')")

    similar = scoped("similar", "items similar to one item, same code as /v1/similar")
    similar.add_argument("--item", required=True, help="item id")
    similar.add_argument("--k", type=int, help="how many items (1..200, default 20)")

    evaluate = commands.add_parser(
        "eval",
        help="offline evaluation: real pipeline and ranking against baselines, on raw events or real datasets",
        description="offline evaluation: the real pipeline and ranking against baselines, with intervals. "
        "Protocols: temporal (raw events, the last days held out), sessions (next item of anonymous sessions, "
        "YOOCHOOSE format), holdout (each user's last items held out, `user item` sequences), logs (the lists the "
        "API served joined to their outcomes: CTR, ranking metrics, experiments, off-policy estimates)",
    )
    evaluate.add_argument(
        "--protocol",
        choices=("temporal", "sessions", "holdout", "logs"),
        default="temporal",
        help="default temporal",
    )
    evaluate.add_argument(
        "--raw", help="temporal: raw events laid out in dt=YYYY-MM-DD/ folders; logs: a raw JSONL[.gz] file or folder"
    )
    evaluate.add_argument(
        "--data",
        help="sessions: a folder with train.tsv.gz and valid.tsv.gz (SessionId ItemId Time); "
        "holdout: a sequences file (`user_id item_id` lines, each user's in time order)",
    )
    evaluate.add_argument(
        "--split",
        choices=("validation", "test"),
        default="validation",
        help="sessions/holdout: validation (choose settings here) or test (report here), default validation",
    )
    evaluate.add_argument(
        "--work", default=".out/eval-work", help="sessions/holdout: converted raw events, stores and caches"
    )
    evaluate.add_argument("--catalog", help="catalog CSV or JSONL (content_sim)")
    evaluate.add_argument("--tenant", default="demo")
    evaluate.add_argument("--surface", default="home")
    evaluate.add_argument("--store", default="file://.out/eval", help="where the evaluation's pipeline writes")
    evaluate.add_argument("--out", default=".out/eval-report", help="folder for report.json, report.md, report.png")
    evaluate.add_argument(
        "--report-store", help="also keep report.json in this store (e.g. the one the console serves) under reports/"
    )
    evaluate.add_argument("--train-days", type=int, help="train window length (default: every day before the test)")
    evaluate.add_argument("--test-days", type=int, default=1, help="test window length (default 1)")
    evaluate.add_argument("--end", type=_day, help="last test day (default: the last day in the raw data)")
    evaluate.add_argument("--k", default="5,10,20", help="cut-offs, comma-separated (default 5,10,20)")
    evaluate.add_argument(
        "--config", help="temporal: a tenant config to evaluate with, JSON or @FILE (e.g. '{\"history_decay\": 1}')"
    )
    evaluate.add_argument(
        "--tune",
        action="store_true",
        help="choose blend weights and decays on the last train days (validation) and write them to the tenant "
        "config when they beat the defaults by more than one standard error",
    )
    evaluate.add_argument(
        "--trials", type=int, default=8, help="random blend-weight settings --tune tries after the decays (default 8)"
    )
    evaluate.add_argument("--tune-days", type=int, default=2, help="train days --tune holds out (default 2)")
    evaluate.add_argument(
        "--tune-min-users", type=int, default=30, help="--tune refuses fewer validation users (default 30)"
    )
    evaluate.add_argument("--seed", type=int, default=7, help="seed of --tune's search (results are deterministic)")
    evaluate.add_argument(
        "--attribution-hours",
        type=float,
        default=24.0,
        help="logs: an outcome joins its list up to this many hours after it (default 24)",
    )
    evaluate.add_argument(
        "--reward",
        choices=("click", "conversion"),
        default="click",
        help="logs: what makes a shown item relevant: a click (default) or an add_to_cart/purchase",
    )
    evaluate.add_argument("--experiment", help="logs: only this experiment_id (default every one in the logs)")
    evaluate.add_argument("--control", help="logs: the control variant (default the first in sorted order)")
    evaluate.add_argument(
        "--split-weights", help="logs: the expected split for the sample-ratio check, e.g. A=90,B=10 (default equal)"
    )
    evaluate.add_argument(
        "--aa-check",
        action="store_true",
        help="logs: an A/A check: every variant must be level with the control and the split must match (exit 1 if "
        "not); without an experiment, the subjects are split in two halves",
    )
    evaluate.add_argument(
        "--clip", type=float, default=10.0, help="logs: off-policy importance weights are clipped here (default 10)"
    )
    evaluate.add_argument(
        "--min-propensity",
        type=float,
        default=0.001,
        help="logs: logged propensities below this are raised to it (default 0.001)",
    )

    gc = commands.add_parser(
        "gc",
        help="delete unreferenced old artifacts, old partials, canonical days and quarantine files",
        description="delete what no kept manifest names and what the retention settings expire "
        "(docs/how-to/retention.md); each tenant/surface under its run lease",
    )
    gc.add_argument("--tenant", help="one tenant (with --surface); default every tenant/surface in the store")
    gc.add_argument("--surface")
    gc.add_argument("--store", default=DEFAULT_STORE)
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted, with bytes; delete nothing")
    gc.add_argument(
        "--keep-manifests", type=int, help="newest manifest versions kept for rollback (RECSYS_RETENTION__*)"
    )
    gc.add_argument("--min-age-days", type=int, help="unreferenced artifacts older than this go (RECSYS_RETENTION__*)")
    gc.add_argument("--json", action="store_true", help="print the result as JSON, every deletion listed")

    fresh = commands.add_parser(
        "freshness",
        help="how old each served manifest is, against the freshness SLO",
        description="the age of every target's current manifest (RECSYS_TARGETS or --targets) and of every "
        "tenant/surface with one, as FreshnessFunction measures it; exit 1 if one is stale or missing",
    )
    fresh.add_argument("--targets", help="tenant/surface,... (default RECSYS_TARGETS)")
    fresh.add_argument("--slo-hours", type=float, help="the SLO (default RECSYS_FRESHNESS_SLO_HOURS, 36)")
    fresh.add_argument("--store", default=DEFAULT_STORE)
    fresh.add_argument("--json", action="store_true")

    forget = scoped("forget-user", "remove one user's events from the canonical partitions, then rebuild")
    forget.add_argument("--user", required=True, help="the user_id whose events are removed")
    forget.add_argument("--dry-run", action="store_true", help="count the user's events per day; change nothing")
    forget.add_argument("--json", action="store_true")

    database = commands.add_parser("db", help="Postgres: the schema, loading raw events, the signal store")
    db_commands = database.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    url_help = "libpq URI (default: $RECSYS_DATABASE__URL; credentials also from PGPASSWORD or the secret)"
    migrate = db_commands.add_parser("migrate", help="apply the shipped schema (idempotent)")
    migrate.add_argument("--url", help=url_help)
    load = db_commands.add_parser(
        "load-events", help="insert raw JSONL events into exposure_events (to try the Postgres event source)"
    )
    load.add_argument("--url", help=url_help)
    load.add_argument("--raw", required=True, help="raw events: a directory, a .jsonl[.gz] file or s3://bucket/prefix")
    load.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    load.add_argument("--end", type=_day, required=True, help="last day, inclusive")
    load.add_argument("--table", default="exposure_events", help="the events table (default exposure_events)")
    signals = db_commands.add_parser("signals", help="the signal store's versions of a tenant/surface")
    signals.add_argument("--url", help=url_help)
    signals.add_argument("--tenant", required=True)
    signals.add_argument("--surface", required=True)
    signals.add_argument("--json", action="store_true")

    api_key = commands.add_parser("api-key", help="manage API keys (stored hashed in the store)")
    key_commands = api_key.add_subparsers(dest="api_key_command", required=True, parser_class=_Parser)
    create = key_commands.add_parser("create", help="create a key for a tenant; prints it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--roles", default="", help="comma-separated roles, e.g. admin or viewer")
    create.add_argument("--name", default="cli", help="a label for the key")
    create.add_argument("--store", default=DEFAULT_STORE)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its hash")
    revoke.add_argument("--hash", required=True, dest="key_hash")
    revoke.add_argument("--store", default=DEFAULT_STORE)
    return parser


def _progress(event: StepEvent) -> None:
    r, took = event.result or {}, f"{event.seconds:5.2f}s"
    if event.error and event.error.startswith("RunInProgress: "):
        line = f"waiting (the state machine retries): {event.error.removeprefix('RunInProgress: ')}"
    elif event.error:
        line = f"{event.function} failed: {event.error}"
    elif event.function == "plan":
        window = (dt.date.fromisoformat(r["end"]) - dt.date.fromisoformat(r["start"])).days + 1
        skipped = "".join(f"; {kind} skipped: {why}" for kind, why in r.get("skipped", {}).items())
        line = (
            f"plan: window {r['start']}..{r['end']} ({window} days), ingesting {len(r['days'])} day(s), "
            f"kinds {', '.join(r['kinds'])}{skipped}"
        )
    elif event.function == "ingest":
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items())
        line = (
            f"ingest {r['day']}: {r['accepted']} accepted, {r['duplicates']} duplicates, "
            f"{r['quarantined']} quarantined" + (f" ({reasons})" if reasons else "")
        )
        if r.get("damaged_files"):
            line += "; DAMAGED: " + ", ".join(f"{d['source']} ({d['error']})" for d in r["damaged_files"])
        if r.get("kept_existing"):
            line = f"ingest {r['day']}: no raw files any more; kept the {r['accepted']} events ingested before"
    elif event.function == "quality":
        line = f"quality gate: {'passed' if r['passed'] else 'FAILED'}: {r['reason']}"
    elif event.function == "validate":
        line = f"validate: {r['checked']} gate checks passed, {r['events']} events"
    elif event.function == "compute":
        a = r["artifact"]
        line = (
            f"compute {a['kind']}: {a['rows']} rows, version {a['version'][:12]} "
            f"({'new' if r['written'] else 'reused'}; partials {r['partials_built']} built, "
            f"{r['partials_reused']} reused{'; window sum ' + r['window_sum'] if r.get('window_sum') else ''})"
        )
    elif event.function == "release":
        line = "run lease given back" if r["released"] else "run lease not held any more (nothing to give back)"
    else:
        line = f"{event.function}: {r.get('decision', 'done')}"
    sys.stderr.write(f"  [{took}] {line}\n")  # one write per line: steps report from parallel threads
    sys.stderr.flush()


def _summary(execution: Execution, seconds: float) -> str:
    out = execution.output or {}
    plan, published = out["plan"], out["published"]
    lines = [
        f"run {plan['run_id']}: {execution.status} in {seconds:.1f}s",
        f"window {plan['start']}..{plan['end']} for {plan['tenant']}/{plan['surface']}; "
        f"ingested {len(plan['days'])} day(s)",
        f"  {'day':<10} {'read':>9} {'accepted':>9} {'dupes':>7} {'quarantined':>11}",
    ]
    for day in out["ingested"]:
        lines.append(
            f"  {day['day']:<10} {day['read']:>9} {day['accepted']:>9} {day['duplicates']:>7} {day['quarantined']:>11}"
        )
    lines.append("artifacts")
    for computed in out["computed"]:
        a = computed["artifact"]
        lines.append(
            f"  {a['kind']:<12} {a['version'][:16]}  {a['rows']:>9} rows  "
            f"{'written' if computed['written'] else 'reused (identical)'}"
        )
    decision = {
        "moved": "pointer moved" + (f" from {published['pointer_before'][:16]}" if published["pointer_before"] else ""),
        "unchanged": "pointer already current (nothing rewritten)",
        "kept_newer": f"pointer kept on newer {published['pointer_after'][:16]} (backfill; use --promote to move it)",
        "refused_quality": "pointer NOT moved: the quality gate refused the candidate (see the quality line above)",
    }[published["decision"]]
    quality = out.get("quality") or {}
    if quality.get("enabled"):
        lines.append(f"quality gate {'passed' if quality['passed'] else 'failed'}: {quality['reason']}")
    lines.append(f"manifest {published['manifest_version'][:16]}: {decision}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    store = _store_uri(args.store)
    settings = load_settings()  # invalid RECSYS_* values are a usage error, reported before anything runs
    if not (args.raw or settings.raw_uri):
        raise UsageError("no raw events: pass --raw PATH_OR_S3 or set RECSYS_RAW_URI")
    request = RunRequest(
        tenant=args.tenant,
        surface=args.surface,
        start=args.start,
        end=args.end,
        promote=args.promote,
        raw=args.raw,
        catalog=args.catalog,
        kinds=[k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None,
    )
    started = time.perf_counter()
    if not args.quiet:
        print(f"recsys run {request.tenant}/{request.surface} -> {store}", file=sys.stderr, flush=True)
    with LocalPipeline(
        {"RECSYS_STORE": store},
        passthrough_s3=store.startswith("s3://"),
        on_step=None if args.quiet else _progress,
        concurrency=settings.local_concurrency,
    ) as pipeline:
        execution = pipeline.run(request.model_dump(mode="json", exclude_none=True))
    seconds = time.perf_counter() - started
    if execution.status != "SUCCEEDED":
        print(f"recsys: run failed: {execution.message}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(execution.output, indent=2) if args.json else _summary(execution, seconds))
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    if args.manifest_command == "show":
        pointer = registry.read_pointer(store, args.tenant, args.surface)
        if pointer is None:
            raise RecsysError(f"no current manifest for {args.tenant}/{args.surface} in {store.uri}")
        print(pointer.manifest.to_bytes().decode())
        return EXIT_OK
    manifests = registry.history(store, args.tenant, args.surface)
    pointer = registry.read_pointer(store, args.tenant, args.surface)
    current = pointer.manifest.manifest_version if pointer else None
    if args.json:
        print(
            json.dumps(
                [m.model_dump(mode="json") | {"is_current": m.manifest_version == current} for m in manifests], indent=2
            )
        )
        return EXIT_OK
    if not manifests:
        raise RecsysError(f"no manifests for {args.tenant}/{args.surface} in {store.uri}")
    print(f"{'manifest_version':<20} {'created':<20} {'window':<22} kinds")
    for m in manifests:
        marker = "  <- current" if m.manifest_version == current else ""
        print(f"{m.manifest_version[:18]:<20} {m.updated_at:<20} {str(m.window):<22} {','.join(m.current)}{marker}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from recsys.publish.service import signal_store  # with RECSYS_DATABASE__SIGNALS: the signal store moves too

    store = open_store(args.store)
    with signal_store(load_settings(store=args.store)) as signals:
        result = registry.rollback(store, args.tenant, args.surface, args.to, signals)
    print(f"rolled back {args.tenant}/{args.surface}: {result.rolled_back_from} -> {result.rolled_back_to}")
    return EXIT_OK


def _local_service(store: str):
    """The API's service over `store`, for in-process queries (no HTTP, no auth: the CLI is the operator)."""
    from recsys.serve.service import RecommendService
    from recsys.serve.settings import ServeSettings

    return RecommendService.from_settings(ServeSettings(RECSYS_STORE=store))


def _cli_caller(tenant: str):
    from recsys.serve.auth import Caller

    return Caller(tenant=tenant, roles=frozenset({"admin"}), user_id="cli", source="dev", is_admin=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from recsys.serve.app import create_app
    from recsys.serve.auth import AuthSettings
    from recsys.serve.settings import ServeSettings

    # Powertools reads this variable itself (no EMF lines on a laptop), so it is set, not passed.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    dev_auth = not args.no_dev_auth
    # The deployed role names: a dev caller acts with the roles of its X-Dev-Roles header (the console's sign-in
    # sets them), so the admin routes answer 403 to a dev caller without one.
    settings = ServeSettings(RECSYS_STORE=_store_uri(args.store), RECSYS_CONSOLE=not args.no_console)
    app = create_app(settings, AuthSettings(DEV_AUTH_ENABLED=dev_auth))
    base = f"http://{args.host}:{args.port}"
    print(
        f"recsys serve: {base} (docs at /docs) over {_store_uri(args.store)}"
        + ("; dev auth: send X-Dev-Org-Id: <tenant>" if dev_auth else "")
        + (f"\nconsole: {base}/console/" if settings.console else ""),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def cmd_recommend(args: argparse.Namespace) -> int:
    from recsys.serve.models import Anchors, RecommendRequest, User

    service = _local_service(_store_uri(args.store))
    caller = _cli_caller(args.tenant)
    anchors = [a for a in (args.anchors or "").split(",") if a.strip()]

    def query(user: str, request_id: str):
        request = RecommendRequest(
            surface=args.surface,
            segment=args.segment,
            k=args.k,
            user=User(user_id=user),
            anchors=Anchors(item_ids=anchors) if anchors else None,
        )
        return service.recommend(caller, request, request_id)

    if args.user:
        print(query(args.user, "cli").model_dump_json(indent=2, exclude_none=True))
        return EXIT_OK
    if not args.out:
        raise UsageError("--users needs --out FILE")
    users = [line.strip() for line in Path(args.users).read_text().splitlines() if line.strip()]
    with open(args.out, "w") as out:
        for n, user in enumerate(users, 1):
            items = query(user, f"batch-{n}").model_dump(mode="json", exclude_none=True)["items"]
            out.write(json.dumps({"user_id": user, "items": items}) + "\n")
            if n % 1000 == 0:
                print(f"  {n}/{len(users)} users", file=sys.stderr, flush=True)
    print(f"wrote {len(users)} users to {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_similar(args: argparse.Namespace) -> int:
    from recsys.serve.models import SimilarRequest

    service = _local_service(_store_uri(args.store))
    request = SimilarRequest(surface=args.surface, item_id=args.item, k=args.k)
    print(service.similar(_cli_caller(args.tenant), request, "cli").model_dump_json(indent=2, exclude_none=True))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from recsys_tools.evaluation.run import EvalOptions, run_eval

    if args.protocol == "logs":
        return _eval_logs(args)
    if args.protocol != "temporal":
        return _eval_real(args)
    if not args.raw:
        raise UsageError("recsys eval: --raw is required (or use --protocol sessions|holdout with --data)")
    ks = _ks(args.k)
    options = EvalOptions(
        tenant=args.tenant,
        surface=args.surface,
        raw=args.raw,
        catalog=args.catalog,
        store=_store_uri(args.store),
        train_days=args.train_days,
        test_days=args.test_days,
        end=args.end,
        ks=ks,
        config=_json_arg(args.config, "--config") if args.config else None,
        tune=args.tune,
        tune_trials=args.trials,
        tune_days=args.tune_days,
        tune_min_users=args.tune_min_users,
        seed=args.seed,
    )
    print(f"recsys eval {args.tenant}/{args.surface}: raw {args.raw} -> {options.store}", file=sys.stderr)
    _show_report(run_eval(options, load_settings()), args)
    return EXIT_OK


def _eval_logs(args: argparse.Namespace) -> int:
    """recsys eval --protocol logs: the served lists joined to their outcomes; exit 1 on a failed --aa-check."""
    from recsys_tools.evaluation.log_run import run_logs
    from recsys_tools.evaluation.logs import LogOptions

    if not args.raw:
        raise UsageError("recsys eval --protocol logs: --raw is required (the exposure and outcome logs)")
    if args.tune or args.config:
        raise UsageError("--tune and --config work with --protocol temporal")
    weights = None
    if args.split_weights:
        try:
            weights = {
                name.strip(): float(value)
                for name, _, value in (part.partition("=") for part in args.split_weights.split(","))
            }
        except ValueError:
            raise UsageError(f"--split-weights must be VARIANT=WEIGHT,..., got {args.split_weights!r}") from None
    options = LogOptions(
        raw=args.raw,
        tenant=args.tenant,
        surface=args.surface,
        ks=_ks(args.k),
        attribution_hours=args.attribution_hours,
        reward=args.reward,
        experiment=args.experiment,
        control=args.control,
        split_weights=weights,
        aa_check=args.aa_check,
        clip=args.clip,
        min_propensity=args.min_propensity,
    )
    print(f"recsys eval --protocol logs {args.tenant}/{args.surface}: {args.raw}", file=sys.stderr)
    evaluation = run_logs(options)
    _show_report(evaluation.report, args)
    return EXIT_FAILED if evaluation.aa_passed is False else EXIT_OK


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise UsageError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UsageError(f"--k must be positive integers, got {text!r}")
    return ks


def _json_arg(text: str, option: str) -> dict:
    """A JSON object given inline or as @FILE."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option}: a JSON object is expected")
    return value


def _eval_real(args: argparse.Namespace) -> int:
    """recsys eval --protocol sessions|holdout: a real dataset's split through the pipeline and the ranking."""

    if not args.data:
        raise UsageError(f"recsys eval --protocol {args.protocol}: --data is required")
    if args.tune or args.config:
        raise UsageError("--tune and --config work with --protocol temporal; real-data protocols use the defaults")
    print(f"recsys eval --protocol {args.protocol} --split {args.split}: {args.data}", file=sys.stderr)
    if args.protocol == "sessions":
        from recsys_tools.evaluation.sessions import SessionEvalOptions, run_sessions

        options = SessionEvalOptions(
            data=args.data, work=args.work, split=args.split, tenant=args.tenant, surface=args.surface
        )
        report = run_sessions(options, load_settings())
    else:
        from recsys_tools.evaluation.holdout import HoldoutOptions, run_holdout

        options = HoldoutOptions(
            sequences=args.data, work_dir=args.work, split=args.split, tenant=args.tenant, surface=args.surface
        )
        report = run_holdout(options, load_settings())
    _show_report(report, args)
    return EXIT_OK


def _show_report(report, args: argparse.Namespace) -> None:
    """Write report.json/md/png under --out; the Markdown on stdout, the files written on stderr. With
    --report-store, report.json is also kept there for the console, named by the UTC time and the protocol."""
    from recsys_tools.evaluation.report import to_json, write_report

    out = Path(args.out)
    written = write_report(report, out)
    print((out / "report.md").read_text())
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    if args.report_store:
        name = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{args.protocol}"
        key = paths.evaluation_report(args.tenant, args.surface, name)
        store = open_store(_store_uri(args.report_store))
        store.put(key, to_json(report).encode(), content_type="application/json")
        print(f"kept {store.url(key)} (the console's evaluation reports)", file=sys.stderr)


def cmd_freshness(args: argparse.Namespace) -> int:
    from recsys.pipeline.models import FreshnessRequest
    from recsys.pipeline.steps import freshness

    overrides = {"store": _store_uri(args.store), "freshness_slo_hours": args.slo_hours}
    settings = load_settings(**overrides)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets is not None else None
    result = freshness(FreshnessRequest(targets=targets), settings)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        slo_hours = result.slo_seconds / 3600
        print(f"{'tenant/surface':<28} {'age h':>8}  {'window end':<10}  manifest")
        for age in result.targets:
            scope = f"{age.tenant}/{age.surface}"
            if age.age_seconds is None:
                print(f"{scope:<28} {'-':>8}  {'-':<10}  MISSING: never published")
                continue
            hours = age.age_seconds / 3600
            pointer = registry.read_pointer(open_store(settings.store), age.tenant, age.surface)
            end = str(pointer.manifest.window.end) if pointer else "-"
            flag = "  STALE" if hours > slo_hours else ""
            print(f"{scope:<28} {hours:>8.1f}  {end:<10}  {(age.manifest_version or '')[:16]}{flag}")
        print(f"SLO {slo_hours:g} h: {result.stale} stale, {result.missing} missing")
    return EXIT_FAILED if result.stale or result.missing else EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from recsys.pipeline.models import GcRequest
    from recsys.pipeline.steps import collect_garbage

    settings = load_settings(store=_store_uri(args.store))
    overrides = {"keep_manifests": args.keep_manifests, "artifact_min_age_days": args.min_age_days}
    retention = settings.retention.model_validate(
        settings.retention.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    )
    settings = settings.model_copy(update={"retention": retention})
    request = GcRequest(tenant=args.tenant, surface=args.surface, dry_run=args.dry_run)
    result = collect_garbage(request, settings)
    if args.json:
        print(result.model_dump_json(indent=2))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    for report in result.reports:
        reasons: dict[str, list[int]] = {}
        for deletion in report.deleted:
            reasons.setdefault(deletion.reason, []).append(deletion.bytes)
        detail = ", ".join(f"{len(sizes)} {reason} ({sum(sizes):,} bytes)" for reason, sizes in sorted(reasons.items()))
        print(
            f"{report.tenant}/{report.surface}: {verb} {report.objects} objects, {report.bytes:,} bytes"
            + (f": {detail}" if detail else "")
            + f"; kept {len(report.kept_manifests)} manifests, {report.artifacts_kept} artifacts, "
            f"days from {report.protected_from}"
        )
        if args.dry_run:
            for deletion in report.deleted:
                print(f"  {deletion.reason:<22} {deletion.bytes:>12,}  {deletion.key}")
    for scope, why in result.skipped.items():
        print(f"{scope}: skipped: {why}", file=sys.stderr)
    return EXIT_OK


def cmd_forget_user(args: argparse.Namespace) -> int:
    from recsys.pipeline.models import ForgetUserRequest
    from recsys.pipeline.steps import forget_user_events

    settings = load_settings(store=_store_uri(args.store))
    request = ForgetUserRequest(tenant=args.tenant, surface=args.surface, user_id=args.user, dry_run=args.dry_run)
    report = forget_user_events(request, settings)
    if args.json:
        print(report.model_dump_json(indent=2))
        return EXIT_OK
    verb = "would remove" if args.dry_run else "removed"
    for day in report.days:
        print(
            f"{day.day}: {verb} {day.events} events, {day.quarantined_lines} quarantine lines; "
            f"{day.partials_deleted} partials {'to delete' if args.dry_run else 'deleted'}"
        )
    print(f"{args.tenant}/{args.surface}: {verb} {report.events} events of the user in {len(report.days)} day(s)")
    if report.days and not args.dry_run:
        print(
            "next: rebuild the artifacts with a daily-window run (it re-ingests only yesterday), e.g. "
            f"`recsys run --tenant {args.tenant} --surface {args.surface}`, or start the state machine with "
            f'{{"tenant": "{args.tenant}", "surface": "{args.surface}"}}; then `recsys gc` '
            "(docs/runbooks/forget-user.md)",
            file=sys.stderr,
        )
    return EXIT_OK


def _database_settings(args: argparse.Namespace):
    from recsys.database.settings import DatabaseEnvironment

    database = DatabaseEnvironment().database
    if args.url:
        database = database.model_copy(update={"url": args.url})
    if not database.configured:
        raise ConfigError("no database: pass --url or set RECSYS_DATABASE__URL (or RECSYS_DATABASE__SECRET_ARN)")
    return database


def cmd_db(args: argparse.Namespace) -> int:
    from recsys.database.connection import SharedConnection, connect
    from recsys.database.migrations import migrate
    from recsys.publish.signal_store import SignalStore
    from recsys_tools.database import load_events

    database = _database_settings(args)
    if args.db_command == "signals":
        connection = SharedConnection(database)
        try:
            versions = SignalStore(connection).versions(args.tenant, args.surface)
        finally:
            connection.close()
        if args.json:
            print(json.dumps(versions, indent=2))
            return EXIT_OK
        print(f"{'day':<10}  {'version':<16}  {'current':<7}  rows")
        for v in versions:
            rows = ", ".join(f"{kind} {count}" for kind, count in v["rows"].items())
            print(f"{v['day']:<10}  {v['manifest_version'][:16]}  {'yes' if v['current'] else '':<7}  {rows}")
        return EXIT_OK
    with connect(database, autocommit=True) as conn:
        if args.db_command == "migrate":
            applied = migrate(conn)
            print(f"applied {', '.join(applied)}" if applied else "the schema is up to date")
            return EXIT_OK
        days = Window(start=args.start, end=args.end).days
        report = load_events(conn, args.raw, days, table=args.table)
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report.reasons.items()))
    print(
        f"loaded {report.loaded} events into {args.table} (tenants: {', '.join(report.tenants) or 'none new'}); "
        f"skipped {report.skipped} lines" + (f" ({skipped})" if skipped else "")
    )
    return EXIT_OK


def cmd_api_key(args: argparse.Namespace) -> int:
    from recsys.serve.auth import AuthSettings
    from recsys.serve.tenant_store import ApiKeys

    keys = ApiKeys(open_store(args.store))
    secret = AuthSettings().api_key_hash_secret.get_secret_value()
    if args.api_key_command == "create":
        key, record = keys.create(args.tenant, args.roles.split(","), args.name, secret=secret)
        print(
            json.dumps(
                {"api_key": key, "hash": record.key_hash, "tenant": record.tenant, "roles": sorted(record.roles)},
                indent=2,
            )
        )
        print("recsys: store the api_key now: only its hash is kept", file=sys.stderr)
        return EXIT_OK
    if keys.revoke(args.key_hash) is None:
        raise RecsysError(f"no api key with hash {args.key_hash}")
    print(f"revoked {args.key_hash}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command != "serve":  # the API's and the handlers' JSON logs: warnings only, unless --debug
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "DEBUG" if args.debug else "WARNING")
        handler = {
            "run": cmd_run,
            "manifest": cmd_manifest,
            "rollback": cmd_rollback,
            "serve": cmd_serve,
            "recommend": cmd_recommend,
            "similar": cmd_similar,
            "api-key": cmd_api_key,
            "db": cmd_db,
            "eval": cmd_eval,
            "gc": cmd_gc,
            "freshness": cmd_freshness,
            "forget-user": cmd_forget_user,
        }[args.command]
        return handler(args)
    except (UsageError, ConfigError, ValidationError, ValueError) as exc:
        if args is not None and args.debug:
            raise
        print(f"recsys: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Problem as exc:
        if args is not None and args.debug:
            raise
        print(f"recsys: {exc.code}: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE if exc.status < 500 else EXIT_FAILED
    except BrokenPipeError:
        # `recsys ... | head`: the reader has what it wanted. Point stdout at /dev/null so the final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (RecsysError, StoreError, OSError) as exc:
        if args is not None and args.debug:
            raise
        print(f"recsys: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("recsys: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
    return " ".join(str(exc).split())


def entry() -> None:
    """The `recsys` console script: main(), then exit without the interpreter's teardown.

    Finalizing moto's and pyarrow's module state takes over a second after every command, long after the command
    has written and closed everything; the streams are flushed here, so skipping it changes nothing but the wait.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `recsys ... | head`: the reader left, nothing more to deliver
        pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()
