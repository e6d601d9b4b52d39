"""`mlrepo --version` and help text a terminal shows as it is written (no RST markup)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlrepo.cli import build_parser, main

PROJECT = Path(__file__).resolve().parents[2]


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    declared = tomllib.loads((PROJECT / "pyproject.toml").read_text("utf-8"))["project"]
    assert capsys.readouterr().out == f"mlrepo {declared['version']}\n"


def test_no_help_page_shows_rst_double_backticks() -> None:
    parser = build_parser()
    pages = {"mlrepo": parser.format_help()}
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():  # type: ignore[union-attr]
        pages[name] = sub.format_help()
    assert len(pages) > 5
    assert [name for name, text in pages.items() if "``" in text] == []
    assert "runs through DVC (dvc repro)" in " ".join(pages["mlrepo"].split())


def test_the_stage_helps_are_plain_too() -> None:
    for stage in ("evaluate", "monitor"):
        out = subprocess.run(
            [sys.executable, "-m", f"mlrepo.stages.{stage}", "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "``" not in out, stage


def test_the_license_is_mit() -> None:
    text = (PROJECT / "LICENSE").read_text("utf-8")
    assert text.startswith("MIT License") and "mlrepo authors" in text
