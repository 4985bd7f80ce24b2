"""The model browser: models and their derived artifacts as a lineage tree, drag-and-drop import, format
drop zones that convert in one gesture, and a context menu for every action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QColor, QDrag, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.formats import ModelFormat
from edgestudio.core.workspace import ModelEntry
from edgestudio.gui.icons import format_color, format_icon, format_pixmap

MODEL_MIME = "application/x-edgestudio-model"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def badge_for(entry: ModelEntry) -> str:
    """A short quality mark from what made the artifact: the parity verdict of a conversion; the drift from its
    FP32 parent (worst output's cosine) and the accuracy of an optimization."""
    opts = entry.options or {}
    parity = opts.get("parity")
    if isinstance(parity, dict):
        verdict = parity.get("verdict") or ("passed" if parity.get("passed") else "failed"
                                            if parity.get("passed") is False else None)
        mark = {"passed": "parity ✓", "failed": "parity ✗", "inconclusive": "parity ?"}.get(str(verdict))
        if mark:
            return mark + (" (random)" if (parity.get("inputs") or {}).get("random") and verdict == "passed" else "")
    parts = []
    drift = opts.get("drift")
    if isinstance(drift, dict) and drift.get("worst"):
        sign = {"passed": "✓", "failed": "✗"}.get(str(drift.get("verdict")), "?")
        parts.append(f"cos {float(drift['worst'].get('cosine') or 0):.5f} {sign}")
    acc = opts.get("accuracy")
    if isinstance(acc, dict) and acc.get("after") is not None:
        parts.append(f"top-1 {acc['after']:.1%}")
    if parts:
        return " · ".join(parts)
    if opts.get("method"):
        return str(opts["method"])
    return ""


# the Format column's words: short enough that Size and Check fit beside the names (the full label is the tooltip)
SHORT_LABELS = {"tflite": "TFLite", "savedmodel": "SavedModel", "ort": "ORT", "keras": "Keras v3", "h5": "Keras H5",
                "openvino": "OpenVINO IR", "tfjs": "TF.js", "torchscript": "TorchScript", "pt2": "ExportedProgram",
                "tvm": "TVM", "pte": "ExecuTorch"}


def local_paths(mime: QMimeData) -> list[Path]:
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]


class ModelTree(QTreeWidget):
    files_dropped = Signal(list)

    def __init__(self) -> None:
        super().__init__()
        self.setHeaderLabels(["Model", "Format", "Size", "Check"])
        self.setAcceptDrops(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        # Format and Size always show whole; the name and the check share what is left (a long one shortened in
        # the middle, its tooltip in full): no horizontal scrolling to see a size, no "SavedMode…"
        header = self.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        for col in (0, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def fit_columns(self) -> None:
        """Format and Size as wide as their contents; the name as wide as it needs, up to what leaves the check
        its own width (or 70 % of the room), the check the rest."""
        for col in (1, 2):
            self.resizeColumnToContents(col)
        room = self.viewport().width() - self.columnWidth(1) - self.columnWidth(2)
        name = max(self.sizeHintForColumn(0), self.header().sectionSizeHint(0))
        check = max(self.sizeHintForColumn(3), self.header().sectionSizeHint(3), self.header().minimumSectionSize())
        width = max(60, min(name, max(room - check, room * 7 // 10)))  # the name first: the check has a tooltip
        self.setColumnWidth(0, width)
        self.setColumnWidth(3, max(24, room - width))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit_columns()

    def dragEnterEvent(self, e: QDragEnterEvent) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()
        else:
            e.ignore()

    def dragMoveEvent(self, e: Any) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()
        else:
            e.ignore()

    def dropEvent(self, e: QDropEvent) -> None:  # noqa: N802
        paths = local_paths(e.mimeData())
        if paths:
            e.acceptProposedAction()
            self.files_dropped.emit(paths)

    def startDrag(self, actions: Any) -> None:  # noqa: N802
        item = self.currentItem()
        if item is None:
            return
        mime = QMimeData()
        mime.setData(MODEL_MIME, str(item.data(0, Qt.ItemDataRole.UserRole)).encode())
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction)


class DropZone(QFrame):
    """Drop a model (from the tree or the file manager) to convert it to ``target``."""

    dropped = Signal(object, str)  # model id (int) or Path, target format value

    def __init__(self, target: ModelFormat) -> None:
        super().__init__()
        self.target = target
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"drop_{target.value}")
        self.setToolTip(f"Drop a model here to convert it to {target.label}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        row = QHBoxLayout()
        row.addStretch(1)
        icon = QLabel()
        icon.setPixmap(format_pixmap(target, 16))
        row.addWidget(icon)
        row.addWidget(QLabel(f"→ {target.label.split(' ')[0]}"))
        row.addStretch(1)
        lay.addLayout(row)
        self._set_hot(False)

    def _set_hot(self, hot: bool) -> None:
        color = format_color(self.target)
        self.setStyleSheet(f"DropZone {{ border: 2px {'solid' if hot else 'dashed'} {color}; border-radius: 6px; }}")

    def dragEnterEvent(self, e: QDragEnterEvent) -> None:  # noqa: N802
        if e.mimeData().hasFormat(MODEL_MIME) or e.mimeData().hasUrls():
            self._set_hot(True)
            e.acceptProposedAction()

    def dragLeaveEvent(self, e: Any) -> None:  # noqa: N802
        self._set_hot(False)

    def dropEvent(self, e: QDropEvent) -> None:  # noqa: N802
        self._set_hot(False)
        mime = e.mimeData()
        if mime.hasFormat(MODEL_MIME):
            self.dropped.emit(int(bytes(mime.data(MODEL_MIME)).decode()), self.target.value)
        else:
            for p in local_paths(mime):
                self.dropped.emit(p, self.target.value)
        e.acceptProposedAction()


class ModelBrowser(QWidget):
    """Signals carry workspace model ids; ``action`` is one of convert, optimize, benchmark, compare,
    reveal, delete."""

    import_requested = Signal(list)
    selected = Signal(int)
    action = Signal(str, int)
    convert_dropped = Signal(object, str)

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.banner = QLabel()
        self.banner.setObjectName("browser_banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #fdecea; color: #8a1c12; border-radius: 4px; padding: 4px; }")
        self.banner.hide()
        lay.addWidget(self.banner)
        self.tree = ModelTree()
        self.tree.files_dropped.connect(self.import_requested)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._menu)
        lay.addWidget(self.tree, 1)
        hint = QLabel("Drag models in from your file manager; drag one onto a format to convert it.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray;")
        lay.addWidget(hint)
        zones = QHBoxLayout()
        self.zones = {}
        for fmt in (ModelFormat.ONNX, ModelFormat.TFLITE, ModelFormat.OPENVINO):
            zone = DropZone(fmt)
            zone.dropped.connect(self.convert_dropped)
            zones.addWidget(zone)
            self.zones[fmt.value] = zone
        lay.addLayout(zones)
        self._items: dict[int, QTreeWidgetItem] = {}

    # ---------------------------------------------------------------------------------------------- data
    def set_models(self, entries: list[ModelEntry]) -> None:
        """Rebuild the tree (at start, or when the workspace's change log no longer reaches back)."""
        current = self.current_id()
        self.tree.clear()
        self._items.clear()
        by_parent: dict[int | None, list[ModelEntry]] = {}
        for e in entries:
            by_parent.setdefault(e.parent_id, []).append(e)

        def add(parent_item: Any, parent_id: int | None) -> None:
            for e in by_parent.get(parent_id, []):
                item = self._new_item(e)
                (parent_item.addChild if parent_item else self.tree.addTopLevelItem)(item)
                add(item, e.id)

        add(None, None)
        self.tree.expandAll()
        self._fit_columns()
        if current in self._items:
            self.select(current)

    def apply_changes(self, entries: list[ModelEntry], removed: set[int]) -> bool:
        """Update only the rows that changed: ``entries`` added or updated, ``removed`` ids gone (with their
        children). Returns False when a row's parent is unknown here (the caller then rebuilds)."""
        for model_id in removed:
            item = self._items.get(model_id)
            if item is None:
                continue
            parent = item.parent()
            (parent.removeChild(item) if parent else self.tree.takeTopLevelItem(
                self.tree.indexOfTopLevelItem(item)))
            stack = [item]
            while stack:
                it = stack.pop()
                self._items.pop(int(it.data(0, Qt.ItemDataRole.UserRole)), None)
                stack.extend(it.child(i) for i in range(it.childCount()))
        for e in sorted(entries, key=lambda e: e.id):  # parents before their children
            item = self._items.get(e.id)
            if item is not None:
                self._fill(item, e)
                continue
            parent_item = self._items.get(e.parent_id) if e.parent_id is not None else None
            if e.parent_id is not None and parent_item is None:
                return False
            item = self._new_item(e)
            (parent_item.addChild if parent_item else self.tree.addTopLevelItem)(item)
            if parent_item is not None:
                parent_item.setExpanded(True)
        if entries or removed:
            self._disambiguate()
            self._fit_columns()
        return True

    def _disambiguate(self) -> None:
        """Two models of one name (the same file optimized twice, two imports called model.onnx) get what tells them
        apart beside the name: how they were made, or where they came from."""
        names: dict[str, int] = {}
        for item in self._items.values():
            base = str(item.data(0, Qt.ItemDataRole.UserRole + 1))
            names[base] = names.get(base, 0) + 1
        for item in self._items.values():
            base = str(item.data(0, Qt.ItemDataRole.UserRole + 1))
            text = f"{base}  ({item.data(0, Qt.ItemDataRole.UserRole + 2)})" if names[base] > 1 else base
            if item.text(0) != text:
                item.setText(0, text)

    def _new_item(self, e: ModelEntry) -> QTreeWidgetItem:
        item = QTreeWidgetItem()
        item.setData(0, Qt.ItemDataRole.UserRole, e.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsDragEnabled)
        self._fill(item, e)
        self._items[e.id] = item
        return item

    def _fill(self, item: QTreeWidgetItem, e: ModelEntry) -> None:
        for col, text in enumerate((e.name, SHORT_LABELS.get(e.format.value, e.format.label), human_size(e.size_bytes),
                                    badge_for(e))):
            item.setText(col, text)
        item.setToolTip(1, e.format.label)
        item.setToolTip(3, badge_for(e))
        o = e.options or {}
        hint = (o.get("method") and f"{o['method']}" + (f" {o['runtime']}" if o.get("runtime") else "")) or \
            o.get("converter") or f"from {Path(o.get('imported_from') or e.path).parent.name}/"
        item.setData(0, Qt.ItemDataRole.UserRole + 1, e.name)
        item.setData(0, Qt.ItemDataRole.UserRole + 2, f"{hint} #{e.id}")
        item.setToolTip(0, f"{e.name}\n{e.path}\nmade by: {e.made_by}" + (f" (job {e.job_id})" if e.job_id else ""))
        item.setIcon(0, format_icon(e.format))
        item.setForeground(1, QColor(format_color(e.format)))
        if "✗" in item.text(3):
            item.setForeground(3, QColor("#c0392b"))
        elif item.text(3):
            item.setForeground(3, QColor("#2e8b57"))

    def _fit_columns(self) -> None:
        self.tree.fit_columns()

    def count(self) -> int:
        return len(self._items)

    def item_for(self, model_id: int) -> QTreeWidgetItem | None:
        return self._items.get(model_id)

    def current_id(self) -> int | None:
        item = self.tree.currentItem()
        return int(item.data(0, Qt.ItemDataRole.UserRole)) if item is not None else None

    def selected_ids(self) -> list[int]:
        return [int(i.data(0, Qt.ItemDataRole.UserRole)) for i in self.tree.selectedItems()]

    def select(self, model_id: int) -> None:
        item = self._items.get(model_id)
        if item is not None:
            self.tree.setCurrentItem(item)

    def reveal(self, model_id: int) -> None:
        """Make a model visible (its parents expanded, scrolled to) without selecting it: a finished job's artifact
        shows up, and what the user was working on stays selected."""
        item = self._items.get(model_id)
        if item is None:
            return
        parent = item.parent()
        while parent is not None:
            parent.setExpanded(True)
            parent = parent.parent()
        self.tree.scrollToItem(item)

    def show_error(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.show()

    def clear_error(self) -> None:
        self.banner.hide()
        self.banner.clear()

    # ---------------------------------------------------------------------------------------------- ui
    def _on_selection(self) -> None:
        model_id = self.current_id()
        if model_id is not None:
            self.selected.emit(model_id)

    def _menu(self, pos: QPoint) -> None:
        model_id = self.current_id()
        if model_id is None:
            return
        menu = QMenu(self)
        for name, label in (("convert", "Convert…"), ("optimize", "Optimize…"), ("benchmark", "Benchmark"),
                            ("bench_settings", "Benchmark with settings…"),
                            ("compare", "Compare selected"), ("why", "Why did accuracy drop?…"),
                            ("profile", "Profile layers…"), ("explore", "Open in Model Explorer"),
                            ("explore_parent", "Compare with parent in Model Explorer"),
                            ("throughput", "Throughput sweep…"),
                            ("distill", "Distill a smaller student…"),
                            ("package", "Deployment package…"),
                            ("reveal", "Reveal in folder"), ("delete", "Delete")):
            act = QAction(label, menu)
            act.triggered.connect(lambda _=False, n=name: self.action.emit(n, model_id))
            if name in ("why", "explore_parent") and self._items[model_id].parent() is None:
                act.setEnabled(False)  # an imported model has no parent to compare with
                act.setToolTip("compares a variant with its parent: pick a converted or optimized one")
            menu.addAction(act)
            if name in ("compare", "throughput", "package"):
                menu.addSeparator()
        menu.exec(self.tree.viewport().mapToGlobal(pos))
