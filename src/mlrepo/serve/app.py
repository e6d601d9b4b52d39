"""The HTTP service: a FastAPI app that loads one model version in its lifespan and serves it.

``create_app(settings)`` builds the app; its lifespan deserializes the model once (ONNX, or the
single-threaded scikit-learn fallback), starts the prediction-log writer and, on shutdown
(SIGTERM to uvicorn), flushes the log. Endpoints: ``/health``, ``/ready``, ``/predict``,
``/predict/batch``, ``/model``, ``/metrics``, and the OpenAPI docs at ``/docs`` (Swagger UI served
from this process: the page works without a network).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from mlrepo.bundle import ModelBundle
from mlrepo.serve.admin import add_admin_routes, key_checker, reload_on_sighup
from mlrepo.serve.http import CLIENT_ERRORS, BadRequest, ErrorResponse, error, json_response
from mlrepo.serve.logs import log_config
from mlrepo.serve.predicting import add_predict_routes
from mlrepo.serve.serving import Serving
from mlrepo.serve.settings import ServeSettings
from mlrepo.serve.telemetry import CONTENT_TYPE, MetricsMiddleware

log = logging.getLogger("mlrepo.serve")

ENDPOINTS = (
    "/health", "/ready", "/predict", "/predict/batch", "/model", "/metrics", "/docs",
    "/admin/reload",
)  # fmt: skip
# Swagger UI 5 (renders OpenAPI 3.1), as the fastapi-offline package ships it.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"


class ModelStatus(BaseModel):
    loaded: bool
    backend: str | None


class DatabaseStatus(BaseModel):
    status: str = Field(description="disabled, connecting, up or down")
    backend: str | None = Field(None, description="sqlite, postgresql...")
    error: str | None = Field(None, description="the kind of the last failure (details: the log)")
    queued_rows: int | None = None
    spilled_rows: int | None = Field(None, description="in the spill file on local disk")
    written_rows: int | None = None
    dropped_rows: int | None = None


class ReadyResponse(BaseModel):
    ready: bool = Field(description="the model is loaded: the service can predict")
    model: ModelStatus
    database: DatabaseStatus = Field(
        description="the prediction log; its health does not affect readiness"
    )


def create_app(settings: ServeSettings | None = None, bundle: ModelBundle | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment); ``bundle`` skips resolving
    ``settings.model`` (the CLI resolves it first, to report a bad reference before starting)."""
    serving = Serving(settings or ServeSettings.from_env(), bundle, ENDPOINTS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving.load()
        serving.start_log()
        # The model, pandas and the libraries are hundreds of thousands of long-lived objects;
        # each full collection would walk them all (50-150 ms pauses, every few seconds once
        # the prediction log allocates rows). Freezing them leaves only new objects to collect.
        gc.collect()
        gc.freeze()
        stop_sighup = reload_on_sighup(serving)
        try:
            yield
        finally:
            stop_sighup()
            if serving.log is not None:
                log.info("flushing %d buffered prediction-log rows", serving.log.queued_rows)
                serving.log.close()
                log.info(
                    "prediction log closed: %d rows written, %d dropped",
                    serving.log.written,
                    serving.log.dropped,
                )

    app = FastAPI(
        title="mlrepo prediction service",
        summary="Predictions of one model version, checked against its training feature schema",
        lifespan=lifespan,
        docs_url=None,  # served below from local assets instead of a CDN
        redoc_url=None,
    )
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")
    app.state.serving = serving
    if serving.settings.cors_origins:  # off unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=serving.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key"],
        )
    app.add_middleware(MetricsMiddleware, telemetry=serving.telemetry)
    _add_error_handlers(app)
    _add_routes(app, serving)
    admin_errors = {
        status: {"model": ErrorResponse, "description": text}
        for status, text in (
            (401, "the admin key is missing or wrong"),
            (403, "reload over HTTP is disabled (no MLREPO_ADMIN_KEY)"),
            (409, "the new model failed to resolve, verify or load; the old one serves on"),
        )
    }
    add_admin_routes(app, serving, admin_errors)
    app.openapi = lambda: _openapi(app, serving)  # type: ignore[method-assign]
    return app


def serve(
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = False,
    bundle: ModelBundle | None = None,
) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM, then shut down gracefully.

    With ``settings.workers`` > 1, uvicorn's supervisor starts that many processes, each
    building the app from the environment (``create_app()``, the settings exported to it):
    each resolves the model again and writes its own log rows (unique per request id).
    """
    import uvicorn

    # One format for uvicorn's lines and ours (MLREPO_LOG_FORMAT=json: one JSON object a line).
    config = log_config(settings.log_format)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "lifespan": "on",
        "log_config": config,
        "log_level": config["loggers"]["mlrepo"]["level"].lower(),
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings, bundle), **options)
        return
    os.environ.update(settings.to_env())
    multi = uvicorn.Config(
        f"{__name__}:create_app", factory=True, workers=settings.workers, **options
    )
    sock = multi.bind_socket()
    # uvicorn binds the workers' socket without IPPROTO_TCP, so asyncio does not set
    # TCP_NODELAY on its connections: each answer (head and body, two writes) then waited
    # for the client's delayed ACK, +40 ms. Accepted sockets inherit it from this one.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    from uvicorn.supervisors import Multiprocess

    Multiprocess(multi, sockets=[sock]).run()


def _add_routes(app: FastAPI, serving: Serving) -> None:
    api_key = serving.settings.api_key
    keyed = [Depends(key_checker(api_key))] if api_key else []

    @app.get("/health", summary="Liveness: the process answers (touches nothing)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="Readiness: 200 once the model is loaded (the service can predict), else 503",
        description="The prediction log's state is reported in `database` (and in /metrics) "
        "but does not make the service unready: predictions go on during a database outage.",
        responses={200: {"model": ReadyResponse}, 503: {"model": ReadyResponse}},
    )
    async def ready() -> Response:
        plog = serving.log
        database: dict[str, Any] = {"status": "disabled"}
        if plog is not None:
            # No URL, path or driver message: /ready is public; the server log has the details.
            database = {
                "status": plog.status,
                "backend": plog.backend,
                "error": plog.last_error_kind,
                "queued_rows": plog.queued_rows,
                "spilled_rows": plog.spilled_rows,
                "written_rows": plog.written,
                "dropped_rows": plog.dropped,
            }
        active = serving.active
        loaded = active is not None
        body = {
            "ready": loaded,
            "model": {
                "loaded": loaded,
                "backend": active.model.predictor.backend if active else None,
            },
            "database": database,
        }
        return json_response(body, 200 if loaded else 503)

    add_predict_routes(app, serving, keyed)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
            # Swagger UI's default validator badge is an image from an outside host.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(
        "/model",
        summary="The model served: version, git rev, metrics, params, schema",
        responses={401: CLIENT_ERRORS[401]},
        dependencies=keyed,
    )
    async def model() -> Response:
        active = serving.active
        assert active is not None
        loaded = active.model
        meta = loaded.bundle.metadata
        return json_response(
            {
                "name": loaded.bundle.name,
                "version": loaded.version,
                "registry_version": loaded.bundle.version,
                "stage": loaded.bundle.stage,
                "git_rev": loaded.bundle.rev,
                "source": loaded.bundle.source,
                "backend": loaded.predictor.backend,
                "fallback_reason": getattr(loaded.predictor, "fallback_reason", None),
                "estimator": meta.get("model"),
                "params": meta.get("params"),
                "metrics": loaded.bundle.metrics,
                "cv": meta.get("cv"),
                "classes": active.classes,
                "feature_schema": meta.get("feature_schema"),
                "training_data": meta.get("training_data"),
                "training_data_md5": (meta.get("training_data") or {}).get("md5"),
                "versions": meta.get("versions"),
            }
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(serving.telemetry.exposition(), media_type=CONTENT_TYPE)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return error(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", None)
        log.exception("request %s failed", request_id)
        return json_response({"error": "internal error", "request_id": request_id}, 500, request_id)


def _openapi(app: FastAPI, serving: Serving) -> dict[str, Any]:
    """The OpenAPI document, with the request bodies generated from the feature schema."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    if serving.active is not None:
        requests = serving.active.requests
        bodies = {
            "/predict": requests.record_schema(),
            "/predict/batch": requests.batch_schema(),
        }
        for path, body in bodies.items():
            schema["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
    app.openapi_schema = schema
    return schema
