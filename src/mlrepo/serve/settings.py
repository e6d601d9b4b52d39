"""What configures the service: ``mlrepo serve`` options over environment variables over defaults.

One pydantic-settings class reads the environment (names below); a bad value is one
``MlrepoError`` naming the variable, the value and what is expected. ``DATABASE_URL`` is any
SQLAlchemy URL (``postgresql://`` uses psycopg 3; default a SQLite file ``predictions.db`` in the
working directory); ``MLREPO_PREDICTION_LOG=off`` turns the log off. Every other variable is
``MLREPO_`` + the field name in capitals, e.g. ``MLREPO_MAX_BODY_BYTES``, ``MLREPO_LOG_FORMAT``.
An empty variable counts as unset.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

from mlrepo.errors import MlrepoError
from mlrepo.prediction import BackendChoice
from mlrepo.prediction_store import LogSettings, engine_url


class ServeSettings(BaseSettings):
    """What ``mlrepo serve`` and the environment configure."""

    model_config = SettingsConfigDict(
        env_prefix="MLREPO_", env_ignore_empty=True, extra="ignore", validate_assignment=True
    )

    model: str | None = None  # a registry reference; None = the production model
    backend: BackendChoice = "auto"
    root: str = "."
    max_batch_rows: int = Field(10_000, gt=0)  # POST /predict/batch answers 413 beyond this
    # 10k typical records are ~3 MiB of JSON; a larger limit only lets a client make the
    # process hold (and keep: the allocator does not give it all back) more memory.
    max_body_bytes: int = Field(16 * 2**20, gt=0)
    max_problems: int = Field(100, gt=0)  # problems listed (and looked for) in one 4xx
    # Server processes (uvicorn workers), each with its own model, event loop and log writer;
    # ONNX Runtime's threads per process: within an operator (intra) and across (inter).
    workers: int = Field(1, gt=0)
    onnx_intra_op_threads: int = Field(1, gt=0)
    onnx_inter_op_threads: int = Field(1, gt=0)
    log_format: Literal["text", "json"] = "text"
    api_key: SecretStr | None = None  # then required by /predict, /predict/batch, /model
    admin_key: SecretStr | None = None  # POST /admin/reload is off without it
    cors_origins: list[str] = []  # e.g. MLREPO_CORS_ORIGINS='["https://app.example"]'; off
    prediction_log: bool = True
    # Where the log's rows are built and written: a process of its own (the server's GIL stays
    # with the requests), or a thread of the server (one process less; its GIL is shared).
    log_writer: Literal["process", "thread"] = "process"
    database_url: str = Field(
        LogSettings.url, validation_alias=AliasChoices("DATABASE_URL", "MLREPO_DATABASE_URL")
    )
    log_max_rows: int = Field(LogSettings.max_rows, gt=0)
    log_batch_rows: int = Field(LogSettings.batch_rows, gt=0)
    log_flush_seconds: float = Field(LogSettings.flush_seconds, gt=0)
    log_retry_max_seconds: float = Field(LogSettings.retry_max_seconds, gt=0)
    log_ping_seconds: float = Field(LogSettings.ping_seconds, gt=0)
    log_shutdown_seconds: float = Field(LogSettings.shutdown_seconds, gt=0)
    # Rows beyond MLREPO_LOG_MAX_ROWS go to this file until the database is back; "off" drops
    # them. "auto": beside a SQLite file, else named after the database in the working
    # directory, so that rows are only ever written back to the database they were meant for.
    log_spill_path: str = "auto"
    log_spill_max_bytes: int = Field(LogSettings.spill_max_bytes, gt=0)

    @model_validator(mode="after")
    def _batch_within_buffer(self) -> ServeSettings:
        if self.log_batch_rows > self.log_max_rows:
            raise ValueError("MLREPO_LOG_BATCH_ROWS must not exceed MLREPO_LOG_MAX_ROWS")
        return self

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """The environment's settings, then ``overrides`` (the command line's options)."""
        try:
            settings = cls()
            for name, value in overrides.items():
                setattr(settings, name, value)
        except ValidationError as exc:
            raise MlrepoError(_describe(exc)) from None
        return settings

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables ``from_env`` reads: how worker
        processes, which build their app from the environment, get the command line's."""
        env = {}
        for name, value in self:
            if value is None:
                continue
            variable = "DATABASE_URL" if name == "database_url" else f"MLREPO_{name.upper()}"
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[variable] = json.dumps(value) if isinstance(value, list) else str(value)
        return env

    @property
    def log(self) -> LogSettings | None:
        """The prediction log's settings, or None when it is off."""
        if not self.prediction_log:
            return None
        return LogSettings(
            url=self.database_url,
            max_rows=self.log_max_rows,
            batch_rows=self.log_batch_rows,
            flush_seconds=self.log_flush_seconds,
            retry_max_seconds=self.log_retry_max_seconds,
            ping_seconds=self.log_ping_seconds,
            shutdown_seconds=self.log_shutdown_seconds,
            spill_path=self._spill_path(),
            spill_max_bytes=self.log_spill_max_bytes,
        )

    def _spill_path(self) -> str | None:
        choice = self.log_spill_path
        if choice.lower() == "off":
            return None
        if choice.lower() != "auto":
            return choice
        url = make_url(engine_url(self.database_url))
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return f"{url.database}.spill.jsonl"
        where = url.render_as_string(hide_password=True).encode()
        return f"predictions-{hashlib.sha256(where).hexdigest()[:12]}.spill.jsonl"


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        variable = "DATABASE_URL" if name == "database_url" else f"MLREPO_{name.upper()}"
        secret = name.endswith("_key")
        shown = name and not secret and not isinstance(error["input"], dict)
        value = f"={error['input']!r}" if shown else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{variable}{value}: {message}" if name else message)
    return "service settings: " + "; ".join(problems)
