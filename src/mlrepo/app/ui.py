"""What every page shares: the settings, the service client, the served model, error display."""

from __future__ import annotations

from typing import Any

import streamlit as st

from mlrepo.app.client import ServedModel, ServiceClient, ServiceError
from mlrepo.app.settings import AppSettings
from mlrepo.errors import MlrepoError


def settings() -> AppSettings:
    return AppSettings.from_env()


@st.cache_resource(show_spinner=False)
def _client(url: str, timeout: float, api_key: str | None) -> ServiceClient:
    return ServiceClient(url, timeout, api_key)


def client() -> ServiceClient:
    current = settings()
    return _client(current.service_url, current.timeout_seconds, current.api_key)


@st.cache_data(ttl=15, show_spinner=False)
def _model(url: str, timeout: float, api_key: str | None) -> ServedModel:
    return _client(url, timeout, api_key).model()


def served_model() -> ServedModel | None:
    """The model the service holds (cached for 15 s), or None after showing why not."""
    current = settings()
    try:
        return _model(current.service_url, current.timeout_seconds, current.api_key)
    except ServiceError as exc:
        show_error(exc)
        return None


def show_error(exc: MlrepoError) -> None:
    """A user-facing error as the CLI would print it: the message, no traceback."""
    lines = str(exc).splitlines()
    st.error(lines[0] + ("\n\n" + "\n".join(lines[1:]) if len(lines) > 1 else ""))


def metric_value(metrics: dict[str, Any], *path: str) -> Any:
    value: Any = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value
