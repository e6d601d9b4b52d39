"""What the endpoints share: the model being served, the prediction log and the metrics.

``serve/predicting.py`` answers the prediction requests with them.

The model, its request contract and its classes form one ``Active`` value, swapped in one
assignment by ``reload``: a request takes the active value once when it starts, so it is
parsed, checked and predicted by one model even if a reload lands meanwhile (it finishes on
the old one). A reload resolves the reference again (a registry stage may now point to
another version), verifies the bytes against dvc.lock and deserializes them; any failure
leaves the old model serving.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from starlette.concurrency import run_in_threadpool

from mlrepo.bundle import ModelBundle
from mlrepo.prediction.core import LoadedModel, from_bundle
from mlrepo.serve.log_process import LogProcess
from mlrepo.serve.prediction_log import PredictionLog
from mlrepo.serve.requests import RequestModels
from mlrepo.serve.settings import ServeSettings
from mlrepo.serve.spill import worker_path
from mlrepo.serve.telemetry import Telemetry

log = logging.getLogger("mlrepo.serve")


@dataclass(frozen=True)
class Active:
    """One loaded model and everything derived from it."""

    model: LoadedModel
    requests: RequestModels
    classes: list[Any]
    keys: list[str]  # the classes as JSON keys of the probabilities

    @property
    def fallback(self) -> str:
        return getattr(self.model.predictor, "fallback_reason", None) or ""


class Serving:
    def __init__(self, settings: ServeSettings, bundle: ModelBundle | None, endpoints: Any) -> None:
        self.settings = settings
        self.bundle = bundle
        self.telemetry = Telemetry(endpoints)
        self.active: Active | None = None
        self.log: LogProcess | PredictionLog | None = None
        self._reloading = asyncio.Lock()
        self._spill_lock: IO[bytes] | None = None  # this worker's spill file, held for life

    def load(self) -> None:
        """Load the model given at start (or resolve ``settings.model``)."""
        self._activate(self.bundle or self._resolve())

    async def reload(self) -> Active:
        """Resolve, verify and load the model again, then swap it in; raises (and the old
        model stays) if any step fails. One reload at a time."""
        async with self._reloading:
            try:
                bundle = await run_in_threadpool(self._resolve)
                active = await run_in_threadpool(self._build, bundle)
            except Exception:
                self.telemetry.reloads.labels("failed").inc()
                raise
            self._activate(active.model.bundle, active)
            self.telemetry.reloads.labels("ok").inc()
            return active

    def _resolve(self) -> ModelBundle:
        from mlrepo.registry import resolve  # gto and dvc are slow to import

        return resolve(self.settings.model, root=self.settings.root)

    def _build(self, bundle: ModelBundle) -> Active:
        settings = self.settings
        threads = (settings.onnx_intra_op_threads, settings.onnx_inter_op_threads)
        model = from_bundle(bundle, settings.backend, threads)
        classes = list(model.predictor.classes)
        requests = RequestModels(
            model.predictor.schema, self.settings.max_batch_rows, self.settings.max_problems
        )
        return Active(model, requests, classes, [str(c) for c in classes])

    def _activate(self, bundle: ModelBundle, active: Active | None = None) -> None:
        active = active or self._build(bundle)
        old, self.active = self.active, active  # the swap: one assignment
        model = active.model
        if active.fallback:
            log.warning("serving the scikit-learn fallback: %s", active.fallback)
        info = self.telemetry.model_info
        if old is not None:
            info.remove(*_info_labels(old))
        info.labels(*_info_labels(active)).set(1)
        self.telemetry.set_drift(model.bundle.drift)
        log.info(
            "model %s %s loaded from %s (%s backend, %d features)",
            model.bundle.name,
            model.version,
            model.bundle.source,
            model.predictor.backend,
            len(active.requests.names),
        )

    def start_log(self) -> None:
        log_settings = self.settings.log
        if log_settings is not None and log_settings.spill_path and self.settings.workers > 1:
            claimed = worker_path(Path(log_settings.spill_path), self.settings.workers)
            path = None
            if claimed is None:
                log.warning("prediction log: every worker spill file is taken; spilling is off")
            else:
                path, self._spill_lock = claimed
            log_settings = replace(log_settings, spill_path=str(path) if path else None)
        if log_settings is not None:
            if self.settings.log_writer == "process":
                self.log = LogProcess(log_settings, self.telemetry, self.settings.log_format)
            else:
                self.log = PredictionLog(log_settings, self.telemetry)
            self.telemetry.log_queue.set_function(lambda: self.log.queued_rows if self.log else 0)
            self.telemetry.log_spill_rows.set_function(
                lambda: self.log.spilled_rows if self.log else 0
            )
            self.log.start()


def _info_labels(active: Active) -> tuple[str, ...]:
    model = active.model
    return (
        model.bundle.name,
        model.version,
        model.predictor.backend,
        model.bundle.rev or "",
        active.fallback,
    )
