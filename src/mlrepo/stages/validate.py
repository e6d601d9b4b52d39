"""Stage 2, validate: check the raw table against the declared rules, learn the feature schema.

Every problem is collected before the stage decides (lazy validation). The column rules (types,
nulls, ranges, categories) are ``schema.check_frame``'s, the dataset rules (target, duplicates,
constants, leakage, outliers...) ``quality.py``'s; each rule says, from the ``validate.*`` params,
whether what it found is an error, a warning, or rows or a column to drop. Drops are applied and
counted; the problems go to a JSON report and, if any is an error, are printed with the column,
the rule and the fix, and the stage fails without writing the validated table or the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlrepo import quality, scans
from mlrepo.errors import DataError, run_cli
from mlrepo.io import Steps, read_table, write_json, write_parquet
from mlrepo.logs import setup_logging, timed
from mlrepo.params import ColumnRule, ValidateParams, load_params
from mlrepo.problems import Problem
from mlrepo.schema import Feature, FeatureSchema, check_frame, coerce, infer_kind
from mlrepo.stages import parse_paths


@dataclass
class Validation:
    """What validate found: the cleaned table, its schema, every problem, and what was dropped."""

    source: str
    rows_in: int
    rows_out: int = 0  # rows kept, once every rule passed
    frame: pd.DataFrame | None = None  # the kept rows (None on the partitioned path)
    schema: FeatureSchema | None = None
    problems: list[Problem] = field(default_factory=list)
    dropped: dict[str, Any] = field(default_factory=dict)
    # Checks that ran on a seeded sample rather than every row: name -> rows, of, seed.
    sampled: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def record(self, problems: list[Problem]) -> tuple[np.ndarray | None, list[str]]:
        """Count what ``problems`` drop and keep the others: the mask of rows to keep (None:
        every row) and the columns to drop."""
        keep: np.ndarray | None = None
        columns = []
        for problem in problems:
            if problem.severity == "drop_rows":
                assert problem.rows is not None  # Problem makes sure of it
                keep = ~problem.rows if keep is None else keep & ~problem.rows
                self.dropped[_DROPPED_AS[problem.check]] += problem.count
            elif problem.severity == "drop_column":
                assert problem.column is not None
                columns.append(problem.column)
                self.dropped[_DROPPED_AS[problem.check]].append(problem.column)
            else:
                self.problems.append(problem)
        return keep, columns

    def apply(self, frame: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
        """``frame`` without the rows and columns that ``problems`` drop; keep the others."""
        keep, columns = self.record(problems)
        frame = frame.drop(columns=columns) if columns else frame
        return frame if keep is None or keep.all() else frame[keep]

    def report(self) -> dict[str, Any]:
        report = {
            "source": self.source,
            "passed": not self.errors,
            "rows_in": self.rows_in,
            "rows_out": 0 if self.errors else self.rows_out,
            "n_features": 0 if self.schema is None else len(self.schema.features),
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "dropped": self.dropped,
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
        }
        if self.sampled:  # only then, so a report of an unsampled run keeps its bytes
            report["sampled"] = self.sampled
        return report


def validate(
    frame: pd.DataFrame, target: str, params: ValidateParams, source: str = "data"
) -> Validation:
    """Check ``frame`` against every rule; return the cleaned table and learned schema.

    Pure: reads nothing, writes nothing, raises nothing for bad data (the problems are in the
    result; ``Validation.errors`` empty means the data passed).
    """
    result = Validation(source=source, rows_in=len(frame))
    step = Steps("validate", len(frame))
    frame = frame.reset_index(drop=True)  # row numbers in messages count data rows from 1
    frame.columns = [str(c) for c in frame.columns]
    result.dropped["columns"] = []
    frame = result.apply(frame, quality.listed_columns(frame, params))
    target_problems = quality.check_target(frame, target, params)
    if any(p.check in {"target_present", "target_classes"} for p in target_problems):
        result.problems += target_problems
        return result
    result.dropped |= _drop_counters(params)

    features = _declared_features(frame, target, params)
    inferred_categorical = [
        f.name
        for f in features
        if f.kind == "categorical" and (params.columns.get(f.name) or _NO_RULE).dtype is None
    ]
    result.problems += quality.numeric_looking(frame, inferred_categorical)
    step("column rules: types, nulls, ranges, categories")
    bounds = {name: (rule.min, rule.max) for name, rule in params.columns.items()}
    result.problems += check_frame(frame, features, strict=False, fixes=_FIXES, bounds=bounds)
    features = [f for f in features if f.name in frame.columns]
    # Values that are not numbers become NaN so the remaining rules still run and every
    # problem is reported at once; the result is only kept when there are no errors.
    labels = frame[target]
    frame = coerce(frame, _schema(target, [], features), lenient=bool(result.errors))
    frame[target] = labels
    frame = result.apply(frame, quality.missing_rows(frame, [f.name for f in features], params))

    step("duplicate rows")
    frame = result.apply(frame, quality.duplicate_rows(frame, params))
    step("constant columns, leakage")
    frame = result.apply(frame, quality.constant_columns(frame, [f.name for f in features], params))
    features = [f for f in features if f.name in frame.columns]
    result.problems += quality.check_target(frame, target, params)
    result.problems += quality.leaking_columns(frame, [f.name for f in features], target, params)
    step("outliers, imbalance, identifiers")
    sample = scans.sample_positions(len(frame), params.sample_rows, params.seed)
    if sample is not None:
        result.sampled["outlier_share"] = {
            "rows": len(sample),
            "of": len(frame),
            "seed": params.seed,
        }
    numeric = [f.name for f in features if f.kind == "numeric"]
    result.problems += quality.outliers(frame, numeric, params, sample)
    result.problems += quality.class_imbalance(frame, target, params)
    mistyped = {p.column for p in result.problems if p.check == "numeric_dtype"}
    result.problems += quality.identifier_like(
        frame, [f.name for f in features if f.kind == "categorical" and f.name not in mistyped]
    )

    if result.errors:
        return result
    result.frame = frame.reset_index(drop=True)
    result.rows_out = len(result.frame)
    step("learning the schema")
    result.schema = learn_schema(
        result.frame, target, features, nullable=params.missing == "impute"
    )
    return result


_FIXES = {
    "not_nullable": "fill them in the source, or allow them with validate.missing: drop "
    "(drop those rows) or validate.missing: impute (fill from the training part) in "
    "params.yaml",
    "column_in_dataframe": "add the column to the table, or remove its rule from validate.columns",
    "isin": "correct the values, or add them to validate.columns.<name>.allowed",
}
# Where the report's ``dropped`` section counts what each drop rule removed.
_DROPPED_AS = {
    "drop_columns": "columns",
    "missing_rows": "missing_rows",
    "duplicate_rows": "duplicate_rows",
    "constant_column": "constant_columns",
}


def _drop_counters(params: ValidateParams) -> dict[str, Any]:
    """The report's ``dropped`` counts before the row and column rules run.

    A drop policy in force is shown even when it removed nothing (the duplicate count always).
    """
    counters: dict[str, Any] = {"missing_rows": 0} if params.missing == "drop" else {}
    counters["duplicate_rows"] = 0
    if params.constant == "drop":
        counters["constant_columns"] = []
    return counters


_NO_RULE = ColumnRule()


def _declared_features(frame: pd.DataFrame, target: str, params: ValidateParams) -> list[Feature]:
    (
        """One ``Feature`` per column: declared rules from ``validate.columns``, else inferred kind
    (the declared ranges are ``Bounds``, given to ``check_frame`` beside the features)."""
        ""
    )
    nullable = params.missing != "error"
    features = []
    for name in frame.columns:
        if name == target:
            continue
        rule = params.columns.get(name, _NO_RULE)
        kind = rule.dtype or infer_kind(frame[name])
        allowed = None if rule.allowed is None else sorted({str(v) for v in rule.allowed})
        features.append(
            Feature(
                name=name,
                kind=kind,
                nullable=nullable,
                categories=allowed,
            )
        )
    for name, rule in params.columns.items():
        if name not in frame.columns and name != target:
            features.append(Feature(name=name, kind=rule.dtype or "numeric"))
    return features


def _schema(target: str, classes: list[Any], features: list[Feature]) -> FeatureSchema:
    return FeatureSchema(target=target, classes=classes, features=features)


def learn_schema(
    frame: pd.DataFrame, target: str, features: list[Feature], *, nullable: bool
) -> FeatureSchema:
    """The schema the model is trained on: kinds, observed categories and ranges, classes."""
    categories, ranges = {}, {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "categorical":
            categories[feature.name] = {str(v) for v in column.dropna().unique()}
        else:
            ranges[feature.name] = (float(column.min()), float(column.max()))
    classes = sorted(frame[target].dropna().unique().tolist())
    return schema_from(target, classes, features, categories, ranges, nullable=nullable)


def schema_from(
    target: str,
    classes: list[Any],
    features: list[Feature],
    categories: dict[str, set[str]],
    ranges: dict[str, tuple[float, float]],
    *,
    nullable: bool,
) -> FeatureSchema:
    """``learn_schema`` from what was observed: each categorical feature's values, each numeric
    one's (min, max)."""
    learned = []
    for feature in features:
        if feature.kind == "categorical":
            learned.append(
                Feature(
                    name=feature.name,
                    kind="categorical",
                    nullable=nullable,
                    categories=sorted(categories[feature.name]),
                )
            )
        else:
            low, high = ranges[feature.name]
            learned.append(
                Feature(name=feature.name, kind="numeric", nullable=nullable, min=low, max=high)
            )
    return _schema(target, classes, learned)


def format_errors(result: Validation, report_path: str) -> str:
    lines = [e.render(result.source) for e in result.errors]
    return (
        f"validation failed with {len(lines)} error(s):\n  - "
        + "\n  - ".join(lines)
        + f"\nThe full report is in {report_path}."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_paths(__doc__, ["data", "out", "schema", "report"], argv)
    log = setup_logging("validate")
    params = load_params(args.params)
    target = params.generate.target
    if params.train.distributed:
        result = _validate_partitioned(args.data, args.out, target, params.validate_params)
    else:
        frame = read_table(args.data)
        source = str(frame.attrs.get("source", args.data))
        with timed("validate"):
            result = validate(frame, target, params.validate_params, source)
    write_json(result.report(), args.report)
    for warning in result.warnings:
        log.warning(warning.render(result.source))
    if result.errors:
        raise DataError(format_errors(result, args.report))
    assert result.schema is not None
    if result.frame is not None:
        write_parquet(result.frame, args.out)
    write_json(result.schema.model_dump(), args.schema)
    log.info(
        "%d of %d rows kept (dropped: %s), %d features, classes %s",
        result.rows_out,
        result.rows_in,
        result.dropped,
        len(result.schema.features),
        result.schema.classes,
    )
    return 0


def _validate_partitioned(data: str, out: str, target: str, params: ValidateParams) -> Validation:
    """train.distributed: the table checked partition by partition, on the Dask cluster if one
    is set (:mod:`mlrepo.partitioned.validate`); the kept rows are written to ``out`` there."""
    from mlrepo import cluster
    from mlrepo.partitioned import source_of
    from mlrepo.partitioned.validate import validate as validate_partitions

    with cluster.connect("validate's partition tasks"), timed("validate"):
        return validate_partitions(data, out, target, params, source_of(data))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
