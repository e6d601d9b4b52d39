"""Serving benchmark: the HTTP service and batch prediction, ONNX and scikit-learn side by side.

Run from the project root as ``.venv/bin/python benchmarks/serve.py`` (``--quick`` for a smoke
run of a few seconds per figure); it writes ``benchmarks/SERVE_RESULTS.md``. The model is the
default pipeline's (RandomForest, 100 trees), reproduced with ``dvc repro`` in a throwaway copy
of the working tree; each server is a real ``mlrepo serve`` process on 127.0.0.1.

1. Single-record latency, p50/p99, at fixed 50, 100 and 200 requests/s (open loop: latency
   counts from the moment a request was due, so a slow server cannot slow the load down).
2. The highest rate (of a rising ladder) held with p99 <= 10 ms and no error.
3. Batch latency for 1, 100 and 10,000 records, as a list of records and in columnar form.
4. Rows/s of ``mlrepo predict`` on a 1M-row Parquet file.
5. A 10,000-record batch whose every value has the wrong type (answered 422).

1 and 3 run with the prediction log on (SQLite file; PostgreSQL too with ``--postgres``, a
throwaway server made with initdb) and off, to show what logging costs. With the log on, the
rows in the database after a graceful stop are compared with the predictions answered
(``mlrepo_predictions_total``): "rows lost" must be 0. ``--backends onnx`` skips scikit-learn.
The load generator shares the machine with the server: figures are only as quiet as the box.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from common import BIN, ROOT, commit_copy, cpu_model, load_text, log, now, venv_env

RESULTS = ROOT / "benchmarks" / "SERVE_RESULTS.md"
BACKENDS = ("onnx", "sklearn")
BATCH_SIZES = (1, 100, 10_000)
FIXED_RATES = (50, 100, 200)
RATE_LADDER = (10, 25, 50, 100, 200, 300, 400, 600, 800, 1000, 1500, 2000)
P99_BUDGET_MS = 10.0
TARGET_SINGLE_P99_MS = 5.0
TARGET_BATCH_10K_MS = 150.0
# The servers, the copy of the working tree and PostgreSQL are made as the tests make them, by
# the tests' harnesses (imported where used: serve_harness imports the stage cores).
sys.path.insert(0, str(ROOT / "tests" / "integration"))


@dataclass(frozen=True)
class Latency:
    count: int
    errors: int
    p50: float  # milliseconds
    p95: float
    p99: float
    achieved_rps: float
    lag_p99: float | None = None  # how late the generator itself sent (open loop), ms

    @classmethod
    def of(
        cls, seconds: list[float], errors: int, wall: float, lags: list[float] | None = None
    ) -> Latency:
        ms = np.array(seconds) * 1000 if seconds else np.array([np.nan])
        return cls(
            count=len(seconds),
            errors=errors,
            p50=float(np.percentile(ms, 50)),
            p95=float(np.percentile(ms, 95)),
            p99=float(np.percentile(ms, 99)),
            achieved_rps=len(seconds) / wall if wall else 0.0,
            lag_p99=float(np.percentile(np.array(lags) * 1000, 99)) if lags else None,
        )

    def cell(self) -> str:
        errors = f", {self.errors} errors"
        lag = f" (generator late by {self.lag_p99:.1f} at p99)" if self.lag_p99 is not None else ""
        return f"{self.p50:.1f} / {self.p95:.1f} / {self.p99:.1f}{errors}{lag}"


class Connections:
    """Keep-alive HTTP/1.1 connections with a minimal client, so that the load generator adds
    as little as possible to the latency it measures (httpx costs about a millisecond)."""

    # uvicorn closes a keep-alive connection idle for 5 s; one idle longer than this is not
    # reused, so the client never sends on a connection the server is closing.
    MAX_IDLE_S = 2.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, body: bytes) -> int:
        status, _ = await self.post_read(path, body)
        return status

    async def post_read(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The status and the body of the answer."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        reader, writer = await self._connection()
        writer.write(head + body)
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        match = re.search(rb"content-length: *(\d+)", header, re.IGNORECASE)
        text = await reader.readexactly(int(match.group(1)) if match else 0)
        self.idle.append((reader, writer, time.monotonic()))
        return status, text

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < self.MAX_IDLE_S:
                return reader, writer
            writer.close()
        return await asyncio.open_connection("127.0.0.1", self.port)

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def fixed_rate(port: int, bodies: list[bytes], rate: float, seconds: float) -> Latency:
    """Open loop: request i is due at start + i / rate, whatever happened to the others."""
    connections = Connections(port)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0

    async def one(i: int, due: float) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, due - loop.time()))
        # On a busy machine the generator wakes late; that lateness is counted in the latency
        # (the server would have been asked then) and reported apart.
        lags.append(loop.time() - due)
        try:
            status = await connections.post("/predict", bodies[i % len(bodies)])
        except (OSError, asyncio.IncompleteReadError):
            status = 0
        if status == 200:
            latencies.append(loop.time() - due)
        else:
            errors += 1

    start = loop.time() + 0.05
    n = int(rate * seconds)
    await asyncio.gather(*(one(i, start + i / rate) for i in range(n)))
    wall = loop.time() - start
    connections.close()
    return Latency.of(latencies, errors, wall, lags)


async def closed_loop(
    port: int, path: str, body: bytes, repeats: int, expect: int = 200
) -> Latency:
    connections = Connections(port)
    latencies, errors = [], 0
    start = time.perf_counter()
    for _ in range(repeats):
        began = time.perf_counter()
        status = await connections.post(path, body)
        if status == expect:
            latencies.append(time.perf_counter() - began)
        else:
            errors += 1
    connections.close()
    return Latency.of(latencies, errors, time.perf_counter() - start)


class Server:
    """``mlrepo serve`` on a free port of 127.0.0.1, stopped with SIGTERM."""

    def __init__(
        self, project: Path, backend: str, database: str | None, writer: str = "process"
    ) -> None:
        from serve_harness import free_port, wait_until_answering

        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["MLREPO_MAX_BATCH_ROWS"] = "10000"
        env["MLREPO_LOG_WRITER"] = writer
        if database:
            env["DATABASE_URL"] = database
        else:
            env["MLREPO_PREDICTION_LOG"] = "off"
        self.log_path = project / f"serve-{backend}-{self.port}.log"
        argv = [str(BIN / "python"), "-m", "mlrepo.cli", "serve", "--model", "workspace"]
        argv += ["--backend", backend, "--port", str(self.port)]
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                argv, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        ready = partial(httpx.get, f"http://127.0.0.1:{self.port}/ready", timeout=2)
        if not wait_until_answering(self.process, ready, self.log_tail, 120, pause=0.2):
            self.stop()
            raise RuntimeError(f"the server was not ready in 120 s: {self.log_path}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace").strip()[-2000:]

    def model(self) -> dict[str, Any]:
        card: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/model").json()
        return card

    def answered(self) -> int:
        """Predictions answered so far (the sum of mlrepo_predictions_total)."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics").text
        found = re.findall(r"^mlrepo_predictions_total\{[^}]*\} ([\d.e+]+)$", text, re.M)
        return int(sum(float(x) for x in found))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(120)


def logged_rows(database: str) -> int:
    import sqlalchemy as sa

    from mlrepo.prediction_store import engine_url

    engine = sa.create_engine(engine_url(database), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar())
    finally:
        engine.dispose()


def reproduce(dest: Path) -> Path:
    """The working tree's files (tracked, and new ones git does not ignore) in a fresh git
    repository, reproduced with ``dvc repro``: the benchmark measures the code as it is."""
    from dvc_harness import copy_tracked_files

    copy_tracked_files(ROOT, dest)
    env = venv_env(DVC_SITE_CACHE_DIR=str(dest.parent / "dvc-site-cache"))
    commit_copy(dest)
    subprocess.run([str(BIN / "dvc"), "repro", "-q"], cwd=dest, env=env, check=True)
    return dest


def requests_for(project: Path) -> pd.DataFrame:
    frame = pd.read_parquet(project / "data" / "split" / "test.parquet")
    return frame.drop(columns="target")


def batch_bodies(frame: pd.DataFrame, size: int) -> dict[str, bytes]:
    rows = frame.sample(size, replace=size > len(frame), random_state=size)
    return {
        "records": json.dumps(rows.to_dict("records")).encode(),
        "columnar": json.dumps(
            {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
        ).encode(),
    }


def bench_server(
    project: Path,
    backend: str,
    database: str | None,
    quick: bool,
    search: bool,
    writer: str = "process",
) -> dict[str, Any]:
    """Figures 1-3 for one backend, with or without the prediction log (written by a process
    of its own, the default, or by a thread of the server)."""
    frame = requests_for(project)
    singles = [json.dumps(r).encode() for r in frame.to_dict("records")]
    server = Server(project, backend, database, writer)
    result: dict[str, Any] = {}
    try:
        result["model"] = server.model()
        asyncio.run(fixed_rate(server.port, singles, 100, 2))  # warm-up
        seconds = 5 if quick else 30
        result["single"] = {}
        for rate in FIXED_RATES:
            on = f"on ({writer} writer)" if database else "off"
            log(f"{backend}, log {on}: {rate} req/s for {seconds} s")
            result["single"][rate] = asyncio.run(fixed_rate(server.port, singles, rate, seconds))
        if search:
            result["ladder"] = []
            for rate in RATE_LADDER:
                held = asyncio.run(fixed_rate(server.port, singles, rate, 3 if quick else 10))
                result["ladder"].append((rate, held))
                log(f"  {rate} req/s: p99 {held.p99:.1f} ms, {held.errors} errors")
                if held.p99 > P99_BUDGET_MS or held.errors:
                    break
        result["batch"] = {}
        for size in BATCH_SIZES:
            for form, body in batch_bodies(frame, size).items():
                repeats = (5 if quick else 20) if size >= 10_000 else (20 if quick else 100)
                asyncio.run(closed_loop(server.port, "/predict/batch", body, 2))
                result["batch"][size, form] = asyncio.run(
                    closed_loop(server.port, "/predict/batch", body, repeats)
                )
        wrong = json.dumps([{k: [v] for k, v in r.items()} for r in frame.sample(
            10_000, replace=True, random_state=1).to_dict("records")]).encode()  # fmt: skip
        result["wrong"] = asyncio.run(
            closed_loop(server.port, "/predict/batch", wrong, 3 if quick else 10, expect=422)
        )
        answered = server.answered()
    finally:
        server.stop()
    if database:
        result["rows"] = (answered, logged_rows(database), spilled_rows(project))
        for leftover in spill_files(project):
            leftover.unlink()  # the next server writes to another database
    return result


def spill_files(project: Path) -> list[Path]:
    """The spill files a server left: in the project (PostgreSQL's, named after the URL) or
    beside the SQLite file, which lives next to the project."""
    return [*project.glob("**/*.spill.jsonl"), *project.parent.glob("*.spill.jsonl")]


def spilled_rows(project: Path) -> int:
    """Rows the service saved to a spill file at shutdown (written back at its next start)."""
    found = spill_files(project)
    return sum(sum(1 for line in path.open("rb") if line.strip()) for path in found)


def bench_predict(project: Path, backend: str, data: Path, rows: int) -> dict[str, float]:
    out = project / f"scored-{backend}.parquet"
    argv = [str(BIN / "python"), "-m", "mlrepo.cli", "predict", "--model", "workspace"]
    argv += ["--backend", backend, "--input", str(data), "--output", str(out), "--id", "id"]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-2000:])
    scoring = re.search(r"scored in ([\d.]+) s", done.stderr)
    out.unlink()
    return {
        "rows": rows,
        "wall": wall,
        "rows_per_s": rows / float(scoring.group(1)) if scoring else rows / wall,
    }


def input_file(base: Path, rows: int) -> Path:
    from mlrepo.params import GenerateParams
    from mlrepo.stages.generate import synthesize

    frame = synthesize(GenerateParams(n_samples=rows, seed=7)).drop(columns="target")
    frame.insert(0, "id", np.arange(rows))
    path = base / f"input-{rows}.parquet"
    frame.to_parquet(path, index=False)
    return path


def start_postgres() -> Any:
    """A throwaway PostgreSQL server, as the tests make one (initdb/pg_ctl on 127.0.0.1)."""
    from serve_harness import Postgres, postgres_binaries

    binaries = postgres_binaries()
    if binaries is None:
        raise SystemExit("--postgres: no initdb found (apt-get install -y postgresql)")
    return Postgres(binaries)


def reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    from mlrepo.prediction_store import engine_url

    engine = sa.create_engine(engine_url(url), poolclass=sa.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM prediction_log"))
    engine.dispose()


def machine() -> dict[str, str]:
    return {
        "cpu": f"{cpu_model() or 'unknown'}, {os.cpu_count()} CPUs visible",
        "python": platform.python_version(),
        "load average at start (1, 5, 15 min)": load_text(),
    }


def render(command: str, facts: dict[str, str], runs: dict[str, Any]) -> str:
    def get(backend: str, key: str) -> Any:
        return runs.get(backend, {}).get(key)

    def single(backend: str, logged: str, rate: int = 100) -> str:
        run = get(backend, logged)
        return run["single"][rate].cell() if isinstance(run, dict) else "n/a"

    def rows(backend: str, logged: str) -> str:
        run = get(backend, logged)
        if not isinstance(run, dict) or "rows" not in run:
            return "n/a"
        answered, logged_, spilled = run["rows"]
        lost = answered - logged_ - spilled
        return f"{answered:,} answered, {logged_:,} logged, {spilled:,} spilled, {lost:,} lost"

    def wrong(backend: str) -> str:
        run = get(backend, "log")
        return run["wrong"].cell() if isinstance(run, dict) and "wrong" in run else "n/a"

    def held(backend: str) -> str:
        run = get(backend, "log")
        if not isinstance(run, dict) or not run.get("ladder"):
            return "n/a"
        passed = [
            rate for rate, lat in run["ladder"] if lat.p99 <= P99_BUDGET_MS and not lat.errors
        ]
        tried = ", ".join(f"{rate}: {lat.p99:.1f}" for rate, lat in run["ladder"])
        best = f"{max(passed)} req/s" if passed else f"none (< {RATE_LADDER[0]} req/s)"
        return f"{best}; p99 ms at each rate tried: {tried}"

    def batch(backend: str, logged: str, size: int, form: str) -> str:
        run = get(backend, logged)
        if not isinstance(run, dict) or (size, form) not in run["batch"]:
            return "n/a"
        return str(run["batch"][size, form].cell())

    def predict(backend: str) -> str:
        run = get(backend, "predict")
        if not isinstance(run, dict):
            return "n/a"
        return f"{run['rows_per_s']:,.0f} rows/s ({run['rows']:,} rows, {run['wall']:.1f} s wall)"

    notes = [
        f"- {backend}: {runs[backend]['error']}"
        for backend in BACKENDS
        if runs[backend].get("error")
    ]
    model = next((r["log"]["model"] for r in runs.values() if isinstance(r.get("log"), dict)), {})
    lines = [
        "# Serving benchmark",
        "",
        f"Written by `{command}` on {now()}. Latencies in "
        "milliseconds as p50 / p95 / p99. The machine is shared and noisy, and the load generator "
        "runs on it too: read the figures as orders of magnitude.",
        "",
        *[f"- {key}: {value}" for key, value in facts.items()],
        f"- model: {model.get('estimator')} {json.dumps(model.get('params'), sort_keys=True)}",
        '- prediction log: a SQLite file on local disk or a local PostgreSQL server ("log on"), '
        "written by a process of its own (MLREPO_LOG_WRITER=process, the default) unless the "
        'row says "thread writer"; or disabled ("log off")',
        *notes,
        "",
        "| figure | ONNX | scikit-learn | target (ONNX) |",
        "|---|---|---|---|",
        *[
            f"| single record at {rate} req/s, log on ({db}) | {single('onnx', key, rate)} | "
            f"{single('sklearn', key, rate)} | "
            f"{f'p99 <= {TARGET_SINGLE_P99_MS:g} ms' if rate == 100 else ''} |"
            for key, db in (("log", "SQLite"), ("pglog", "PostgreSQL"))
            for rate in FIXED_RATES
            if any(isinstance(runs[b].get(key), dict) for b in BACKENDS)
        ],
        *[
            f"| single record at {rate} req/s, log off | {single('onnx', 'nolog', rate)} | "
            f"{single('sklearn', 'nolog', rate)} | |"
            for rate in FIXED_RATES
        ],
        f"| rows answered vs logged (SQLite, after SIGTERM) | {rows('onnx', 'log')} | "
        f"{rows('sklearn', 'log')} | 0 lost |",
        f"| rows answered vs logged (PostgreSQL, after SIGTERM) | {rows('onnx', 'pglog')} | "
        f"{rows('sklearn', 'pglog')} | 0 lost |",
        f"| batch of 10,000 with every value of the wrong type (422), log on | "
        f"{wrong('onnx')} | {wrong('sklearn')} | |",
        f"| highest rate with p99 <= {P99_BUDGET_MS:g} ms (log on) | {held('onnx')} | "
        f"{held('sklearn')} | |",
    ]
    for size in BATCH_SIZES:
        for form in ("records", "columnar"):
            target = f"<= {TARGET_BATCH_10K_MS:g} ms" if size == 10_000 else ""
            lines.append(
                f"| batch of {size:,} ({form}), log on | {batch('onnx', 'log', size, form)} | "
                f"{batch('sklearn', 'log', size, form)} | {target} |"
            )
    for form in ("records", "columnar"):
        lines.append(
            f"| batch of 10,000 ({form}), log off | {batch('onnx', 'nolog', 10_000, form)} | "
            f"{batch('sklearn', 'nolog', 10_000, form)} | |"
        )
    if any(isinstance(runs[b].get("threadlog"), dict) for b in BACKENDS):
        lines.append(
            f"| single record at 100 req/s, log on (SQLite, thread writer) | "
            f"{single('onnx', 'threadlog')} | {single('sklearn', 'threadlog')} | |"
        )
        lines.append(
            f"| rows answered vs logged (SQLite, thread writer, after SIGTERM) | "
            f"{rows('onnx', 'threadlog')} | {rows('sklearn', 'threadlog')} | 0 lost |"
        )
        for form in ("records", "columnar"):
            lines.append(
                f"| batch of 10,000 ({form}), log on (SQLite, thread writer) | "
                f"{batch('onnx', 'threadlog', 10_000, form)} | "
                f"{batch('sklearn', 'threadlog', 10_000, form)} | |"
            )
    lines.append(f"| `mlrepo predict`, Parquet | {predict('onnx')} | {predict('sklearn')} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per figure")
    parser.add_argument("--rows", type=int, help="rows for `mlrepo predict` (default 1M)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="default: %(default)s")
    parser.add_argument(
        "--postgres", action="store_true", help="also log to a throwaway PostgreSQL server"
    )
    parser.add_argument(
        "--thread-writer",
        action="store_true",
        help="also log to SQLite from a thread of the server (MLREPO_LOG_WRITER=thread)",
    )
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b in BACKENDS]
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    command = " ".join(["benchmarks/serve.py", *(argv if argv is not None else sys.argv[1:])])
    facts = machine()
    runs: dict[str, Any] = {backend: {} for backend in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="mlrepo-serve-bench-") as tmp:
        base = Path(tmp)
        log("reproducing the default pipeline (dvc repro) in a copy")
        project = reproduce(base / "project")
        data = input_file(base, rows)
        postgres = start_postgres() if args.postgres else None
        for backend in backends:
            try:
                database = f"sqlite:///{base / f'predictions-{backend}.db'}"
                runs[backend]["log"] = bench_server(project, backend, database, args.quick, True)
                if postgres is not None:
                    url = postgres.url
                    runs[backend]["pglog"] = bench_server(project, backend, url, args.quick, False)
                    with contextlib.suppress(Exception):
                        reset_postgres(url)
                runs[backend]["nolog"] = bench_server(project, backend, None, args.quick, False)
                if args.thread_writer:
                    database = f"sqlite:///{base / f'predictions-{backend}-thread.db'}"
                    runs[backend]["threadlog"] = bench_server(
                        project, backend, database, args.quick, False, writer="thread"
                    )
                log(f"{backend}: mlrepo predict on {rows:,} rows")
                runs[backend]["predict"] = bench_predict(project, backend, data, rows)
            except RuntimeError as exc:
                runs[backend]["error"] = str(exc).strip().splitlines()[-1]
                log(f"{backend}: {runs[backend]['error']}")
        if postgres is not None:
            postgres.destroy()
    facts["load average at the end (1, 5, 15 min)"] = load_text()
    text = render(command, facts, runs)
    args.output.write_text(text, encoding="utf-8")
    log(f"wrote {args.output}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
