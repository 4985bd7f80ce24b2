"""The main window (a first version: lists the sample models with their format and size)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import detect_format
from edgestudio.core.modelinfo import model_size_bytes
from edgestudio.samples import sample_models


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"EdgeStudio {__version__}")
        self.resize(900, 560)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        title = QLabel("<h2>Models</h2>")
        layout.addWidget(title)
        self.models = QTreeWidget()
        self.models.setHeaderLabels(["Model", "Format", "Size"])
        self.models.setRootIsDecorated(False)
        self.models.setAlternatingRowColors(True)
        layout.addWidget(self.models)
        self.setCentralWidget(central)
        self.load_samples()
        self.statusBar().showMessage(f"{self.models.topLevelItemCount()} sample models")

    def load_samples(self) -> None:
        for path in sample_models():
            try:
                fmt = detect_format(path)
                item = QTreeWidgetItem([path.name, fmt.label, _human(model_size_bytes(path, fmt))])
            except EdgeStudioError as exc:
                item = QTreeWidgetItem([path.name, "error", exc.cause])
            item.setData(0, Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(0, str(path))
            self.models.addTopLevelItem(item)
        for col in range(3):
            self.models.resizeColumnToContents(col)
