"""Request bodies generated from the model's feature schema, and how a bad one is reported.

``RequestModels(schema)`` builds with ``pydantic.create_model`` the JSON contract of one record:
a field per feature, numbers (finite) for numeric features, strings for categorical ones (the
known categories listed in the OpenAPI docs), null only where the schema allows it, no other
field. A body is parsed and typed against it, then the frame it becomes goes through the same
schema check as batch prediction (the prediction core's ``LoadedModel.predict``: unknown
categories and the rest); ``invalid`` reports its problems.
Every mistake is a ``BadRequest`` whose details name the field and, in a batch, the record
(counted from 1).
"""

from __future__ import annotations

import difflib
import itertools
from typing import Annotated, Any, cast

import pandas as pd
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from mlrepo.prediction.core import columns_frame
from mlrepo.problems import Problem
from mlrepo.schema import Feature, FeatureSchema
from mlrepo.serve.http import MAX_DETAILS, MAX_ECHO, BadRequest, detail

SERVICE_FIXES = {
    "column_in_schema": "remove the field; it is not a feature of the model",
    "column_in_dataframe": "add the field; the model was trained with it",
}


class Columnar(BaseModel):
    """A batch in columnar form: feature names, then one list of values per record."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str]
    data: list[list[Any]]


def _field_type(feature: Feature) -> Any:
    if feature.kind == "numeric":
        base: Any = Annotated[float, Field(strict=True, allow_inf_nan=False)]
    else:
        base = Annotated[str, Field(strict=True)]
    return base | None if feature.nullable else base


def _field(feature: Feature) -> Any:
    extra: dict[str, Any] | None = (
        {"enum": list(feature.categories)} if feature.categories else None
    )
    description = f"{feature.kind} feature" + (", may be null" if feature.nullable else "")
    return Field(alias=feature.name, description=description, json_schema_extra=extra)


def _list_adapter(item: Any) -> TypeAdapter[list[Any]]:
    # list[item] of a type built at run time (mypy cannot read it as an annotation).
    return TypeAdapter(cast(Any, list.__class_getitem__(item)))


class RequestModels:
    """The request contract of one model and the parsing of the two predict bodies."""

    def __init__(
        self, schema: FeatureSchema, max_batch_rows: int, max_problems: int = MAX_DETAILS
    ) -> None:
        self.schema = schema
        self.names = schema.names
        self.max_batch_rows = max_batch_rows
        self.limit = max_problems
        # Python attribute names of our own; the JSON keys are the feature names (aliases).
        fields: dict[str, Any] = {
            f"f{i}": (_field_type(f), _field(f)) for i, f in enumerate(schema.features)
        }
        self.record: type[BaseModel] = create_model(
            "Record",
            __config__=ConfigDict(extra="forbid", title="Record"),
            __doc__="One record: a JSON object keyed by feature name.",
            **fields,
        )
        self._name_set = set(self.names)
        self._columns = {f.name: _list_adapter(_field_type(f)) for f in schema.features}

    def record_schema(self) -> dict[str, Any]:
        return self.record.model_json_schema(by_alias=True)

    def batch_schema(self) -> dict[str, Any]:
        record = self.record_schema()
        columnar = Columnar.model_json_schema()
        width = len(self.names)
        # Every feature once, in any order; each row as many values as there are columns.
        columnar["properties"]["columns"].update(
            items={"type": "string", "enum": self.names},
            minItems=width,
            maxItems=width,
            uniqueItems=True,
        )
        columnar["properties"]["data"].update(
            items={"type": "array", "minItems": width, "maxItems": width},
            minItems=1,  # an empty batch is answered 422
            maxItems=self.max_batch_rows,
        )
        array = {"type": "array", "items": record, "minItems": 1, "maxItems": self.max_batch_rows}
        return {"oneOf": [array, columnar]}

    def record_values(self, body: bytes) -> list[Any]:
        """The one record of a ``POST /predict`` body, typed: its values in schema order,
        numbers as floats (null as None), categories as strings (or None)."""
        try:
            record = self.record.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid(exc, self.names, self.limit) from None
        return list(record.__dict__.values())  # in field order, which is the schema's

    def batch_frame(self, body: bytes) -> pd.DataFrame:
        """The records of a ``POST /predict/batch`` body (a list of records or columnar)."""
        parsed = _parse_json(body)
        if isinstance(parsed, list):
            return self._records_frame(parsed)
        if isinstance(parsed, dict) and ("columns" in parsed or "data" in parsed):
            return self._columnar_frame(parsed)
        raise BadRequest(
            422,
            'expected a list of records or {"columns": [...], "data": [[...], ...]}',
            [detail(None, "body_type", f"got a JSON {_json_type(parsed)}")],
        )

    def invalid(self, problems: list[Problem]) -> BadRequest:
        """The 422 for every way a frame breaks the feature schema (the core found them)."""
        return BadRequest(
            422,
            f"{len(problems)} problem(s) with the feature values",
            [detail(p.column, p.check, f"{p.message}. Fix: {p.fix}") for p in problems],
            limit=self.limit,
        )

    def _check_size(self, rows: int) -> None:
        if rows > self.max_batch_rows:
            raise BadRequest(
                413,
                f"{rows} records in one batch; at most {self.max_batch_rows} are accepted",
                [detail(None, "batch_too_large", f"split the batch into parts of at most "
                        f"{self.max_batch_rows} records")],
            )  # fmt: skip
        if rows == 0:
            raise BadRequest(422, "the batch is empty", [detail(None, "empty", "send a record")])

    def _records_frame(self, records: list[Any]) -> pd.DataFrame:
        self._check_size(len(records))
        names = self._name_set
        misshapen = [
            i for i, r in enumerate(records) if not isinstance(r, dict) or r.keys() != names
        ]
        if misshapen:
            # Not an object, a field missing or unknown: the record model names the mistakes
            # (the slow way, only for a bad request, and only until enough are found).
            details: list[dict[str, Any]] = []
            for i, record in enumerate(records):
                try:
                    self.record.model_validate(record)
                except ValidationError as exc:
                    found = _invalid(exc, self.names, self.limit).details
                    details += [{**d, "row": i + 1} for d in found]
                if len(details) >= self.limit:
                    break
            message = (
                f"{len(misshapen)} record(s) with a missing or unknown field, or not an object"
            )
            # Each such record has a problem at least: more of them than the limit is more
            # problems than are listed.
            total = max(len(details), len(misshapen))
            raise BadRequest(422, message, details, total=total, limit=self.limit)
        # Typed column by column: an order of magnitude faster than a model per record.
        return self._typed_frame({name: [r[name] for r in records] for name in self.names})

    def _columnar_frame(self, parsed: dict[str, Any]) -> pd.DataFrame:
        try:
            body = Columnar.model_validate(parsed)
        except ValidationError as exc:
            raise _invalid(exc, self.names, self.limit) from None
        self._check_size(len(body.data))
        width = len(body.columns)
        details = _column_name_details(body.columns, self.names)[: self.limit]
        if any(len(row) != width for row in body.data):
            details += [
                detail(None, "row_length", f"has {len(row)} values for {width} columns", i)
                for i, row in enumerate(body.data, start=1)
                if len(row) != width
            ][: self.limit]
        if details:
            message = "the columns or rows do not match the model"
            raise BadRequest(422, message, details, limit=self.limit)
        transposed = map(list, zip(*body.data, strict=True))
        return self._typed_frame(dict(zip(body.columns, transposed, strict=True)))

    def _typed_frame(self, columns: dict[str, list[Any]]) -> pd.DataFrame:
        """Check each column's JSON types; numbers become float64, categories objects."""
        details: list[dict[str, Any]] = []
        total = 0
        for feature in self.schema.features:
            values = columns[feature.name]
            try:
                self._columns[feature.name].validate_python(values)
            except ValidationError as exc:
                total += exc.error_count()
                if len(details) >= self.limit:
                    continue  # enough to show: only count the rest (describing them is slow)
                details += [
                    detail(feature.name, e["type"], _message(e), int(e["loc"][0]) + 1)
                    for e in exc.errors(include_url=False)[: self.limit]
                ]
        if details:
            shown = sorted(details, key=lambda d: (d["row"], self.names.index(d["field"])))
            message = f"{total} value(s) of the wrong type"
            raise BadRequest(422, message, shown, total=total, limit=self.limit)
        return columns_frame(columns, self.schema)


def _parse_json(body: bytes) -> Any:
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise BadRequest(400, "malformed JSON", [detail(None, "json_invalid", str(exc))]) from None


def _invalid(exc: ValidationError, names: list[str], limit: int = MAX_DETAILS) -> BadRequest:
    total = exc.error_count()
    errors = exc.errors(include_url=False)[:limit]
    if any(e["type"] == "json_invalid" for e in errors):
        message = next(e["msg"] for e in errors if e["type"] == "json_invalid")
        return BadRequest(400, "malformed JSON", [detail(None, "json_invalid", message)])
    fields = [".".join(map(str, e["loc"])) or None for e in errors]
    # A misspelled field is an unknown one plus a missing one: suggest the missing name.
    missing = [f for f, e in zip(fields, errors, strict=True) if f and e["type"] == "missing"]
    details = []
    for field, error in zip(fields, errors, strict=True):
        message = _message(error)
        if error["type"] == "extra_forbidden" and field is not None:
            message += _did_you_mean(field, missing or names)
        details.append(detail(field, error["type"], message))
    message = f"{total} problem(s) with the request body"
    return BadRequest(422, message, details, total=total, limit=limit)


def _column_name_details(columns: list[str], names: list[str]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    details = []
    for name in columns:
        if name in seen:
            details.append(detail(name, "duplicate_column", "the column is given twice"))
        seen.add(name)
    missing = [n for n in names if n not in seen]
    unknown = (name for name in columns if name not in names)
    # Suggestions only for the first few: difflib is slow, and the list is cut anyway.
    for name in itertools.islice(unknown, MAX_DETAILS):
        details.append(
            detail(
                name,
                "extra_forbidden",
                "unknown field: not a feature of the model" + _did_you_mean(name, missing),
            )
        )
    details += [detail(n, "missing", "required field is missing") for n in missing]
    return details


def _did_you_mean(field: str, candidates: list[str]) -> str:
    if len(field) > MAX_ECHO:
        return ""  # not a typo; and difflib's cost grows with the length
    close = difflib.get_close_matches(field, candidates, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


_EXPECTED = {"float": "a number", "string": "a string", "dict": "a JSON object", "list": "a list"}


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field: not a feature of the model"
    if kind == "finite_number":
        return "NaN and infinite values are not allowed"
    if kind == "none_required" or (error["input"] is None and kind.endswith("_type")):
        return "null is not allowed"
    if kind == "float_type" and type(error["input"]) is int:
        return "the number is too large for a 64-bit float"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = _EXPECTED.get(kind.split("_")[0], error["msg"].removeprefix("Input should be "))
        return f"expected {expected}, got {_json_type(error['input'])} {_short(error['input'])}"
    return str(error["msg"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else ""
    return f"({text[:40]}{'...' if len(text) > 40 else ''})" if text else ""
