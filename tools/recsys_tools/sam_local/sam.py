"""Stock SAM CLI commands for this repository's template: build for the local architecture, invoke, start-lambda and
start-api, with the local base image and the env-vars file. Nothing here edits template.yaml: the local differences
are the Architecture parameter and events/env.local.json."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_tools.local.processes import free_port, serving
from recsys_tools.sam_local.s3 import CREDENTIALS, REGION

LOOPBACK = "127.0.0.1"
# Template parameters every local run overrides besides Architecture. ExposureLogging: the API would send every
# served list to the stack's Firehose stream, which does not exist locally (and is AWS, not this machine).
LOCAL_PARAMETERS = ("ExposureLogging=DISABLED",)


def local_architecture() -> str:
    """The template's Architecture value that this machine's engine runs natively."""
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]


def sam_executable(root: Path) -> str:
    """The aws-sam-cli of `make sam` (.venv-sam), else one on PATH."""
    bundled = root / ".venv-sam" / "bin" / "sam"
    found = str(bundled) if bundled.exists() else shutil.which("sam")
    if not found:
        raise RuntimeError("no sam: run `make sam` (or install aws-sam-cli)")
    return found


@dataclass
class Sam:
    root: Path
    out: Path  # .out/sam-local: logs and the env-vars file of this run
    architecture: str
    image: str | None  # --invoke-image; None: SAM pulls AWS's image
    # Every AWS call SAM itself makes goes here (the local S3, moto's server, which answers them all): `sam local`
    # asks STS for the account id on every start, which would otherwise leave the machine with placeholder keys.
    aws_endpoint: str | None = None

    @property
    def build_dir(self) -> Path:
        return self.root / ".aws-sam" / f"local-{self.architecture}"

    @property
    def template(self) -> Path:
        return self.build_dir / "template.yaml"

    def environment(self, python312: Path | None = None) -> dict[str, str]:
        env = os.environ | CREDENTIALS | {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "SAM_CLI_TELEMETRY": "0"}
        # `sam build` checks that a python3.12 is on PATH (a pyenv shim that refuses to run it fails the check);
        # the layer's makefile build reads LAYER_ARCH (sam passes template parameters to no makefile).
        if python312 is not None:
            env["PATH"] = f"{python312.parent}{os.pathsep}{env.get('PATH', '')}"
        env["LAYER_ARCH"] = self.architecture
        if self.aws_endpoint:
            env["AWS_ENDPOINT_URL"] = self.aws_endpoint
        return env

    @property
    def parameter_overrides(self) -> str:
        return " ".join((f"Architecture={self.architecture}", *LOCAL_PARAMETERS))

    def _options(self, env_vars: Path) -> list[str]:
        options = [
            "--template",
            str(self.template),
            "--env-vars",
            str(env_vars),
            "--parameter-overrides",
            self.parameter_overrides,
        ]
        if self.image:
            options += ["--invoke-image", self.image, "--skip-pull-image"]
        return options

    def build(self, python312: Path) -> None:
        """`sam build` for the local architecture, into its own folder (a deploy's arm64 build stays untouched);
        --cached rebuilds only what changed."""
        command = [
            sam_executable(self.root),
            "build",
            "--template",
            str(self.root / "template.yaml"),
            "--build-dir",
            str(self.build_dir),
            "--cache-dir",
            str(self.build_dir) + "-cache",
            "--cached",
            "--parameter-overrides",
            f"Architecture={self.architecture}",
        ]
        self._run_logged(command, "build", self.environment(python312))

    def invoke(self, function: str, event: dict, env_vars: Path) -> Any:
        """`sam local invoke FUNCTION --event FILE`, one container for this invocation: the answer, which sam prints
        as its last line of output (the function's log goes to stderr)."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.out) as file:
            json.dump(event, file)
            file.flush()
            command = [sam_executable(self.root), "local", "invoke", function, "--event", file.name]
            done = subprocess.run(
                [*command, *self._options(env_vars)],
                cwd=self.root,
                env=self.environment(),
                capture_output=True,
                text=True,
            )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"sam local invoke {function} failed ({done.returncode}): {done.stderr[-2000:]}")
        return json.loads(lines[-1])

    @contextmanager
    def start(self, service: str, env_vars: Path) -> Iterator[str]:
        """`sam local start-lambda` (Lambda's Invoke API) or `start-api` (the HTTP API, without its JWT authorizer,
        which SAM does not emulate) on loopback, with warm containers: its base URL while the block runs."""
        port = free_port(LOOPBACK)
        command = [sam_executable(self.root), "local", service, "--host", LOOPBACK, "--port", str(port)]
        command += ["--warm-containers", "LAZY", *self._options(env_vars)]
        # Its own session: a Ctrl-C reaches the smoke, which stops SAM, which stops its containers.
        with serving(
            command,
            host=LOOPBACK,
            port=port,
            log=self.out / f"{service}.log",
            timeout=120,
            cwd=self.root,
            env=self.environment(),
            start_new_session=True,
        ):
            yield f"http://{LOOPBACK}:{port}"

    def _run_logged(self, command: list[str], name: str, env: dict[str, str]) -> None:
        log = self.out / f"{name}.log"
        with log.open("wb") as out:
            done = subprocess.run(command, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"sam {name} failed ({done.returncode}); the end of {log}:\n{tail}")
