"""Fault runs of the prediction log (issue 9): what a database outage and a kill -9 under load lose.

Run from the project root as ``.venv/bin/python benchmarks/serve_faults.py`` (``--quick``:
shorter phases); it prints a Markdown table (``--output FILE`` writes it too), pasted into
``benchmarks/SERVE_RESULTS.md``. Each run is a real ``mlrepo serve`` (ONNX backend, the default
pipeline's model reproduced in a throwaway copy, as ``benchmarks/serve.py`` does) on 127.0.0.1,
under an open-loop load of single records at 100 req/s plus one 10,000-record batch a second:
10,100 rows/s, so a 20 s outage fills the 100k-row memory buffer and spills the rest to disk.
Rows are counted per request id: answered (a 200 the load generator received, and the number
of predictions in it) against the rows in the database at the end.

1. SQLite outage: another connection holds the file's exclusive lock for 20 s, then lets go.
2. PostgreSQL outage: a throwaway server (initdb, as the tests make it) stopped for 20 s
   (``pg_ctl stop -m fast``), then started again.
   After the load, the service gets up to 120 s to write everything back (``/ready``'s
   ``queued_rows`` and ``spilled_rows`` at 0), then a SIGTERM; every answered row must be there.
3. kill -9 of the server under load (SQLite), with the writer process (the default) and with the
   thread writer (``MLREPO_LOG_WRITER=thread``): rows lost, and how long before the kill the
   oldest lost one was answered (the stated bounds: what was not yet handed to the writer
   process; the last flush interval, 0.5 s, plus the batch being inserted, for the thread).
4. kill -9 of the writer process under load: the server starts a new one; rows lost (answered,
   never in the database after the drain and SIGTERM) against ``dropped_rows{writer_exit}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from common import load_text, log, now
from serve import (
    Connections,
    Server,
    batch_bodies,
    machine,
    reproduce,
    requests_for,
    start_postgres,
)

SINGLE_RATE = 100
BATCH_ROWS = 10_000
REQUEST_ID = re.compile(rb'"request_id":"([0-9a-f]+)"')


@dataclass
class Load:
    """What the load generator was told: request id -> (time answered, rows), and latencies."""

    answered: dict[str, tuple[float, int]] = field(default_factory=dict)
    single_ms: list[tuple[float, float]] = field(default_factory=list)  # (due, latency)
    errors: int = 0

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.answered.values())


async def generate(
    port: int, singles: list[bytes], batch: bytes, seconds: float, load: Load
) -> None:
    """Single records at SINGLE_RATE (open loop) and one batch a second, for ``seconds``."""
    loop = asyncio.get_running_loop()
    singles_pool, batches_pool = Connections(port), Connections(port)
    start = loop.time() + 0.05

    async def post(pool: Connections, path: str, body: bytes, rows: int) -> None:
        try:
            status, text = await pool.post_read(path, body)
        except (OSError, asyncio.IncompleteReadError):
            load.errors += 1
            return
        found = REQUEST_ID.search(text[:200])
        if status != 200 or found is None:
            load.errors += 1
            return
        load.answered[found.group(1).decode()] = (time.monotonic(), rows)

    async def single(i: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        await post(singles_pool, "/predict", singles[i % len(singles)], 1)
        load.single_ms.append((due - start, (loop.time() - due) * 1000))

    async def batches() -> None:
        due = start
        while due - start < seconds:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await post(batches_pool, "/predict/batch", batch, BATCH_ROWS)
            due += 1.0

    n = int(SINGLE_RATE * seconds)
    await asyncio.gather(batches(), *(single(i, start + i / SINGLE_RATE) for i in range(n)))
    singles_pool.close()
    batches_pool.close()


def under_load(
    server: Server, project: Path, seconds: float, faults: list[tuple[float, Callable[[], None]]]
) -> Load:
    """Run the load for ``seconds``, calling each fault (in a thread) ``at`` seconds in."""
    frame = requests_for(project)
    singles = [json.dumps(r).encode() for r in frame.to_dict("records")]
    batch = batch_bodies(frame, BATCH_ROWS)["records"]
    load = Load()

    async def main() -> None:
        async def at(when: float, fault: Callable[[], None]) -> None:
            await asyncio.sleep(when)
            await asyncio.to_thread(fault)

        jobs: list[Awaitable[Any]] = [generate(server.port, singles, batch, seconds, load)]
        jobs += [at(when, fault) for when, fault in faults]
        await asyncio.gather(*jobs)

    asyncio.run(main())
    return load


def logged(database: str) -> dict[str, int]:
    """Rows in the database per request id."""
    import sqlalchemy as sa

    from mlrepo.prediction_store import engine_url

    engine = sa.create_engine(engine_url(database), poolclass=sa.NullPool)
    query = "SELECT request_id, count(*) FROM prediction_log GROUP BY request_id"
    try:
        with engine.connect() as connection:
            return {rid: int(n) for rid, n in connection.execute(sa.text(query)).all()}
    finally:
        engine.dispose()


def lost_rows(load: Load, database: str) -> list[tuple[float, int]]:
    """(time answered, rows missing) of every answered request not wholly in the database."""
    found = logged(database)
    return [
        (when, rows - found.get(rid, 0))
        for rid, (when, rows) in load.answered.items()
        if found.get(rid, 0) < rows
    ]


def ready(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{server.port}/ready", timeout=5).json()
    return body["database"]


def metric(server: Server, name: str, labels: str = "") -> float:
    wanted = f"{name}{{{labels}}}" if labels else name
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def drain(server: Server, timeout: float = 120) -> float:
    """Seconds until the service has written everything (nothing queued, nothing spilled)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        state = ready(server)
        if state["status"] == "up" and state["queued_rows"] == 0 and state["spilled_rows"] == 0:
            return time.monotonic() - start
        time.sleep(0.2)
    return float("nan")


def writer_processes(server: Server) -> list[psutil.Process]:
    from serve_harness import log_writer_processes  # on the path serve.py adds

    return log_writer_processes(server.process.pid)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def outage_run(
    project: Path, database: str, outage: Callable[[], None], before: float, seconds: float
) -> dict[str, Any]:
    server = Server(project, "onnx", database)
    try:
        wait_up(server)
        load = under_load(server, project, seconds, [(before, outage)])
        drained = drain(server)
        dropped = metric(server, "mlrepo_prediction_log_dropped_rows_total", 'reason="buffer_full"')
        spilled = metric(server, "mlrepo_prediction_log_spilled_rows_total")
    finally:
        server.stop()
    lost = lost_rows(load, database)
    during = [ms for due, ms in load.single_ms if before <= due < before + 20]
    calm = [ms for due, ms in load.single_ms if due < before]
    return {
        "answered": load.rows,
        "lost": sum(n for _, n in lost),
        "errors": load.errors,
        "spilled": spilled,
        "dropped": dropped,
        "drained_s": drained,
        "p99_before": p99(calm),
        "p99_during": p99(during),
    }


def kill_server_run(project: Path, database: str, writer: str, seconds: float) -> dict[str, Any]:
    server = Server(project, "onnx", database, writer)
    wait_up(server)
    children = writer_processes(server)
    killed = [0.0]

    def kill() -> None:
        killed[0] = time.monotonic()
        server.process.send_signal(signal.SIGKILL)

    load = under_load(server, project, seconds + 1, [(seconds, kill)])
    server.process.wait(10)
    for child in children:  # the writer process writes what it was handed, then exits
        with contextlib.suppress(psutil.NoSuchProcess):
            child.wait(120)
    lost = lost_rows(load, database)
    oldest = max((killed[0] - when for when, _ in lost), default=0.0)
    return {
        "answered": sum(n for when, n in load.answered.values() if when <= killed[0]),
        "lost": sum(n for _, n in lost),
        "oldest_lost_ms": oldest * 1000,
    }


def kill_writer_run(project: Path, database: str, seconds: float) -> dict[str, Any]:
    server = Server(project, "onnx", database)
    try:
        wait_up(server)

        def kill() -> None:
            for child in writer_processes(server):
                child.kill()

        load = under_load(server, project, seconds, [(seconds / 2, kill)])
        drained = drain(server)
        exited = metric(server, "mlrepo_prediction_log_dropped_rows_total", 'reason="writer_exit"')
    finally:
        server.stop()
    lost = lost_rows(load, database)
    return {
        "answered": load.rows,
        "lost": sum(n for _, n in lost),
        "counted": exited,
        "drained_s": drained,
    }


def wait_up(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ready(server)["status"] != "up":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the log database was not up in {timeout} s")
        time.sleep(0.1)


def sqlite_locked(path: Path, seconds: float) -> Callable[[], None]:
    def hold() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    return hold


def postgres_stopped(postgres: Any, seconds: float) -> Callable[[], None]:
    def outage() -> None:
        postgres.stop()
        time.sleep(seconds)
        postgres.start()

    return outage


def render(command: str, facts: dict[str, str], results: dict[str, dict[str, Any]]) -> str:
    def outage(key: str, name: str) -> str:
        r = results.get(key)
        if r is None:
            return f"| {name} | n/a | | |"
        return (
            f"| {name} | {r['answered']:,} answered, {r['lost']:,} lost; "
            f"{r['spilled']:,.0f} spilled and written back, {r['dropped']:,.0f} dropped; "
            f"written back {r['drained_s']:.1f} s after the load | "
            f"p99 {r['p99_before']:.1f} ms before, {r['p99_during']:.1f} ms during "
            f"({r['errors']} errors) | 0 lost |"
        )

    def killed(key: str, name: str, bound: str) -> str:
        r = results.get(key)
        if r is None:
            return f"| {name} | n/a | | |"
        oldest = (
            f"; the oldest answered {r['oldest_lost_ms']:.0f} ms before the kill"
            if r["lost"]
            else ""
        )
        return f"| {name} | {r['answered']:,} answered, {r['lost']:,} lost{oldest} | | {bound} |"

    writer = results.get("kill_writer")
    writer_row = (
        f"| kill -9 of the writer process under load (SQLite) | {writer['answered']:,} answered, "
        f"{writer['lost']:,} lost, {writer['counted']:,.0f} counted as writer_exit; "
        f"written back {writer['drained_s']:.1f} s after the load | | lost <= counted |"
        if writer
        else "| kill -9 of the writer process | n/a | | |"
    )
    lines = [
        "# Prediction log fault runs",
        "",
        f"Written by `{command}` on {now()}. Load: single records at {SINGLE_RATE} req/s "
        f"(open loop) and one {BATCH_ROWS:,}-record batch a second, from this machine.",
        "",
        *[f"- {key}: {value}" for key, value in facts.items()],
        "",
        "| fault | rows | single-record latency | target |",
        "|---|---|---|---|",
        outage("sqlite", "SQLite locked for 20 s under load"),
        outage("postgres", "PostgreSQL stopped for 20 s under load"),
        killed(
            "kill_process",
            "kill -9 of the server under load (SQLite, writer process)",
            "only what was not yet handed over",
        ),
        killed(
            "kill_thread",
            "kill -9 of the server under load (SQLite, thread writer)",
            "answered in the last 0.5 s + one insert",
        ),
        writer_row,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL run")
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["benchmarks/serve_faults.py", *given])
    calm = 5.0 if args.quick else 10.0
    facts = machine()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlrepo-faults-") as tmp:
        base = Path(tmp)
        log("reproducing the default pipeline (dvc repro) in a copy")
        project = reproduce(base / "project")
        path = base / "outage.db"
        log("SQLite locked for 20 s under load")
        results["sqlite"] = outage_run(
            project, f"sqlite:///{path}", sqlite_locked(path, 20), calm, calm + 20 + calm
        )
        if not args.no_postgres:
            postgres = start_postgres()
            try:
                log("PostgreSQL stopped for 20 s under load")
                results["postgres"] = outage_run(
                    project, postgres.url, postgres_stopped(postgres, 20), calm, calm + 20 + calm
                )
            finally:
                postgres.destroy()
        for writer in ("process", "thread"):
            log(f"kill -9 of the server under load ({writer} writer)")
            database = f"sqlite:///{base / f'kill-{writer}.db'}"
            results[f"kill_{writer}"] = kill_server_run(project, database, writer, calm)
        log("kill -9 of the writer process under load")
        results["kill_writer"] = kill_writer_run(
            project, f"sqlite:///{base / 'kill-writer.db'}", 2 * calm
        )
    facts["load average at the end (1, 5, 15 min)"] = load_text()
    text = render(command, facts, results)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MLREPO_LOG_LEVEL", "WARNING")
    raise SystemExit(main())
