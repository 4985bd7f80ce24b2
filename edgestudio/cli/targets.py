"""Where jobs run: ``devices`` (and the remote ones: add, list, remove), ``agent serve``, ``targets`` and
``envs`` (Python environments)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgestudio.cli.common import _emit
from edgestudio.core.errors import UsageError


def cmd_devices(args: argparse.Namespace) -> Any:
    """``devices``: every device the runtimes here and on the registered remote devices see; ``devices add|list|
    remove``: the remote devices (agents)."""
    from edgestudio.execution import remote

    if args.action == "add":
        if not (args.name and args.host and args.token):
            raise UsageError(None, "devices add NAME --host HOST [--port PORT] --token TOKEN")
        data: Any = remote.add_device(args.name, args.host, args.port, args.token, tls=args.tls,
                                      check=not args.no_check)
        f = data.get("facts") or {}
        _emit(args, data, lambda d: f"added {d['name']} ({d['host']}:{d['port']})" + (
            f": {f.get('cpu')}, {f.get('cores')} cores, {f.get('os')}; runtimes "
            + ", ".join(f"{k} {v}" for k, v in (f.get("runtimes") or {}).items() if k != "numpy") if f else
            " (not checked)") + f"\n  use it with --target agent:{d['name']}")
        return data
    if args.action == "remove":
        if not args.name:
            raise UsageError(None, "devices remove NAME")
        remote.remove_device(args.name)
        _emit(args, {"removed": args.name}, lambda d: f"removed {d['removed']}")
        return None
    if args.action == "list":
        data = [remote.device_health(e) for e in remote.registered_devices()]

        def text(ds: list[dict[str, Any]]) -> str:
            lines = []
            for d in ds:
                f = d["facts"]
                state = (f"online ({d['rtt_ms']} ms): {f.get('cpu')}, {f.get('cores')} cores, {f.get('machine')}, "
                         f"{(f.get('memory_bytes') or 0) / 2**30:.1f} GiB, " + ", ".join(
                             f"{k} {v}" for k, v in (f.get("runtimes") or {}).items() if k != "numpy")
                         + "".join(f", {k} {v:.0f} C" for k, v in list((f.get("temperature_c") or {}).items())[:2])
                         if d["online"] else f"OFFLINE: {d['error']}")
                lines.append(f"{d['target']:<20} {d['host']}:{d['port']:<6} {state}")
            return "\n".join(lines) or ("no remote devices (start `edgestudio agent serve` on one, then "
                                        "`edgestudio devices add NAME --host H --token T`)")

        _emit(args, data, text)
        return data
    from edgestudio.execution.envs import runtimes_to_enable

    if args.action == "missing":
        rows = runtimes_to_enable()
        _emit(args, rows, lambda rs: "\n".join(f"{r['runtime']:<12} {r['label']} needs {'; '.join(r['needs'])}"
                                                f"\n{'':<12} {r['enable']}" for r in rs)
              or "every runtime the catalog declares is usable here")
        return rows
    devices = remote.all_device_dicts()

    def listing(ds: list[dict[str, Any]]) -> str:
        lines = [f"{d['runtime']:<12} {d['device']:<16} {d['description']}" for d in ds]
        more = runtimes_to_enable()
        if more:
            lines += ["", "not enabled here (`edgestudio devices missing` for what each needs):"]
            lines += [f"{r['runtime']:<12} {r['enable']}" for r in more]
        return "\n".join(lines)

    _emit(args, devices, listing)
    return devices


def cmd_agent(args: argparse.Namespace) -> Any:
    from edgestudio.agent.server import run_from_args

    if run_from_args(args):
        raise SystemExit(1)
    return None


def cmd_targets(args: argparse.Namespace) -> Any:
    from edgestudio.execution.targets import list_targets

    targets = [t.to_dict() for t in list_targets()]
    _emit(args, targets, lambda ts: "\n".join(f"{t['name']:<20} {t['kind']:<6} {t['detail'] or 'ready':<12} "
                                               f"{t['description']}" for t in ts))
    return targets


def cmd_envs(args: argparse.Namespace) -> Any:
    from edgestudio.execution import envs

    if args.action == "create":
        if not args.name:
            raise UsageError(None, "envs create NAME REQUIREMENT...")
        show = sys.stderr.isatty() and not args.json
        info = envs.create_env(args.name, list(args.requirements or []), progress=lambda f, m="": show and print(
            f"\r[{f:4.0%}] {m[:70]:<70}", end="", file=sys.stderr, flush=True))
        if show:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
        data: Any = info.to_dict()
        _emit(args, data, lambda d: f"{d['name']}: ready at {d['path']} (python {d['python_version']}; "
                                    f"{', '.join(d['requirements'])})")
        return data
    if args.action == "remove":
        if not args.name:
            raise UsageError(None, "envs remove NAME")
        envs.remove_env(args.name)
        _emit(args, {"removed": args.name}, lambda d: f"removed {d['removed']}")
        return None
    if args.action == "check":
        data = envs.health_check(args.name).to_dict()
        _emit(args, data, lambda d: f"{d['name']}: {'healthy' if d['healthy'] else 'BROKEN'} ({d['health']})")
        return data
    data = [e.to_dict() for e in envs.list_envs()]
    _emit(args, data, lambda es: "\n".join(
        f"{e['name']:<16} {'ok' if e['healthy'] else 'broken' if e['healthy'] is False else '?':<7} "
        f"{e['size_bytes'] / 1e6:7.0f} MB  {', '.join(e['requirements'])}" for e in es)
        or "no environments yet (create one: edgestudio envs create NAME REQUIREMENT...)")
    return data

