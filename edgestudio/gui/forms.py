"""Forms generated from an options dataclass: each field becomes an editor, its description the tooltip."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget


def _shape_text(shapes: dict[str, list[int]]) -> str:
    return "; ".join(f"{k}={','.join(map(str, v))}" if k else ",".join(map(str, v)) for k, v in shapes.items())


class OptionsForm(QWidget):
    """Editors for ``fields`` of dataclass ``cls`` (all of them when ``fields`` is None)."""

    def __init__(self, cls: type, fields: tuple[str, ...] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cls = cls
        self._editors: dict[str, QWidget] = {}
        self._kinds: dict[str, str] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        for f in dataclasses.fields(cls):
            if fields is not None and f.name not in fields:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            editor, kind = self._editor(f, default)
            editor.setToolTip(f.metadata.get("help", ""))
            editor.setObjectName(f"opt_{f.name}")
            self._editors[f.name], self._kinds[f.name] = editor, kind
            layout.addRow(f.name.replace("_", " "), editor)

    def _editor(self, f: dataclasses.Field, default: Any) -> tuple[QWidget, str]:  # type: ignore[type-arg]
        typ = str(f.type)
        choices = f.metadata.get("choices")
        if choices:
            box = QComboBox()
            box.addItems(list(choices))
            box.setCurrentText(str(default))
            return box, "choice"
        if typ == "bool":
            check = QCheckBox()
            check.setChecked(bool(default))
            return check, "bool"
        if typ.startswith("int"):
            spin = QSpinBox()
            spin.setRange(-1 if "None" not in typ else 0, 1_000_000)
            if "None" in typ:
                spin.setSpecialValueText("default")
            spin.setValue(int(default) if default is not None else 0)
            return spin, "optint" if "None" in typ else "int"
        if typ.startswith("float"):
            dspin = QDoubleSpinBox()
            dspin.setDecimals(6)
            dspin.setRange(0.0, 1e6)
            dspin.setSingleStep(0.01)
            if "None" in typ:
                dspin.setSpecialValueText("default")
            dspin.setValue(float(default) if default is not None else 0.0)
            return dspin, "optfloat" if "None" in typ else "float"
        edit = QLineEdit()
        if typ.startswith("dict"):
            edit.setPlaceholderText("name=1,224,224,3; other=1,10")
            edit.setText(_shape_text(default or {}))
            return edit, "shapes"
        if typ.startswith("list"):
            edit.setPlaceholderText("comma-separated")
            edit.setText(", ".join(default or []))
            return edit, "list"
        edit.setText("" if default is None else str(default))
        return edit, "str"

    def values(self) -> dict[str, Any]:
        from edgestudio.bench.inputs import parse_shape_overrides

        out: dict[str, Any] = {}
        for name, editor in self._editors.items():
            kind = self._kinds[name]
            if kind == "choice":
                out[name] = editor.currentText()  # type: ignore[attr-defined]
            elif kind == "bool":
                out[name] = editor.isChecked()  # type: ignore[attr-defined]
            elif kind in ("int", "float"):
                out[name] = editor.value()  # type: ignore[attr-defined]
            elif kind in ("optint", "optfloat"):
                v = editor.value()  # type: ignore[attr-defined]
                out[name] = None if v == editor.minimum() else v  # type: ignore[attr-defined]
            elif kind == "shapes":
                text = editor.text().strip()  # type: ignore[attr-defined]
                out[name] = parse_shape_overrides([t.strip() for t in text.split(";") if t.strip()]) if text else {}
            elif kind == "list":
                text = editor.text()  # type: ignore[attr-defined]
                out[name] = [t.strip() for t in text.split(",") if t.strip()] or None
            else:
                out[name] = editor.text().strip() or None  # type: ignore[attr-defined]
        return out

    def set_value(self, name: str, value: Any) -> None:
        editor, kind = self._editors[name], self._kinds[name]
        if kind == "choice":
            editor.setCurrentText(str(value))  # type: ignore[attr-defined]
        elif kind == "bool":
            editor.setChecked(bool(value))  # type: ignore[attr-defined]
        elif kind in ("int", "float", "optint", "optfloat"):
            editor.setValue(value if value is not None else editor.minimum())  # type: ignore[attr-defined]
        else:
            editor.setText(str(value))  # type: ignore[attr-defined]

    def editor(self, name: str) -> QWidget:
        return self._editors[name]
