"""The prediction log's writer: every prediction the service makes, written to the prediction
store (``mlrepo.prediction_store``) off the request path.

``PredictionLog.submit`` runs on the request path and only appends the request's predictions to
an in-memory buffer (no I/O, no per-row work). A background thread takes up to ``batch_rows``
rows at a time (or what is there every ``flush_seconds``) and inserts them in one transaction
(``prediction_store.insert_rows``). Any SQLAlchemy URL works: a SQLite file by default,
PostgreSQL through ``postgresql://`` (psycopg 3).

The table and its engine belong to the prediction store (``mlrepo.prediction_store``), whose
Alembic scripts (``prediction_store.migrations``) the writer runs to bring the database to the
latest revision before its first write, and again after a reconnection.

When the database cannot be reached the rows stay buffered, ``status`` turns ``down`` (shown in
``/ready``'s ``database`` field; ``mlrepo_prediction_log_database_up`` is 0; the service stays
ready, since it still predicts) and the thread retries with exponential
backoff; an idle thread pings the database every ``ping_seconds`` so an outage shows even
without traffic. The memory buffer is bounded: beyond ``max_rows`` queued rows the **oldest**
go to the spill file on local disk (``spill.py``; written by the writer thread, not the request
path), which is written back once the database returns. Only when the spill file is off or
full are rows dropped, oldest first, each counted in
``mlrepo_prediction_log_dropped_rows_total{reason="buffer_full"}`` and logged. ``close`` (a
graceful shutdown) writes everything buffered, waiting at most ``shutdown_seconds`` for an
unreachable database; rows still unwritten then go to the spill file for the next start (or,
without one, are counted with ``reason="shutdown"``).

A ``kill -9`` loses the rows in memory: at most those answered in the last ``flush_seconds``
(0.5 s by default) plus the batch being inserted, while the database is up; during an outage,
up to ``max_rows`` (the spilled ones survive).

A SQLite file that is deleted or replaced (its directory removed and made again, a log
rotation) is noticed before each write and each ping: the engine is disposed of, so the next
connection opens the file now at that path (creating it and its directory if need be) instead of
writing into the unlinked one.

A row is unique per (request id, position in the request), so a batch retried after an
ambiguous failure (committed, but the acknowledgement was lost) is not written twice.

The module is one class over ~350 lines on purpose: buffer, spill, retry, ping and shutdown are
one state machine guarded by one condition variable, and it reads (and is reviewed) best whole.
What the request path hands over lives apart, in ``prediction_store.entries``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mlrepo.errors import first_line
from mlrepo.prediction_store import JsonText, LogSettings, build_engine, insert_rows, prediction_log
from mlrepo.prediction_store.entries import Entry
from mlrepo.serve.spill import SpillFile
from mlrepo.serve.telemetry import Telemetry

log = logging.getLogger("mlrepo.serve.prediction_log")


@dataclass
class _Pending:
    entry: Entry
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


class PredictionLog:
    """Buffers predictions and writes them in batches from a background thread."""

    def __init__(self, settings: LogSettings, telemetry: Telemetry | None = None) -> None:
        if settings.batch_rows > settings.max_rows:
            raise ValueError("batch_rows must not exceed max_rows")
        self.settings = settings
        self.telemetry = telemetry
        self.engine = build_engine(settings)
        self.status = "connecting"  # connecting | up | down
        self.last_error: str | None = None
        self.last_error_kind: str | None = None  # the exception's class: no path, no host
        self.written = 0
        self.dropped = 0
        self._queue: deque[_Pending] = deque()
        self._rows = 0
        self._inflight = 0  # rows taken by the writer, not yet written nor put back
        self._overflow: list[_Pending] = []  # beyond max_rows, for the writer to spill
        self.spill = (
            SpillFile(Path(settings.spill_path), settings.spill_max_bytes, JsonText)
            if settings.spill_path
            else None
        )
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._deadline = float("inf")
        self._table_ready = False
        self._last_contact = 0.0
        self._last_drop_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        database = self.engine.url.database
        self._sqlite_path = (
            Path(database)
            if self.engine.dialect.name == "sqlite" and database and database != ":memory:"
            else None
        )
        self._sqlite_identity: tuple[int, int] | None = None

    @property
    def backend(self) -> str:
        """The kind of database (``sqlite``, ``postgresql``...), which /ready may show."""
        return self.engine.dialect.name

    @property
    def ready(self) -> bool:
        return self.status == "up"

    @property
    def queued_rows(self) -> int:
        """Rows answered but not yet in the database (buffered, or being written)."""
        return self._rows + self._inflight

    def start(self) -> None:
        self._thread.start()

    def submit(self, entry: Entry) -> None:
        """Queue ``entry``'s rows; never blocks on the database, never raises."""
        size = len(entry.inputs)
        with self._cond:
            self._queue.append(_Pending(entry, 0, size))
            self._rows += size
            if self._trim():
                self._wake.set()  # the writer spills them, even while backing off
            if self._rows >= self.settings.batch_rows:
                self._cond.notify()

    @property
    def spilled_rows(self) -> int:
        return self.spill.rows if self.spill else 0

    def close(self) -> None:
        """Write everything buffered (waiting at most ``shutdown_seconds`` for the database),
        then stop the thread and release the connections."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + self.settings.shutdown_seconds
            self._cond.notify_all()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self.settings.shutdown_seconds + 30)
        if self.spill is not None and not self._thread.is_alive():
            try:
                self.spill.compact()
            except OSError as exc:
                log.warning("prediction log: cannot compact the spill file: %s", exc)
        self.engine.dispose()

    def _run(self) -> None:
        backoff = self.settings.retry_min_seconds
        while True:
            with self._cond:
                # Until the table exists, go straight on to reach the database (and be ready);
                # while spilled rows wait and the database is up, write them back without
                # pausing (a batch per flush interval was 2,000 rows/s: minutes of backlog).
                if (
                    self._table_ready
                    and not self._stopping
                    and self._rows < self.settings.batch_rows
                    and not (self.status == "up" and self.spilled_rows > 0)
                ):
                    self._cond.wait(self.settings.flush_seconds)
                stopping = self._stopping
                batch = self._take(self.settings.batch_rows)
                self._inflight = sum(part.size for part in batch)
            self._spill_overflow()
            if stopping and not batch:
                return
            if self._write(batch) if batch else self._ping_if_due():
                self._inflight = 0
                backoff = self.settings.retry_min_seconds
                if not batch or self._rows < self.settings.batch_rows:
                    self._write_back_spilled()
                continue
            if batch:
                with self._cond:
                    self._put_back(batch)
                    self._inflight = 0
                    self._trim()
            if stopping and time.monotonic() >= self._deadline:
                with self._cond:
                    self._overflow += list(self._queue)
                    self._queue.clear()
                    self._rows = 0
                self._spill_overflow(reason="shutdown")
                return
            wait = min(backoff, max(0.0, self._deadline - time.monotonic()))
            self._wake.wait(wait)
            if not self._stopping:
                self._wake.clear()
            backoff = min(backoff * 2, self.settings.retry_max_seconds)

    def _take(self, limit: int) -> list[_Pending]:
        """Up to ``limit`` of the oldest queued rows (call with the lock held)."""
        taken: list[_Pending] = []
        while self._queue and limit > 0:
            first = self._queue[0]
            n = min(limit, first.size)
            taken.append(_Pending(first.entry, first.start, first.start + n))
            first.start += n
            if first.size == 0:
                self._queue.popleft()
            limit -= n
            self._rows -= n
        return taken

    def _put_back(self, taken: list[_Pending]) -> None:
        for part in reversed(taken):
            first = self._queue[0] if self._queue else None
            if first is not None and first.entry is part.entry and first.start == part.stop:
                first.start = part.start
            else:
                self._queue.appendleft(part)
            self._rows += part.size

    def _trim(self) -> int:
        """Move the oldest rows beyond ``max_rows`` to the overflow (call with the lock held)."""
        excess = self._rows - self.settings.max_rows
        if excess <= 0:
            return 0
        taken = self._take(excess)
        self._overflow += taken
        return sum(p.size for p in taken)

    def _spill_overflow(self, reason: str = "buffer_full") -> None:
        """Write the overflow to the spill file (the writer thread's job); drop what does not
        fit, or everything when there is no spill file."""
        with self._cond:
            overflow, self._overflow = self._overflow, []
        if not overflow:
            return
        rows = [row for part in overflow for row in part.entry.rows(part.start, part.stop)]
        kept = 0
        if self.spill is not None:
            try:
                kept = self.spill.append(rows)
            except OSError as exc:
                log.warning("prediction log: cannot write the spill file: %s", exc)
        if kept:
            log.info("prediction log: %d row(s) saved to the spill file", kept)
            if self.telemetry:
                self.telemetry.log_spilled.inc(kept)
        if len(rows) > kept:
            self._count_dropped(len(rows) - kept, reason)

    def _write_back_spilled(self) -> None:
        """Insert one batch of spilled rows, oldest first, while the database is up."""
        if self.spill is None or self.spill.rows <= 0:
            return
        try:
            rows, offset = self.spill.read(self.settings.batch_rows)
            if rows:
                with self.engine.begin() as connection:
                    insert_rows(connection, rows)
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)
            return
        self.spill.consumed(len(rows), offset)
        self.written += len(rows)
        if self.telemetry:
            self.telemetry.log_written.inc(len(rows))
        if self.spill.rows == 0:
            log.info("prediction log: the spill file is written back")

    def _write(self, batch: list[_Pending]) -> bool:
        rows = [row for part in batch for row in part.entry.rows(part.start, part.stop)]
        try:
            self._ensure_table()
            with self.engine.begin() as connection:
                insert_rows(connection, rows)
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)
            return False
        self._reached()
        self.written += len(rows)
        if self.telemetry:
            self.telemetry.log_written.inc(len(rows))
        return True

    def _ping_if_due(self) -> bool:
        if self._table_ready and time.monotonic() - self._last_contact < self.settings.ping_seconds:
            return True
        try:
            self._ensure_table()
            with self.engine.connect() as connection:
                # Reads the table, so a locked SQLite file counts as down, as it would for writes.
                connection.execute(select(prediction_log.c.id).limit(1)).all()
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)
            return False
        self._reached()
        return True

    def _ensure_table(self) -> None:
        self._check_sqlite_file()
        if not self._table_ready:
            from mlrepo.prediction_store.migrations import upgrade_connection  # alembic: on use

            with self.engine.begin() as connection:
                upgrade_connection(connection)
            self._table_ready = True
            if self._sqlite_path is not None:
                self._sqlite_identity = _identity(self._sqlite_path)

    def _check_sqlite_file(self) -> None:
        """Start afresh if the SQLite file was deleted or replaced since it was opened."""
        if self._sqlite_path is None or self._sqlite_identity is None:
            return
        if _identity(self._sqlite_path) == self._sqlite_identity:
            return
        log.warning(
            "prediction log file %s was removed or replaced; reopening it", self._sqlite_path.name
        )
        self.engine.dispose()  # the pooled connections hold the old, unlinked file
        self._sqlite_identity = None
        self._table_ready = False
        self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)

    def _reached(self) -> None:
        if self.status != "up":
            log.info("prediction log database %s is up", self._safe_url())
        self.status = "up"
        self.last_error = self.last_error_kind = None
        self._last_contact = time.monotonic()
        if self.telemetry:
            self.telemetry.log_db_up.set(1)

    def _failed(self, exc: Exception) -> None:
        cause = getattr(exc, "orig", None) or exc  # the driver's own message, without the SQL
        message = first_line(cause)
        if self.status != "down":
            log.warning(
                "prediction log database %s unreachable (%s); buffering up to %d rows and retrying",
                self._safe_url(),
                message,
                self.settings.max_rows,
            )
        self.status = "down"
        self.last_error = message
        self.last_error_kind = type(cause).__name__
        if self.telemetry:
            self.telemetry.log_db_up.set(0)
            self.telemetry.log_errors.inc()

    def _count_dropped(self, rows: int, reason: str) -> None:
        self.dropped += rows
        if self.telemetry:
            self.telemetry.log_dropped.labels(reason).inc(rows)
        now = time.monotonic()
        if reason == "shutdown" or now - self._last_drop_warning > 10:
            self._last_drop_warning = now
            log.warning(
                "prediction log: %d row(s) dropped (%s); %d dropped since start",
                rows,
                "buffer and spill file full, oldest first"
                if reason == "buffer_full"
                else "database unreachable at shutdown and no spill file",
                self.dropped,
            )

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
