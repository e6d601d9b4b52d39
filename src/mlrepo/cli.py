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

from mlrepo.errors import DataError, run_cli
from mlrepo.io import dumps_json, read_table
from mlrepo.logs import setup_logging
from mlrepo.params import load_params
from mlrepo.prediction import BACKENDS
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


def _registry(args: argparse.Namespace) -> int:
    # Imported on use: gto and dvc are slow to import and the other commands do not need them.
    from mlrepo.registry import report

    root = args.project
    commands = {
        "list": lambda: report.listing(root),
        "show": lambda: report.show(args.ref, root),
        "register": lambda: report.register(root, args.rev, args.bump, args.version),
        "promote": lambda: report.promote(args.stage, args.ref, root),
        "history": lambda: report.history(root),
        "compare": lambda: report.compare(args.a, args.b, root, args.all),
    }
    result = commands[args.action]()
    print(dumps_json(result.data) if args.json else result.text, end="")
    return 0


def _add_registry(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = commands.add_parser(
        "registry",
        help="model versions and stages (GTO git tags): list, show, register, promote, ...",
        description="Model versions (model@vX.Y.Z) and stages (model#production#N) as git tags. "
        "A REF is model#production, production, champion (= production), challenger "
        "(= staging), model@v1.2.0, v1.2.0, latest, a git revision, workspace, or a project "
        "folder.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-C", dest="project", default=".", help="project folder (default: .)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = registry.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="every version, its stages and metrics")
    show = actions.add_parser("show", parents=[common], help="one model: version, stage, ...")
    show.add_argument("ref", nargs="?", help="REF (default: model#production)")
    register = actions.add_parser(
        "register", parents=[common], help="record a commit's model as the next version"
    )
    register.add_argument("--rev", default="HEAD", help="git commit (default: %(default)s)")
    register.add_argument("--bump", choices=["major", "minor", "patch"], help="default: patch")
    register.add_argument("--version", help="an explicit version, e.g. v1.0.0")
    promote = actions.add_parser(
        "promote", parents=[common], help="assign a stage, if the version passes the gates"
    )
    promote.add_argument(
        "--stage", required=True, choices=["staging", "production", "challenger", "champion"]
    )
    promote.add_argument("ref", nargs="?", help="REF (default: the latest version)")
    actions.add_parser("history", parents=[common], help="registrations and promotions")
    compare = actions.add_parser(
        "compare", parents=[common], help="two models' metrics and params side by side"
    )
    compare.add_argument("a", metavar="A", help="REF")
    compare.add_argument("b", metavar="B", help="REF")
    compare.add_argument("--all", action="store_true", help="every param, not only those differing")
    registry.set_defaults(run=_registry)


def _predict(args: argparse.Namespace) -> int:
    from mlrepo.predict import predict_file, show_progress
    from mlrepo.prediction.core import load_model

    log = setup_logging("predict")
    model = load_model(args.model, args.backend)
    progress = {"auto": show_progress(), "always": True, "never": False}[args.progress]
    done = predict_file(model, args.input, args.output, args.ids, args.chunk_rows, progress)
    log.info(
        "%s: %d rows scored in %.1f s (%.0f rows/s) by model %s (%s)",
        args.output,
        done.rows,
        done.seconds,
        done.rows / max(done.seconds, 1e-9),
        model.version,
        model.predictor.backend,
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_predict(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    predict = commands.add_parser(
        "predict",
        help="score a CSV/Parquet file: predicted class and one probability column per class",
        description="Check FILE against the model's feature schema (every problem at once), "
        "then write the columns given with --id, 'prediction' and one 'proba_<class>' column "
        "per class, in input order. Large files are read and written in chunks.",
    )
    predict.add_argument("--model", help="REF (default: model#production); see `registry`")
    predict.add_argument("--input", required=True, metavar="FILE", help=".csv or .parquet")
    predict.add_argument("--output", required=True, metavar="FILE", help=".csv or .parquet")
    predict.add_argument(
        "--id",
        dest="ids",
        action="append",
        default=[],
        metavar="COLUMN",
        help="copy this input column to the output (repeatable): ids, the label...",
    )
    predict.add_argument("--backend", choices=BACKENDS, default="auto")
    predict.add_argument(
        "--chunk-rows", type=_positive_int, default=100_000, help="default: %(default)s"
    )
    predict.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="rows scored so far on stderr; auto: only on a terminal and not in a DVC stage "
        "(default: %(default)s)",
    )
    predict.set_defaults(run=_predict)


def _serve(args: argparse.Namespace) -> int:
    from mlrepo.registry import resolve
    from mlrepo.serve.app import serve
    from mlrepo.serve.settings import ServeSettings

    setup_logging("serve")
    options = {
        "model": args.model,
        "backend": args.backend,
        "max_batch_rows": args.max_batch_rows,
        "database_url": args.database_url,
        "prediction_log": False if args.no_log else None,
        "workers": args.workers,
        "onnx_intra_op_threads": args.onnx_threads,
    }
    settings = ServeSettings.from_env(**{k: v for k, v in options.items() if v is not None})
    if args.migrate:
        from mlrepo.prediction_store.migrations import upgrade

        upgrade(settings.database_url)
        return 0
    # Resolved (and hash-checked) before uvicorn starts, so a bad reference is one clear error;
    # the app deserializes it in its lifespan.
    bundle = resolve(settings.model, root=settings.root)
    serve(settings, args.host, args.port, args.access_log, bundle)
    return 0


def _model_reference(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "empty reference: give one such as model#production, model@v1.0.0 or workspace "
            "(or leave the option out for the production model)"
        )
    return text


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="HTTP prediction service (FastAPI + uvicorn) with a prediction log",
        description="Serve one model version over HTTP: /predict, /predict/batch, /model, "
        "/health, /ready, /metrics, docs at /docs. Every prediction is logged to DATABASE_URL "
        "(default: the SQLite file predictions.db). SIGTERM or Ctrl-C shuts down gracefully.",
    )
    serve.add_argument(
        "--model", type=_model_reference, help="REF (default: $MLREPO_MODEL or model#production)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    serve.add_argument("--port", type=_positive_int, default=8000, help="default: %(default)s")
    serve.add_argument("--backend", choices=BACKENDS, help="default: auto")
    serve.add_argument(
        "--max-batch-rows", type=_positive_int, help="records per batch request (default: 10000)"
    )
    serve.add_argument(
        "--database-url", help="SQLAlchemy URL of the prediction log (default: $DATABASE_URL)"
    )
    serve.add_argument("--no-log", action="store_true", help="do not log predictions")
    serve.add_argument(
        "--workers", type=_positive_int, help="server processes (default: $MLREPO_WORKERS or 1)"
    )
    serve.add_argument(
        "--onnx-threads",
        type=_positive_int,
        help="ONNX Runtime intra-op threads per worker (default: 1)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="bring the prediction-log database to the latest schema (Alembic) and exit; the "
        "service also does it when it starts",
    )
    serve.set_defaults(run=_serve)


def _drift(args: argparse.Namespace) -> int:
    # Imported on use: matplotlib (and, for model references, the registry) are slow to import.
    from mlrepo.monitor.command import run_drift
    from mlrepo.params import MonitorParams

    setup_logging("drift")
    # Outside a project (no params.yaml) the documented defaults apply.
    use_defaults = args.params == "params.yaml" and not Path(args.params).exists()
    params = None if use_defaults else load_params(args.params)
    outcome = run_drift(
        args.reference,
        params.monitor if params else MonitorParams(),
        current=args.current,
        since=args.since,
        until=args.until,
        last=args.last,
        database_url=args.database_url,
        model=args.model,
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
    drift.set_defaults(run=_drift)


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
    check.set_defaults(run=_check_table)

    _add_registry(commands)
    _add_predict(commands)
    _add_serve(commands)
    _add_drift(commands)
    _add_report(commands)
    return parser


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
