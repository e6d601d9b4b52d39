"""What the ``mlrepo registry`` commands print: the data (for ``--json``) and a terminal table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlrepo.registry import lifecycle, tags
from mlrepo.registry.lifecycle import EVALUATE, MODEL, QUALITY_GATE
from mlrepo.registry.refs import Target, find
from mlrepo.registry.snapshot import Snapshot, check_project
from mlrepo.registry.tags import ALIASES, ARTIFACT, Bump

SHOWN_PARAMS = ("train.", "featurize.")  # what made the model; --json has every param


@dataclass(frozen=True)
class Report:
    data: Any
    text: str


def listing(root: str | Path = ".") -> Report:
    """Every registered version: stages, commit, accuracy, promotable."""
    root = check_project(root)
    listed = tags.versions(root)
    rows = []
    for v in listed:
        snapshot = Snapshot(root, v.sha)
        rows.append(
            {
                "version": v.version,
                "stages": list(v.stages),
                "rev": v.sha,
                "registered_at": _time(v.created_at),
                "accuracy": snapshot.metrics().get("evaluate", {}).get("accuracy"),
                "promotable": lifecycle.gate_failure(snapshot) is None,
            }
        )
    if not rows:
        return Report([], "no version registered yet; `mlrepo registry register` records one\n")
    columns = ["version", "stages", "rev", "registered_at", "accuracy", "promotable"]
    table = _table(
        ["version", "stages", "commit", "registered", "accuracy", "promotable"],
        [[r[c][:7] if c == "rev" else r[c] for c in columns] for r in rows],
    )
    aliases = []
    for alias, stage in ALIASES.items():
        holder = tags.in_stage(listed, stage)
        aliases.append(f"{alias} = {holder.version if holder else '-'} ({stage})")
    return Report(rows, f"{table}{', '.join(aliases)}\n")


def describe(target: Target) -> dict[str, Any]:
    """What is known of a reference's model: version, stages, commit, gates, metrics, params."""
    snapshot = target.snapshot
    failure = lifecycle.gate_failure(snapshot)
    version = target.version
    return {
        "ref": target.ref,
        "source": target.label,
        "artifact": ARTIFACT,
        "version": version and version.version,
        "stages": list(target.stages),
        "aliases": [a for a, s in ALIASES.items() if s in target.stages],
        "rev": snapshot.sha,
        "registered_at": version and _time(version.created_at),
        "registered_by": version and version.author,
        "model": {"path": MODEL, "md5": snapshot.md5s().get(MODEL)},
        "promotable": failure is None,
        "gate_failure": failure and {"gate": failure.gate, "reason": failure.reason},
        "metrics": _metrics(snapshot),
        "params": snapshot.params(),
    }


def show(ref: str | None = None, root: str | Path = ".") -> Report:
    info = describe(find(ref, check_project(root)))
    title = f"{ARTIFACT}@{info['version']}" if info["version"] else info["source"]
    if info["stages"]:
        title += f": {', '.join(info['stages'])}"
        title += f" ({', '.join(info['aliases'])})" if info["aliases"] else ""
    facts = [
        ["reference", info["source"]],
        ["commit", info["rev"] or "(working tree)"],
        ["registered", info["version"] and f"{info['registered_at']} by {info['registered_by']}"],
        ["model", f"{MODEL} md5 {info['model']['md5']}"],
        ["promotable", _promotable(info)],
    ]
    params = {k: v for k, v in info["params"].items() if k.startswith(SHOWN_PARAMS)}
    text = (
        f"{title}\n{_table(None, facts, indent=2)}"
        f"metrics ({EVALUATE})\n{_table(None, list(map(list, info['metrics'].items())), indent=2)}"
        f"params ({', '.join(p + '*' for p in SHOWN_PARAMS)} as dvc.lock recorded; --json: all)\n"
        f"{_table(None, list(map(list, params.items())), indent=2)}"
    )
    return Report(info, text)


def compare(a: str, b: str, root: str | Path = ".", all_params: bool = False) -> Report:
    """Two references' metrics and params side by side (params: those that differ)."""
    root = check_project(root)
    left, right = describe(find(a, root)), describe(find(b, root))
    header = ["", f"A: {left['source']}", f"B: {right['source']}", "B - A"]
    rows: list[list[Any]] = [
        ["stages", left["stages"], right["stages"], ""],
        ["promotable", left["promotable"], right["promotable"], ""],
        ["metrics", "", "", ""],
    ]
    for key in _union(left["metrics"], right["metrics"]):
        x, y = left["metrics"].get(key), right["metrics"].get(key)
        rows.append([f"  {key}", x, y, _delta(x, y)])
    keys = _union(left["params"], right["params"])
    differ = [k for k in keys if left["params"].get(k) != right["params"].get(k)]
    shown = keys if all_params else differ
    rows.append([f"params ({len(differ)} of {len(keys)} differ)", "", "", ""])
    rows += [[f"  {k}", left["params"].get(k), right["params"].get(k), ""] for k in shown]
    return Report({"a": left, "b": right, "params_differ": differ}, _table(header, rows))


def history(root: str | Path = ".") -> Report:
    """Registrations and promotions, newest first."""
    found = tags.events(check_project(root))
    data = [
        {
            "time": _time(e["timestamp"]),
            "event": e["event"],
            "version": e["version"],
            "stage": e["stage"],
            "rev": e["commit"],
            "tag": e["ref"],
            "author": e["author"],
        }
        for e in found
    ]
    if not data:
        return Report([], "no registry events yet; `mlrepo registry register` records one\n")
    fields = ["time", "event", "version", "stage", "rev", "tag", "author"]
    rows = [[e[f][:7] if f == "rev" else e[f] for f in fields] for e in data]
    return Report(data, _table([*fields[:4], "commit", *fields[5:]], rows))


def register(
    root: str | Path = ".", rev: str = "HEAD", bump: Bump | None = None, version: str | None = None
) -> Report:
    done = lifecycle.register(root, rev, bump, version)
    lines = [f"registered {done.tag} at commit {done.sha[:7]}"]
    lines += [f"note: {note}" for note in done.notes]
    lines.append(f"share it: git push origin {done.tag}")
    return Report(done.__dict__, "\n".join(lines) + "\n")


def promote(stage: str, ref: str | None = None, root: str | Path = ".") -> Report:
    done = lifecycle.promote(stage, ref, root)
    text = (
        f"promoted {ARTIFACT}@{done.version} (commit {done.sha[:7]}) to {done.stage}: "
        f"tag {done.tag}\nshare it: git push origin {done.tag}\n"
    )
    return Report(done.__dict__, text)


def _metrics(snapshot: Snapshot) -> dict[str, Any]:
    found = snapshot.metrics()
    flat = dict(found.get("evaluate", {}))
    flat.update({f"export.{k}": v for k, v in found.get("export", {}).items()})
    return flat


def _promotable(info: dict[str, Any]) -> str:
    failure = info["gate_failure"]
    if failure:
        return f"no: gate '{failure['gate']}' failed: {failure['reason']}"
    scores = info["metrics"]
    return f"yes (accuracy {scores['accuracy']:.4f} >= {QUALITY_GATE} {scores['min_accuracy']:.2f})"


def _union(*dicts: dict[str, Any]) -> list[str]:
    return sorted(set().union(*dicts))


def _delta(x: Any, y: Any) -> str:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
    return f"{y - x:+.4g}" if numbers and x != y else ""


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(header: list[str] | None, rows: Iterable[list[Any]], indent: int = 0) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [[_cell(c) for c in row] for row in ([header] if header else []) + list(rows)]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        " " * indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines) + "\n"
