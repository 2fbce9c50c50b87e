"""Connecting to Postgres: RECSYS_DATABASE__* settings, credentials from the URL, libpq's environment or a Secrets
Manager secret, and one reused connection per process (a Lambda instance keeps it across invocations).
"""

from __future__ import annotations

import json
import threading

import psycopg
from psycopg import conninfo

from recsys.database.settings import DatabaseSettings
from recsys.errors import ConfigError
from recsys.store import StoreError


def _secret(secret_arn: str) -> dict:
    """The secret's JSON (cached by Powertools for 5 minutes, so a rotated password is picked up)."""
    from aws_lambda_powertools.utilities import parameters  # boto3: only where a secret is used

    value = parameters.get_secret(secret_arn, max_age=300)
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        raise ConfigError(f"secret {secret_arn} is not JSON in RDS's shape (username, password, host, ...)") from None


def resolve(settings: DatabaseSettings, url: str | None = None) -> str:
    """The conninfo to connect with: `url` (default settings.url) with the secret's user and password, and its
    host, port and database where the URL has none."""
    url = url or settings.url
    if url is None and settings.secret_arn is None:
        raise ConfigError("no database: set RECSYS_DATABASE__URL or RECSYS_DATABASE__SECRET_ARN")
    params = conninfo.conninfo_to_dict(url or "")
    if settings.secret_arn:
        secret = _secret(settings.secret_arn)
        fields = {"user": "username", "password": "password", "host": "host", "port": "port", "dbname": "dbname"}
        for param, key in fields.items():
            # The credentials belong together: the secret's user and password win; its address fills gaps.
            if key in secret and (param in ("user", "password") or not params.get(param)):
                params[param] = str(secret[key])
    params.setdefault("connect_timeout", str(settings.connect_timeout_s))
    params.setdefault("application_name", "recsys")
    return conninfo.make_conninfo(**params)


def connect(settings: DatabaseSettings, url: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection with the statement timeout set and UTC as its time zone; StoreError if it cannot be made."""
    info = resolve(settings, url)
    try:
        conn = psycopg.connect(info, autocommit=autocommit)
    except psycopg.OperationalError as err:  # unreachable, refused, bad credentials: one line, no password
        where = conninfo.conninfo_to_dict(info)
        address = (
            f"{where.get('user', '')}@{where.get('host', '')}:{where.get('port', '5432')}/{where.get('dbname', '')}"
        )
        raise StoreError(f"cannot connect to Postgres {address}: {str(err).strip().splitlines()[-1]}") from None
    conn.execute(f"SET statement_timeout = {settings.statement_timeout_s * 1000}")
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")  # timestamps as text: 2026-01-01 08:00:00.5 (the event source)
    if not autocommit:
        conn.commit()
    return conn


class SharedConnection:
    """One connection reused across calls (and a Lambda instance's invocations), reopened when it broke.

    psycopg serialises the statements of one connection; `lock` makes a caller's statements a unit.
    """

    def __init__(self, settings: DatabaseSettings, url: str | None = None) -> None:
        self.settings = settings
        self.url = url
        self.lock = threading.RLock()
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        with self.lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(self.settings, self.url, autocommit=True)
            return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
