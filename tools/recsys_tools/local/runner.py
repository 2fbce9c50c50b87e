"""LocalPipeline: execute statemachine/*.asl.json under moto, calling the real Lambda handlers.

There is no second orchestration path: the definitions SAM deploys (the pipeline and the daily run of many
targets) are the ones that run here. moto's interpreter runs Task/Map/Retry/Catch as on AWS; its Docker-less Lambda
backend only echoes, so its `invoke` is replaced by a dispatcher that imports functions/<name>/app.py and calls
`handler` in-process, or, given a Lambda endpoint (`sam local start-lambda`), invokes the function there, in its
Lambda container. Its Step Functions integration (the daily run's startExecution.sync:2) hands the task's parameters to
boto3 in the ASL's PascalCase; `_sfn_integration_shim` translates them. Both hooks are internal to moto, which is why
moto's version is pinned in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

from recsys.pipeline import lease

# moto logs every caught task failure at ERROR; the run's result reports it once, so keep it off the terminal
# (a handler in the hierarchy stops Python's last-resort stderr output; configured root handlers still get it).
logging.getLogger("moto").addHandler(logging.NullHandler())
# A failing step publishes no metrics and Powertools warns about it; the run's result already says it failed.
warnings.filterwarnings("ignore", message="No application metrics to publish")

REGION = "us-east-1"
ACCOUNT = "123456789012"
# Logical id in template.yaml -> folder under functions/.
FUNCTIONS = {
    "PlanFunction": "plan",
    "IngestFunction": "ingest",
    "ValidateFunction": "validate",
    "PartialsFunction": "partials",
    "ComputeFunction": "compute",
    "QualityGateFunction": "quality",
    "PublishFunction": "publish",
    "ReleaseFunction": "release",
    "RollbackFunction": "rollback",
}


# The daily run's Map: pipelines at once (template.yaml's DailyRunMaxConcurrency).
DAILY_RUN_MAX_CONCURRENCY = 4


def _sfn_integration_shim(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto calls boto3's start_execution with the ASL's parameter names (StateMachineArn, Input, Name) and reads
    the answer as ExecutionArn; boto3 speaks camelCase both ways. Translate, so the ASL stays as AWS wants it."""

    def evaluate(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, **kwargs: Any) -> None:
        camel = {key[:1].lower() + key[1:]: value for key, value in normalised_parameters.items()}
        original(self, env=env, resource_runtime_part=resource_runtime_part, normalised_parameters=camel, **kwargs)
        env.stack[-1] = {key[:1].upper() + key[1:]: value for key, value in env.stack[-1].items()}

    return evaluate


def project_root() -> Path:
    """The checkout holding statemachine/ and functions/: RECSYS_PROJECT_ROOT, the CWD's, or the package's."""
    candidates = [os.environ.get("RECSYS_PROJECT_ROOT"), *map(str, [Path.cwd(), *Path.cwd().parents])]
    candidates.append(str(Path(__file__).resolve().parents[3]))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "statemachine" / "pipeline.asl.json").is_file():
            return Path(candidate)
    raise FileNotFoundError("statemachine/pipeline.asl.json not found: run from the project checkout")


@dataclass(frozen=True)
class StepEvent:
    """One handler call, reported to the progress callback."""

    function: str  # folder name: plan, ingest, ...
    request: dict
    result: dict | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    output: dict | None
    error: str | None
    cause: str | None

    @property
    def message(self) -> str:
        """The failure in one line: the handler's errorMessage when the cause carries one."""
        try:
            cause = json.loads(self.cause or "")
            if isinstance(cause, dict) and "errorMessage" in cause:
                return f"{self.error}: {cause['errorMessage']}"
        except json.JSONDecodeError:
            pass
        return f"{self.error}: {self.cause}"


@dataclass(frozen=True)
class DailyRun:
    """A daily run: its own execution, and per target {target, execution, status[, error, cause]}, in order."""

    execution: Execution
    runs: list[dict]


class _LocalContext:
    """The parts of a Lambda context object that Powertools reads."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 3008
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


LAMBDA_ERROR_FIELDS = {"errorType", "errorMessage", "stackTrace", "requestId"}


def is_error_document(payload: Any) -> bool:
    """Lambda's error answer ({errorType, errorMessage[, stackTrace, requestId]}); no handler's result has this
    shape. `sam local` gives it without the X-Amz-Function-Error header for a function that failed to initialise
    (a broken import), and `sam local invoke` prints it as the answer."""
    return isinstance(payload, dict) and {"errorType", "errorMessage"} <= payload.keys() <= LAMBDA_ERROR_FIELDS


def invoke_endpoint(endpoint: str, function: str, request: dict) -> tuple[Any, bool]:
    """Lambda's Invoke API (POST {endpoint}/2015-03-31/functions/{function}/invocations): the payload, and whether
    it is an error document (the function raised, or the endpoint could not run it)."""
    url = f"{endpoint}/2015-03-31/functions/{function}/invocations"
    call = urllib.request.Request(url, data=json.dumps(request).encode(), method="POST")
    try:
        with urllib.request.urlopen(call, timeout=900) as answer:
            body, failed = answer.read(), answer.headers.get("X-Amz-Function-Error") is not None
    except urllib.error.HTTPError as exc:  # the endpoint's own error (unknown function, bad request)
        body, failed = exc.read(), True
    except (urllib.error.URLError, TimeoutError) as exc:
        return {"errorType": "LambdaEndpointUnreachable", "errorMessage": f"{url}: {exc}"}, True
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError:
        payload, failed = {"errorType": "InvalidResponse", "errorMessage": body[:500].decode(errors="replace")}, True
    failed = failed or is_error_document(payload)
    if failed and not (isinstance(payload, dict) and "errorMessage" in payload):
        payload = {"errorType": "LambdaEndpointError", "errorMessage": json.dumps(payload)[:500]}
    return payload, failed


def _load_handler(root: Path, folder: str) -> Callable[[dict, Any], dict]:
    path = root / "functions" / folder / "app.py"
    spec = importlib.util.spec_from_file_location(f"recsys_functions_{folder}", path)
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class LocalPipeline:
    """Context manager: a moto account with the pipeline's functions and state machine, ready to start runs.

    `env` is the functions' environment (RECSYS_STORE, ...), as template.yaml sets it on AWS.
    `passthrough_s3` lets S3 calls reach the real endpoint (a store on AWS or an S3-compatible server); when
    False, S3 is moto's too (tests).
    `lambda_endpoint` (e.g. `sam local start-lambda`'s http://127.0.0.1:3001) runs each Task there instead of
    in-process; `env` then does not reach the functions (their container's environment is SAM's).
    """

    def __init__(
        self,
        env: dict[str, str],
        *,
        passthrough_s3: bool = False,
        on_step: Callable[[StepEvent], None] | None = None,
        root: Path | None = None,
        concurrency: int | None = None,
        lambda_endpoint: str | None = None,
    ) -> None:
        self.root = root or project_root()
        self.lambda_endpoint = lambda_endpoint.rstrip("/") if lambda_endpoint else None
        # On AWS each invocation is its own Lambda; here they share the machine's cores. Map states start every
        # iteration at once (six compute kinds, up to four ingest days), and more invocations than cores only
        # add memory (each holds its working set) and contention: measured on 2 cores at 1M events, at most 2
        # at once cut compute 4.8 -> 4.1 s and peak RSS 1.5 -> 1.1 GB.
        self._slots = threading.BoundedSemaphore(concurrency or os.cpu_count() or 1)
        self.env = {
            "POWERTOOLS_METRICS_NAMESPACE": "Recsys",
            "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would only clutter a terminal
            # The run lease records this process: a later local run takes over a lease whose process is gone.
            lease.HOLDER_ENV: lease.local_holder(),
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            # the handlers' S3 clients keep the user's region; moto's own clients name theirs explicitly
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
            **env,
        }
        self.on_step = on_step
        self._handlers: dict[str, Callable[[dict, Any], dict]] = {}
        self._lock = threading.Lock()
        config: dict[str, Any] = {
            "stepfunctions": {"execute_state_machine": True},
            "lambda": {"use_docker": False},
        }
        if passthrough_s3:
            config["core"] = {"passthrough": {"services": ["s3"], "urls": []}, "mock_credentials": False}
        self._mock = mock_aws(config=config)
        self._original_invoke = LambdaSimpleBackend.invoke
        self._original_sfn_task = StateTaskServiceSfn._eval_service_task
        self._env_cm: Any = None
        self.state_machine_arn = ""
        self.daily_run_arn = ""

    def __enter__(self) -> LocalPipeline:
        self._env_cm = _environment(self.env)
        self._env_cm.__enter__()
        self._mock.start()
        pipeline = self

        def invoke(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: Any,
            body: Any,
            headers: Any,
            response_headers: dict,
        ) -> bytes:
            return pipeline._invoke(function_name, body, response_headers)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
        StateTaskServiceSfn._eval_service_task = _sfn_integration_shim(self._original_sfn_task)  # type: ignore[method-assign]
        try:
            self._deploy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        LambdaSimpleBackend.invoke = self._original_invoke  # type: ignore[method-assign]
        StateTaskServiceSfn._eval_service_task = self._original_sfn_task  # type: ignore[method-assign]
        self._mock.stop()
        if self._env_cm is not None:
            self._env_cm.__exit__(None, None, None)

    def _deploy(self) -> None:
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="recsys-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "")  # never executed: invoke is dispatched in-process
        lam = boto3.client("lambda", region_name=REGION)
        substitutions = {}
        for logical_id in FUNCTIONS:
            arn = lam.create_function(
                FunctionName=logical_id,
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]
            substitutions[f"{logical_id}Arn"] = arn
        sfn = boto3.client("stepfunctions", region_name=REGION)
        self.state_machine_arn = sfn.create_state_machine(
            name="recsys-pipeline", definition=self._definition("pipeline", substitutions), roleArn=role
        )["stateMachineArn"]
        daily = {"PipelineStateMachineArn": self.state_machine_arn, "MaxConcurrency": str(DAILY_RUN_MAX_CONCURRENCY)}
        self.daily_run_arn = sfn.create_state_machine(
            name="recsys-daily-run", definition=self._definition("daily", daily), roleArn=role
        )["stateMachineArn"]

    def _definition(self, name: str, substitutions: dict[str, str]) -> str:
        """statemachine/<name>.asl.json with SAM's DefinitionSubstitutions applied."""
        definition = (self.root / "statemachine" / f"{name}.asl.json").read_text()
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", value)
        return definition

    def _handler(self, logical_id: str) -> Callable[[dict, Any], dict]:
        with self._lock:
            if logical_id not in self._handlers:
                self._handlers[logical_id] = _load_handler(self.root, FUNCTIONS[logical_id])
            return self._handlers[logical_id]

    def _invoke(self, function_name: str, body: Any, response_headers: dict) -> bytes:
        logical_id = function_name.rsplit(":", 1)[-1]
        request = json.loads(body or b"{}")
        with self._slots:  # waits while `concurrency` invocations run; the step's time starts when it runs
            return self._invoke_now(logical_id, request, response_headers)

    def _invoke_now(self, logical_id: str, request: dict, response_headers: dict) -> bytes:
        started = time.perf_counter()
        call = self._call_endpoint if self.lambda_endpoint else self._call_in_process
        payload, failed = call(logical_id, request)
        if failed:  # reported the way Lambda reports an unhandled error
            response_headers["x-amz-function-error"] = "Unhandled"
            self._report(
                logical_id, request, None, f"{payload.get('errorType')}: {payload.get('errorMessage')}", started
            )
        else:
            self._report(logical_id, request, payload, None, started)
        return json.dumps(payload).encode()

    def _call_in_process(self, logical_id: str, request: dict) -> tuple[dict, bool]:
        """(the handler's result, False), or (Lambda's error document, True)."""
        try:
            return self._handler(logical_id)(request, _LocalContext(logical_id)), False
        except Exception as exc:
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return error, True

    def _call_endpoint(self, logical_id: str, request: dict) -> tuple[dict, bool]:
        return invoke_endpoint(self.lambda_endpoint or "", logical_id, request)

    def _report(self, logical_id: str, request: dict, result: dict | None, error: str | None, started: float) -> None:
        if self.on_step:
            self.on_step(StepEvent(FUNCTIONS[logical_id], request, result, error, time.perf_counter() - started))

    def invoke(self, logical_id: str, request: dict) -> dict:
        """Call one function directly, as an operator would with `aws lambda invoke` (e.g. RollbackFunction)."""
        return self._handler(logical_id)(request, _LocalContext(logical_id))

    def run(self, execution_input: dict, *, timeout: float = 3600.0, name: str | None = None) -> Execution:
        """Start a pipeline execution with `execution_input` and wait for it to end."""
        return self._execute(self.state_machine_arn, execution_input, timeout=timeout, name=name)

    def run_daily(self, targets: str, *, timeout: float = 3600.0, name: str | None = None) -> DailyRun:
        """The daily run, as the schedule starts it: one pipeline execution per 'tenant/surface' target."""
        execution = self._execute(self.daily_run_arn, {"targets": targets}, timeout=timeout, name=name)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        events = sfn.get_execution_history(executionArn=execution.arn, maxResults=1000)["events"]
        exited = [e["stateExitedEventDetails"] for e in events if e["type"] == "MapStateExited"]
        runs = json.loads(exited[-1]["output"])["runs"] if exited else []
        return DailyRun(execution, runs)

    def _execute(self, machine: str, execution_input: dict, *, timeout: float, name: str | None) -> Execution:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.start_execution(
            stateMachineArn=machine,
            name=name or f"local-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
            input=json.dumps(execution_input),
        )["executionArn"]
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                sfn.stop_execution(executionArn=arn, error="LocalTimeout", cause=f"still running after {timeout}s")
                raise TimeoutError(f"execution {arn} still running after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        output = described.get("output")
        return Execution(
            arn=arn,
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
        )
