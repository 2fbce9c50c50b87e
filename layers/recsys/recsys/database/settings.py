"""RECSYS_DATABASE__* and postgresql:// URIs (no driver import: Settings reads this on every cold start)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, PositiveInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SCHEMES = ("postgresql", "postgres")
# Query parameters of a postgresql:// raw URI that are ours, not libpq's.
SOURCE_PARAMETERS = ("table",)


class DatabaseSettings(BaseModel):
    """RECSYS_DATABASE__*: where Postgres is and what the pipeline and the API do with it."""

    url: str | None = Field(
        None,
        description="libpq URI, e.g. postgresql://recsys@host:5432/recsys?sslmode=require; a password is best left "
        "out of it (PGPASSWORD, ~/.pgpass or secret_arn); empty: no database",
    )
    secret_arn: str | None = Field(
        None,
        description="Secrets Manager secret in RDS's JSON shape (username, password, host, port, dbname): the "
        "user and password come from it, and the host, port and database where the URL has none",
    )
    signals: bool = Field(False, description="publish also writes the published signals into Postgres")
    keep_days: PositiveInt = Field(
        10, description="published days whose signals stay in Postgres per tenant/surface (for rollback)"
    )
    statement_timeout_s: PositiveInt = Field(600, description="a statement running longer than this is cancelled")
    connect_timeout_s: PositiveInt = 10

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: object) -> object:
        """A blank variable is an unset one (url and secret_arn: no database). `sam local` passes the template's
        values that it cannot resolve (an Fn::If on a condition) as empty strings."""
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if not (isinstance(value, str) and not value.strip())}
        return values

    @property
    def configured(self) -> bool:
        return self.url is not None or self.secret_arn is not None


def is_database_uri(uri: str) -> bool:
    return urlsplit(uri).scheme in SCHEMES


def split_source_uri(uri: str) -> tuple[str, dict[str, str]]:
    """A postgresql:// raw URI -> (the libpq URI, our parameters such as `table`)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {name: value for name, value in query if name in SOURCE_PARAMETERS}
    libpq = [(name, value) for name, value in query if name not in SOURCE_PARAMETERS]
    return urlunsplit(parts._replace(query=urlencode(libpq))), ours


def redacted(uri: str) -> str:
    """`uri` without its password (for reports, logs and quarantine sources)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


class DatabaseEnvironment(BaseSettings):
    """RECSYS_DATABASE__* alone (the API reads these without the pipeline's settings)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", env_nested_delimiter="__", extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
