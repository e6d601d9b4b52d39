"""What configures the app: environment variables over defaults.

``MLREPO_SERVICE_URL`` (the prediction service, default ``http://127.0.0.1:8000``),
``DATABASE_URL`` (the prediction log, read through the same SQLAlchemy URL as the service;
default the service's SQLite file ``predictions.db`` in the working directory),
``MLREPO_PROJECT`` (the project folder for reports and experiments, default ``.``),
``MLREPO_SERVICE_TIMEOUT`` (seconds per request, default 30) and ``MLREPO_API_KEY`` (the
service's key, sent as ``X-API-Key`` when the service requires one; the same variable as the
service reads).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlrepo.errors import MlrepoError

DEFAULT_SERVICE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class AppSettings:
    service_url: str = DEFAULT_SERVICE_URL
    database_url: str = "sqlite:///predictions.db"
    project: Path = Path(".")
    timeout_seconds: float = 30.0
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AppSettings:
        from mlrepo.prediction_store import LogSettings  # the service's own default

        url = (environ.get("MLREPO_SERVICE_URL") or DEFAULT_SERVICE_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise MlrepoError(
                f"MLREPO_SERVICE_URL={url!r}: expected an http:// or https:// URL, e.g. "
                f"{DEFAULT_SERVICE_URL}"
            )
        text = environ.get("MLREPO_SERVICE_TIMEOUT") or "30"
        try:
            timeout = float(text)
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise MlrepoError(f"MLREPO_SERVICE_TIMEOUT={text!r}: expected a positive number")
        return cls(
            service_url=url,
            database_url=environ.get("DATABASE_URL") or LogSettings().url,
            project=Path(environ.get("MLREPO_PROJECT") or "."),
            timeout_seconds=timeout,
            api_key=environ.get("MLREPO_API_KEY") or None,
        )
