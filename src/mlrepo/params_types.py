"""The building blocks of the ``params.yaml`` schema: a strict section and constrained numbers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]  # a share of the rows or columns, above zero


class Section(BaseModel):
    """A section of params.yaml: unknown keys rejected, values frozen once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)
