"""The ``mlrepo`` command: thin argument parsing over the modules that do the work.

The pipeline itself runs through DVC (``dvc repro``); these commands help around it.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

# The registry's commands, and predict and serve, are in their own modules of this package.
from mlrepo.cli.options import given
from mlrepo.cli.registry import add_registry
from mlrepo.cli.serving import add_predict, add_serve
from mlrepo.errors import DataError, run_cli
from mlrepo.io import dumps_json, read_table
from mlrepo.logs import setup_logging
from mlrepo.params import load_params
from mlrepo.stages.validate import format_errors, validate


def _params(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    if args.action == "show":
        print(yaml.safe_dump(params.model_dump(by_alias=True), sort_keys=False), end="")
    else:
        print(f"{args.params}: ok")
    return 0


def _check_table(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    target = args.target or params.generate.target
    result = validate(read_table(args.file), target, params.validate_params, args.file)
    if args.json:
        print(dumps_json(result.report()), end="")
    for warning in result.warnings:
        print(f"warning: {warning.render(args.file)}", file=sys.stderr)
    if result.errors:
        raise DataError(format_errors(result, "the output above" if args.json else "this output"))
    assert result.frame is not None
    print(
        f"{args.file}: ok ({len(result.frame)} rows, {len(result.schema.features)} features)"
        if result.schema
        else f"{args.file}: ok",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0


def _drift(args: argparse.Namespace) -> int:
    # Imported on use: matplotlib (and, for model references, the registry) are slow to import.
    from mlrepo.monitor.command import run_drift
    from mlrepo.params import MonitorParams

    # Outside a project (no params.yaml) the documented defaults apply.
    use_defaults = args.params == "params.yaml" and not Path(args.params).exists()
    params = None if use_defaults else load_params(args.params)
    outcome = run_drift(
        args.reference,
        params.monitor if params else MonitorParams(),
        **given(args, "current", "since", "until", "last", "database_url", "model"),
        root=args.project,
        target=args.target or (params.generate.target if params else "target"),
        report=args.report,
    )
    print(dumps_json(outcome.as_dict()) if args.json else outcome.summary(), end="")
    return outcome.exit_code


def _add_drift(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drift = commands.add_parser(
        "drift",
        help="compare current data (a file or a prediction log window) with the training data",
        description="Test every feature of the current data against the reference (KS, "
        "chi-square, z-test, Wasserstein or Jensen-Shannon, chosen as params.yaml's monitor "
        "section says) and the predicted class distribution. Exit code: 0 no drift, 3 drift, "
        "2 bad input.",
    )
    drift.add_argument(
        "--reference",
        required=True,
        metavar="REF|TABLE",
        help="a model REF (its training data, schema and predictions; see `registry`) or a "
        ".csv/.parquet table",
    )
    drift.add_argument(
        "--model",
        metavar="REF",
        help="with a table --reference: the model for the schema "
        "and the predicted classes (default: none, features only)",
    )
    current = drift.add_mutually_exclusive_group(required=True)
    current.add_argument("--current", metavar="FILE", help=".csv or .parquet")
    current.add_argument("--since", metavar="TIME", help="prediction log from TIME (ISO, UTC)")
    current.add_argument("--last", metavar="DURATION", help="prediction log window, e.g. 24h, 7d")
    drift.add_argument("--until", metavar="TIME", help="end of the log window (default: now)")
    drift.add_argument(
        "--database-url",
        metavar="URL",
        help="the prediction log (default: $DATABASE_URL, else the service's SQLite file)",
    )
    drift.add_argument("--target", help="label column left out of a table reference")
    drift.add_argument(
        "--report", type=Path, metavar="FILE.md", help="write a Markdown report (plots beside it)"
    )
    drift.add_argument("--json", action="store_true", help="print the JSON result")
    drift.add_argument("-C", dest="project", default=".", help="project folder (default: .)")
    drift.set_defaults(run=_drift, log="drift")


def _report(args: argparse.Namespace) -> int:
    from mlrepo.ci_report import build_report

    build_report(args.base, Path(args.root), Path(args.out))
    print(f"{Path(args.out) / 'report.md'}: workspace compared with {args.base}")
    return 0


def _add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="Markdown report of this change vs a base revision (CI posts it)"
    )
    report.add_argument("--base", default="main", help="revision to compare with (%(default)s)")
    report.add_argument("--out", default="report", help="output folder (%(default)s)")
    report.add_argument("-C", dest="root", default=".", help="project folder (%(default)s)")
    report.set_defaults(run=_report)


def plain(doc: str | None) -> str:
    """A docstring as terminal text: without the RST double backticks around code."""
    return (doc or "").replace("``", "")


def package_version() -> str:
    try:
        return version("mlrepo")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlrepo", description=plain(__doc__))
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    params = commands.add_parser("params", help="check params.yaml, or show it with defaults")
    params.add_argument("action", choices=["check", "show"])
    params.set_defaults(run=_params)

    check = commands.add_parser(
        "check", help="validate a CSV/Parquet table with the validate stage's rules"
    )
    check.add_argument("file")
    check.add_argument("--target", help="label column (default: generate.target)")
    check.add_argument("--json", action="store_true", help="print the full JSON report")
    check.set_defaults(run=_check_table, log="check")

    add_registry(commands)
    add_predict(commands)
    add_serve(commands)
    _add_drift(commands)
    _add_report(commands)
    return parser


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "log", None):
        setup_logging(args.log)
    result: int = args.run(args)
    return result


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
