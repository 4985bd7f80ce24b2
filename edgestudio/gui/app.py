"""Start the studio. Imports Qt, never tensorflow / openvino / onnxruntime (start-up stays fast)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _has_display() -> bool:
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def main(argv: list[str] | None = None) -> int:
    headless = not _has_display()
    if headless:
        # No screen (a server, CI): run offscreen, save a screenshot, and say so instead of failing.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    from edgestudio.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("EdgeStudio")
    app.setOrganizationName("EdgeStudio")
    window = MainWindow()
    window.show()
    if headless:
        app.processEvents()
        shot = Path("build") / "edgestudio-window.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(shot))
        print(f"No display found: EdgeStudio ran offscreen and saved a screenshot of its window to {shot}.\n"
              "Run `make run` from a desktop session (or set DISPLAY) to use the studio.")
        window.close()
        return 0
    return app.exec()
