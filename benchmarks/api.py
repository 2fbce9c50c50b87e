"""API benchmarks: in-process latency through the Mangum handler, cold start, and HTTP throughput of `recsys serve`.

  inprocess   functions/recommend/app.py's `handler` (FastAPI behind Mangum, as on Lambda) called with API Gateway
              v2 events built from events/api-recommend.json (JWT claims with the tenant, DEV auth off), per-request
              time.perf_counter() over a warm-up and then the measured requests; a fresh process so its memory is
              the API's alone
  coldstart   a fresh `python` process: interpreter start, imports + app creation, first request (the manifest and
              every artifact it needs loaded from the store), second request
  http        `recsys serve` (uvicorn, one process, dev auth) on 127.0.0.1:<free port>, driven by Python threads
              with keep-alive http.client connections, bounded by a request count and a duration

Request mix (seeded): 40% warm users (a user_id with an implicit history, uniform over all users), 30% cold
(half an unknown user_id inside the id range, half a session-only anonymous visitor), 30% with 1-3 anchor items
(popularity-weighted, half with a warm user). k=20; half ask for reasons.

Usage (the runner calls these): .venv/bin/python benchmarks/api.py inprocess --store URI --requests N --warmup W
                                  .venv/bin/python benchmarks/api.py coldstart --store URI
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import proc_status

ROOT = Path(__file__).resolve().parents[1]
EVENT_TEMPLATE = ROOT / "events" / "api-recommend.json"
TENANT, SURFACE = "bench", "home"
CLASSES = ("warm", "cold", "anchors")


def request_bodies(n: int, seed: int, users: int, items: int) -> list[tuple[str, dict]]:
    """`n` (class, body) pairs of the mix above."""
    rng = np.random.default_rng([seed, 3])
    weights = 1.0 / np.arange(1, items + 1) ** 1.1
    item_rank = np.random.default_rng([11, 1]).permutation(items)  # api_artifacts' popularity order
    cum = np.cumsum(weights)
    out = []
    for number in range(n):
        draw = rng.random()
        kind = "warm" if draw < 0.4 else "cold" if draw < 0.7 else "anchors"
        body: dict = {"surface": SURFACE, "k": 20}
        if kind == "warm" or (kind == "anchors" and rng.random() < 0.5):
            body["user"] = {"user_id": f"u{rng.integers(users):07d}"}
        elif rng.random() < 0.5:
            body["user"] = {"user_id": f"u{rng.integers(users):07d}n"}  # inside the id range, no history
        else:
            body["user"] = {"session_id": f"s-anon-{seed}-{number}"}
        if kind == "anchors":
            picks = np.searchsorted(cum, rng.random(int(rng.integers(1, 4))) * cum[-1])
            body["anchors"] = {"item_ids": [f"i{int(item_rank[min(p, items - 1)]):05d}" for p in picks]}
        if rng.random() < 0.5:
            body["options"] = {"include_reasons": True}
        out.append((kind, body))
    return out


def api_event(template: dict, body: dict, number: int) -> dict:
    event = copy.deepcopy(template)
    event["body"] = json.dumps(body)
    event["headers"]["x-request-id"] = f"bench-{number}"
    event["requestContext"]["requestId"] = f"bench-{number}"
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = TENANT
    return event


class _Context:
    function_name = "RecommendFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:RecommendFunction"
    aws_request_id = "bench"


def _load_handler():
    import importlib.util

    spec = importlib.util.spec_from_file_location("recommend_app", ROOT / "functions" / "recommend" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = np.sort(np.asarray(values))
    n = len(ordered)

    def rank(p: float) -> float:
        return float(ordered[min(n - 1, max(0, int(np.ceil(p / 100 * n)) - 1))])

    return {
        "n": n,
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": float(ordered[-1]),
        "mean": float(ordered.mean()),
    }


def inprocess(store: str, requests: int, warmup: int, users: int, items: int, profile: int = 0) -> dict:
    t0 = time.perf_counter()
    handler = _load_handler()
    imported = time.perf_counter() - t0
    service = handler.app.state.service
    cache = service.reader.artifacts
    template = json.loads(EVENT_TEMPLATE.read_text())
    context = _Context()

    def call(bodies: list[tuple[str, dict]], offset: int) -> tuple[list[tuple[str, float, int, int]], int]:
        timings, errors = [], 0
        for number, (kind, body) in enumerate(bodies):
            event = api_event(template, body, offset + number)
            misses = cache.misses
            started = time.perf_counter()
            response = handler(event, context)
            took = time.perf_counter() - started
            if response["statusCode"] != 200:
                errors += 1
                if errors <= 3:
                    print(f"status {response['statusCode']}: {response['body'][:300]}", file=sys.stderr)
            timings.append((kind, took, cache.misses - misses, response["statusCode"]))
        return timings, errors

    started = time.perf_counter()
    _, warm_errors = call(request_bodies(warmup, 101, users, items), 0)
    warm_seconds = time.perf_counter() - started
    after_warmup = proc_status()
    misses_before, evictions_before = cache.misses, cache.evictions
    started = time.perf_counter()
    timings, errors = call(request_bodies(requests, 202, users, items), warmup)
    measured_seconds = time.perf_counter() - started
    ms = [t * 1000 for _, t, _, _ in timings]

    # The same requests straight to RecommendService.recommend: the ranking and artifact work without the
    # HTTP glue (Mangum, ASGI, FastAPI routing and middleware, the thread pool, JSON in and out).
    from recsys.serve.auth import Caller
    from recsys.serve.models import RecommendRequest

    caller = Caller(tenant=TENANT, roles=frozenset({"viewer"}), user_id="bench", source="jwt")

    def direct(bodies: list[tuple[str, dict]]) -> list[tuple[str, float, int]]:
        out = []
        for number, (kind, body) in enumerate(bodies):
            request = RecommendRequest.model_validate(body)
            misses = cache.misses
            started = time.perf_counter()
            service.recommend(caller, request, f"direct-{number}")
            out.append((kind, time.perf_counter() - started, cache.misses - misses))
        return out

    direct_bodies = request_bodies(requests, 202, users, items)[: max(requests // 2, 1)]  # time budget
    direct_timings = direct(direct_bodies)

    # The same again with exposure logging on (RECSYS_EXPOSURE_LOG into a temporary store): what a request pays.
    import tempfile

    from recsys.serve.exposure import ExposureLog, StoreSink
    from recsys.store import FileSystemStore

    class Discard:
        """A sink that delivers nowhere: what remains is the request's share and the lines' formatting (on AWS
        the Firehose call is network I/O, which leaves the interpreter to the requests)."""

        def deliver(self, lists, now) -> None:
            pass

    exposure_log = {"off": _pct([t * 1000 for _, t, loads in direct_timings if loads == 0])}
    with tempfile.TemporaryDirectory() as folder:
        for name, sink in (("formatted", Discard()), ("store", StoreSink(FileSystemStore(folder)))):
            service.exposures = ExposureLog(sink, capacity=len(direct_bodies) + 1)
            logged = direct(direct_bodies)
            service.exposures.flush(60)
            exposure_log[name] = _pct([t * 1000 for _, t, loads in logged if loads == 0])
            exposure_log[f"{name}_lines"] = service.exposures.delivered_lines
            service.exposures.close()
        service.exposures = None
    service_only = {
        "all": _pct([t * 1000 for _, t, _ in direct_timings]),
        "no_load": _pct([t * 1000 for _, t, loads in direct_timings if loads == 0]),
        "by_class": {c: _pct([t * 1000 for k, t, _ in direct_timings if k == c]) for c in CLASSES},
    }

    hot = None
    if profile:
        import cProfile

        from profile_stages import _top

        hot = {}
        for name, run in (
            ("handler", lambda bodies: call(bodies, warmup + requests)),
            ("service", direct),
        ):
            profiler = cProfile.Profile()
            loads_before = cache.misses
            profiler.enable()
            run(request_bodies(profile, 505, users, items))
            profiler.disable()
            hot[name] = {"requests": profile, "artifact_loads": cache.misses - loads_before, **_top(profiler, 15)}
    return {
        "profile": hot,
        "service_only": service_only,
        "exposure_log": exposure_log,
        "requests": requests,
        "warmup": warmup,
        "errors": errors + warm_errors,
        "import_s": imported,
        "warmup_s": warm_seconds,
        "seconds": measured_seconds,
        "requests_per_s": requests / measured_seconds,
        "all": _pct(ms),
        "by_class": {c: _pct([t * 1000 for k, t, _, _ in timings if k == c]) for c in CLASSES},
        "no_load": _pct([t * 1000 for _, t, loads, _ in timings if loads == 0]),
        "with_load": _pct([t * 1000 for _, t, loads, _ in timings if loads > 0]),
        "artifact_loads": cache.misses - misses_before,
        "evictions": cache.evictions - evictions_before,
        "cache_bytes": cache.bytes,
        "cache_budget": cache.max_bytes,
        "cache_entries": len(cache),
        "rss_after_warmup_mb": after_warmup["VmRSS"],
        "rss_after_run_mb": proc_status()["VmRSS"],
        "peak_rss_mb": proc_status()["VmHWM"],
    }


COLDSTART_CODE = """
import time
t_start = time.time()
import json, sys
sys.path.insert(0, {bench!r})
import api
handler = api._load_handler()
t_imported = time.time()
template = json.loads(api.EVENT_TEMPLATE.read_text())
body = {{"surface": "home", "k": 20, "user": {{"user_id": "u0000042"}}, "anchors": {{"item_ids": {anchors!r}}}}}
first = handler(api.api_event(template, body, 1), api._Context())
t_first = time.time()
second = handler(api.api_event(template, dict(body, user={{"user_id": "u0500000"}}), 2), api._Context())
t_second = time.time()
print(json.dumps({{"t_start": t_start, "t_imported": t_imported, "t_first": t_first, "t_second": t_second,
                  "status": [first["statusCode"], second["statusCode"]],
                  "items": len(json.loads(first["body"]).get("items", [])), **api.proc_status()}}))
"""


def coldstart(store: str, env: dict[str, str], anchors: list[str]) -> dict:
    code = COLDSTART_CODE.format(bench=str(Path(__file__).parent), anchors=anchors)
    spawned = time.time()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"cold start failed: {done.stderr[-2000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "interpreter_s": r["t_start"] - spawned,
        "imports_and_app_s": r["t_imported"] - r["t_start"],
        "first_request_s": r["t_first"] - r["t_imported"],
        "second_request_s": r["t_second"] - r["t_first"],
        "cold_total_s": r["t_first"] - spawned,
        "process_wall_s": ended - spawned,
        "status": r["status"],
        "items": r["items"],
        "rss_mb": r["VmRSS"],
        "peak_rss_mb": r["VmHWM"],
    }


def api_env(store: str) -> dict[str, str]:
    """The API process's environment: this one plus the store, JWT auth only, quiet Powertools."""
    return {
        **os.environ,
        "RECSYS_STORE": store,
        "DEV_AUTH_ENABLED": "false",
        "POWERTOOLS_METRICS_NAMESPACE": "Recsys",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


# --- HTTP ------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_load(
    store: str, recsys: str, *, threads: int, max_requests: int, seconds: float, users: int, items: int
) -> dict:
    """`recsys serve` on loopback, driven by `threads` keep-alive clients until `max_requests` or `seconds`."""
    port = _free_port()
    env = api_env(store)
    server = subprocess.Popen(
        [recsys, "serve", "--store", store, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                error = server.stderr.read()[-2000:] if server.stderr else ""
                raise RuntimeError(f"recsys serve did not start: {error}")
            time.sleep(0.1)
        headers = {"Content-Type": "application/json", "X-Dev-Org-Id": TENANT}
        warm = request_bodies(300, 303, users, items)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _, body in warm:
            conn.request("POST", "/v1/recommend", body=json.dumps(body), headers=headers)
            conn.getresponse().read()
        conn.close()

        bodies = [json.dumps(b) for _, b in request_bodies(max_requests, 404, users, items)]
        lock = threading.Lock()
        state = {"next": 0}
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        stop_at = time.perf_counter() + seconds

        def worker() -> None:
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine, codes = [], {}
            while time.perf_counter() < stop_at:
                with lock:
                    number = state["next"]
                    if number >= len(bodies):
                        break
                    state["next"] = number + 1
                started = time.perf_counter()
                client.request("POST", "/v1/recommend", body=bodies[number], headers=headers)
                response = client.getresponse()
                response.read()
                mine.append(time.perf_counter() - started)
                codes[response.status] = codes.get(response.status, 0) + 1
            client.close()
            with lock:
                latencies.extend(mine)
                for code, count in codes.items():
                    statuses[code] = statuses.get(code, 0) + count

        started = time.perf_counter()
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
        rss = _server_rss(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {
        "port": port,
        "threads": threads,
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed if elapsed else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": _pct([t * 1000 for t in latencies]),
        "server_rss_mb": rss.get("VmRSS"),
        "server_peak_rss_mb": rss.get("VmHWM"),
        "client": "Python threads, http.client keep-alive (same machine: the client competes for the 2 cores)",
    }


def _server_rss(pid: int) -> dict[str, float]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("inprocess")
    one.add_argument("--store", required=True)
    one.add_argument("--requests", type=int, default=10_000)
    one.add_argument("--warmup", type=int, default=1_000)
    one.add_argument("--users", type=int, default=1_000_000)
    one.add_argument("--items", type=int, default=100_000)
    one.add_argument("--profile", type=int, default=0, help="then profile this many more requests (cProfile)")
    args = parser.parse_args(argv)
    os.environ.update(api_env(args.store))  # before the app is imported: it reads its settings then
    result = inprocess(args.store, args.requests, args.warmup, args.users, args.items, args.profile)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
