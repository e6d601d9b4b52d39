"""The single-prediction form, generated from the model's feature schema.

A numeric feature is a number input bounded by the range seen in training (values outside it
are allowed by the service, but a person typing one probably made a typo, so the form keeps to
it); a categorical feature is a select box of the categories seen in training. A nullable
feature can be left empty (``MISSING``), and is then sent as JSON null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlrepo.schema import Feature, FeatureSchema

MISSING = "(missing)"


@dataclass(frozen=True)
class Field:
    """One input of the form."""

    name: str
    kind: str  # numeric | categorical
    nullable: bool
    low: float | None = None  # numeric: the training range
    high: float | None = None
    default: float | None = None
    options: tuple[str, ...] = ()  # categorical: the known categories (MISSING first if nullable)

    @property
    def help(self) -> str:
        if self.kind == "numeric":
            if self.low is None or self.high is None:
                return "a number"
            return f"a number; training range {self.low:g} to {self.high:g}"
        return f"one of the {len(self.options) - self.nullable} categories seen in training"


def form_fields(schema: FeatureSchema) -> list[Field]:
    """One field per feature, in the schema's order."""
    return [_field(f) for f in schema.features]


def _field(feature: Feature) -> Field:
    if feature.kind == "numeric":
        low, high = feature.min, feature.max
        default = (low + high) / 2 if low is not None and high is not None else 0.0
        return Field(feature.name, "numeric", feature.nullable, low, high, round(default, 6))
    options = tuple(feature.categories or [])
    if feature.nullable:
        options = (MISSING, *options)
    return Field(feature.name, "categorical", feature.nullable, options=options)


def record_from(fields: list[Field], values: dict[str, Any]) -> dict[str, Any]:
    """The JSON record for ``POST /predict`` from the form's values (by feature name)."""
    record: dict[str, Any] = {}
    for field in fields:
        value = values.get(field.name)
        if value is None or value == MISSING:
            record[field.name] = None
        elif field.kind == "numeric":
            record[field.name] = float(value)
        else:
            record[field.name] = str(value)
    return record
