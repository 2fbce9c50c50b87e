"""The local S3 the Lambda containers use: moto's server, on the host's Docker bridge address, holding the sample.

It runs as its own process: the local runner's in-process moto (Step Functions) resets moto's backends when it
starts, which would empty a server sharing its process. Bound to the bridge's address, it answers the host and
this machine's containers, and nothing outside the machine.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

# The buckets the sample events (events/*.json) name.
RAW_BUCKET = "recsys-raw-example"
ARTIFACT_BUCKET = "recsys-artifacts-example"
DEFAULT_PORT = 5055
REGION = "us-east-1"
# moto accepts any key; these keep boto3 from looking for real ones (and never reach AWS: every client here has
# the local endpoint).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


# moto's server, except that binding asks nobody for the address's name: http.server's server_bind calls
# socket.getfqdn(host), a DNS PTR query that leaves the machine for the bridge's address.
SERVER = """
import socket, sys
socket.getfqdn = lambda name="": name or "localhost"
from moto.server import main
sys.argv[0] = "moto_server"
main(sys.argv[1:])
"""


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class LocalS3:
    """`with LocalS3(host) as s3:` a moto server at s3.endpoint until the block ends."""

    host: str
    port: int = DEFAULT_PORT
    log_file: Path | None = None
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        return boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION
        ).client("s3", endpoint_url=self.endpoint, config=Config(retries={"max_attempts": 2}))

    def __enter__(self) -> LocalS3:
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, "-c", SERVER, "-H", self.host, "-p", str(self.port)], stdout=out, stderr=out
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"moto's server exited (port {self.port} in use?): see {self.log_file}"
                    ) from None
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"moto's server did not answer on {self.endpoint} within 30 s") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def seed(self, raw: Path, catalog: Path, tenant: str = "demo", surface: str = "home") -> int:
        """The buckets of events/README.md, holding `raw`'s days and `catalog`: the objects uploaded."""
        s3 = self.client()
        for bucket in (RAW_BUCKET, ARTIFACT_BUCKET):
            s3.create_bucket(Bucket=bucket)
        files = sorted(raw.rglob("*.jsonl"))
        for path in files:
            key = f"events/{tenant}/{surface}/{path.relative_to(raw).as_posix()}"
            s3.put_object(Bucket=RAW_BUCKET, Key=key, Body=path.read_bytes())
        s3.put_object(Bucket=RAW_BUCKET, Key=f"catalog/{tenant}.csv", Body=catalog.read_bytes())
        return len(files) + 1
