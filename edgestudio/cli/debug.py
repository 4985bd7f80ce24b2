"""Looking inside a model: ``debug`` (per-layer comparison with its parent, or its whole lineage), ``profile``
(time per layer) and ``explore`` (Model Explorer on localhost)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgestudio.cli.common import _emit, _in_model_env, _input_spec
from edgestudio.cli.render import _chain_text, _debug_text, _profile_text
from edgestudio.core.errors import EdgeStudioError, UsageError


def cmd_debug(args: argparse.Namespace) -> Any:
    from edgestudio.bench.layers import compare_chain, compare_layers

    if not Path(args.child).exists():
        raise UsageError(None, f"{args.child}: no such file or folder")
    if args.chain:
        if not args.workspace:
            raise UsageError(None, "--chain walks the child's lineage: give the --workspace it was made in")
        from edgestudio.core.workspace import Workspace

        ws = Workspace(args.workspace)
        try:
            entry = ws.model_by_path(args.child)
            if entry is None:
                raise UsageError(None, f"{args.child}: not in the workspace {args.workspace}")
            models = [m.path for m in ws.lineage(entry.id)]
        finally:
            ws.close()
        result = _in_model_env(args, args.child, compare_chain, models=models, inputs=_input_spec(args).to_dict(),
                               samples=args.samples)
        _emit(args, result, _chain_text)
        return result
    if not args.parent:
        raise UsageError(None, "give --parent (the model it was made from) or --chain with --workspace")
    if not Path(args.parent).exists():
        raise UsageError(None, f"{args.parent}: no such file or folder")
    result = _in_model_env(args, args.child, compare_layers, parent=args.parent, child=args.child,
                           inputs=_input_spec(args).to_dict(), samples=args.samples)
    _emit(args, result, _debug_text)
    return result


def cmd_profile(args: argparse.Namespace) -> Any:
    from edgestudio.bench.profile import profile_model

    result = _in_model_env(args, args.model, profile_model, path=args.model, runtime=args.runtime, runs=args.runs,
                           threads=args.threads, inputs=_input_spec(args).to_dict())
    _emit(args, result, _profile_text)
    return result


def cmd_explore(args: argparse.Namespace) -> Any:
    """`edgestudio explore MODEL [CHILD]`: Model Explorer on localhost (offline) until Ctrl-C, with --debug's and
    --profile's figures as node data; --save-node-data writes those files and serves nothing."""
    import shutil
    import signal
    import tempfile
    import time
    import webbrowser

    from edgestudio.execution.model_explorer import ExplorerServer, explorer_python, explorer_url, prepare

    if len(args.models) > 2:
        raise UsageError(None, "explore shows one model, or a parent and the child made from it: give at most two")
    for m in args.models:
        if not Path(m).exists():
            raise UsageError(None, f"{m}: no such file or folder")
    if not 0 <= args.port <= 65535:
        raise UsageError(None, f"--port takes 1-65535 (0: a free one), not {args.port}")

    def text(d: dict[str, Any]) -> str:
        lines = [f"Model Explorer: {d['url']}" if d.get("url") else f"node data for Model Explorer in {d['folder']}"]
        lines += [f"  model  {m}" for m in d["models"]]
        lines += [f"  node data  {Path(f['path']).name} -> {f['target']} ({f['nodes']} nodes)" for f in d["node_data"]]
        if (d.get("debug") or {}).get("verdict"):
            first = d["debug"].get("first_diverging")
            lines.append(f"  layers: {d['debug']['verdict']}, {d['debug']['matched']} matched"
                         + (f", first diverging: {first}" if first else ""))
        lines += [f"  note: {n}" for n in d["notes"]]
        lines.append("Ctrl-C stops it" if d.get("url") else
                     "load them with model_explorer.config().add_model_from_path(MODEL).add_node_data_from_path(FILE)")
        return "\n".join(lines)

    keep = args.save_node_data
    python = None if keep else explorer_python()  # not installed: say how, before any work
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="edgestudio-explorer-"))
    try:
        plan = prepare(list(args.models), str(folder), debug=args.debug, profile=args.profile,
                       inputs=_input_spec(args), samples=args.samples, runs=args.runs)
        if keep:
            _emit(args, plan, text)
            return plan
        server = ExplorerServer(python, port=args.port)

        def interrupted(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, signal.default_int_handler)  # even where the shell started it ignoring Ctrl-C
        signal.signal(signal.SIGTERM, interrupted)  # a service manager's stop is a Ctrl-C
        result: dict[str, Any] = dict(plan)
        try:
            server.wait_ready()
            result = {**plan, "url": explorer_url(server.base_url, plan), "server": server.base_url,
                      "started_in_s": round(server.ready_after or 0.0, 2)}
            _emit(args, result, text)
            sys.stdout.flush()
            if not args.no_browser:
                webbrowser.open(result["url"])
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(0.5)
            raise EdgeStudioError(None, f"Model Explorer's server stopped: {server.log_tail()}")
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            return result
        finally:
            server.stop()
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)

