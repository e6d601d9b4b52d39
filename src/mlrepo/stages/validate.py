"""Stage 2, validate: check the raw table against the declared rules, learn the feature schema.

Every problem is collected before the stage decides (lazy validation), written to a JSON report,
and, if any is an error, printed with the column, the rule and the fix, and the stage fails
without writing its data outputs. ``validate.*`` params choose what is an error, a warning or
allowed. ``dvc.yaml`` runs
``python -m mlrepo.stages.validate --data data/raw.parquet --out data/validated.parquet
--schema data/schema.json --report metrics/validation.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlrepo import quality
from mlrepo.errors import DataError, run_cli
from mlrepo.io import Steps, read_table, write_json, write_parquet
from mlrepo.logs import setup_logging, timed
from mlrepo.params import ColumnRule, ValidateParams, load_params
from mlrepo.schema import Feature, FeatureSchema, Problem, check_frame, coerce, infer_kind


@dataclass
class Validation:
    """What validate found: the cleaned table, its schema, every problem, and what was dropped."""

    source: str
    rows_in: int
    frame: pd.DataFrame | None = None
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

    def report(self) -> dict[str, Any]:
        report = {
            "source": self.source,
            "passed": not self.errors,
            "rows_in": self.rows_in,
            "rows_out": 0 if self.frame is None or self.errors else len(self.frame),
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
    problems = result.problems
    frame = frame.reset_index(drop=True)  # row numbers in messages count data rows from 1
    frame.columns = [str(c) for c in frame.columns]

    absent = [c for c in params.drop_columns if c not in frame.columns]
    problems += [
        Problem(
            check="drop_columns",
            column=c,
            severity="warning",
            message="listed in validate.drop_columns but not in the table",
            fix="remove it from validate.drop_columns",
        )
        for c in absent
    ]
    frame = frame.drop(columns=[c for c in params.drop_columns if c in frame.columns])
    result.dropped["columns"] = sorted(set(params.drop_columns) - set(absent))

    target_problems = quality.check_target(frame, target, params.min_class_count)
    if any(p.check in {"target_present", "target_classes"} for p in target_problems):
        problems += target_problems
        return result

    features = _declared_features(frame, target, params)
    inferred_categorical = [
        f.name
        for f in features
        if f.kind == "categorical" and (params.columns.get(f.name) or _NO_RULE).dtype is None
    ]
    problems += quality.numeric_looking(frame, inferred_categorical)
    fixes = {
        "not_nullable": "fill them in the source, or allow them with validate.missing: drop "
        "(drop those rows) or validate.missing: impute (fill from the training part) in "
        "params.yaml",
        "column_in_dataframe": "add the column to the table, or remove its rule from "
        "validate.columns",
        "isin": "correct the values, or add them to validate.columns.<name>.allowed",
    }
    step("column rules: types, nulls, ranges, categories")
    problems += check_frame(frame, features, strict=False, fixes=fixes)
    # Values that are not numbers become NaN so the remaining rules still run and every
    # problem is reported at once; the result is only kept when there are no errors.
    lenient = any(p.severity == "error" for p in problems)
    features = [f for f in features if f.name in frame.columns]
    names = [f.name for f in features]
    labels = frame[target]
    frame = coerce(frame, _schema(target, [], features), lenient=lenient)
    frame[target] = labels
    if params.missing == "drop":
        has_null = frame[names].isna().any(axis=1)
        result.dropped["missing_rows"] = int(has_null.sum())
        if result.dropped["missing_rows"]:
            frame = frame[~has_null]

    step("duplicate rows")
    duplicates = quality.duplicate_rows(frame)
    n_duplicates = int(duplicates.sum())
    result.dropped["duplicate_rows"] = n_duplicates if params.duplicates == "drop" else 0
    if n_duplicates and params.duplicates == "drop":
        frame = frame[~duplicates]
    elif n_duplicates:
        rows = ", ".join(str(int(i) + 1) for i in frame.index[duplicates][:5])
        problems.append(
            Problem(
                check="duplicate_rows",
                severity="error" if params.duplicates == "error" else "warning",
                message=f"{n_duplicates} row(s) repeat an earlier row exactly, e.g. rows {rows}; "
                "duplicates that straddle the train/test split inflate test scores",
                fix="remove them from the source, or set validate.duplicates: drop",
                count=n_duplicates,
            )
        )

    step("constant columns, leakage")
    constant = quality.constant_columns(frame, names)
    if params.constant == "drop":
        result.dropped["constant_columns"] = constant
        features = [f for f in features if f.name not in constant]
        frame = frame.drop(columns=constant)
    else:
        problems += [
            Problem(
                check="constant_column",
                column=c,
                severity="error" if params.constant == "error" else "warning",
                message="has a single value in every row, so it carries no information",
                fix="remove it, list it in validate.drop_columns, or set validate.constant: drop",
            )
            for c in constant
        ]

    problems += quality.check_target(frame, target, params.min_class_count)
    names = [f.name for f in features]
    problems += [
        Problem(
            check="leakage",
            column=c,
            severity="error" if params.leakage == "error" else "warning",
            message="alone predicts the target perfectly: it is probably derived from the label",
            fix="remove it from the source or list it in validate.drop_columns (or set "
            "validate.leakage: warn if it is legitimately that strong)",
        )
        for c in quality.leaking_columns(frame, names, target)
    ]
    numeric = [f.name for f in features if f.kind == "numeric"]
    step("outliers, imbalance, identifiers")
    sample = quality.sample_positions(len(frame), params.sample_rows, params.seed)
    if sample is not None:
        result.sampled["outlier_share"] = {
            "rows": len(sample),
            "of": len(frame),
            "seed": params.seed,
        }
    problems += quality.warnings_for_distribution(frame, numeric, target, params, sample)
    mistyped = {p.column for p in problems if p.check == "numeric_dtype"}
    problems += quality.identifier_like(
        frame, [f.name for f in features if f.kind == "categorical" and f.name not in mistyped]
    )

    if any(p.severity == "error" for p in problems):
        return result
    frame = frame.reset_index(drop=True)
    result.frame = frame
    step("learning the schema")
    result.schema = learn_schema(frame, target, features, nullable=params.missing == "impute")
    return result


_NO_RULE = ColumnRule()


def _declared_features(frame: pd.DataFrame, target: str, params: ValidateParams) -> list[Feature]:
    """One ``Feature`` per column: declared rules from ``validate.columns``, else inferred kind."""
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
                min=rule.min,
                max=rule.max,
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
    learned = []
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "categorical":
            learned.append(
                Feature(
                    name=feature.name,
                    kind="categorical",
                    nullable=nullable,
                    categories=sorted({str(v) for v in column.dropna().unique()}),
                )
            )
        else:
            learned.append(
                Feature(
                    name=feature.name,
                    kind="numeric",
                    nullable=nullable,
                    min=float(column.min()),
                    max=float(column.max()),
                )
            )
    classes = sorted(frame[target].dropna().unique().tolist())
    return _schema(target, classes, learned)


def format_errors(result: Validation, report_path: str) -> str:
    lines = [e.render(result.source) for e in result.errors]
    return (
        f"validation failed with {len(lines)} error(s):\n  - "
        + "\n  - ".join(lines)
        + f"\nThe full report is in {report_path}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args(argv)
    log = setup_logging("validate")
    params = load_params(args.params)
    frame = read_table(args.data)
    source = str(frame.attrs.get("source", args.data))
    with timed("validate"):
        result = validate(frame, params.generate.target, params.validate_params, source)
    write_json(result.report(), args.report)
    for warning in result.warnings:
        log.warning(warning.render(source))
    if result.errors:
        raise DataError(format_errors(result, args.report))
    assert result.frame is not None and result.schema is not None
    write_parquet(result.frame, args.out)
    write_json(result.schema.model_dump(), args.schema)
    log.info(
        "%d of %d rows kept (dropped: %s), %d features, classes %s",
        len(result.frame),
        result.rows_in,
        result.dropped,
        len(result.schema.features),
        result.schema.classes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
