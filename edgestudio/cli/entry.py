"""``main``: the studio, or one command; every error one line on stderr (exit code 1, usage errors 2,
Ctrl-C 130), with the native libraries' own output kept in a log file named only when the command failed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgestudio.cli.parser import _ArgError, build_parser
from edgestudio.core.errors import EdgeStudioError, UsageError, describe_exception, display


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:
        from edgestudio.gui.selftest import run_self_test

        return run_self_test(argv[1:] or None)
    if not argv or (argv[0] in ("--workspace", "gui") and len(argv) <= 3):
        # the studio (`edgestudio`, `edgestudio --workspace DIR`, `edgestudio gui [--workspace DIR]`)
        rest = argv[1:] if argv and argv[0] == "gui" else argv
        if rest and (rest[0] != "--workspace" or len(rest) != 2):
            print("usage: edgestudio [gui] [--workspace DIR]", file=sys.stderr)
            return 2
        from edgestudio.gui import launch  # imports Qt, never tensorflow/openvino/onnxruntime

        return launch(workspace=rest[1] if rest else None)
    try:
        parser = build_parser()  # its choices come from the backend catalog (which may name a bad extra file)
    except EdgeStudioError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    try:
        args = parser.parse_args(argv)
    except _ArgError as exc:
        model = next((a for a in argv[1:] if not a.startswith("-") and Path(a).exists()), None)
        print(f"error: {display(f'{model}: ' if model else '')}{display(str(exc))}", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "trust_model", False):
        from edgestudio.core.safety import trust

        for key in ("model", "child", "parent", "teacher"):
            value = getattr(args, key, None)
            for path in value if isinstance(value, list) else [value]:
                if isinstance(path, str) and Path(path).exists():
                    trust(path)
    from edgestudio.core.loaders import quiet_tensorflow

    quiet_tensorflow()
    native = None if getattr(args, "verbose", False) else _NativeLog.start()
    _watch_memory(args, native)
    rc = 0
    try:
        args.func(args)
    except UsageError as exc:
        model = _subject(args)
        if exc.path is None and isinstance(model, str):
            exc.path = model  # every error names the file it is about
        _error(exc.one_line(), native)
        rc = 2
    except EdgeStudioError as exc:
        model = _subject(args)
        if exc.path is None and isinstance(model, str) and not getattr(exc, "named", False) \
                and Path(model).name not in exc.cause:
            exc.path = model  # every error names the file it is about
        _error(exc.one_line(), native)
        rc = 1
    except KeyboardInterrupt:
        _error("interrupted", native)
        rc = 130
    except BrokenPipeError:  # `edgestudio ... | head`: the reader left, nothing to report
        sys.stderr.close()
        rc = 0
    except Exception as exc:  # anything a library raised: still one line, naming the file
        _error(describe_exception(exc, getattr(args, "model", None)), native)
        rc = 1
    finally:
        if native is not None:
            native.stop(keep=rc not in (0, 2))
    return rc


def _subject(args: argparse.Namespace) -> str | None:
    """The file a command is about (its model, the child of a debug, the first variant, the recipe, the sweep)."""
    for key in ("model", "child", "models", "variants", "recipe", "config"):
        value = getattr(args, key, None)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, str):
            return value
    return None


def _watch_memory(args: argparse.Namespace, native: _NativeLog | None) -> None:
    """What runs in this process (a per-layer comparison, a rescue, a profile) is held to the memory budget like
    the pool's workers: past it, one line and exit code 1, before the machine runs out."""
    import os

    from edgestudio.core.safety import human, watch_memory

    def exceeded(rss: int, budget: int) -> None:
        model = _subject(args)
        where = f"{display(str(model))}: " if isinstance(model, str) else ""
        _error(f"{where}out of memory: this command used {human(rss)}, over the memory budget of {human(budget)} "
               "(EDGESTUDIO_MEMORY_BUDGET raises it)", native)
        if native is not None:
            native.stop(keep=True)
        sys.stderr.flush()
        os._exit(1)

    watch_memory(exceeded)


def _error(line: str, native: _NativeLog | None) -> None:
    if native is not None and native.has_content():
        line += f" [native log: {native.path}]"
    print(f"error: {line}", file=sys.stderr)


def _native_log_dir() -> str:
    """The user's log folder for EdgeStudio (the last 20 native logs are kept)."""
    import os

    from platformdirs import user_log_dir

    folder = user_log_dir("edgestudio", appauthor=False)
    os.makedirs(folder, exist_ok=True)
    logs = sorted((e for e in os.scandir(folder) if e.name.startswith("native-")), key=lambda e: e.stat().st_mtime)
    for old in logs[:-20]:
        try:
            os.unlink(old.path)
        except OSError:
            pass
    return folder


class _NativeLog:
    """Native libraries (OpenVINO, ONNX Runtime, XNNPACK, TensorFlow) and crashing workers write to file
    descriptor 2; the command line keeps that in a log file, so stderr carries only EdgeStudio's own lines.
    The log is kept (and named in the error) only when the command failed."""

    def __init__(self, path: str, saved_fd: int, saved_stderr: Any) -> None:
        self.path, self._saved_fd, self._saved_stderr = path, saved_fd, saved_stderr

    @classmethod
    def start(cls) -> _NativeLog | None:
        import os
        import tempfile
        import warnings

        try:
            sys.stderr.flush()
            saved = os.dup(2)
            folder = _native_log_dir()
            fd, path = tempfile.mkstemp(prefix="native-", suffix=".log", dir=folder)
            os.dup2(fd, 2)
            os.close(fd)
        except (OSError, ValueError):
            return None
        log = cls(path, saved, sys.stderr)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        import logging

        # Python-level library logging (absl/TensorFlow tracebacks, NNCF, ORT quantization) goes to the log too
        handler = logging.StreamHandler(log._saved_stderr)
        for name in ("", "absl", "tensorflow"):
            logger = logging.getLogger(name)
            logger.handlers = [handler]
            logger.propagate = name == ""
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: os.write(
            2, f"{category.__name__}: {message} ({filename}:{lineno})\n".encode("utf-8", "replace"))
        return log

    def has_content(self) -> bool:
        import os

        try:
            return os.path.getsize(self.path) > 0
        except OSError:
            return False

    def stop(self, keep: bool) -> None:
        import os

        ours = sys.stderr
        try:
            ours.flush()
            if ours is not self._saved_stderr:
                ours.close()  # the stream made in start() holds a copy of the real stderr's descriptor
        except (OSError, ValueError):
            pass
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        sys.stderr = self._saved_stderr
        if not (keep and self.has_content()):
            try:
                os.unlink(self.path)
            except OSError:
                pass

