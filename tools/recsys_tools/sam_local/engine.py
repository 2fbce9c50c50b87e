"""The Docker engine `sam local` needs: found answering, started, or installed and started (as root, Debian)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

# Debian's engine and the tool that makes the local base image's root (image.py).
PACKAGES = ("docker.io", "debootstrap")


class EngineUnavailable(RuntimeError):
    """No engine answers and this machine cannot start one (not root, or no Debian packages)."""


def answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def missing_packages() -> list[str]:
    tools = {"docker.io": "dockerd", "debootstrap": "debootstrap"}
    return [package for package in PACKAGES if shutil.which(tools[package]) is None]


def ensure(log_dir: Path, log=print, *, install: bool = True) -> str:
    """Make sure an engine answers; say how: 'running', 'started' or 'installed and started'."""
    missing = missing_packages()
    if answers() and "debootstrap" not in missing:
        return "running"
    how = "started"
    if missing:
        if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise EngineUnavailable(
                f"missing {', '.join(missing)}: as root on Debian, `apt-get install -y {' '.join(missing)}` "
                "(make sam-local does it when run as root)"
            )
        log(f"engine: apt-get install -y {' '.join(missing)}")
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env, stdout=subprocess.DEVNULL)
        how = "installed and started"
    if answers():
        return "running"
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers and starting dockerd needs root")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "dockerd.log"
    log(f"engine: starting dockerd (log: {log_file})")
    with log_file.open("ab") as out:
        # Its own session: it outlives this command, as an engine started by hand would.
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 60
    while not answers():
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"dockerd did not answer within 60 s: see {log_file}")
        time.sleep(0.5)
    return how


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: containers reach the host there, nothing outside does."""
    inspected = subprocess.run(["docker", "network", "inspect", "bridge"], check=True, capture_output=True, text=True)
    network = json.loads(inspected.stdout)[0]
    for config in network.get("IPAM", {}).get("Config") or []:
        if config.get("Gateway"):
            return config["Gateway"]
        if config.get("Subnet"):  # the engine leaves Gateway out when it picked the subnet's first address
            return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    raise EngineUnavailable("Docker's bridge network has no gateway address")
