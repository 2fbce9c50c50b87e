"""The local S3 the Lambda containers use: moto's server, on the host's Docker bridge address, holding the sample.

It runs as its own process: the local runner's in-process moto (Step Functions) resets moto's backends when it
starts, which would empty a server sharing its process. Bound to the bridge's address, it answers the host and
this machine's containers, and nothing outside the machine.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from recsys_tools.local.processes import serving

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


@dataclass
class LocalS3:
    """`with LocalS3(host, port, log_file) as s3:` a moto server at s3.endpoint until the block ends."""

    host: str
    port: int
    log_file: Path
    _server: ExitStack = field(default_factory=ExitStack, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        return boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION
        ).client("s3", endpoint_url=self.endpoint, config=Config(retries={"max_attempts": 2}))

    def __enter__(self) -> LocalS3:
        command = [sys.executable, "-c", SERVER, "-H", self.host, "-p", str(self.port)]
        self._server.enter_context(serving(command, host=self.host, port=self.port, log=self.log_file, timeout=30))
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()

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
