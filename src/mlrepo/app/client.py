"""The prediction service seen from the app: its HTTP API, and nothing but its HTTP API.

Every answer the service gives an error for (4xx/5xx, or no answer at all) becomes a
``ServiceError`` whose message says what the service said (its ``error`` and ``detail``), so
the page can show it as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd

from mlrepo.errors import MlrepoError
from mlrepo.schema import FeatureSchema

# Records per /predict/batch request: well under the service's default limit (10 000) and
# its body limit, and small enough that a progress bar moves.
BATCH_ROWS = 2_000
KEY_HEADER = "X-API-Key"  # the service's header for MLREPO_API_KEY


class ServiceError(MlrepoError):
    """The service could not be reached, or refused or failed a request."""

    def __init__(self, message: str, status: int | None = None, detail: list[Any] | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail or []


@dataclass(frozen=True)
class ServedModel:
    """What ``GET /model`` says about the model the service holds."""

    info: dict[str, Any]
    schema: FeatureSchema

    @property
    def classes(self) -> list[Any]:
        return list(self.info.get("classes") or self.schema.classes)

    @property
    def version(self) -> str:
        return str(self.info.get("version"))

    @property
    def reference(self) -> str:
        """A registry reference to the same files: the git commit, else the workspace."""
        return str(self.info.get("git_rev") or "workspace")


class ServiceClient:
    def __init__(self, url: str, timeout: float = 30.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {KEY_HEADER: api_key} if api_key else None
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceError(
                f"the prediction service at {self.url} cannot be reached ({type(exc).__name__}: "
                f"{exc}). Fix: start it with `make serve`, or set MLREPO_SERVICE_URL"
            ) from None
        if response.status_code >= 400:
            raise _error(response, f"{method} {path}")
        return response

    def health(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def ready(self) -> dict[str, Any]:
        """``/ready``'s body, whatever its status (503 is an answer too)."""
        try:
            body: dict[str, Any] = self.http.get("/ready").json()
        except (httpx.TransportError, ValueError) as exc:
            raise ServiceError(f"{self.url}/ready: no answer ({exc})") from None
        return body

    def model(self) -> ServedModel:
        info: dict[str, Any] = self._call("GET", "/model").json()
        if not info.get("feature_schema"):
            raise ServiceError(f"{self.url}/model: the served model has no feature schema")
        return ServedModel(info, FeatureSchema.model_validate(info["feature_schema"]))

    def metrics(self) -> str:
        return self._call("GET", "/metrics").text

    def predict(self, record: dict[str, Any]) -> dict[str, Any]:
        """``POST /predict``: the class, the probabilities, the request id and model version."""
        result: dict[str, Any] = self._call("POST", "/predict", json=record).json()
        return result

    def predict_frame(self, frame: pd.DataFrame, rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
        """``frame`` (features only, canonical dtypes) scored ``rows`` records per request:
        one frame per request with ``prediction`` and ``proba_<class>`` columns."""
        for start in range(0, len(frame), rows):
            chunk = frame.iloc[start : start + rows]
            body = {"columns": list(map(str, chunk.columns)), "data": json_rows(chunk)}
            answer = self._call("POST", "/predict/batch", json=body).json()
            yield predictions_frame(answer["predictions"], start)


def json_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON values: NaN and None become null (JSON has no NaN)."""
    values = frame.astype(object).where(frame.notna(), None)
    rows: list[list[Any]] = values.to_numpy().tolist()
    return [[v.item() if isinstance(v, np.generic) else v for v in row] for row in rows]


def predictions_frame(predictions: list[dict[str, Any]], start: int = 0) -> pd.DataFrame:
    """The service's predictions as ``mlrepo predict`` writes them: ``prediction`` and one
    ``proba_<class>`` column per class."""
    from mlrepo.prediction import PREDICTION, proba_column

    frame = pd.DataFrame(
        {
            PREDICTION: [p["class"] for p in predictions],
            **{
                proba_column(cls): [p["probabilities"][cls] for p in predictions]
                for cls in (predictions[0]["probabilities"] if predictions else {})
            },
        }
    )
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def _error(response: httpx.Response, what: str) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    text = f"{what}: the service answered {response.status_code}"
    if message:
        text += f": {message}"
    for item in (detail or [])[:20] if isinstance(detail, list) else []:
        if isinstance(item, dict):
            where = item.get("field") or "request"
            row = f" (row {item['row']})" if "row" in item else ""
            text += f"\n- {where}{row}: {item.get('msg')}"
    if response.status_code == 401:
        text += "\nFix: set MLREPO_API_KEY for the app to the service's key"
    return ServiceError(text, response.status_code, detail if isinstance(detail, list) else [])
