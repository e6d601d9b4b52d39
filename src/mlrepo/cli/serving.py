"""``mlrepo predict`` and ``mlrepo serve``: one model version scoring a file, or over HTTP."""

from __future__ import annotations

import argparse

from mlrepo.cli.options import given, positive_int
from mlrepo.logs import get_logger
from mlrepo.prediction import BACKENDS


def _predict(args: argparse.Namespace) -> int:
    from mlrepo.predict import predict_file, show_progress
    from mlrepo.prediction.core import load_model  # registry, onnxruntime: slow

    model = load_model(args.model, args.backend)
    progress = {"auto": show_progress(), "always": True, "never": False}[args.progress]
    done = predict_file(model, args.input, args.output, args.ids, args.chunk_rows, progress)
    get_logger().info(
        "%s: %d rows scored in %.1f s (%.0f rows/s) by model %s (%s)",
        args.output,
        done.rows,
        done.seconds,
        done.rows / max(done.seconds, 1e-9),
        model.version,
        model.predictor.backend,
    )
    return 0


def add_predict(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--chunk-rows", type=positive_int, default=100_000, help="default: %(default)s"
    )
    predict.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="rows scored so far on stderr; auto: only on a terminal and not in a DVC stage "
        "(default: %(default)s)",
    )
    predict.set_defaults(run=_predict, log="predict")


def _serve(args: argparse.Namespace) -> int:
    from mlrepo.registry import resolve
    from mlrepo.serve.app import serve
    from mlrepo.serve.settings import ServeSettings

    options = given(args, "model", "backend", "max_batch_rows", "database_url", "workers")
    if args.onnx_threads is not None:
        options["onnx_intra_op_threads"] = args.onnx_threads
    if args.no_log:
        options["prediction_log"] = False
    settings = ServeSettings.from_env(**options)
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


def add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    serve.add_argument("--port", type=positive_int, default=8000, help="default: %(default)s")
    serve.add_argument("--backend", choices=BACKENDS, help="default: auto")
    serve.add_argument(
        "--max-batch-rows", type=positive_int, help="records per batch request (default: 10000)"
    )
    serve.add_argument(
        "--database-url", help="SQLAlchemy URL of the prediction log (default: $DATABASE_URL)"
    )
    serve.add_argument("--no-log", action="store_true", help="do not log predictions")
    serve.add_argument(
        "--workers", type=positive_int, help="server processes (default: $MLREPO_WORKERS or 1)"
    )
    serve.add_argument(
        "--onnx-threads",
        type=positive_int,
        help="ONNX Runtime intra-op threads per worker (default: 1)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="bring the prediction-log database to the latest schema (Alembic) and exit; the "
        "service also does it when it starts",
    )
    serve.set_defaults(run=_serve, log="serve")
