"""The prediction log's writer in a process of its own, so the server's GIL stays with requests.

``PredictionLog`` (``prediction_log.py``) is the writer: buffer, spill file, retries, shutdown.
As a thread of the server it shares the interpreter lock with the requests: a 10k-record
batch's rows (the JSON of every record, then the insert) held the GIL for ~130 ms, which the
next request waited for (10k batch p50 218 ms with the log on against 142 ms with it off,
benchmarks/SERVE_RESULTS.md run 5). ``LogProcess`` runs the same ``PredictionLog`` in a child
process (``python -m mlrepo.serve.log_process``) and gives the service the same surface:

- ``submit`` (request path) appends the entry to a deque and returns;
- a feeder thread pickles it and writes it to a pipe (the pickle of a 10k-record batch is a
  few hundred kilobytes of arrays; the write releases the GIL);
- in the child a receiver thread hands each entry to its ``PredictionLog``, whose writer thread
  builds and inserts the rows with the child's own GIL, on the other core;
- the child reports its state every ``REPORT_SECONDS`` on a second pipe; a thread here turns
  it into /ready's fields and the ``mlrepo_prediction_log_*`` metrics.

Shutdown and crashes. ``close`` (a graceful shutdown) sends what is left and then a stop
message; the child closes its log (writes everything, or spills it when the database stays
away ``shutdown_seconds``), reports a last time and exits; ``close`` waits for it. The child
ignores SIGINT, SIGTERM and SIGHUP: Ctrl-C reaches the whole process group, and the server, not
the signal, decides when the log stops. When the server dies (``kill -9``) the child reads the end
of its pipe and closes its log the same way, so a kill -9 of the server loses only the entries
not yet handed over (the feeder's deque: empty within milliseconds of each answer). When the
child dies, the rows it held are lost (at most the thread writer's bound: the last flush
interval and the batch being inserted, or ``max_rows`` during an outage); the server logs an
error, counts them as dropped (``reason="writer_exit"``, an upper bound: rows written in the
child's last report interval count too), and starts a new child.

While no child takes entries (starting, restarting), at most ``max_rows`` wait here; beyond
that the oldest are dropped and counted (``reason="buffer_full"``).
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import make_url

from mlrepo.prediction_store import LogSettings, build_engine, engine_url
from mlrepo.prediction_store.entries import Entry
from mlrepo.serve.logs import log_config
from mlrepo.serve.telemetry import Telemetry

log = logging.getLogger("mlrepo.serve.log_process")

REPORT_SECONDS = 0.1
WRITER_NICENESS = 10  # added to the server's: the writer yields the CPU to the requests
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
DROP_REASONS = ("buffer_full", "shutdown")
# The child's counters, as its Telemetry registry names their samples.
COUNTERS = {
    "written": ("mlrepo_prediction_log_written_rows_total", {}),
    "spilled": ("mlrepo_prediction_log_spilled_rows_total", {}),
    "errors": ("mlrepo_prediction_log_write_errors_total", {}),
    **{
        f"dropped:{reason}": ("mlrepo_prediction_log_dropped_rows_total", {"reason": reason})
        for reason in DROP_REASONS
    },
}


class LogProcess:
    """A ``PredictionLog`` in a child process, with the thread writer's interface."""

    def __init__(
        self, settings: LogSettings, telemetry: Telemetry, log_format: str = "text"
    ) -> None:
        if settings.batch_rows > settings.max_rows:
            raise ValueError("batch_rows must not exceed max_rows")
        self.settings = settings
        self.telemetry = telemetry
        self.log_format = log_format
        # A URL SQLAlchemy cannot use fails here, at start, as the thread writer's does.
        build_engine(settings).dispose()
        self.backend = make_url(engine_url(settings.url)).get_backend_name()
        self._cond = threading.Condition()
        self._pending: deque[Entry] = deque()
        self._pending_rows = 0
        self._closing = False
        self._closed = threading.Event()  # the last child reported its final state
        self._child: _Child | None = None
        self._dropped_here = 0
        self._last_drop_warning = 0.0
        # What the children reported: the current one's last report, the exited ones' totals.
        self._report: dict[str, Any] = _EMPTY_REPORT
        self._past_written = 0
        self._past_dropped = 0
        self._feeder = threading.Thread(target=self._feed, name="log-feeder", daemon=True)
        self._reader = threading.Thread(target=self._supervise, name="log-reader", daemon=True)

    # The thread writer's surface: what /ready, /metrics and the shutdown read.
    @property
    def status(self) -> str:
        return str(self._report["status"])

    @property
    def ready(self) -> bool:
        return self.status == "up"

    @property
    def last_error(self) -> str | None:
        return self._report["last_error"]

    @property
    def last_error_kind(self) -> str | None:
        return self._report["last_error_kind"]

    @property
    def written(self) -> int:
        return self._past_written + int(self._report["written"])

    @property
    def dropped(self) -> int:
        return self._dropped_here + self._past_dropped + int(self._report["dropped"])

    @property
    def spilled_rows(self) -> int:
        return int(self._report["spilled_rows"])

    @property
    def queued_rows(self) -> int:
        """Rows answered but not yet in the database: waiting here, in the pipe, in the child."""
        child = self._child
        in_pipe = max(0, child.sent - int(self._report["received"])) if child else 0
        return self._pending_rows + in_pipe + int(self._report["queued_rows"])

    def start(self) -> None:
        self._start_child()
        self._feeder.start()
        self._reader.start()

    def submit(self, entry: Entry) -> None:
        """Queue ``entry`` for the child; never blocks, never raises."""
        size = len(entry.inputs)
        with self._cond:
            self._pending.append(entry)
            self._pending_rows += size
            while self._pending_rows > self.settings.max_rows and len(self._pending) > 1:
                oldest = self._pending.popleft()
                self._pending_rows -= len(oldest.inputs)
                self._count_dropped(len(oldest.inputs), "buffer_full")
            self._cond.notify()

    def close(self) -> None:
        """Hand everything over, let the child write it (or spill it), wait for it to exit."""
        with self._cond:
            if self._closing or self._child is None:
                return
            self._closing = True
            self._cond.notify_all()
        budget = self.settings.shutdown_seconds + 30
        self._feeder.join(budget)
        if not self._closed.wait(budget):
            log.error("prediction log: the writer process did not finish; stopping it")
        child = self._child
        if child is not None and not _wait(child.process, 5):
            child.process.kill()
            _wait(child.process, 5)
        with self._cond:
            left, self._pending_rows = self._pending_rows, 0
            self._pending.clear()
        if left:
            self._count_dropped(left, "shutdown")

    # The feeder: entries from the deque to the current child's pipe. Only this thread writes
    # to (and closes) a child's inbox, so a pipe is never closed under a write in progress.
    def _feed(self) -> None:
        child: _Child | None = None
        previous: _Child | None = None
        while True:
            with self._cond:
                while True:
                    child = self._child
                    alive = child is not None and not child.dead
                    if self._closing and (not self._pending or not alive):
                        break
                    if self._pending and alive:
                        break
                    # Nothing to send, or no child to take it (the reader starts a new one).
                    self._cond.wait(0.1 if self._pending else None)
                if not (self._pending and alive):
                    break  # closing: everything handed over, or no child left to take it
                entry = self._pending.popleft()
                size = len(entry.inputs)
                self._pending_rows -= size
                assert child is not None
                child.sent += size  # in the pipe until the child reports it received
            if previous is not None and previous is not child:
                previous.inbox.close()  # a child that died: its pipe is of no more use
            previous = child
            try:
                child.inbox.send(entry)
            except (OSError, ValueError):  # the child is gone: keep the entry for the next one
                with self._cond:
                    child.dead = True
                    child.sent -= size
                    self._pending.appendleft(entry)
                    self._pending_rows += size
        if child is not None and not child.dead:
            with contextlib.suppress(OSError, ValueError):
                child.inbox.send(None)  # stop: close the log and exit

    # The reader: the child's reports, and a new child when one dies.
    def _supervise(self) -> None:
        restart = RESTART_MIN_SECONDS
        while True:
            child = self._child
            assert child is not None
            try:
                while True:
                    report: dict[str, Any] = child.outbox.recv()
                    self._apply(report)
                    if report["final"]:
                        break
                    restart = RESTART_MIN_SECONDS
            except (EOFError, OSError):
                report = {}
            child.outbox.close()
            if not _wait(child.process, 5):  # it closed its pipe but did not exit
                child.process.kill()
                _wait(child.process, 5)
            if report.get("final") and self._closing:
                self._closed.set()
                return
            with self._cond:
                child.dead = True
                closing = self._closing
            # What it held: received but not written (its last report), and what it had not
            # read yet. An upper bound: rows written since that report count too.
            last = self._report
            lost = max(0, child.sent - int(last["received"])) + int(last["queued_rows"])
            log.error(
                "prediction log: the writer process exited (code %s)%s; %s",
                child.process.returncode,
                f" with up to {lost} row(s) unwritten" if lost else "",
                "the shutdown goes on without it" if closing else "starting a new one",
            )
            if lost:
                self._count_dropped(lost, "writer_exit")
            self._retire(self._report)
            if closing:
                self._closed.set()
                return
            while True:
                time.sleep(restart)
                restart = min(restart * 2, RESTART_MAX_SECONDS)
                try:
                    self._start_child()
                    break
                except OSError as exc:  # no process could be started (memory, process limit)
                    log.error("prediction log: cannot start a writer process: %s", exc)

    def _start_child(self) -> None:
        # ``python -m`` this module rather than multiprocessing's spawn, which would import the
        # server's main module again in the child (and run it, were it not guarded).
        inbox_read, inbox_write = os.pipe()
        outbox_read, outbox_write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(inbox_read), str(outbox_write)],
                pass_fds=(inbox_read, outbox_write),
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            for fd in (inbox_read, inbox_write, outbox_read, outbox_write):
                os.close(fd)
            raise
        os.close(inbox_read)  # the child's ends: its own copies stay open there
        os.close(outbox_write)
        inbox = Connection(inbox_write, readable=False)
        outbox = Connection(outbox_read, writable=False)
        with contextlib.suppress(OSError):  # a child that died at once: the reader sees EOF
            inbox.send((self.settings, self.log_format))
        with self._cond:
            self._report = _EMPTY_REPORT
            self._child = _Child(process, inbox, outbox)
            self._cond.notify_all()

    def _apply(self, report: dict[str, Any]) -> None:
        """Turn the child's cumulative counters into increments of this service's metrics."""
        telemetry = self.telemetry
        previous = self._report
        for key, value in report["counters"].items():
            delta = value - previous["counters"].get(key, 0.0)
            if delta <= 0:
                continue
            if key == "written":
                telemetry.log_written.inc(delta)
            elif key == "spilled":
                telemetry.log_spilled.inc(delta)
            elif key == "errors":
                telemetry.log_errors.inc(delta)
            else:
                telemetry.log_dropped.labels(key.split(":", 1)[1]).inc(delta)
        if report["db_up"] is not None:
            telemetry.log_db_up.set(report["db_up"])
        self._report = report

    def _retire(self, report: dict[str, Any]) -> None:
        self._past_written += int(report["written"])
        self._past_dropped += int(report["dropped"])

    def _count_dropped(self, rows: int, reason: str) -> None:
        self._dropped_here += rows
        self.telemetry.log_dropped.labels(reason).inc(rows)
        now = time.monotonic()
        if reason != "buffer_full" or now - self._last_drop_warning > 10:
            self._last_drop_warning = now
            log.warning(
                "prediction log: %d row(s) dropped (%s); %d dropped by the server since start",
                rows,
                {
                    "buffer_full": "no writer process took them and the queue was full",
                    "shutdown": "no writer process took them before the shutdown",
                    "writer_exit": "held by the writer process when it exited",
                }[reason],
                self._dropped_here,
            )


def _wait(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


class _Child:
    def __init__(
        self, process: subprocess.Popen[bytes], inbox: Connection, outbox: Connection
    ) -> None:
        self.process = process
        self.inbox = inbox
        self.outbox = outbox
        self.sent = 0  # rows written to its pipe
        self.dead = False


_EMPTY_REPORT: dict[str, Any] = {
    "status": "connecting",
    "last_error": None,
    "last_error_kind": None,
    "written": 0,
    "dropped": 0,
    "received": 0,
    "queued_rows": 0,
    "spilled_rows": 0,
    "counters": {},
    "db_up": None,
    "final": False,
}


def _child_main(inbox: Connection, outbox: Connection) -> None:
    """The writer process: a ``PredictionLog`` fed from ``inbox``, reporting on ``outbox``."""
    from mlrepo.serve.prediction_log import PredictionLog  # sqlalchemy & co.: only here

    # A Ctrl-C, a stop or a reload sent to the process group is the server's to handle: the
    # server says when the log stops (or its pipe's end does).
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    # Background work: when the cores are contended, the requests go first. Its flushes (and
    # the database's work for them) otherwise come in bursts that delay the requests they meet.
    with contextlib.suppress(OSError):
        os.nice(WRITER_NICENESS)
    settings, log_format = inbox.recv()
    logging.config.dictConfig(log_config("json" if log_format == "json" else "text"))
    telemetry = Telemetry(())
    plog = PredictionLog(settings, telemetry)
    received = [0]
    handing = threading.Lock()  # a report sees an entry in ``received`` and the log together
    stop = threading.Event()

    def report(final: bool = False) -> None:
        counters = {
            key: telemetry.registry.get_sample_value(name, labels) or 0.0
            for key, (name, labels) in COUNTERS.items()
        }
        with handing:
            got, queued = received[0], plog.queued_rows
        outbox.send(
            {
                "status": plog.status,
                "last_error": plog.last_error,
                "last_error_kind": plog.last_error_kind,
                "written": plog.written,
                "dropped": plog.dropped,
                "received": got,
                "queued_rows": queued,
                "spilled_rows": plog.spilled_rows,
                "counters": counters,
                "db_up": telemetry.registry.get_sample_value("mlrepo_prediction_log_database_up"),
                "final": final,
            }
        )

    def reporter() -> None:
        while not stop.wait(REPORT_SECONDS):
            try:
                report()
            except (OSError, ValueError):
                return  # the server is gone; the main thread finds out from its pipe

    plog.start()
    reporting = threading.Thread(target=reporter, name="log-reporter", daemon=True)
    reporting.start()
    try:
        while True:
            entry = inbox.recv()
            if entry is None:
                break
            with handing:
                plog.submit(entry)
                received[0] += len(entry.inputs)
    except (EOFError, OSError):
        log.warning("prediction log: the server is gone; writing what it handed over")
    plog.close()
    stop.set()
    reporting.join()
    with contextlib.suppress(OSError, ValueError):
        report(final=True)


if __name__ == "__main__":
    _child_main(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
