"""Local servers the tools start for a while: a free port, and a process served until the block ends."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextmanager
def serving(
    command: list[str], *, host: str, port: int, log: Path, timeout: float, **popen: Any
) -> Iterator[subprocess.Popen]:
    """Run `command` (its output to `log`) until the block ends, entering it once `host:port` accepts connections;
    then SIGTERM (SAM stops its warm containers on it), and SIGKILL after a minute."""
    try:  # something answering there already would be taken for this process
        with socket.create_connection((host, port), timeout=1):
            raise RuntimeError(f"{host}:{port} is already in use: stop what listens there, or pick another port")
    except OSError:
        pass
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
        try:
            _wait_for(process, host, port, log, timeout)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()


def _wait_for(process: subprocess.Popen, host: str, port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, process.args[:3]))} exited (port in use?): see {log}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered on {host}:{port} within {timeout:.0f} s: see {log}") from None
            time.sleep(0.2)
