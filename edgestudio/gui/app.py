"""Start the studio. Imports Qt, never tensorflow / openvino / onnxruntime (start-up stays fast)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()


def _has_display() -> bool:
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


#: what Qt's xcb platform plugin loads on an X desktop, by library name -> the Debian/Ubuntu package that has it
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xkbcommon-x11": "libxkbcommon-x11-0"}


def missing_system_libraries() -> list[str]:
    """The packages Qt needs on this X desktop and cannot find (Qt would abort with a raw plugin error)."""
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM", "xcb") not in ("xcb", "") \
            or not os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return []
    import ctypes.util

    return [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]


def apply_theme(app: object) -> None:
    """Fusion follows the system's light/dark scheme (Qt >= 6.5); the charts take the palette's colours when
    they are built (:func:`edgestudio.gui.charts.chart_theme`), so pyqtgraph is not imported at start-up."""
    app.setStyle("Fusion")  # type: ignore[attr-defined]


def open_workspace(path: str | None = None):  # type: ignore[no-untyped-def]
    """The last workspace (or the default one); a new, empty workspace gets the sample models."""
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.samples import sample_models

    root = path or QSettings("EdgeStudio", "EdgeStudio").value("workspace") or None
    ws = Workspace(root)
    if not ws.models():
        for sample in sample_models():
            ws.import_model(sample)
    return ws


def main(argv: list[str] | None = None, workspace: str | None = None) -> int:
    headless = not _has_display()
    if headless:
        # No screen (a server, CI): run offscreen, save a screenshot, and say so instead of failing.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    missing = missing_system_libraries()
    if missing:  # said in words, with the fix, before Qt aborts with "could not load the Qt platform plugin xcb"
        print(f"EdgeStudio cannot open its window: this desktop lacks {', '.join(missing)}, which Qt needs to draw on X."
              f"\nInstall {'it' if len(missing) == 1 else 'them'}: sudo apt install {' '.join(missing)}\n"
              "(the command line, `edgestudio --help`, works without it)", file=sys.stderr)
        return 1
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("EdgeStudio")
    app.setOrganizationName("EdgeStudio")
    apply_theme(app)
    from PySide6.QtGui import QIcon

    from edgestudio.samples import samples_dir

    icon = samples_dir().parent / "icons" / "edgestudio.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    from edgestudio.gui.main_window import MainWindow

    ws = open_workspace(workspace or os.environ.get("EDGESTUDIO_WORKSPACE"))
    window = MainWindow(ws, use_webengine=not headless)
    window.confirm_quit = not headless
    samples_test = samples_dir() / "digits_test.npz"
    if samples_test.exists():
        window.optimize.set_sample_dataset(str(samples_test))
    window.show()
    print(f"EdgeStudio window shown in {time.perf_counter() - T0:.2f} s (workspace {ws.root})", file=sys.stderr)
    try:
        if headless:
            window._warm_up()  # the charts, as the user would see them a moment after start
            app.processEvents()
            shot = Path("build") / "edgestudio-window.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(shot))
            print(f"No display found: EdgeStudio ran offscreen and saved a screenshot of its window to {shot}.\n"
                  "Run `make run` from a desktop session (or set DISPLAY) to use the studio.")
            window.close()
            return 0
        return app.exec()
    finally:
        window.shutdown()
        ws.close()
