"""``POST /predict`` and ``POST /predict/batch``: a body in, the model's predictions out.

The whole path of a prediction request, in order: the JSON body (``http.json_body``: type and
size), the model active when the request started (a reload landing meanwhile does not change
it), the body parsed and typed against that model's request contract (``requests.py``), then the
prediction core (``LoadedModel.predict``: the schema check, then the probabilities), the rows
queued for the prediction log, and the answer. A single record never becomes a DataFrame: its
typed values go to ``LoadedModel.predict_record`` (same rules, same probabilities; a record in
doubt takes the frame path there) and to the log as they are; a frame alone costs more than
the whole prediction. Every client mistake on the way is a
``BadRequest`` naming the field and, in a batch, the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mlrepo.prediction.core import InvalidInput, Predictions
from mlrepo.prediction_store.entries import Entry, Records
from mlrepo.serve.http import CLIENT_ERRORS, answer, json_body, request_id
from mlrepo.serve.requests import SERVICE_FIXES
from mlrepo.serve.serving import Active, Serving


class Prediction(BaseModel):
    """One record's prediction (documentation of the responses)."""

    class_: Any = Field(alias="class", description="the class with the highest probability")
    probabilities: dict[str, float] = Field(description="probability of each class, by class")


class PredictResponse(Prediction):
    request_id: str
    model_version: str


class BatchResponse(BaseModel):
    request_id: str
    model_version: str
    predictions: list[Prediction] = Field(description="one per record, in input order")


def add_predict_routes(app: FastAPI, serving: Serving, keyed: list[Any]) -> None:
    @app.post(
        "/predict",
        summary="Predict one record: a JSON object keyed by feature name",
        responses={200: {"model": PredictResponse}, **CLIENT_ERRORS},
        dependencies=keyed,
    )
    async def predict(request: Request) -> Response:
        def one(active: Active, body: bytes, rid: str, started: float) -> dict[str, Any]:
            values = active.requests.record_values(body)
            predictions = active.model.predict_record(values, SERVICE_FIXES)
            inputs = Records(active.requests.names, [values])
            result = _answer(serving, active, inputs, predictions, rid, started)
            return {**result.pop("predictions")[0], **result}

        return await _handle(request, serving, one)

    @app.post(
        "/predict/batch",
        summary="Predict a list of records, or a columnar batch {columns, data}",
        responses={200: {"model": BatchResponse}, **CLIENT_ERRORS},
        dependencies=keyed,
    )
    async def predict_batch(request: Request) -> Response:
        def batch(active: Active, body: bytes, rid: str, started: float) -> dict[str, Any]:
            frame = active.requests.batch_frame(body)
            predictions = active.model.predict(frame, SERVICE_FIXES)
            return _answer(serving, active, frame, predictions, rid, started)

        return await _handle(request, serving, batch)


async def _handle(
    request: Request,
    serving: Serving,
    work: Callable[[Active, bytes, str, float], dict[str, Any]],
) -> Response:
    started = time.perf_counter()
    rid = request_id(request)
    body = await json_body(request, serving.settings.max_body_bytes)
    active = serving.active  # this request's model, even if a reload lands meanwhile
    assert active is not None

    def checked() -> dict[str, Any]:
        try:
            return work(active, body, rid, started)
        except InvalidInput as exc:  # the core's verdict on the values, worded for HTTP
            raise active.requests.invalid(exc.problems) from None

    return await answer(request, checked, rid, len(body))


def _answer(
    serving: Serving,
    active: Active,
    inputs: pd.DataFrame | Records,
    predictions: Predictions,
    rid: str,
    started: float,
) -> dict[str, Any]:
    """Queue the log rows of checked ``inputs`` and their predictions; the JSON-ready answer."""
    predicted = predictions.labels
    latency_ms = (time.perf_counter() - started) * 1000
    keys = active.keys
    version = active.model.version
    if serving.log is not None:
        serving.log.submit(
            Entry(
                request_id=rid,
                created_at=datetime.now(UTC),
                model_version=version,
                inputs=inputs,
                predicted=predicted,
                classes=keys,
                proba=predictions.proba,
                latency_ms=latency_ms,
            )
        )
    counts = np.bincount(predictions.index, minlength=len(keys))
    serving.telemetry.count_predictions(keys, counts)
    return {
        "request_id": rid,
        "model_version": version,
        "predictions": [
            {"class": c, "probabilities": dict(zip(keys, p, strict=True))}
            for c, p in zip(predicted, predictions.proba.tolist(), strict=True)
        ],
    }
