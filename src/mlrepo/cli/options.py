"""Argument types and helpers the subcommands of ``mlrepo`` share."""

from __future__ import annotations

import argparse
from typing import Any


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options ``names`` as keyword arguments, those the user left out (None) omitted."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
