"""A throwaway PostgreSQL server for tests, benchmarks and local tries: initdb in a temporary folder, started on a
free loopback port, stopped and deleted on exit.

The server binaries are the machine's (`initdb`, `pg_ctl` on PATH, else Debian's /usr/lib/postgresql/<n>/bin).
Where none are installed, `ensure_binaries` installs Debian's `postgresql` package when it may (root with apt-get),
as CI does on a fresh machine; otherwise `ServerUnavailable` says what is missing. PostgreSQL refuses to run as root,
so under root the server runs as the `postgres` user (Debian's package creates it) or `nobody`.

The server is tuned for throwaway data: no fsync, no synchronous commit, no full-page writes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys_tools.local.processes import free_port

_DEBIAN_BIN = Path("/usr/lib/postgresql")
SUPERUSER = "recsys"


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, and they could not be installed."""


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (PATH first, then the newest Debian version), or None."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(
        (p for p in _DEBIAN_BIN.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def ensure_binaries(install: bool = True) -> Path:
    """find_binaries(), installing Debian's package first when `install` and this process may (root, apt-get)."""
    found = find_binaries()
    if found is not None:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True, env=env, capture_output=True)
        found = find_binaries()
        if found is not None:
            return found
    raise ServerUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql` package "
        "(apt-get install -y postgresql) or put a PostgreSQL bin folder on PATH"
    )


def _server_user() -> str | None:
    """The user the server runs as: None (this one) unless this is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServerUnavailable("running as root and there is no `postgres` or `nobody` user to run the server as")


@dataclass
class LocalPostgres:
    """A running throwaway server; `url` connects as its superuser (trust authentication, loopback only)."""

    root: Path
    port: int
    bin_dir: Path
    user: str | None

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]], check=True, capture_output=True, text=True, user=self.user
        )

    def create_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING UTF8 LOCALE "C"')
        return self.database_url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run("pg_ctl", "stop", "-D", str(self.root / "data"), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def start(install: bool = True) -> LocalPostgres:
    """initdb and start a server in a new temporary folder (ServerUnavailable without binaries)."""
    bin_dir = ensure_binaries(install)
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    if user is not None:
        os.chmod(root, 0o755)  # the tmp folder's default 0700 would lock the server user out
        shutil.chown(root, user)
    server = LocalPostgres(root, free_port(), bin_dir, user)
    data = root / "data"
    try:
        server._run("initdb", "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        options = (
            f"-p {server.port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        server._run("pg_ctl", "start", "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60")
    except subprocess.CalledProcessError as err:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        server.stop()
        raise ServerUnavailable(f"the throwaway PostgreSQL server did not start: {err.stderr or err}\n{log}") from err
    return server


@contextlib.contextmanager
def running(install: bool = True) -> Iterator[LocalPostgres]:
    """A throwaway server for the `with` block."""
    server = start(install)
    try:
        yield server
    finally:
        server.stop()


def main() -> int:
    """`python -m recsys_tools.local.postgres`: a throwaway server until Ctrl-C, with a `recsys` database."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # delivered to sigwait below
    server = start()
    try:
        url = server.create_database("recsys")
        print(f"PostgreSQL on {url} (throwaway: deleted on Ctrl-C)", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
