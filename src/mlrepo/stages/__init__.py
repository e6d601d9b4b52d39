"""The pipeline's stages; each module has a pure core function and a thin ``main()``."""

from __future__ import annotations

import argparse
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
