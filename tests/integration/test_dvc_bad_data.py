"""Bad input tables stop `dvc repro` with one clear message and leave no partial output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dvc_harness import UP_TO_DATE, Origin, Repo, ran_stages
from user_tables import good_table

pytestmark = pytest.mark.dvc

VALIDATE_OUTS = ("data/validated.parquet", "data/schema.json")


def write_csv(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_csv(path, index=False)


def corrupt_csv(path: Path) -> None:
    lines = good_table().to_csv(index=False).splitlines()
    lines[5] += ",1,2,3"  # a data row with more fields than the header
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def corrupt_parquet(path: Path) -> None:
    good_table().to_parquet(path, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: the footer is gone


def with_values(column: str, rows: list[int], value: object) -> pd.DataFrame:
    table = good_table()
    if isinstance(value, str):
        table[column] = table[column].astype(object)
    table.loc[rows, column] = value
    return table


def single_class() -> pd.DataFrame:
    table = good_table()
    table["label"] = "gold"
    return table


def infinities() -> pd.DataFrame:
    table = good_table()
    table.loc[[3, 8], "visits"] = np.inf
    table.loc[10, "visits"] = -np.inf
    return table


@dataclass(frozen=True)
class BadData:
    file: str
    write: Callable[[Path], None] | None  # None: the file does not exist
    stage: str  # the stage that must fail
    expected: tuple[str, ...]  # file/column, the rule, the detail, as the message shows them
    # validate failures: the one error metrics/validation.json must report, (check, column)
    error: tuple[str, str] | None = None


CASES = {
    "missing file": BadData(
        "data/external/missing.csv", None, "generate", ("data/external/missing.csv",)
    ),
    "empty file": BadData(
        "data/external/empty.csv",
        lambda path: path.write_bytes(b""),
        "generate",
        ("data/external/empty.csv: the file is empty",),
    ),
    "corrupt csv": BadData(
        "data/external/corrupt.csv",
        corrupt_csv,
        "generate",
        ("data/external/corrupt.csv: cannot be read as CSV", "line 6"),
    ),
    "corrupt parquet": BadData(
        "data/external/corrupt.parquet",
        corrupt_parquet,
        "generate",
        ("data/external/corrupt.parquet: cannot be read as Parquet",),
    ),
    "missing target column": BadData(
        "data/external/no_target.csv",
        write_csv(good_table().rename(columns={"label": "klass"})),
        "generate",
        ("data/external/no_target.csv: target column 'label' not found", "generate.target"),
    ),
    "single class": BadData(
        "data/external/one_class.csv",
        write_csv(single_class()),
        "validate",
        (
            "data/external/one_class.csv: column 'label'",
            "needs at least 2 classes, found 1 ('gold')",
            "[target_classes]",
        ),
        error=("target_classes", "label"),
    ),
    "nulls": BadData(
        "data/external/nulls.csv",
        write_csv(with_values("spend", [3, 8, 16], np.nan)),
        "validate",
        (
            "data/external/nulls.csv: column 'spend'",
            "missing values (null/NaN) are not allowed: 3 row(s), e.g. rows 4, 9, 17",
            "[not_nullable]",
            "validate.missing",
        ),
        error=("not_nullable", "spend"),
    ),
    "infinities": BadData(
        "data/external/infinite.csv",
        write_csv(infinities()),
        "validate",
        (
            "data/external/infinite.csv: column 'visits'",
            "infinite values are not allowed: 3 row(s), e.g. rows 4, 9, 11",
            "[finite]",
        ),
        error=("finite", "visits"),
    ),
    "text in numeric column": BadData(
        "data/external/text.csv",
        write_csv(with_values("spend", [11], "twelve")),
        "validate",
        (
            "data/external/text.csv: column 'spend'",
            "1 non-numeric value(s), e.g. rows 12; values 'twelve'",
            "[numeric_dtype]",
        ),
        error=("numeric_dtype", "spend"),
    ),
}


def use_file(repo: Repo, case: BadData) -> None:
    if case.write is not None:
        case.write(repo.path(case.file))
    repo.set_params(
        {"generate.source": "file", "generate.path": case.file, "generate.target": "label"}
    )


def leftovers(repo: Repo) -> list[Path]:
    """Temporary files an interrupted atomic write would leave beside its output."""
    return [p for d in ("data", "models", "metrics") for p in repo.path(d).rglob(".*.tmp")]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_data_fails_with_a_clear_message_and_no_partial_output(
    workspace: Repo, case: BadData
) -> None:
    # The workspace holds a previous good run, so every output exists before the failure.
    assert all(workspace.path(p).exists() for p in ("data/raw.parquet", *VALIDATE_OUTS))
    use_file(workspace, case)
    result = workspace.dvc("repro", check=False)

    assert result.returncode != 0, result.describe()
    assert f"failed to reproduce '{case.stage}'" in result.output, result.describe()
    for fragment in case.expected:
        assert fragment in result.output, (fragment, result.describe())
    assert "Traceback" not in result.output, result.describe()
    assert leftovers(workspace) == []
    if case.stage == "generate":
        assert "Running stage 'validate'" not in result.output
        assert not workspace.path("data/raw.parquet").exists()
        if case.write is not None:
            assert "exited with 2" in result.output, result.describe()
        else:
            assert "No such file" in result.output or "not found" in result.output
    else:
        assert ran_stages(result.output) == ["generate", "validate"], result.describe()
        assert "exited with 2" in result.output, result.describe()
        assert workspace.path("data/raw.parquet").exists()
        for out in VALIDATE_OUTS:
            assert not workspace.path(out).exists(), f"{out} written by a failed validate"
        report = workspace.read_json("metrics/validation.json")
        assert report["passed"] is False and report["rows_out"] == 0, report
        assert report["source"] == case.file, report
        assert [(e["check"], e["column"]) for e in report["errors"]] == [case.error], report


def test_text_in_a_numeric_column_is_not_called_an_identifier(workspace: Repo) -> None:
    case = CASES["text in numeric column"]
    use_file(workspace, case)
    result = workspace.dvc("repro", check=False)
    assert "[numeric_dtype]" in result.output, result.describe()
    # The fix for a typo is to correct the value, not to drop the column as an identifier.
    assert "[identifier]" not in result.output, result.describe()


def contents(repo: Repo, paths: tuple[str, ...]) -> dict[str, bytes]:
    return {p: repo.path(p).read_bytes() for p in paths}


def test_checkout_restores_the_previous_good_outputs(origin: Origin, workspace: Repo) -> None:
    outputs = ("data/raw.parquet", *VALIDATE_OUTS, "data/split/train.parquet")
    good = contents(origin.repo, outputs)
    use_file(workspace, CASES["nulls"])
    failed = workspace.dvc("repro", check=False)
    assert "failed to reproduce 'validate'" in failed.output, failed.describe()
    assert not workspace.path("data/validated.parquet").exists()

    # dvc.lock still records validate's last good outputs: checkout brings them back.
    workspace.dvc("checkout")
    assert contents(workspace, VALIDATE_OUTS) == {p: good[p] for p in VALIDATE_OUTS}

    # Back to the committed params and lock, the whole previous good run is restored.
    workspace.git("checkout", "--", "params.yaml", "dvc.lock", "metrics/validation.json")
    workspace.dvc("checkout")
    assert contents(workspace, outputs) == good
    assert UP_TO_DATE in workspace.dvc("status").output
