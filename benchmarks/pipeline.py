"""Pipeline benchmark: DVC overhead, in-process baseline and scaling to 1M rows.

Run from the project root as ``.venv/bin/python benchmarks/pipeline.py`` (``make bench``); it
rewrites ``benchmarks/RESULTS.md``. Every run happens in throwaway copies of the git-tracked
files (a fresh git repository each, an empty DVC cache), never in the working tree.

1. ``dvc repro evaluate`` (the five stages generate ... evaluate) at the default params from an
   empty cache, then a no-op ``dvc repro evaluate`` (median of several runs).
2. The same five stages as five ``python -m`` processes without DVC, and in one Python process
   calling each stage's ``main()`` with the arguments ``dvc.yaml`` gives it.
3. Scaling over ``generate.n_samples``: each stage as its own process, wall time, CPU time and
   peak resident memory (``ru_maxrss`` read in a fresh parent per stage).

Timings are wall-clock and only as quiet as the machine: nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# The pipeline this benchmark covers, in order; ``dvc repro evaluate`` runs exactly these, so
# stages added after evaluate (export, monitoring...) stay out of the comparison.
STAGES = ("generate", "validate", "featurize", "train", "evaluate")
TARGET = STAGES[-1]
DEFAULT_SIZES = [10_000, 100_000, 1_000_000]
SCALING_MODEL = "hist_gradient_boosting"
COMPARISON_MODEL = "random_forest"  # also run at the sizes up to this many rows
COMPARISON_MAX_ROWS = 100_000
NOOP_RUNS = 5
NOOP_TARGET_S = 1.0
E2E_TARGET_ROWS = 1_000_000
E2E_TARGET_S = 60.0
PEAK_TARGET_MIB = 2048.0

# Runs one command in a fresh parent, so RUSAGE_CHILDREN covers that command (and whatever it
# waited for) only; prints wall time, CPU time and peak RSS as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "ab") as log:
    start = time.perf_counter()
    code = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "maxrss_kib": usage.ru_maxrss}))
"""


@dataclass
class Run:
    """One measured command: wall seconds, user+system CPU seconds, peak RSS in MiB."""

    wall: float
    cpu: float
    rss_mib: float


@dataclass
class Scaling:
    rows: int
    model: str
    stages: dict[str, Run] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return sum(r.wall for r in self.stages.values())

    @property
    def peak_mib(self) -> float:
        return max(r.rss_mib for r in self.stages.values())


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def stage_commands(dvc_yaml: Path) -> dict[str, list[str]]:
    """The command of each of ``STAGES`` from ``dvc.yaml``, split into tokens, in order."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    commands = {}
    for name in STAGES:
        cmd = " ".join(stages[name]["cmd"].split())
        if "${" in cmd:
            raise SystemExit(f"dvc.yaml: stage {name} interpolates params in its cmd: {cmd}")
        commands[name] = shlex.split(cmd)
    return commands


def environment(copy: Path) -> dict[str, str]:
    """The venv first on PATH (dvc runs ``python -m``), the copy's own sources imported."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(copy / "src")
    # DVC keeps its index and state under the site cache dir; keep it inside the throwaway tree.
    env["DVC_SITE_CACHE_DIR"] = str(copy.parent / f"{copy.name}-dvc-site-cache")
    return env


def snapshot(dest: Path) -> Path:
    """The git-tracked files of the working tree, copied once so every run sees the same code."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def make_copy(source: Path, dest: Path, rows: int | None = None, model: str | None = None) -> Path:
    """Copy the snapshot ``source`` to ``dest``, set the params, make it a fresh git repo."""
    shutil.copytree(source, dest)
    if rows is not None or model is not None:
        params_path = dest / "params.yaml"
        params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
        if rows is not None:
            params["generate"]["n_samples"] = rows
        if model is not None:
            params["train"]["model"] = model
        params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    git += ["-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "benchmark copy"]):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)
    return dest


def measure(command: list[str], copy: Path, log_path: Path) -> Run:
    """Run ``command`` in ``copy`` under a fresh measuring parent; stop the benchmark on failure."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(log_path), *command],
        cwd=copy,
        env=environment(copy),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["code"] != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{shlex.join(command)} failed (exit {result['code']}):\n{tail}")
    return Run(result["wall"], result["cpu"], result["maxrss_kib"] / 1024)


def python_command(tokens: list[str]) -> list[str]:
    """A ``dvc.yaml`` command with ``python`` replaced by the venv's interpreter."""
    return [str(BIN / "python"), *tokens[1:]] if tokens[0] == "python" else tokens


@dataclass
class DvcRuns:
    full: Run  # dvc repro in a fresh copy
    ran: list[str]  # the stages that full actually ran
    noops: list[Run]
    forced: Run  # dvc repro --force in another fresh copy
    forced_ran: list[str]
    forced_copy: Path


def ran_stages(dvc_log: Path) -> list[str]:
    """The stages a ``dvc repro`` log says it ran."""
    prefix = "Running stage '"
    lines = dvc_log.read_text(errors="replace").splitlines()
    return [line.removeprefix(prefix).split("'")[0] for line in lines if line.startswith(prefix)]


def bench_dvc(base: Path, noop_runs: int) -> DvcRuns:
    """``dvc repro evaluate`` in a fresh copy, then no-ops; ``--force`` in another fresh copy.

    A fresh copy may skip a stage whose outputs are committed and already match ``dvc.lock``;
    the forced run executes all five stages, as the one-process run does.
    """
    dvc = str(BIN / "dvc")
    copy = make_copy(base / "source", base / "dvc")
    log(f"dvc repro {TARGET} in a fresh copy, empty DVC cache (default params)")
    full = measure([dvc, "repro", TARGET], copy, base / "dvc.log")
    ran = ran_stages(base / "dvc.log")
    log(f"  dvc repro {TARGET}: {full.wall:.2f} s (ran {', '.join(ran) or 'nothing'})")
    noops = []
    for i in range(noop_runs):
        noops.append(measure([dvc, "repro", TARGET], copy, base / "noop.log"))
        log(f"  no-op dvc repro {i + 1}/{noop_runs}: {noops[-1].wall:.2f} s")
    log(f"dvc repro --force {TARGET} in another fresh copy (all five stages)")
    forced_copy = make_copy(base / "source", base / "dvc-force")
    forced = measure([dvc, "repro", "--force", TARGET], forced_copy, base / "force.log")
    log(f"  dvc repro --force {TARGET}: {forced.wall:.2f} s")
    return DvcRuns(full, ran, noops, forced, ran_stages(base / "force.log"), forced_copy)


def output_paths(dvc_yaml: Path) -> list[str]:
    """Every file a stage writes: its ``outs``, ``metrics`` and ``plots``."""
    paths = []
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    for stage in (stages[name] for name in STAGES):
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                paths.extend([entry] if isinstance(entry, str) else list(entry))
    return paths


def same_outputs(a: Path, b: Path) -> tuple[int, list[str]]:
    """How many stage outputs are byte-identical in copies ``a`` and ``b``, and which differ."""
    paths = output_paths(a / "dvc.yaml")
    differ = [p for p in paths if (a / p).read_bytes() != (b / p).read_bytes()]
    return len(paths) - len(differ), differ


def bench_in_process(base: Path) -> tuple[Run, dict[str, float], Path]:
    """All five ``main()`` calls in one fresh interpreter (start-up and imports included)."""
    copy = make_copy(base / "source", base / "in-process")
    report = base / "in-process.json"
    log("five stages in one Python process")
    command = [str(BIN / "python"), str(Path(__file__).resolve()), "--in-process", str(report)]
    run = measure(command, copy, base / "in-process.log")
    parts = json.loads(report.read_text(encoding="utf-8"))
    log(f"  one process: {run.wall:.2f} s (stage calls {sum(parts['stages'].values()):.2f} s)")
    return run, parts, copy


def run_in_process(report: Path) -> None:
    """The child of :func:`bench_in_process`: call each stage's ``main()`` in the cwd copy."""
    start = time.perf_counter()
    commands = stage_commands(Path("dvc.yaml"))
    modules = {name: import_module(tokens[2]) for name, tokens in commands.items()}
    imports = time.perf_counter() - start
    stages = {}
    for name, tokens in commands.items():
        start = time.perf_counter()
        code = modules[name].main(tokens[3:])
        stages[name] = time.perf_counter() - start
        if code:
            raise SystemExit(f"{name} returned {code}")
    report.write_text(json.dumps({"imports": imports, "stages": stages}), encoding="utf-8")


def bench_stages(base: Path, rows: int | None, model: str | None) -> Scaling:
    """Each stage of ``dvc.yaml`` as its own process, at ``rows`` rows with ``model``."""
    name = f"{rows or 'default'}-{model or 'default'}"
    copy = make_copy(base / "source", base / name, rows, model)
    params = yaml.safe_load((copy / "params.yaml").read_text(encoding="utf-8"))
    result = Scaling(params["generate"]["n_samples"], params["train"]["model"])
    log(f"stages as separate processes: {result.rows} rows, {result.model}")
    for stage, tokens in stage_commands(copy / "dvc.yaml").items():
        run = measure(python_command(tokens), copy, base / f"{name}.log")
        result.stages[stage] = run
        log(f"  {stage}: {run.wall:.2f} s, cpu {run.cpu:.2f} s, peak {run.rss_mib:.0f} MiB")
    log(f"  end to end {result.wall:.2f} s, peak {result.peak_mib:.0f} MiB")
    shutil.rmtree(copy)  # the 1M-row outputs take room
    return result


def code_version() -> str:
    """The commit the copies were made from, and whether tracked files had changes on top."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()

    untracked = git("ls-files", "--others", "--exclude-standard", "src")
    if untracked:
        log(f"warning: untracked files are not copied: {' '.join(untracked.split())}")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (
        " + uncommitted changes to tracked files" if dirty else ""
    )


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    nproc = subprocess.run(["nproc"], check=True, capture_output=True, text=True).stdout.strip()
    return {
        "code (git)": code_version(),
        "nproc": nproc,
        "CPU": models[0] if models else platform.processor() or "unknown",
        "total memory": f"{total_kib / 1024**2:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "scikit-learn": version("scikit-learn"),
        "dvc": version("dvc"),
        "pandas": version("pandas"),
        "numpy": version("numpy"),
        "load average (1, 5, 15 min) at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def repro_section(dvc: DvcRuns, default: Scaling) -> str:
    noop = statistics.median(r.wall for r in dvc.noops)
    noop_runs = ", ".join(f"{r.wall:.2f}" for r in dvc.noops)
    repro = f"`dvc repro {TARGET}`"
    rows = [
        [
            f"{repro} in a fresh copy, empty DVC cache (ran: {', '.join(dvc.ran) or 'nothing'})",
            f"{dvc.full.wall:.2f}",
            "",
            "",
        ],
        [
            f"`dvc repro --force {TARGET}`, another fresh copy (ran: {', '.join(dvc.forced_ran)})",
            f"{dvc.forced.wall:.2f}",
            "",
            "",
        ],
        [
            f"no-op {repro}, median of {len(dvc.noops)} (runs: {noop_runs})",
            f"{noop:.2f}",
            f"<= {NOOP_TARGET_S:.0f} s",
            met(noop <= NOOP_TARGET_S),
        ],
    ]
    what = f"default params: {default.rows:,} rows, {default.model}"
    text = table([what, "wall s", "target", "status"], rows)
    if dvc.ran and "evaluate" not in dvc.ran:
        text += (
            f"\n\nIn a fresh clone {repro} skips evaluate: train reproduces"
            " `models/model.joblib` bit for bit, and evaluate's outputs (metrics and plots with"
            " `cache: false`, committed to git) already match `dvc.lock`."
        )
    return text


def overhead_section(
    dvc: DvcRuns, five: Scaling, one: Run, parts: dict[str, float], same: tuple[int, list[str]]
) -> str:
    forced = dvc.forced.wall
    calls = sum(parts["stages"].values())
    rows = [
        [f"`dvc repro --force {TARGET}`: DVC + five stage processes", forced, "1.00"],
        ["five `python -m` processes, no DVC", five.wall, ""],
        [
            "one Python process calling each stage's `main()`, start-up and imports included",
            one.wall,
            "",
        ],
        ["... of which the five `main()` calls alone", calls, ""],
    ]
    overhead = table(
        ["how the five stages ran (default params)", "wall s", "`dvc repro --force` / this"],
        [[what, f"{wall:.2f}", ratio or f"{forced / wall:.2f}"] for what, wall, ratio in rows],
    )
    parts_table = table(
        ["part of the one-process run", "wall s"],
        [["importing the five stage modules", f"{parts['imports']:.2f}"]]
        + [[f"`{name}.main()`", f"{s:.2f}"] for name, s in parts["stages"].items()],
    )
    identical, differ = same
    outputs = f"{identical} of {identical + len(differ)} stage outputs of the one-process run are"
    outputs += f" byte-identical to those of `dvc repro --force {TARGET}`"
    outputs += f" (differ: {', '.join(differ)})." if differ else "."
    return f"{overhead}\n\n{parts_table}\n\n{outputs}"


def scaling_section(scaling: list[Scaling]) -> str:
    summary_rows = []
    detail_rows = []
    notes = []
    for result in scaling:
        targeted = result.rows == E2E_TARGET_ROWS and result.model == SCALING_MODEL
        summary_rows.append(
            [
                f"{result.rows:,}",
                result.model,
                f"{result.wall:.2f}",
                met(result.wall <= E2E_TARGET_S) if targeted else "",
                f"{result.peak_mib:.0f}",
                met(result.peak_mib <= PEAK_TARGET_MIB) if targeted else "",
            ]
        )
        for stage, run in result.stages.items():
            detail_rows.append(
                [
                    f"{result.rows:,}",
                    result.model,
                    stage,
                    f"{run.wall:.2f}",
                    f"{run.cpu:.2f}",
                    f"{run.rss_mib:.0f}",
                ]
            )
        if targeted and (result.wall > E2E_TARGET_S or result.peak_mib > PEAK_TARGET_MIB):
            slowest = max(result.stages, key=lambda s: result.stages[s].wall)
            largest = max(result.stages, key=lambda s: result.stages[s].rss_mib)
            notes.append(
                f"Target missed at {result.rows:,} rows with {result.model}: the slowest stage is"
                f" `{slowest}` ({result.stages[slowest].wall:.1f} s,"
                f" {result.stages[slowest].wall / result.wall:.0%} of the total); the largest is"
                f" `{largest}` ({result.stages[largest].rss_mib:.0f} MiB)."
            )
    summary = table(
        [
            "rows",
            "model",
            "end to end s",
            f"<= {E2E_TARGET_S:.0f} s at {E2E_TARGET_ROWS:,} rows",
            "peak RSS MiB",
            f"<= {PEAK_TARGET_MIB:.0f} MiB at {E2E_TARGET_ROWS:,} rows",
        ],
        summary_rows,
    )
    detail = table(["rows", "model", "stage", "wall s", "CPU s", "peak RSS MiB"], detail_rows)
    return "\n\n".join([summary, *notes, detail])


def render(
    command: str,
    facts: dict[str, str],
    dvc: DvcRuns,
    overhead: str,
    scaling: list[Scaling],
) -> str:
    facts_table = table(["machine", "value"], [[k, v] for k, v in facts.items()])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""# Pipeline benchmark

Rewritten by `{command}` on {date}; `make bench` runs the same script with its defaults.
Every run used a throwaway copy of the git-tracked files: a fresh git repository with an empty
DVC cache. Times are wall-clock seconds; "CPU s" is the user + system time of the stage process
and its threads; "peak RSS" is the stage process's maximum resident set size (`ru_maxrss`, read
in a fresh parent per stage). Nothing asserts on these numbers, and they are only as quiet as
the machine was: compare runs from one machine at one time.

{facts_table}

## 1. `dvc repro {TARGET}`

`dvc repro {TARGET}` runs the stages this benchmark covers, {" -> ".join(STAGES)}; stages
that come after {TARGET} in `dvc.yaml` are left out.

{repro_section(dvc, scaling[0])}

## 2. What DVC's per-stage processes cost

The same five stages at the default params, run three ways. The ratio is DVC's overhead: its
own start-up, hashing and lock file, plus an interpreter start and a set of imports per stage.
The one-process run calls each stage's `main()` with its argument list from `dvc.yaml`, so it
reads and writes the same files.

{overhead}

## 3. Scaling with `generate.n_samples`

Each stage runs as its own process (`python -m mlrepo.stages.<name>` with its `dvc.yaml`
arguments, no DVC) in a copy whose `params.yaml` sets `generate.n_samples` and `train.model`.
End to end is the sum of the five stages; peak RSS is the largest of the five.

{scaling_section(scaling)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        help="comma-separated generate.n_samples values for the scaling runs "
        f"(default {','.join(map(str, DEFAULT_SIZES))}; --quick: 10000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: 10000 rows only, 3 no-op runs, no {COMPARISON_MODEL} scaling rows",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    parser.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        run_in_process(args.in_process)
        return 0
    if args.sizes:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    else:
        sizes = [10_000] if args.quick else DEFAULT_SIZES
    configs = [(rows, SCALING_MODEL) for rows in sizes]
    if not args.quick:
        configs += [(rows, COMPARISON_MODEL) for rows in sizes if rows <= COMPARISON_MAX_ROWS]
    configs.sort()

    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    command = shlex.join([str(shown), "benchmarks/pipeline.py", *sys.argv[1:]])
    facts = machine()
    log(f"{command}: {facts['nproc']} CPUs, load {facts['load average (1, 5, 15 min) at start']}")
    # Warm the OS file cache so the first timed run does not pay for reading the venv from disk.
    subprocess.run(
        [str(BIN / "python"), "-c", "import sklearn.ensemble, pandas, pyarrow, matplotlib"],
        check=True,
    )
    subprocess.run([str(BIN / "dvc"), "--version"], check=True, capture_output=True)

    with tempfile.TemporaryDirectory(prefix="mlrepo-bench-") as tmp:
        base = Path(tmp)
        snapshot(base / "source")
        dvc = bench_dvc(base, 3 if args.quick else NOOP_RUNS)
        five = bench_stages(base, None, None)
        one, parts, one_copy = bench_in_process(base)
        overhead = overhead_section(dvc, five, one, parts, same_outputs(dvc.forced_copy, one_copy))
        scaling = [bench_stages(base, rows, model) for rows, model in configs]

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    facts["load average (1, 5, 15 min) at the end"] = load
    text = render(command, facts, dvc, overhead, [five, *scaling])
    args.output.write_text(text, encoding="utf-8")
    log(f"wrote {args.output}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
