"""The ``mlrepo`` command: thin argument parsing over the modules that do the work.

The pipeline itself runs through DVC (``dvc repro``); these commands help around it.
"""

from __future__ import annotations

import argparse
import sys

import yaml

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
    setup_logging("check")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlrepo", description=__doc__)
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
    check.set_defaults(run=_check_table)
    return parser


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
