"""Pipeline benchmark: the speed and memory targets of issue 7, one JSON file per configuration.

Run from the project root: ``.venv/bin/python benchmarks/pipeline.py`` (``make bench``). Each part
measures throwaway copies of one commit (``git archive --ref``, default HEAD: never the working
tree, so every figure names the code it measured), each copy a fresh git repository with an
empty DVC cache:

default   default params, round by round so the ratios hold on a noisy machine: ``dvc repro``
          from an empty cache, ``dvc repro --force``, the eight stages as ``python -m``
          processes, and one process calling the eight ``main()``; then no-op ``dvc repro``.
imports   ``python -X importtime -c 'import mlrepo.stages.<name>'`` for each stage.
obesity   a UCI-obesity-shaped table (2,111 rows, 8 numeric + 8 categorical features, 7
          classes) through a full ``dvc repro``.
scaling   rows x model: each stage as its own process, wall, CPU and peak RSS; per-model row
          caps (``MAX_ROWS``) keep the session-length ones out, and the table says so.

Each configuration is saved as ``benchmarks/results/<config>.json`` (commit, command, load
average, figures); ``RESULTS.md`` and ``scaling.png`` are re-rendered from every saved file, so
``--only scaling --models xgboost --sizes 1000000`` replaces just those rows. ``--render`` only
re-renders. Timings are wall-clock and only as quiet as the machine: nothing asserts on them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from common import BIN, MEASURE, ROOT, Measured, commit_copy, cpu_model, log, now, venv_env

BENCH = ROOT / "benchmarks"
RESULTS_MD = BENCH / "RESULTS.md"
RESULTS_DIR = BENCH / "results"
PLOT_NAME = "scaling.png"  # next to RESULTS.md

PARTS = ("default", "imports", "obesity", "scaling")
# The scaling grid and the order of its rows: the benchmark's own list, not mlrepo.params'
# ModelName. The measured commit's models are read from that commit (Source.models), and saved
# results must still render if the code importable here has since dropped a model.
MODELS = (
    "random_forest",
    "gradient_boosting",
    "hist_gradient_boosting",
    "logistic_regression",
    "svm",
    "xgboost",
    "lightgbm",
)
# 10M rows is opt-in (--sizes ...,10000000): it takes most of an hour for the models that run it.
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
GRID_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
SCALING_FEATURES = 20  # generate.n_features of the scaling runs (params.yaml's default)
# The largest generate.n_samples each model is run at, and why: above it one configuration
# would take longer than a working session on this 2-core machine.
MAX_ROWS: dict[str, tuple[int, str]] = {
    "svm": (10_000, "kernel SVC is O(n²) in rows (100k rows: ~100x the 10k fit, per CV fold)"),
    "gradient_boosting": (
        100_000,
        "exact split search, one core per fit: train took 30 CPU s at 10k rows and grows about"
        " linearly, so 1M rows is ~10 min on a quiet machine, 10M hours",
    ),
    "random_forest": (1_000_000, "100 trees of depth 10 on 8M rows: about 10x the 1M-row train"),
}
DEFAULT_ROUNDS = 5  # rounds of the interleaved default-params comparison
NOOP_RUNS = 5
IMPORT_RUNS = 3
OBESITY_RUNS = 3
OBESITY_GENERATE = {
    "n_samples": 2111,
    "n_features": 8,
    "n_informative": 8,  # every categorical column derives from an informative one
    "n_redundant": 0,
    "n_classes": 7,
    "n_categorical": 8,
}
OBESITY_REFERENCE_S = 12.5  # a four-stage DVC+MLflow project's full repro on this table, here
HEAVY_PACKAGES = (
    "pandas",
    "pyarrow",
    "sklearn",
    "scipy",
    "matplotlib",
    "pandera",
    "pydantic",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "xgboost",
    "lightgbm",
    "joblib",
)

REPRO_TARGET_S = 6.0
NOOP_TARGET_S = 1.0
OVERHEAD_TARGET = 1.5
E2E_TARGET_ROWS = 1_000_000
E2E_TARGET_MODELS = ("hist_gradient_boosting", "xgboost")
E2E_TARGET_S = 60.0
PEAK_TARGET_MIB = 2048.0
STAGE_TIMEOUT_S = 1500.0
MIN_AVAILABLE_MIB = 1536.0  # a run is stopped before the machine runs out of memory


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def available_mib() -> float:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return math.inf


@dataclass
class Run(Measured):
    """One measured command: exit code, wall and CPU seconds, peak RSS, and why it stopped."""

    error: str = ""  # empty when the command exited 0

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.error


def measure(
    command: list[str], copy: Path, log_path: Path, timeout: float, warm: bool = True
) -> Run:
    """Run ``command`` in ``copy`` under a fresh measuring parent (``warm=False``: stages run cold,
    without the warm stage server, so each stage's figures are its own process's).

    The run is stopped (its process group killed) after ``timeout`` seconds or when the machine's
    available memory falls under ``MIN_AVAILABLE_MIB``; a failure carries the log's last lines.
    """
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", MEASURE, str(log_path), *command],
        cwd=copy,
        env=environment(copy) | ({} if warm else {"MLREPO_WARM": "0"}),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as parent:
        stopped = ""
        while parent.poll() is None:
            time.sleep(0.5)
            if time.perf_counter() - start > timeout:
                stopped = f"stopped after {timeout:.0f} s (STAGE_TIMEOUT_S)"
            elif available_mib() < MIN_AVAILABLE_MIB:
                stopped = f"stopped: machine's available memory under {MIN_AVAILABLE_MIB:.0f} MiB"
            if stopped:
                os.killpg(parent.pid, 9)
                parent.wait()
                break
        out = parent.stdout.read() if parent.stdout else ""
    wall = time.perf_counter() - start
    if stopped:
        return Run(-9, wall, math.nan, math.nan, stopped)
    run = Run(*Measured.read(out))
    if run.code != 0:
        lines = log_path.read_text(errors="replace").splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines
        run.error = f"exit {run.code}: " + " / ".join(line.strip() for line in errors[-3:])
    return run


def environment(copy: Path) -> dict[str, str]:
    """The venv first on PATH (dvc runs ``python -m``), the copy's own sources imported."""
    # DVC keeps its index and state under the site cache dir; keep it inside the throwaway tree.
    site_cache = copy.parent / f"{copy.name}-dvc-site-cache"
    return venv_env(PYTHONPATH=str(copy / "src"), DVC_SITE_CACHE_DIR=str(site_cache))


# ---------------------------------------------------------------- copies of the measured commit


@dataclass(frozen=True)
class Source:
    """The files of the measured commit, extracted once."""

    path: Path
    commit: str  # short hash
    models: tuple[str, ...]  # train.model values that commit's params.py accepts


def extract(ref: str, dest: Path) -> Source:
    """``git archive`` of ``ref`` into ``dest``: the committed files only, never the work tree."""
    commit = git("rev-parse", "--short=7", f"{ref}^{{commit}}")
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    listing = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            "import typing, mlrepo.params as p; print(' '.join(typing.get_args(p.ModelName)))",
        ],
        cwd=dest,
        env=environment(dest),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return Source(dest, commit, tuple(listing))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_copy(source: Source, dest: Path, overrides: dict[str, dict[str, Any]] | None) -> Path:
    """A fresh git repository at ``dest`` holding ``source`` with ``overrides`` in params.yaml."""
    shutil.copytree(source.path, dest)
    if overrides:
        path = dest / "params.yaml"
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        for section, values in overrides.items():
            params[section].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    commit_copy(dest)
    return dest


def remove(copy: Path) -> None:
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(copy.parent / f"{copy.name}-dvc-site-cache", ignore_errors=True)


def stage_commands(copy: Path) -> dict[str, list[str]]:
    """Every stage's command from ``dvc.yaml`` in order, ``${...}`` resolved from params.yaml."""
    stages = yaml.safe_load((copy / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load((copy / "params.yaml").read_text(encoding="utf-8"))

    def resolve(match: re.Match[str]) -> str:
        node: Any = params
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)

    return {
        name: shlex.split(re.sub(r"\$\{([^}]+)\}", resolve, " ".join(stage["cmd"].split())))
        for name, stage in stages.items()
    }


def python_command(tokens: list[str]) -> list[str]:
    """A ``dvc.yaml`` command with ``python`` replaced by the venv's interpreter."""
    return [str(BIN / "python"), *tokens[1:]] if tokens[0] == "python" else tokens


def ran_stages(dvc_log: Path) -> list[str]:
    """The stages a ``dvc repro`` log says it ran (the log holds only this run)."""
    prefix = "Running stage '"
    lines = dvc_log.read_text(errors="replace").splitlines()
    return [line.removeprefix(prefix).split("'")[0] for line in lines if line.startswith(prefix)]


def output_paths(copy: Path) -> list[str]:
    """Every file a stage writes: its ``outs``, ``metrics`` and ``plots``."""
    paths = []
    for stage in yaml.safe_load((copy / "dvc.yaml").read_text(encoding="utf-8"))["stages"].values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                paths.extend([entry] if isinstance(entry, str) else list(entry))
    return paths


def files_under(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))}
    return {"": path.read_bytes()} if path.exists() else {}


def differing_outputs(a: Path, b: Path) -> tuple[int, list[str]]:
    """How many stage outputs copies ``a`` and ``b`` both hold, and which differ in bytes."""
    paths = output_paths(a)
    return len(paths), [p for p in paths if files_under(a / p) != files_under(b / p)]


# ---------------------------------------------------------------------------- results on disk


def save(config: str, part: str, started: str, load_start: list[float], **data: Any) -> None:
    """Write ``benchmarks/results/<config>.json``, replacing an earlier result of that config."""
    results_dir = CONTEXT["results"]
    results_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "config": config,
        "part": part,
        "commit": CONTEXT["commit"],
        "command": CONTEXT["command"],
        "started": started,
        "load_start": load_start,
        "load_end": load_average(),
        "versions": CONTEXT["versions"],
        "machine": CONTEXT["machine"],
        **data,
    }
    path = results_dir / f"{config}.json"
    # Keys in the order written (stages in pipeline order): these files are read by people and
    # by --render, not hashed by DVC.
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    log(f"  saved {path}")


def load_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    if not results_dir.is_dir():
        return {}
    results = {}
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        results[record["config"]] = record
    return results


CONTEXT: dict[str, Any] = {}


def package_versions() -> dict[str, str]:
    names = ("scikit-learn", "dvc", "pandas", "numpy", "pyarrow", "xgboost", "lightgbm")
    versions = {"python": platform.python_version()}
    for name in names:
        versions[name] = "not installed"
        for distribution in (name, f"{name}-cpu"):  # requirements.txt pins xgboost-cpu
            try:
                versions[name] = version(distribution)
                break
            except PackageNotFoundError:
                continue
    return versions


def machine() -> dict[str, str]:
    """The machine a result was measured on (sessions may run on different hosts)."""
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return {
        "CPUs": str(os.cpu_count()),
        "CPU": cpu_model() or platform.processor() or "unknown",
        "total memory": f"{total_kib / 1024**2:.1f} GiB",
        "OS": platform.platform(),
    }


# ----------------------------------------------------------------------------- the four parts


def bench_default(source: Source, base: Path, rounds: int, noop_runs: int, timeout: float) -> None:
    """Default params, four ways per round (A B C D, A B C D ...), then no-op ``dvc repro``."""
    started, load_start = now(), load_average()
    dvc = str(BIN / "dvc")
    kinds = {
        "repro": "`dvc repro`, fresh copy, empty DVC cache",
        "force": "`dvc repro --force`, fresh copy, empty DVC cache (every stage runs)",
        "processes": "the eight stages as cold `python -m` processes (`MLREPO_WARM=0`), no DVC",
        "one_process": "one Python process calling the eight `main()`, imports included",
    }
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    parts: list[dict[str, Any]] = []
    ran: list[str] = []
    same: tuple[int, list[str]] = (0, [])
    for i in range(rounds):
        log(f"default params, round {i + 1}/{rounds}")
        copies = {kind: make_copy(source, base / f"default-{kind}-{i}", None) for kind in kinds}
        for kind, copy in copies.items():
            log_path = base / f"default-{kind}-{i}.log"
            if kind == "repro":
                run = measure([dvc, "repro"], copy, log_path, timeout)
                ran = ran_stages(log_path)
            elif kind == "force":
                run = measure([dvc, "repro", "--force"], copy, log_path, timeout)
            elif kind == "processes":
                run = run_processes(copy, log_path, timeout)
            else:
                report = base / f"in-process-{i}.json"
                command = [str(BIN / "python"), str(Path(__file__).resolve())]
                run = measure([*command, "--in-process", str(report)], copy, log_path, timeout)
                if run.ok:
                    parts.append(json.loads(report.read_text(encoding="utf-8")))
            if not run.ok:
                raise SystemExit(f"default params, {kinds[kind]}: {run.error}")
            runs[kind].append(asdict(run))
            log(f"  {kind}: {run.wall:.2f} s, peak {run.rss_mib:.0f} MiB")
        same = differing_outputs(copies["force"], copies["one_process"])
        if i < rounds - 1:
            for copy in copies.values():
                remove(copy)
    noops = []
    for i in range(noop_runs):
        run = measure([dvc, "repro"], copies["repro"], base / f"noop-{i}.log", timeout)
        noops.append(asdict(run))
        log(f"  no-op dvc repro {i + 1}/{noop_runs}: {run.wall:.2f} s")
    params = yaml.safe_load((source.path / "params.yaml").read_text(encoding="utf-8"))
    save(
        "default",
        "default",
        started,
        load_start,
        status="ok",
        kinds=kinds,
        runs=runs,
        noops=noops,
        ran=ran,
        in_process=parts,
        outputs=same[0],
        differ=same[1],
        rows=params["generate"]["n_samples"],
        model=params["train"]["model"],
    )


def run_processes(copy: Path, log_path: Path, timeout: float) -> Run:
    """Every stage as its own cold ``python -m`` process (no warm server), one after the other,
    summed: what the stages cost without :mod:`mlrepo.launcher`."""
    runs = [
        measure(python_command(t), copy, log_path, timeout, warm=False)
        for t in stage_commands(copy).values()
    ]
    failed = [r for r in runs if not r.ok]
    if failed:
        return failed[0]
    return Run(
        0,
        sum(r.wall for r in runs),
        sum(r.cpu for r in runs),
        max(r.rss_mib for r in runs),
    )


def run_in_process(report: Path) -> None:
    """The child of the one-process run: each stage's ``main()`` in the current copy."""
    start = time.perf_counter()
    commands = stage_commands(Path.cwd())
    modules = {
        name: import_module(f"mlrepo.stages.{tokens[3]}") for name, tokens in commands.items()
    }
    imports = time.perf_counter() - start
    stages = {}
    for name, tokens in commands.items():
        start = time.perf_counter()
        code = modules[name].main(tokens[4:])
        stages[name] = time.perf_counter() - start
        if code:
            raise SystemExit(f"{name} returned {code}")
    report.write_text(json.dumps({"imports": imports, "stages": stages}), encoding="utf-8")


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """Total import time (sum of every module's own time), and that time per top-level package."""
    per_package: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.removeprefix("import time:").split("|")
        per_package[name.strip().split(".")[0]] += int(self_us) / 1e6
    return sum(per_package.values()), dict(per_package)


def bench_imports(source: Source, base: Path, runs: int) -> None:
    """``python -X importtime -c 'import mlrepo.stages.<name>'`` per stage, rounds interleaved."""
    started, load_start = now(), load_average()
    copy = make_copy(source, base / "imports", None)
    stages = ["(interpreter only)", *stage_commands(copy)]
    measured: dict[str, list[tuple[float, float, dict[str, float]]]] = defaultdict(list)
    for i in range(runs):
        log(f"imports, round {i + 1}/{runs}")
        for stage in stages:
            code = "pass" if stage.startswith("(") else f"import mlrepo.stages.{stage}"
            start = time.perf_counter()
            done = subprocess.run(
                [str(BIN / "python"), "-X", "importtime", "-c", code],
                cwd=copy,
                env=environment(copy),
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"import mlrepo.stages.{stage} failed: {done.stderr[-500:]}")
            total, packages = parse_importtime(done.stderr)
            measured[stage].append((wall, total, packages))
    result = {}
    for stage, samples in measured.items():
        samples.sort(key=lambda s: s[1])
        wall, total, packages = samples[len(samples) // 2]
        result[stage] = {
            "wall": statistics.median(s[0] for s in samples),
            "imports": total,
            "imports_runs": [s[1] for s in samples],
            "packages": dict(sorted(packages.items(), key=lambda kv: -kv[1])[:8]),
            "heavy": sorted(p for p in packages if p in HEAVY_PACKAGES),
        }
        log(f"  {stage}: imports {total:.2f} s, process {result[stage]['wall']:.2f} s")
    save("imports", "imports", started, load_start, status="ok", stages=result)


def bench_obesity(source: Source, base: Path, runs: int, timeout: float) -> None:
    """The UCI-obesity-shaped table through a full ``dvc repro`` in fresh copies."""
    started, load_start = now(), load_average()
    done = []
    status, error = "ok", ""
    for i in range(runs):
        copy = make_copy(source, base / f"obesity-{i}", {"generate": OBESITY_GENERATE})
        log_path = base / f"obesity-{i}.log"
        run = measure([str(BIN / "dvc"), "repro"], copy, log_path, timeout)
        log(f"obesity-shaped table, full dvc repro {i + 1}/{runs}: {run.wall:.2f} s {run.error}")
        if not run.ok:
            status, error = "failed", run.error
            break
        done.append(asdict(run))
        ran = ran_stages(log_path)
        metrics = json.loads((copy / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
        raw = (copy / "data" / "raw.parquet").stat().st_size
        remove(copy)
    extra = {"ran": ran, "accuracy": metrics.get("accuracy"), "raw_bytes": raw} if done else {}
    save(
        "obesity",
        "obesity",
        started,
        load_start,
        status=status,
        error=error,
        generate=OBESITY_GENERATE,
        runs=done,
        **extra,
    )


def config_name(model: str, rows: int) -> str:
    return f"scaling-{model}-{rows}"


def bench_scaling(source: Source, base: Path, model: str, rows: int, timeout: float) -> None:
    """Each stage of ``dvc.yaml`` as its own process at ``rows`` rows with ``model``."""
    started, load_start = now(), load_average()
    overrides: dict[str, dict[str, Any]] = {
        "generate": {"n_samples": rows, "n_features": SCALING_FEATURES},
        "train": {"model": model},
    }
    name = config_name(model, rows)
    copy = make_copy(source, base / name, overrides)
    log(f"scaling: {rows:,} rows, {model} (machine has {available_mib() / 1024:.1f} GiB free)")
    stages: dict[str, dict[str, Any]] = {}
    status, error = "ok", ""
    for stage, tokens in stage_commands(copy).items():
        run = measure(python_command(tokens), copy, base / f"{name}.log", timeout, warm=False)
        stages[stage] = asdict(run)
        log(f"  {stage}: {run.wall:.2f} s, cpu {run.cpu:.2f} s, peak {run.rss_mib:.0f} MiB")
        if not run.ok:
            status, error = "failed", f"{stage}: {run.error}"
            log(f"  {error}")
            break
    metrics_path = copy / "metrics" / "evaluate.json"
    accuracy = None
    if status == "ok" and metrics_path.exists():
        accuracy = json.loads(metrics_path.read_text(encoding="utf-8")).get("accuracy")
    remove(copy)  # the 10M-row outputs take gigabytes
    through_dvc = None
    if status == "ok" and rows == E2E_TARGET_ROWS and model in E2E_TARGET_MODELS:
        # The target is end to end: once more as one `dvc repro`, DVC's hashing of the big
        # files included, right after the stage-by-stage run.
        copy = make_copy(source, base / f"{name}-dvc", overrides)
        run = measure([str(BIN / "dvc"), "repro"], copy, base / f"{name}-dvc.log", timeout)
        log(f"  dvc repro: {run.wall:.2f} s, peak {run.rss_mib:.0f} MiB {run.error}")
        through_dvc = {**asdict(run), "ran": ran_stages(base / f"{name}-dvc.log")}
        remove(copy)
    save(
        name,
        "scaling",
        started,
        load_start,
        status=status,
        error=error,
        model=model,
        rows=rows,
        features=SCALING_FEATURES,
        stages=stages,
        accuracy=accuracy,
        dvc_repro=through_dvc,
    )


def not_a_model(source: Source, results_dir: Path, model: str, rows: int) -> None:
    """Record that ``model`` is not a ``train.model`` value at the measured commit, unless an
    earlier run (of a commit that had it) saved a result for this configuration."""
    reason = f"train.model has no {model!r} at {source.commit}"
    log(f"scaling: {rows:,} rows, {model}: not run, {reason}")
    if not (results_dir / f"{config_name(model, rows)}.json").exists():
        save(
            config_name(model, rows),
            "scaling",
            now(),
            load_average(),
            status="not_run",
            error=reason,
            model=model,
            rows=rows,
            features=SCALING_FEATURES,
            stages={},
            accuracy=None,
        )


def cap_reason(model: str, rows: int) -> str:
    cap = MAX_ROWS.get(model)
    if cap and rows > cap[0]:
        return f"above MAX_ROWS[{model!r}] = {cap[0]:,}: {cap[1]}"
    return ""


# ----------------------------------------------------------------------------------- rendering


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def when(record: dict[str, Any]) -> str:
    """The commit and the 1-minute load average at the start and end of a result."""
    start, end = record["load_start"][0], record["load_end"][0]
    return f"`{record['commit']}`, load {start:.1f} -> {end:.1f}"


def median_of(runs: list[dict[str, Any]], key: str = "wall") -> float:
    return statistics.median(r[key] for r in runs)


def round_ratios(runs: dict[str, list[dict[str, Any]]], a: str, b: str) -> list[float]:
    return [x["wall"] / y["wall"] for x, y in zip(runs[a], runs[b], strict=True)]


def e2e(record: dict[str, Any]) -> tuple[float, float]:
    stages = record["stages"].values()
    return sum(s["wall"] for s in stages), max(s["rss_mib"] for s in stages)


def targets_section(results: dict[str, dict[str, Any]]) -> str:
    rows = []
    default = results.get("default")
    if default:
        runs = default["runs"]
        repro = median_of(runs["repro"])
        force = median_of(runs["force"])
        noop = median_of(default["noops"])
        ratio = statistics.median(round_ratios(runs, "force", "one_process"))
        rows += [
            [
                "default params: full `dvc repro`, empty cache",
                f"{repro:.2f} s (`--force`, all eight stages: {force:.2f} s)",
                f"<= {REPRO_TARGET_S:.0f} s",
                met(repro <= REPRO_TARGET_S),
                when(default),
            ],
            [
                "default params: no-op `dvc repro`",
                f"{noop:.2f} s",
                f"<= {NOOP_TARGET_S:.0f} s",
                met(noop <= NOOP_TARGET_S),
                when(default),
            ],
            [
                "DVC + stage processes / one-process floor",
                f"{ratio:.2f}x",
                f"<= {OVERHEAD_TARGET}x",
                met(ratio <= OVERHEAD_TARGET),
                when(default),
            ],
        ]
    obesity = results.get("obesity")
    if obesity and obesity["status"] == "ok":
        wall = median_of(obesity["runs"])
        rows.append(
            [
                "UCI-obesity-shaped table: full `dvc repro`",
                f"{wall:.2f} s",
                f"< {OBESITY_REFERENCE_S} s (DVC+MLflow reference)",
                met(wall < OBESITY_REFERENCE_S),
                when(obesity),
            ]
        )
    elif obesity:
        rows.append(["UCI-obesity-shaped table", f"failed: {obesity['error']}", "", "", ""])
    for model in E2E_TARGET_MODELS:
        record = results.get(config_name(model, E2E_TARGET_ROWS))
        what = f"{E2E_TARGET_ROWS:,} rows, `{model}`, end to end / peak"
        if record is None:
            rows.append([what, "not measured", "", "", ""])
        elif record["status"] != "ok":
            rows.append([what, f"failed: {record['error']}", "", "**missed**", when(record)])
        else:
            wall, peak = e2e(record)
            measured = f"stages {wall:.1f} s / {peak:.0f} MiB"
            dvc = record.get("dvc_repro")
            if dvc and not dvc["error"]:
                # The target is what a user runs: `dvc repro`, whose stages start warm and
                # which includes DVC's own work on the big files. The stage-by-stage sum runs
                # every stage cold (MLREPO_WARM=0): the breakdown, not the target.
                wall, peak = dvc["wall"], dvc["rss_mib"]
                measured += f"; `dvc repro` {dvc['wall']:.1f} s / {dvc['rss_mib']:.0f} MiB"
            elif dvc:
                measured += f"; `dvc repro` failed: {dvc['error']}"
            ok = wall <= E2E_TARGET_S and peak <= PEAK_TARGET_MIB
            rows.append(
                [
                    what,
                    measured,
                    f"<= {E2E_TARGET_S:.0f} s / <= {PEAK_TARGET_MIB:.0f} MiB",
                    met(ok)
                    + (
                        ""
                        if ok
                        else f" (time {met(wall <= E2E_TARGET_S)}, peak"
                        f" {met(peak <= PEAK_TARGET_MIB)})"
                    ),
                    when(record),
                ]
            )
    for model in MODELS:
        record = results.get(config_name(model, 10_000_000))
        if record is None:
            continue
        what = f"10,000,000 rows, `{model}`: runs"
        if record["status"] == "ok":
            wall, peak = e2e(record)
            rows.append([what, f"{wall:.0f} s / {peak:.0f} MiB", "runs", "met", when(record)])
        else:
            rows.append([what, f"failed: {record['error']}", "runs", "**missed**", when(record)])
    return table(["target", "measured", "target value", "status", "commit, load"], rows)


def default_section(default: dict[str, Any] | None) -> str:
    if default is None:
        return "Not measured yet (`--only default`)."
    runs = default["runs"]
    rounds = len(runs["repro"])
    rows = []
    for kind, what in default["kinds"].items():
        walls = ", ".join(f"{r['wall']:.2f}" for r in runs[kind])
        ratio = statistics.median(round_ratios(runs, kind, "one_process"))
        peak = max(r["rss_mib"] for r in runs[kind])
        rows.append([what, f"{median_of(runs[kind]):.2f}", walls, f"{ratio:.2f}", f"{peak:.0f}"])
    noops = default["noops"]
    rows.append(
        [
            f"no-op `dvc repro` (after the last round's `dvc repro`), {len(noops)} runs",
            f"{median_of(noops):.2f}",
            ", ".join(f"{r['wall']:.2f}" for r in noops),
            "",
            f"{max(r['rss_mib'] for r in noops):.0f}",
        ]
    )
    header = [
        f"default params ({default['rows']:,} rows, {default['model']}), {rounds} rounds",
        "median wall s",
        "each round, s",
        "median of round ratios to one process",
        "peak RSS MiB",
    ]
    text = table(header, rows)
    text += f"\n\n`dvc repro` in a fresh copy ran: {', '.join(default['ran']) or 'nothing'}."
    parts = default["in_process"]
    if parts:
        part_rows = [
            ["importing the eight stage modules", f"{median_of_key(parts, 'imports'):.2f}"]
        ]
        for stage in parts[0]["stages"]:
            values = [p["stages"][stage] for p in parts]
            part_rows.append([f"`{stage}.main()`", f"{statistics.median(values):.2f}"])
        text += "\n\n" + table(["part of the one-process run (median)", "wall s"], part_rows)
    count, differ = default["outputs"], default["differ"]
    text += f"\n\n{count - len(differ)} of {count} stage outputs of the one-process run are"
    text += " byte-identical to those of `dvc repro --force`"
    text += f" (differ: {', '.join(differ)})." if differ else "."
    return text + f" Measured on {when(default)} at {default['started']}."


def median_of_key(parts: list[dict[str, Any]], key: str) -> float:
    return statistics.median(p[key] for p in parts)


def imports_section(record: dict[str, Any] | None) -> str:
    if record is None:
        return "Not measured yet (`--only imports`)."
    rows = []
    for stage, data in record["stages"].items():
        top = ", ".join(
            f"{name} {seconds:.2f}" for name, seconds in list(data["packages"].items())[:5]
        )
        rows.append(
            [
                stage,
                f"{data['imports']:.2f}",
                f"{data['wall']:.2f}",
                top,
                ", ".join(data["heavy"]) or "none",
            ]
        )
    header = [
        "stage",
        "import total s (median)",
        "process wall s (median)",
        "biggest packages (own import time, s)",
        "heavy packages imported",
    ]
    return (
        table(header, rows) + f"\n\nMeasured on {when(record)} at {record['started']}; "
        f"{len(next(iter(record['stages'].values()))['imports_runs'])} runs per stage, interleaved."
    )


def obesity_section(record: dict[str, Any] | None) -> str:
    if record is None:
        return "Not measured yet (`--only obesity`)."
    shape = ", ".join(f"{k} {v}" for k, v in record["generate"].items())
    if record["status"] != "ok":
        return f"generate: {shape}. **Failed**: {record['error']} ({when(record)})."
    walls = ", ".join(f"{r['wall']:.2f}" for r in record["runs"])
    rows = [
        [
            "full `dvc repro`, fresh copy, empty DVC cache",
            f"{median_of(record['runs']):.2f}",
            walls,
            f"{max(r['rss_mib'] for r in record['runs']):.0f}",
            f"{OBESITY_REFERENCE_S}",
        ]
    ]
    header = ["UCI-obesity-shaped", "median wall s", "each run, s", "peak RSS MiB", "reference s"]
    return (
        f"generate: {shape} (17 columns with the target).\n\n"
        + table(header, rows)
        + f"\n\nStages run: {', '.join(record['ran'])}; test accuracy {record['accuracy']:.3f}."
        f" Measured on {when(record)} at {record['started']}."
    )


def scaling_records(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The scaling results that ran (to the end or to a failure), by rows then model."""
    records = [r for r in results.values() if r["part"] == "scaling" and r["status"] != "not_run"]
    return sorted(records, key=lambda r: (r["rows"], MODELS.index(r["model"])))


def scaling_section(results: dict[str, dict[str, Any]]) -> str:
    records = scaling_records(results)
    summary = []
    stage_names: list[str] = []
    for record in records:
        for stage in record["stages"]:
            if stage not in stage_names:
                stage_names.append(stage)
        if record["status"] == "ok":
            wall, peak = e2e(record)
            cpu = sum(s["cpu"] for s in record["stages"].values())
            cells = [f"{wall:.1f}", f"{cpu:.1f}", f"{peak:.0f}", f"{record['accuracy']:.3f}", "ok"]
        else:
            cells = ["", "", "", "", f"**failed** at {record['error']}"]
        summary.append([f"{record['rows']:,}", record["model"], *cells, when(record)])
    header = ["rows", "model", "end to end s", "CPU s", "peak RSS MiB", "test accuracy", "status"]
    text = table([*header, "commit, load"], summary)
    not_run = []
    for rows in GRID_SIZES:
        for model in MODELS:
            saved = results.get(config_name(model, rows))
            if saved and saved["status"] != "not_run":
                continue
            reason = cap_reason(model, rows) or (saved["error"] if saved else "no saved result")
            if not cap_reason(model, rows) and rows not in DEFAULT_SIZES:
                reason += f" ({rows:,} rows is opt-in: `--sizes {rows}`)"
            not_run.append([f"{rows:,}", model, reason])
    if not_run:
        text += "\n\nNot run:\n\n" + table(["rows", "model", "why"], not_run)
    for title, key, fmt in (("wall s", "wall", "{:.1f}"), ("peak RSS MiB", "rss_mib", "{:.0f}")):
        rows_out = []
        for record in records:
            cells = []
            for stage in stage_names:
                run = record["stages"].get(stage)
                if run is None:
                    cells.append("")
                elif run["error"]:
                    cells.append("failed")
                else:
                    cells.append(fmt.format(run[key]))
            rows_out.append([f"{record['rows']:,}", record["model"], *cells])
        text += f"\n\nPer stage, {title}:\n\n" + table(["rows", "model", *stage_names], rows_out)
    notes = growth_notes(records)
    if notes:
        text += "\n\nGrowing faster than the rows:\n\n" + "\n".join(f"- {n}" for n in notes)
    return text


def growth_notes(records: list[dict[str, Any]]) -> list[str]:
    """Stages whose CPU time or peak RSS grew more than the row count between two sizes.

    Only steps of at least 10x rows where the larger run took over 5 s (or 500 MiB), so fixed
    start-up costs do not hide or fake a trend.
    """
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["status"] == "ok":
            by_model[record["model"]].append(record)
    notes = []
    for model, runs in by_model.items():
        for small, large in itertools.pairwise(runs):
            factor = large["rows"] / small["rows"]
            for stage, run in large["stages"].items():
                before = small["stages"].get(stage)
                if before is None or factor < 10:
                    continue
                # CPU time, not wall: the load on a shared machine differs between two runs.
                for key, unit, floor in (("cpu", "CPU s", 5.0), ("rss_mib", "MiB", 500.0)):
                    grew = run[key] / before[key]
                    if run[key] > floor and grew > factor:
                        notes.append(
                            f"`{model}` {stage} {'CPU time' if key == 'cpu' else 'peak RSS'}:"
                            f" {before[key]:.1f} -> {run[key]:.1f} {unit} from"
                            f" {small['rows']:,} to {large['rows']:,} rows ({grew:.0f}x for"
                            f" {factor:.0f}x rows)"
                        )
    return notes


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    """End-to-end wall time and peak RSS per model against rows, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    records = scaling_records(results)
    figure, (wall_axes, rss_axes) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for model in MODELS:
        done = [r for r in records if r["model"] == model and r["status"] == "ok"]
        failed = [r for r in records if r["model"] == model and r["status"] != "ok"]
        if not done and not failed:
            continue
        rows = [r["rows"] for r in done]
        walls, peaks = zip(*(e2e(r) for r in done), strict=True) if done else ((), ())
        (line,) = wall_axes.plot(rows, walls, marker="o", label=model)
        rss_axes.plot(rows, peaks, marker="o", color=line.get_color(), label=model)
        for record in failed:
            ran = [s for s in record["stages"].values() if not s["error"]]
            wall = sum(s["wall"] for s in record["stages"].values() if not math.isnan(s["wall"]))
            peak = max((s["rss_mib"] for s in ran), default=math.nan)
            wall_axes.plot(record["rows"], wall, marker="x", color=line.get_color(), ms=10)
            if not math.isnan(peak):
                rss_axes.plot(record["rows"], peak, marker="x", color=line.get_color(), ms=10)
    wall_axes.axhline(E2E_TARGET_S, color="grey", linestyle=":", label="target at 1M rows")
    rss_axes.axhline(PEAK_TARGET_MIB, color="grey", linestyle=":", label="target at 1M rows")
    for axes, label in ((wall_axes, "end to end wall s"), (rss_axes, "peak RSS MiB (any stage)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        sizes = sorted({r["rows"] for r in records})
        axes.set_xticks(sizes, [f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" for n in sizes])
        axes.xaxis.set_minor_formatter(FuncFormatter(lambda _value, _pos: ""))
        for axis_formatter in (axes.yaxis.set_major_formatter, axes.yaxis.set_minor_formatter):
            axis_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
        axes.set_xlabel(f"rows (generate.n_samples), {SCALING_FEATURES} numeric features")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    wall_axes.set_title("Pipeline wall time (sum of the eight stages); x: failed")
    rss_axes.set_title("Peak resident memory of the largest stage")
    rss_axes.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def machine_section(results: dict[str, dict[str, Any]]) -> str:
    """Each distinct machine and package set the saved results were measured with."""
    seen: dict[str, list[str]] = defaultdict(list)
    for config, record in results.items():
        facts = {**record.get("machine", {}), **record["versions"]}
        seen[json.dumps(facts)].append(config)
    blocks = []
    for facts_json, configs in seen.items():
        facts = json.loads(facts_json)
        rows = [[name, value] for name, value in facts.items()]
        used = ", ".join(configs) if len(seen) > 1 else "every result"
        blocks.append(table([f"machine and packages of {used}", "value"], rows))
    return "\n\n".join(blocks) or "No results saved yet."


def render(results: dict[str, dict[str, Any]]) -> str:
    commands = sorted({(r["command"], r["started"][:10]) for r in results.values()})
    command_lines = "\n".join(f"- `{command}` ({day})" for command, day in commands)
    return f"""# Pipeline benchmark

Measured by `benchmarks/pipeline.py` (`make bench` runs its default set) and rendered from the
result files in `benchmarks/results/` by `.venv/bin/python benchmarks/pipeline.py --render`,
{now()}. The saved results were made by:

{command_lines}

Every run used throwaway copies of one commit (`git archive`; the commit is on every row, with
the 1-minute load average when that result started): a fresh git repository with an empty DVC
cache. Times are wall-clock seconds; "CPU s" is user + system time; "peak RSS" is the largest
single process's maximum resident set size (`ru_maxrss`, read in a fresh parent per command).
The machine is shared by several engineers: compare figures measured side by side (the default
rounds), and read absolute times with the load average next to them.

## Targets (issue 7)

{targets_section(results)}

## 1. Default params: DVC, stage processes and the one-process floor

Each round runs the four ways one after the other in fresh copies, so a ratio compares runs made
within seconds of each other; the table gives the median of the per-round ratios. The one-process
run calls each stage's `main()` with the arguments `dvc.yaml` gives it (`${{...}}` resolved from
params.yaml), so it reads and writes the same files. Under `dvc repro` the stages start warm, as
they do for a user: the first one starts `mlrepo.launcher`'s server and runs cold, each later one
is a fork of that server (README, "The stages"); the server's CPU time and its forks' peak RSS
are counted in the row. The third row runs the same stage commands cold, one process each.

{default_section(results.get("default"))}

## 2. Import time per stage

`python -X importtime -c 'import mlrepo.stages.<name>'` in a copy: "import total" sums every
module's own import time; the process wall time includes interpreter start-up. Packages are
grouped by top-level name.

{imports_section(results.get("imports"))}

## 3. The UCI-obesity-shaped case

{obesity_section(results.get("obesity"))}

## 4. Scaling with rows, per model

Each stage runs as its own cold process (`python -m mlrepo.run <name>` with its `dvc.yaml`
arguments and `MLREPO_WARM=0`, no DVC) in a copy whose `params.yaml` sets `generate.n_samples`,
`generate.n_features: {SCALING_FEATURES}` and `train.model`. End to end is the sum of the eight
stages; peak RSS is the largest of them. A stage is stopped after {STAGE_TIMEOUT_S:.0f} s or when
the machine's available memory falls below {MIN_AVAILABLE_MIB:.0f} MiB. Plot:
[scaling.png](scaling.png).

{scaling_section(results)}

## Machine

{machine_section(results)}
"""


def write_outputs(results_dir: Path, output: Path) -> None:
    results = load_results(results_dir)
    output.write_text(render(results), encoding="utf-8")
    if scaling_records(results):
        plot(results, output.parent / PLOT_NAME)
    log(f"rendered {output} and {output.parent / PLOT_NAME} from {len(results)} results")


# ---------------------------------------------------------------------------------------- main


def parse_list(text: str | None, default: tuple[Any, ...], kind: type = str) -> list[Any]:
    if not text:
        return list(default)
    items = [item.strip() for item in text.split(",") if item.strip()]
    return [int(item.replace("_", "")) for item in items] if kind is int else items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated parts (default all): {', '.join(PARTS)}")
    parser.add_argument("--models", help=f"scaling models (default all): {', '.join(MODELS)}")
    parser.add_argument(
        "--sizes",
        help="scaling generate.n_samples values "
        f"(default {','.join(map(str, DEFAULT_SIZES))}; the grid adds 10000000)",
    )
    parser.add_argument("--ref", default="HEAD", help="the commit to measure (default HEAD)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="default-part rounds")
    parser.add_argument("--timeout", type=float, default=STAGE_TIMEOUT_S, help="per command, s")
    parser.add_argument("--render", action="store_true", help="only re-render the table and plot")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="result files' folder")
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help="Markdown table to write")
    parser.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        run_in_process(args.in_process)
        return 0
    if args.render:
        write_outputs(args.results, args.output)
        return 0
    parts = parse_list(args.only, PARTS)
    models = parse_list(args.models, MODELS)
    sizes = parse_list(args.sizes, DEFAULT_SIZES, int)
    unknown = sorted(set(parts) - set(PARTS)) + sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown part or model: {', '.join(unknown)}")

    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    CONTEXT["command"] = shlex.join([str(shown), "benchmarks/pipeline.py", *sys.argv[1:]])
    CONTEXT["versions"] = package_versions()
    CONTEXT["machine"] = machine()
    CONTEXT["results"] = args.results
    log(f"{CONTEXT['command']}: load {load_average()}")
    # Warm the OS file cache so the first timed run does not pay for reading the venv from disk.
    subprocess.run(
        [str(BIN / "python"), "-c", "import sklearn.ensemble, pandas, pyarrow, matplotlib"],
        check=True,
    )
    subprocess.run([str(BIN / "dvc"), "--version"], check=True, capture_output=True)

    with tempfile.TemporaryDirectory(prefix="mlrepo-bench-") as tmp:
        base = Path(tmp)
        source = extract(args.ref, base / "source")
        CONTEXT["commit"] = source.commit
        log(f"measuring commit {source.commit}; its train.model values: {' '.join(source.models)}")
        if "imports" in parts:
            bench_imports(source, base, IMPORT_RUNS)
        if "default" in parts:
            bench_default(source, base, args.rounds, NOOP_RUNS, args.timeout)
        if "obesity" in parts:
            bench_obesity(source, base, OBESITY_RUNS, args.timeout)
        if "scaling" in parts:
            for rows in sorted(sizes):
                for model in models:
                    if cap_reason(model, rows):
                        log(f"scaling: {rows:,} rows, {model}: not run, {cap_reason(model, rows)}")
                    elif model not in source.models:
                        not_a_model(source, args.results, model, rows)
                    else:
                        bench_scaling(source, base, model, rows, args.timeout)
        write_outputs(args.results, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
