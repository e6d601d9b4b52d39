"""One line per problem of a params.yaml that failed validation: key, value given, rule.

pydantic reports each error with a location and a type; this turns that into the dotted key
the user wrote, what they gave, what is allowed, and for an unknown key the closest real one.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel


def describe(error: Any, raw: dict[str, Any], root: type[BaseModel]) -> str:
    """The message for one pydantic ``error`` of the mapping ``raw`` parsed as ``root``."""
    loc = [str(part) for part in error["loc"] if not str(part).startswith(("function-", "literal"))]
    # pydantic adds the branch name for union types (e.g. 'int', 'literal[...]'); drop those.
    loc = [part for part in loc if not _is_union_branch(part)]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _section_model(root, loc[:-1])
        hint = ""
        if parent is not None:
            allowed = _field_names(parent)
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            hint = f" did you mean '{'.'.join([*loc[:-1], close[0]])}'?" if close else ""
            hint += f" allowed keys: {', '.join(allowed)}"
        return f"{key}: unknown key.{hint}"
    given = _lookup(raw, loc)
    message = error["msg"]
    if kind == "literal_error":
        message = "must be one of " + error["ctx"]["expected"]
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    if given is _MISSING or isinstance(given, dict):
        return f"{key}: {message}"
    return f"{key}: {message} (given: {given!r})"


_MISSING = object()


def _lookup(raw: Any, loc: list[str]) -> Any:
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _is_union_branch(part: str) -> bool:
    return part in {"int", "float", "str", "bool", "none", "list[...]"} or part.startswith(
        ("literal[", "constrained-", "Annotated")
    )


def _section_model(root: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = _field_by_name(model, part)
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _field_by_name(model: type[BaseModel], name: str) -> Any:
    for field_name, field in model.model_fields.items():
        if (field.alias or field_name) == name:
            return field
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]
