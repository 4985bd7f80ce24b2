"""House rules: Qt only in edgestudio/gui; no heavy runtime imported when the CLI (or the app) starts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

QT_MODULES = ("PySide6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6")
HEAVY = ("tensorflow", "openvino", "onnxruntime", "tf2onnx", "nncf", "keras")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):  # every import, also those inside functions
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_qt_is_imported_only_in_gui() -> None:
    offenders = []
    for path in (ROOT / "edgestudio").rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("edgestudio", "gui"):
            continue
        bad = {m for m in _imported_modules(path) if m.split(".")[0] in QT_MODULES}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, "Qt imported outside edgestudio/gui: " + "; ".join(offenders)


def test_the_check_catches_a_qt_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from PySide6.QtWidgets import QWidget\n")
    assert "PySide6.QtWidgets" in _imported_modules(bad)


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    import json

    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_cli_import_pulls_no_heavy_runtime() -> None:
    loaded = _modules_after("import edgestudio.cli; edgestudio.cli.build_parser()")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_gui_start_path_pulls_no_heavy_runtime() -> None:
    loaded = _modules_after("import os, tempfile; os.environ['QT_QPA_PLATFORM']='offscreen'\n"
                            "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
                            "from edgestudio.gui.app import apply_theme; apply_theme(app)\n"
                            "from edgestudio.core.workspace import Workspace\n"
                            "from edgestudio.gui.main_window import MainWindow\n"
                            "d = tempfile.TemporaryDirectory()\n"
                            "w = MainWindow(Workspace(d.name), use_webengine=False); w.show()\n"
                            "app.processEvents(); w.shutdown(); d.cleanup()")
    assert "PySide6" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not loaded & {"pyqtgraph", "superqt"}  # the charts are built just after the window is shown


def test_charts_are_built_right_after_the_window_is_shown() -> None:
    loaded = _modules_after("import os, tempfile, time; os.environ['QT_QPA_PLATFORM']='offscreen'\n"
                            "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
                            "from edgestudio.core.workspace import Workspace\n"
                            "from edgestudio.gui.main_window import MainWindow\n"
                            "d = tempfile.TemporaryDirectory()\n"
                            "w = MainWindow(Workspace(d.name), use_webengine=False); w.show()\n"
                            "t = time.monotonic()\n"
                            "while time.monotonic() - t < 3 and w._live is None: app.processEvents()\n"
                            "assert type(w.chart_tabs.widget(0)).__name__ == 'LiveLatencyChart'\n"
                            "assert type(w.chart_tabs.widget(1)).__name__ == 'ComparisonView'\n"
                            "w.shutdown(); d.cleanup()")
    assert {"pyqtgraph", "superqt"} <= loaded


def test_registering_backends_is_cheap() -> None:
    loaded = _modules_after("from edgestudio.backends.runtimes import RUNTIMES; RUNTIMES.all()")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


# Layers, one-way: a module may import its own layer and those below it, never one above.
# The same order as the import-linter contract in pyproject.toml (which sees imports; this also sees strings).
LAYERS = {"core": 0, "backends": 1, "bench": 2, "conversion": 3, "optimization": 4, "packaging": 4, "jobs": 5,
          "execution": 6, "app": 7, "agent": 8, "gui": 9, "cli": 10, "__main__": 10}


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "edgestudio" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def _layered_modules() -> list[tuple[str, Path, int]]:
    """Every module of the package that sits in a layer: (dotted name, path, layer)."""
    out = []
    for path in sorted((ROOT / "edgestudio").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _layer_of(name)
        if own is not None:
            out.append((name, path, own))
    return out


def layer_violations() -> list[str]:
    out = []
    for name, path, own in _layered_modules():
        for mod in _imported_modules(path):
            other = _layer_of(mod)
            if other is not None and other > own:
                out.append(f"{name} -> {mod}")
    return out


def test_layers_are_one_way() -> None:
    """core <- backends <- bench <- engines (conversion <- optimization, packaging) <- jobs <- execution <- app <- agent
    <- gui <- cli."""
    assert layer_violations() == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    assert _layer_of("edgestudio.cli") == 10 and _layer_of("edgestudio.core.formats") == 0
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from edgestudio.cli import workspace_lineage\n")
    assert "edgestudio.cli" in _imported_modules(bad)


def test_no_private_helpers_across_packages_and_gui_does_not_use_the_cli() -> None:
    offenders = []
    for path in sorted((ROOT / "edgestudio").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        pkg = rel.parts[1] if len(rel.parts) > 2 else rel.parts[-1]
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgestudio."):
                other = node.module.split(".")[1]
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and other != pkg:
                    offenders.append(f"{'.'.join(rel.parts)} imports {private} from {node.module}")
                if pkg == "gui" and node.module.startswith("edgestudio.cli"):
                    offenders.append(f"{'.'.join(rel.parts)} imports the command line ({node.module})")
    assert offenders == []


def test_import_linter_contracts_hold() -> None:
    """The layers and "Qt only in the studio", as import-linter contracts in pyproject.toml (grimp's import graph:
    imports inside functions count too)."""
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


# processes started by module name whose module sits above the starter, and why (a process boundary, not an import)
PROCESS_ENTRY_POINTS = {"edgestudio.gui.webengine_host": "the QtWebEngine host: Qt lives only in the studio package"}


def string_reference_violations() -> list[str]:
    """Code addressed by name in a string ("edgestudio.pkg.mod:function", a CALL job's target, or a module run
    with ``-m``) must not point up a layer: such a string is an import the import graph does not see."""
    import re

    target = re.compile(r"^(edgestudio(?:\.\w+)+)(?::[\w.]+)?$")
    out = []
    for name, path, own in _layered_modules():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            m = target.match(node.value)
            where = ROOT / Path(*m.group(1).split(".")) if m else ROOT
            if not m or (":" not in node.value and m.group(1) not in PROCESS_ENTRY_POINTS and
                         not where.with_suffix(".py").is_file() and not (where / "__init__.py").is_file()):
                continue  # a module or a package (edgestudio.cli, run with -m), not a word that looks like one
            other = _layer_of(m.group(1))
            if other is not None and other > own and m.group(1) not in PROCESS_ENTRY_POINTS:
                out.append(f"{name}:{node.lineno} names {node.value}")
    return out


def test_no_string_points_up_a_layer() -> None:
    assert string_reference_violations() == []
