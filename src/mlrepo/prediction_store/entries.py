"""What the service hands the prediction log for one request, and the table rows it becomes.

An ``Entry`` is built on the request path (cheap: references to what the request already has);
``Entry.rows`` runs on the log writer's thread and serializes the rows' JSON there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlrepo.prediction_store import JsonText, dumps


@dataclass(frozen=True)
class Records:
    """Records' checked feature values as the request typed them, one list per record in
    ``names`` order: a single record's log row without the cost of a frame."""

    names: list[str]
    values: list[list[Any]]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Entry:
    """One request's predictions, as the request path hands them over."""

    request_id: str
    created_at: datetime
    model_version: str
    # The checked feature values, one row per record: a batch's frame, or a single record's
    # values as the request typed them (building a frame would cost more than predicting).
    inputs: pd.DataFrame | Records
    predicted: list[Any]  # predicted class per record
    classes: list[str]  # probability keys, in column order of ``proba``
    proba: np.ndarray
    latency_ms: float

    def rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Rows ``start:stop`` for the table, their JSON already serialized (the writer thread
        holds the GIL while it works, so its cost is the requests' cost too)."""
        if isinstance(self.inputs, Records):
            names, values = self.inputs.names, self.inputs.values[start:stop]
        else:
            names = [str(c) for c in self.inputs.columns]
            # One conversion of the block (Python floats and strings), not one per column.
            values = self.inputs.iloc[start:stop].to_numpy(dtype=object).tolist()
        inputs = [JsonText(dumps(dict(zip(names, row, strict=True)))) for row in values]
        return [
            {
                "request_id": self.request_id,
                "position": position,
                "created_at": self.created_at,
                "model_version": self.model_version,
                "inputs": row,
                "predicted_class": str(self.predicted[position]),
                "probabilities": JsonText(dumps(dict(zip(self.classes, p, strict=True)))),
                "latency_ms": self.latency_ms,
            }
            for position, row, p in zip(
                range(start, stop), inputs, self.proba[start:stop].tolist(), strict=True
            )
        ]
