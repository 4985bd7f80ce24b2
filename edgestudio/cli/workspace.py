"""A workspace's contents: ``jobs`` (its history), ``models`` (the lineage tree) and ``import``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgestudio.cli.common import _emit, _open_workspace
from edgestudio.cli.render import _when


def cmd_jobs(args: argparse.Namespace) -> Any:
    with _open_workspace(args) as ws:
        jobs = [j.to_dict() for j in ws.jobs(args.limit)]
    for j in jobs:
        j.pop("spec", None)
        if not args.json and j["result"] is not None:
            j["result"] = "..."
    _emit(args, jobs, lambda js: "\n".join(
        f"{j['id']}  {j['kind']:<8} {j['status']:<10} {_when(j['created_at'])}  {Path(j['model'] or '-').name}"
        + (f"\n    {j['error']}" if j["error"] else "") for j in js) or "no jobs yet")
    return jobs


def cmd_models(args: argparse.Namespace) -> Any:
    with _open_workspace(args) as ws:
        models = [m.to_dict() for m in ws.models()]

    def text(ms: list[dict[str, Any]]) -> str:
        kids: dict[Any, list[dict[str, Any]]] = {}
        for m in ms:
            kids.setdefault(m["parent_id"], []).append(m)
        lines: list[str] = []

        def walk(parent: Any, depth: int) -> None:
            for m in kids.get(parent, []):
                how = "" if m["made_by"] == "import" else f"  <- {m['made_by']} {m['job_id']}"
                lines.append(f"{'  ' * depth}#{m['id']} {m['name']}  [{m['format']}, {m['size_bytes']:,} B]{how}")
                walk(m["id"], depth + 1)

        walk(None, 0)
        return "\n".join(lines) or "no models yet"

    _emit(args, models, text)
    return models


def cmd_import(args: argparse.Namespace) -> Any:
    with _open_workspace(args) as ws:
        entries = [ws.import_model(m, copy=not args.reference).to_dict() for m in args.models]
    _emit(args, entries, lambda es: "\n".join(f"#{e['id']} {e['name']} ({e['format']}) -> {e['path']}" for e in es))
    return entries

