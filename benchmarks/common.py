"""Shared helpers of the benchmarks: measured subprocesses (wall time, exact peak RSS), the machine, percentiles."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable
RECSYS = str(VENV_BIN / "recsys")
RUNS = ROOT / ".out" / "bench-runs"
TENANT, SURFACE = "bench", "home"


def parse_size(text: str) -> int:
    """Events from "100k", "1m", "1.5m" or a plain number (the benchmarks' size options)."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


@dataclass
class Measured:
    """One finished subprocess: wall seconds, peak RSS (MB: its VmHWM, sampled every 5 ms until it exits), CPU."""

    argv: list[str]
    returncode: int
    wall: float
    peak_rss_mb: float
    user_cpu: float
    sys_cpu: float
    stdout: str
    stderr_lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, line)

    @property
    def stderr(self) -> str:
        return "".join(line for _, line in self.stderr_lines)

    def json(self) -> dict:
        """The last JSON document printed on stdout."""
        text = self.stdout.strip()
        start = text.rfind("\n{")
        return json.loads(text[start + 1 :] if start >= 0 else text)

    def check(self) -> Measured:
        if self.returncode != 0:
            tail = self.stderr[-3000:]
            raise RuntimeError(f"{' '.join(self.argv)} exited {self.returncode}:\n{tail}")
        return self


def available_memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 3600.0,
    address_space_limit: int | None = None,
) -> Measured:
    """Run `argv`, timestamp its stderr lines as they arrive, sample its peak RSS (VmHWM), reap it with wait4.

    `address_space_limit` (bytes, RLIMIT_AS) makes a run that would exhaust the machine fail with MemoryError
    instead of waking the OOM killer (used for the 10M-event day)."""
    full_env = {**os.environ, **(env or {})}

    def limit() -> None:
        if address_space_limit:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (address_space_limit, address_space_limit))

    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        preexec_fn=limit if address_space_limit else None,  # the runner has no other threads at this point
    )
    lines: list[tuple[float, str]] = []
    out: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append((time.perf_counter() - started, line))

    def read_stdout() -> None:
        assert process.stdout is not None
        out.append(process.stdout.read())

    # Peak RSS: the child's own VmHWM, sampled until it exits. wait4's ru_maxrss would not do: exec records the
    # parent's high-water mark into the child's (vfork shares the parent's memory until exec), so a benchmark process
    # that generated a large data set would inflate every run it measures.
    hwm = [0.0]
    done = threading.Event()

    def sample_peak() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while not done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]) / 1024)
            except (OSError, ValueError):
                break
            done.wait(0.005)

    readers = [
        threading.Thread(target=read_stderr, daemon=True),
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=sample_peak, daemon=True),
    ]
    for reader in readers:
        reader.start()
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        # The sampler reads /proc/<pid>/status up to the end; a zombie (exited, not yet reaped) still has it, but its
        # memory is gone, so stop sampling once the process is no longer running (waitid with WNOWAIT).
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        done.set()
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
        done.set()
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    return Measured(
        argv=[str(a) for a in argv],
        returncode=process.returncode,
        wall=wall,
        peak_rss_mb=hwm[0] or usage.ru_maxrss / 1024,
        user_cpu=usage.ru_utime,
        sys_cpu=usage.ru_stime,
        stdout="".join(out),
        stderr_lines=lines,
    )


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (p50, p95, p99, max) of `values`."""
    if not values:
        return {f"p{p}": float("nan") for p in points} | {"max": float("nan")}
    ordered = sorted(values)
    n = len(ordered)
    out = {f"p{p}": ordered[min(n - 1, max(0, -(-p * n // 100) - 1))] for p in points}
    out["max"] = ordered[-1]
    out["mean"] = sum(ordered) / n
    return out


def proc_status() -> dict[str, float]:
    """VmRSS / VmHWM of this process in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux clear_refs 5); False where not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = _first(r"^MemTotal:\s+(\d+)", meminfo)
    import numpy
    import pyarrow

    versions = {"python": platform.python_version(), "pyarrow": pyarrow.__version__, "numpy": numpy.__version__}
    for name in ("fastapi", "mangum", "moto", "uvicorn", "pydantic"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - informational only
            pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _first(r"^model name\s*:\s*(.+)$", cpuinfo) or platform.processor() or "unknown",
        "mhz": _first(r"^cpu MHz\s*:\s*(.+)$", cpuinfo) or "?",
        "ram_gb": f"{int(mem_kb) / 1024 / 1024:.1f}" if mem_kb else "?",
        "kernel": platform.release(),
        "os": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
