"""What configures the service: ``mlrepo serve`` options over environment variables over defaults.

Environment: ``DATABASE_URL`` (any SQLAlchemy URL; ``postgresql://`` uses psycopg 3; default a
SQLite file ``predictions.db`` in the working directory), ``MLREPO_PREDICTION_LOG=off``,
``MLREPO_MODEL``, ``MLREPO_BACKEND``, ``MLREPO_MAX_BATCH_ROWS``, ``MLREPO_MAX_BODY_BYTES`` and the
log writer's ``MLREPO_LOG_MAX_ROWS``, ``MLREPO_LOG_BATCH_ROWS``, ``MLREPO_LOG_FLUSH_SECONDS``,
``MLREPO_LOG_RETRY_MAX_SECONDS``, ``MLREPO_LOG_PING_SECONDS``, ``MLREPO_LOG_SHUTDOWN_SECONDS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlrepo.errors import MlrepoError
from mlrepo.predict import BACKENDS, BackendChoice
from mlrepo.serve.prediction_log import LogSettings


@dataclass
class ServeSettings:
    """What ``mlrepo serve`` and the environment configure."""

    model: str | None = None  # a registry reference; None = the production model
    backend: BackendChoice = "auto"
    root: str = "."
    max_batch_rows: int = 10_000  # POST /predict/batch answers 413 beyond this
    max_body_bytes: int = 64 * 2**20
    log: LogSettings | None = field(default_factory=LogSettings)  # None: no prediction log

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServeSettings:
        """Defaults overridden by ``DATABASE_URL`` and ``MLREPO_*`` variables (see README)."""
        settings = cls(
            model=environ.get("MLREPO_MODEL") or None,
            backend=_env_backend(environ),
            max_batch_rows=_env_int(environ, "MLREPO_MAX_BATCH_ROWS", cls.max_batch_rows),
            max_body_bytes=_env_int(environ, "MLREPO_MAX_BODY_BYTES", cls.max_body_bytes),
        )
        if environ.get("MLREPO_PREDICTION_LOG", "on").lower() in {"off", "0", "false", "no"}:
            settings.log = None
            return settings
        defaults = LogSettings()
        settings.log = LogSettings(
            url=environ.get("DATABASE_URL") or defaults.url,
            max_rows=_env_int(environ, "MLREPO_LOG_MAX_ROWS", defaults.max_rows),
            batch_rows=_env_int(environ, "MLREPO_LOG_BATCH_ROWS", defaults.batch_rows),
            flush_seconds=_env_float(environ, "MLREPO_LOG_FLUSH_SECONDS", defaults.flush_seconds),
            retry_max_seconds=_env_float(
                environ, "MLREPO_LOG_RETRY_MAX_SECONDS", defaults.retry_max_seconds
            ),
            ping_seconds=_env_float(environ, "MLREPO_LOG_PING_SECONDS", defaults.ping_seconds),
            shutdown_seconds=_env_float(
                environ, "MLREPO_LOG_SHUTDOWN_SECONDS", defaults.shutdown_seconds
            ),
        )
        if settings.log.batch_rows > settings.log.max_rows:
            raise MlrepoError("MLREPO_LOG_BATCH_ROWS must not exceed MLREPO_LOG_MAX_ROWS")
        return settings


def _env_backend(environ: Mapping[str, str]) -> BackendChoice:
    text = environ.get("MLREPO_BACKEND") or "auto"
    for backend in BACKENDS:
        if text == backend:
            return backend
    raise MlrepoError(f"MLREPO_BACKEND={text!r}: expected one of {', '.join(BACKENDS)}")


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise MlrepoError(f"{name}={text!r}: expected a positive integer")
    return value


def _env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise MlrepoError(f"{name}={text!r}: expected a positive number of seconds")
    return value
