"""`make sam-local`: the local runner against a Lambda endpoint (fast, no Docker), and end to end: every function in
its Lambda container through stock `sam local`, on this machine.

The end-to-end test needs a Docker engine (or root and Debian's packages to install and start one) and aws-sam-cli
(`make sam`). CI runs it (`.ci/run` installs docker.io and debootstrap); elsewhere, a machine that cannot run it
skips it, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recsys.publish.service import read_pointer
from recsys.store import FileSystemStore
from recsys_tools.local.runner import FUNCTIONS, LocalPipeline, _load_handler, _LocalContext, invoke_endpoint
from recsys_tools.sam_local import engine
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW
from tests.test_template import PIPELINE_FUNCTIONS

PIPELINE_FOLDERS = {"plan", "ingest", "validate", "partials", "compute", "quality", "publish", "release"}


def why_it_cannot_run() -> str | None:
    if not (ROOT / ".venv-sam" / "bin" / "sam").exists() and shutil.which("sam") is None:
        return "no aws-sam-cli: run `make sam`"
    if engine.answers() and not engine.missing_packages():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"no Docker engine answers, and installing or starting one needs root and apt-get ({engine.PACKAGES})"
    return None


@pytest.mark.sam_local
@pytest.mark.slow
def test_the_pipeline_and_the_api_run_in_lambda_containers(tmp_path: Path) -> None:
    reason = why_it_cannot_run()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the sam local smoke: {reason}")
        pytest.skip(f"SAM LOCAL SMOKE NOT RUN: {reason}")
    done = subprocess.run(
        [sys.executable, "-m", "recsys_tools.sam_local", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert done.returncode == 0 and not report["failures"], done.stdout[-6000:] + done.stderr[-3000:]
    assert all(step["ok"] for step in report["steps"])
    # The state machine ran every step, each in its container, and none failed.
    assert {call["function"] for call in report["pipeline"]} == PIPELINE_FOLDERS
    assert all(call["ok"] for call in report["pipeline"])
    # The pointer moved to the manifest the in-process run (`make demo`) publishes for the same sample.
    assert report["manifest"] and report["manifest"] == report["expected_manifest"]
    assert [(call["path"], call["status"]) for call in report["api"]] == [
        ("/healthz", 200),
        ("/v1/recommend", 200),
        ("/v1/similar", 200),
    ]
    assert json.loads(report["api"][1]["body"])["items"]
    # Every function event of events/ answered in its container.
    assert report["events"] and all(event["ok"] for event in report["events"])


@contextmanager
def lambda_endpoint(answer) -> Iterator[str]:
    """An HTTP server speaking Lambda's Invoke API on loopback: `answer(function, request)` gives (status, headers,
    body)."""

    class Invocations(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            function = self.path.split("/functions/")[1].split("/")[0]
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, headers, body = answer(function, request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Invocations)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_invoke_reads_errors_as_lambda_reports_them() -> None:
    error = {"errorMessage": "Unable to import module 'app'", "errorType": "Runtime.ImportModuleError"}
    answers = {
        "Ok": (200, {}, json.dumps({"accepted": 1}).encode()),
        "Raised": (200, {"X-Amz-Function-Error": "Unhandled"}, json.dumps(error).encode()),
        # what `sam local` answers for a function that failed to initialise: the document, without the header
        "BrokenImport": (200, {}, json.dumps(error | {"requestId": "r", "stackTrace": []}).encode()),
        "Unknown": (404, {}, json.dumps({"Type": "User", "Message": "Function not found"}).encode()),
    }
    with lambda_endpoint(lambda function, request: answers[function]) as url:
        assert invoke_endpoint(url, "Ok", {}) == ({"accepted": 1}, False)
        assert invoke_endpoint(url, "Raised", {}) == (error, True)
        assert invoke_endpoint(url, "BrokenImport", {})[1] is True
        payload, failed = invoke_endpoint(url, "Unknown", {})
        assert (
            failed and payload["errorType"] == "LambdaEndpointError" and "Function not found" in payload["errorMessage"]
        )
    payload, failed = invoke_endpoint(url, "Ok", {})  # the server is gone
    assert failed and payload["errorType"] == "LambdaEndpointUnreachable"


def test_the_state_machine_runs_its_tasks_through_a_lambda_endpoint(tmp_path: Path, monkeypatch) -> None:
    """LocalPipeline(lambda_endpoint=...), as `make sam-local` runs it against `sam local start-lambda`: every Task is
    an Invoke of the endpoint (here a server calling the handlers), and a function failing there fails the run."""
    store = FileSystemStore(tmp_path / "store")
    monkeypatch.setenv("RECSYS_STORE", store.uri)  # the "container's" environment: the runner passes none
    handlers = {name: _load_handler(ROOT, folder) for name, folder in FUNCTIONS.items()}
    invoked: list[str] = []

    def answer(function: str, request: dict) -> tuple[int, dict, bytes]:
        invoked.append(function)
        return 200, {}, json.dumps(handlers[function](request, _LocalContext(function))).encode()

    request = {
        "tenant": "demo",
        "surface": "home",
        "start": "2026-01-01",
        "end": "2026-01-07",
        "raw": str(SAMPLE_RAW),
        "catalog": str(SAMPLE_CATALOG),
    }
    with lambda_endpoint(answer) as url, LocalPipeline({}, lambda_endpoint=url, concurrency=1) as pipeline:
        execution = pipeline.run(request)
        assert execution.status == "SUCCEEDED", execution.message
    assert set(invoked) == set(PIPELINE_FUNCTIONS)
    assert read_pointer(store, "demo", "home") is not None

    def broken(function: str, request: dict) -> tuple[int, dict, bytes]:
        error = {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'uvicorn'"}
        if function == "IngestFunction":
            return 200, {}, json.dumps(error).encode()
        return answer(function, request)

    with lambda_endpoint(broken) as url, LocalPipeline({}, lambda_endpoint=url, concurrency=1) as pipeline:
        execution = pipeline.run(request | {"promote": True})
    assert execution.status == "FAILED" and "No module named 'uvicorn'" in execution.message


@pytest.mark.parametrize(
    ("config", "gateway"),
    [
        ([{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}], "172.17.0.1"),
        ([{"Subnet": "10.200.0.0/24"}], "10.200.0.1"),  # an engine that left Gateway out: the subnet's first host
    ],
)
def test_the_local_s3_listens_on_the_bridge_gateway(monkeypatch, config: list[dict], gateway: str) -> None:
    inspected = json.dumps([{"Name": "bridge", "IPAM": {"Config": config}}])

    def docker(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert command == ["docker", "network", "inspect", "bridge"]
        return subprocess.CompletedProcess(command, 0, stdout=inspected, stderr="")

    monkeypatch.setattr(engine.subprocess, "run", docker)
    assert engine.bridge_gateway() == gateway


def test_the_base_image_is_named_by_its_recipe(monkeypatch) -> None:
    """A second run finds the image by its tag; any change of what goes into it names another image."""
    from recsys_tools.sam_local import image

    try:
        python = image.python312()
    except RuntimeError as exc:  # CI has pyenv's (make test-py312 needs it too)
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    first = image.image_tag(python)
    assert first == image.image_tag(python) and first.startswith(f"{image.REPOSITORY}:3.12-")
    monkeypatch.setattr(image, "AWSLAMBDARIC", "0.0.0")
    assert image.image_tag(python) != first


def test_a_served_process_is_stopped_with_its_block_and_a_taken_port_is_refused(tmp_path: Path) -> None:
    from recsys_tools.local.processes import free_port, serving

    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with serving(command, host="127.0.0.1", port=port, log=tmp_path / "a.log", timeout=30) as process:
        assert process.poll() is None
        # a second server would only find the first one answering: refused, not taken for its own
        second = serving(command, host="127.0.0.1", port=port, log=tmp_path / "b.log", timeout=30)
        with pytest.raises(RuntimeError, match="already in use"), second:
            pass
    assert process.poll() is not None
