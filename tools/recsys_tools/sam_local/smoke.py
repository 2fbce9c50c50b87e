"""`make sam-local`: the pipeline and the API in Lambda containers, as `sam local` runs them on this machine.

1. a Docker engine (started, or installed and started, when none answers);
2. the Lambda base image (AWS's when it can be pulled, else the one image.py builds, cached);
3. `sam build` for the machine's architecture;
4. the local S3 (moto's server on the Docker bridge) holding the sample, as events/README.md names its buckets;
5. through `sam local start-lambda` (one warm container per function):
   - every function event of events/ through its function, on the empty buckets (events.py);
   - the state machine (statemachine/pipeline.asl.json, under moto's interpreter as `recsys run` runs it) with
     events/backfill.json as input, every Task invoked in its container;
6. the pointer must name the manifest version that the in-process run (`make demo`) publishes for the sample;
7. `sam local start-api`: /healthz, /v1/recommend and /v1/similar must answer 200.

Every step prints its result and duration; report.json (in --out) records them; any failure exits non-zero.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from recsys.publish.service import read_pointer
from recsys.store import S3Store, open_store
from recsys_tools.local.processes import free_port
from recsys_tools.local.runner import LocalPipeline, StepEvent, invoke_endpoint, is_error_document, project_root
from recsys_tools.sam_local import engine, image
from recsys_tools.sam_local.events import walk
from recsys_tools.sam_local.s3 import ARTIFACT_BUCKET, LocalS3
from recsys_tools.sam_local.sam import Sam, local_architecture

ENV_FILE = "events/env.local.json"
ENDPOINT_VARIABLE = "RECSYS_S3_ENDPOINT_URL"


class Report(BaseModel):
    """report.json: every step, invocation and answer of one run."""

    steps: list[dict] = Field(default_factory=list, description="each step: ok, seconds, result or error")
    pipeline: list[dict] = Field(default_factory=list, description="each state machine Task's invocation")
    api: list[dict] = Field(default_factory=list, description="each start-api request: path, status, seconds, body")
    events: list[dict] = Field(default_factory=list, description="each events/ file's invocation and answer")
    expected_manifest: str | None = Field(None, description="what the in-process run published")
    manifest: str | None = Field(None, description="what the pointer names after the run in containers")
    failures: list[str] = Field(default_factory=list)


class Smoke:
    def __init__(
        self,
        out: Path,
        *,
        image: str = "local",
        events: bool = True,
        walk_with: str = "start-lambda",
        s3_bind: str | None = None,
        s3_host_for_containers: str | None = None,
        log: Callable = print,
    ):
        self.root = project_root()
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        # "local": the image image.py builds; "aws": SAM pulls AWS's own; else an image already on this machine.
        self.image = image
        # Where the local S3 listens, and the name the containers reach it by: the Docker bridge's address (both,
        # by default); Docker Desktop's containers reach the host as host.docker.internal instead.
        self.s3_bind = s3_bind
        self.s3_host_for_containers = s3_host_for_containers
        self.run_events = events
        # The events walk's invocations: through start-lambda's warm containers, or one `sam local invoke` (one new
        # container) each, as events/README.md shows them by hand.
        self.walk_with = walk_with
        self.log = log
        self.report = Report()

    def step(self, name: str, action: Callable[[], Any], describe: Callable[[Any], str] = str) -> Any:
        started = time.perf_counter()
        try:
            result = action()
        except Exception as exc:
            seconds = time.perf_counter() - started
            self.report.steps.append({"step": name, "ok": False, "seconds": round(seconds, 1), "error": str(exc)})
            self.report.failures.append(f"{name}: {exc}")
            self.log(f"{name:<12} FAILED after {seconds:.1f} s: {exc}")
            raise
        seconds = time.perf_counter() - started
        text = describe(result)
        self.report.steps.append({"step": name, "ok": True, "seconds": round(seconds, 1), "result": text})
        self.log(f"{name:<12} {seconds:6.1f} s  {text}")
        return result

    def run(self) -> Report:
        try:
            self._run()
        except Exception as exc:  # recorded by step(); anything else is recorded here
            if not self.report.failures:
                self.report.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            (self.out / "report.json").write_text(self.report.model_dump_json(indent=2) + "\n")
        return self.report

    def _run(self) -> None:
        self.step("engine", lambda: engine.ensure(self.out, self.log))
        python = image.python312()
        tag: str | None = None if self.image == "aws" else self.image
        if self.image == "local":
            built = self.step(
                "base image", lambda: image.ensure(self.log), lambda i: f"{i.tag} ({'built' if i.built else 'cached'})"
            )
            tag = built.tag
        sam = Sam(self.root, self.out, local_architecture(), tag)
        self.step("sam build", lambda: sam.build(python), lambda _: f"{sam.build_dir} ({sam.architecture})")
        backfill = json.loads((self.root / "events" / "backfill.json").read_text())
        self.report.expected_manifest = self.step("in-process", lambda: self._in_process(backfill))
        bind = self.s3_bind or engine.bridge_gateway()
        with LocalS3(bind, free_port(bind), self.out / "moto.log") as s3:
            self.step(
                "local s3",
                lambda: s3.seed(self.root / "examples/sample/raw", self.root / "examples/sample/catalog.csv"),
                lambda n: f"{s3.endpoint}: {n} objects",
            )
            env_vars = self._env_vars(f"http://{self.s3_host_for_containers or bind}:{s3.port}")
            sam.aws_endpoint = s3.endpoint
            with sam.start("start-lambda", env_vars) as functions:
                self.log(f"{'start-lambda':<12} {functions}")
                if self.run_events:
                    if self.walk_with == "invoke":
                        call = lambda function, event: self._invoke_one(sam, env_vars, function, event)  # noqa: E731
                    else:
                        call = lambda function, event: invoke_endpoint(functions, function, event)  # noqa: E731
                    self.step("events", lambda: self._events(call), lambda r: f"{len(r)} invocations answered")
                self.step("pipeline", lambda: self._pipeline(functions, backfill), lambda e: e)
                store = S3Store(ARTIFACT_BUCKET, client=s3.client())
                self.report.manifest = self.step("pointer", lambda: self._pointer(store))
            with sam.start("start-api", env_vars) as api:
                self.log(f"{'start-api':<12} {api}")
                self.step(
                    "api", lambda: self._api(api), lambda calls: ", ".join(f"{c['path']} {c['status']}" for c in calls)
                )

    def _in_process(self, backfill: dict) -> str:
        """The manifest version `make demo` publishes for the sample: the same run, in-process, in a file store."""
        with tempfile.TemporaryDirectory(prefix="recsys-sam-local-") as folder:
            uri = f"file://{folder}"
            request = backfill | {
                "raw": str(self.root / "examples/sample/raw"),
                "catalog": str(self.root / "examples/sample/catalog.csv"),
            }
            with LocalPipeline({"RECSYS_STORE": uri}) as pipeline:
                execution = pipeline.run(request)
            if execution.status != "SUCCEEDED":
                raise RuntimeError(f"the in-process run failed: {execution.message}")
            return _current(open_store(uri), backfill)

    def _env_vars(self, endpoint: str) -> Path:
        """events/env.local.json with this run's S3 endpoint (its default is the usual bridge address and port)."""
        document = json.loads((self.root / ENV_FILE).read_text())
        for variables in document.values():
            if ENDPOINT_VARIABLE in variables:
                variables[ENDPOINT_VARIABLE] = endpoint
        path = self.out / "env.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        return path

    def _pipeline(self, functions: str, backfill: dict) -> str:
        def on_step(event: StepEvent) -> None:
            scope = " ".join(str(event.request[k]) for k in ("day", "kind") if k in event.request)
            record = {
                "function": event.function,
                "scope": scope,
                "seconds": round(event.seconds, 2),
                "ok": event.error is None,
                "error": event.error,
            }
            self.report.pipeline.append(record)
            status = "ok" if event.error is None else f"FAILED: {event.error}"
            self.log(f"  {event.function:<10} {scope:<22} {event.seconds:6.2f} s  {status}")

        # One invocation at a time: the sample is small (53 invocations, about 9 s in all), and the progress lines
        # stay in the order the state machine made them.
        with LocalPipeline({}, lambda_endpoint=functions, on_step=on_step, concurrency=1) as pipeline:
            execution = pipeline.run(backfill)
        if execution.status != "SUCCEEDED":
            raise RuntimeError(f"execution {execution.status}: {execution.message}")
        return f"{execution.status}, {len(self.report.pipeline)} invocations"

    def _pointer(self, store: S3Store) -> str:
        version = _current(store, {"tenant": "demo", "surface": "home"})
        if version != self.report.expected_manifest:
            raise RuntimeError(
                f"the pointer names {version}; the in-process run published {self.report.expected_manifest}"
            )
        return version

    def _api(self, base: str) -> list[dict]:
        events = self.root / "events"
        # The recommend and similar bodies of the sample API events; the dev identity stands in for the JWT
        # authorizer, which start-api does not emulate (env.local.json turns DEV_AUTH_ENABLED on, locally only).
        calls = [
            ("GET", "/healthz", None),
            ("POST", "/v1/recommend", json.loads((events / "api-recommend.json").read_text())["body"]),
            ("POST", "/v1/similar", json.loads((events / "api-similar.json").read_text())["body"]),
        ]
        answers = []
        for method, path, body in calls:
            answer = http(method, base + path, body, {"X-Dev-Org-Id": "demo", "Content-Type": "application/json"})
            answers.append({"path": path} | answer)
            self.report.api.append({"path": path} | answer)
            self.log(f"  {method:<4} {path:<14} {answer['status']}  {answer['seconds']:6.2f} s  {answer['body'][:100]}")
        failed = [a for a in answers if a["status"] != 200]
        if failed:
            raise RuntimeError("; ".join(f"{a['path']} answered {a['status']}: {a['body'][:300]}" for a in failed))
        return answers

    @staticmethod
    def _invoke_one(sam: Sam, env_vars: Path, function: str, event: dict) -> tuple[Any, bool]:
        payload = sam.invoke(function, event, env_vars)
        return payload, is_error_document(payload)

    def _events(self, call: Callable[[str, dict], tuple[Any, bool]]) -> list[dict]:
        def record(result: dict) -> None:
            self.report.events.append(result)
            self.log(
                f"  {result['event']:<34} {result['function']:<20} {result['seconds']:6.2f} s  {result['summary']}"
            )

        return walk(call, self.root / "events", record)


def _current(store: Any, scope: dict) -> str:
    pointer = read_pointer(store, scope["tenant"], scope["surface"])
    if pointer is None:
        raise RuntimeError(f"no current manifest for {scope['tenant']}/{scope['surface']} in {store.uri}")
    return pointer.manifest.manifest_version


def http(method: str, url: str, body: str | None, headers: dict[str, str]) -> dict:
    """One request: its status, time and body (text)."""
    request = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            status, text = answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    return {"status": status, "seconds": round(time.perf_counter() - started, 2), "body": text}
