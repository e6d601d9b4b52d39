"""Keys and model reload: who may predict, who may change what is served.

``MLREPO_API_KEY`` (optional) is then required, in the ``X-API-Key`` header, by ``/predict``,
``/predict/batch`` and ``/model``; ``/health``, ``/ready``, ``/metrics`` and ``/docs`` stay
open for probes and scrapers. ``POST /admin/reload`` changes state, so it always needs a key:
``MLREPO_ADMIN_KEY`` (without it, reload over HTTP is off and answers 403). SIGHUP reloads too
(whoever can signal the process owns it). Keys are compared in constant time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, SecretStr

from mlrepo.errors import MlrepoError
from mlrepo.serve.http import BadRequest, detail
from mlrepo.serve.serving import Serving

log = logging.getLogger("mlrepo.serve")
KEY_HEADER = "X-API-Key"


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str
    changed: bool


SCHEME = APIKeyHeader(name=KEY_HEADER, auto_error=False)  # declared in the OpenAPI document


def key_checker(expected: SecretStr) -> Callable[..., Coroutine[Any, Any, None]]:
    """A FastAPI dependency: 401 unless the request carries ``expected`` in X-API-Key."""

    async def check(given: str | None = Security(SCHEME)) -> None:
        require(given, expected)

    return check


def require(given: str | None, expected: SecretStr) -> None:
    secret = expected.get_secret_value().encode()
    if not given or not hmac.compare_digest(given.encode(), secret):
        raise BadRequest(
            401,
            "a valid API key is required",
            [detail(None, "unauthorized", f"send the key in the {KEY_HEADER} header")],
        )


def add_admin_routes(app: FastAPI, serving: Serving, responses: dict[Any, Any]) -> None:
    admin_key = serving.settings.admin_key

    @app.post(
        "/admin/reload",
        summary="Resolve the model reference again, verify and load it, swap it in",
        description="In-flight requests finish on the old model. A model that fails to "
        "resolve, verify or load leaves the old one serving (409). Needs MLREPO_ADMIN_KEY.",
        responses={200: {"model": ReloadResponse}, **responses},
    )
    async def reload(given: str | None = Security(SCHEME)) -> dict[str, Any]:
        if admin_key is None:
            raise BadRequest(
                403,
                "reload over HTTP is disabled",
                [detail(None, "forbidden", "start the service with MLREPO_ADMIN_KEY set")],
            )
        require(given, admin_key)
        return await reload_model(serving)


async def reload_model(serving: Serving) -> dict[str, Any]:
    """Reload; a 409 ``BadRequest`` (the old model still serving) if it fails."""
    assert serving.active is not None
    previous = serving.active.model.version
    try:
        active = await serving.reload()
    except MlrepoError as exc:
        log.warning("model reload failed, still serving %s: %s", previous, exc)
        raise BadRequest(
            409,
            f"reload failed; still serving {previous}",
            [detail(None, "reload_failed", str(exc))],
        ) from None
    except Exception as exc:
        log.exception("model reload failed, still serving %s", previous)
        raise BadRequest(
            409,
            f"reload failed; still serving {previous}",
            [detail(None, "reload_failed", type(exc).__name__)],
        ) from None
    version = active.model.version
    log.info("model reloaded: %s -> %s", previous, version)
    return {"model_version": version, "previous_version": previous, "changed": version != previous}


def reload_on_sighup(serving: Serving) -> Callable[[], object]:
    """Install the SIGHUP handler on the running loop; returns its removal."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    async def run() -> None:
        log.info("SIGHUP: reloading the model")
        with contextlib.suppress(BadRequest):  # logged by reload_model; the old model serves on
            await reload_model(serving)

    def handle() -> None:
        task = loop.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, handle)
    return lambda: loop.remove_signal_handler(signal.SIGHUP)
