"""A broken rule, as every check reports it: the column rules of ``schema.check_frame``, the
dataset rules of ``quality``, the prediction core's input check and the service's 422s."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

MAX_EXAMPLES = 5  # example rows and values a problem lists

# What a broken rule means for the run: it fails, it is reported and passes, or (where a
# ``validate.*`` policy says drop) the offending rows or column are removed and counted.
Severity = Literal["error", "warning", "drop_rows", "drop_column"]


@dataclass(frozen=True)
class Problem:
    """One broken rule: which column, which check, what was found, how to fix it, how serious.

    A ``drop_rows`` problem carries the rows to remove in ``rows`` (a boolean mask over the
    positions of the table the rule looked at); a ``drop_column`` problem removes ``column``.
    """

    check: str
    message: str
    fix: str
    column: str | None = None
    severity: Severity = "error"
    count: int = 0
    examples: list[Any] = field(default_factory=list)
    rows: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.severity == "drop_rows" and self.rows is None:
            raise ValueError(f"{self.check}: a drop_rows problem needs the rows to drop")
        if self.severity == "drop_column" and self.column is None:
            raise ValueError(f"{self.check}: a drop_column problem needs the column to drop")

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "column": self.column,
            "count": self.count,
            "examples": self.examples,
            "fix": self.fix,
            "message": self.message,
            "severity": self.severity,
        }

    def render(self, source: str) -> str:
        where = f"column '{self.column}'" if self.column else "table"
        return f"{source}: {where}: {self.message} [{self.check}] Fix: {self.fix}"


def merge_chunks(problems: list[Problem]) -> list[Problem]:
    """The problems found in the chunks (or partitions) of one table, one per column and rule:
    the first chunk's message and examples, the whole table's count."""
    groups: dict[tuple[str | None, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.column, problem.check), []).append(problem)
    merged = []
    for (_, check), group in groups.items():
        first = group[0]
        if len(group) == 1 or check in {"column_in_schema", "column_in_dataframe"}:
            merged.append(first)
            continue
        total = sum(p.count for p in group)
        merged.append(replace(first, count=total, message=f"{first.message}; {total} rows in all"))
    return sorted(merged, key=lambda p: (p.column or "", p.check))
