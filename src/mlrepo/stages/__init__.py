"""The pipeline's stages; each module has a pure core function and a thin ``main()``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from mlrepo.schema import FeatureSchema


def read_trained(
    model: str, test: str, schema: str
) -> tuple[Pipeline, pd.DataFrame, FeatureSchema]:
    """What the stages after train read: the fitted pipeline, the test split and its schema."""
    import joblib

    from mlrepo.io import read_json, read_table
    from mlrepo.schema import FeatureSchema

    return joblib.load(model), read_table(test), FeatureSchema.model_validate(read_json(schema))


def parse_paths(
    doc: str | None, names: Iterable[str], argv: list[str] | None
) -> argparse.Namespace:
    """A stage's command line: ``--params`` and one required ``--<name>`` per file it uses.

    ``dvc.yaml`` gives every path; ``some_name`` is the option ``--some-name``.
    """
    parser = argparse.ArgumentParser(description=(doc or "").replace("``", ""))
    parser.add_argument("--params", default="params.yaml")
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, dest=name)
    return parser.parse_args(argv)


def run_stage(stage: str, args: list[str]) -> int:
    """Run one stage's ``main`` here, as ``python -m mlrepo.stages.<stage>`` would."""
    from importlib import import_module

    from mlrepo.errors import run_cli

    module = import_module(f"mlrepo.stages.{stage}")
    sys.argv = [module.__file__ or stage, *args]  # argparse names the stage in its messages
    try:
        return run_cli(module.main, args)
    except SystemExit as exc:  # argparse's usage errors
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
