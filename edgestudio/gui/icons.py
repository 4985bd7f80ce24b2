"""Format icons: a coloured tag with the format's short name, painted once per format and size (crisp at any
device pixel ratio, no image files to ship or to miss in a bundle)."""

from __future__ import annotations

import functools

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QIcon, QPainter, QPixmap

from edgestudio.core.formats import ModelFormat

FORMAT_COLORS = {"onnx": "#5b8def", "tflite": "#f29d38", "openvino": "#4fb0c6", "keras": "#d9534f",
                 "h5": "#b23a48", "savedmodel": "#e07a5f", "ort": "#7b6cd9", "tfjs": "#c9b037",
                 "torchscript": "#ee4c2c", "pt2": "#a83a1f", "pte": "#7a2f9e"}
FORMAT_TAGS = {"onnx": "ONNX", "tflite": "TFL", "openvino": "IR", "keras": "K3", "h5": "H5", "savedmodel": "SM",
               "ort": "ORT", "tfjs": "JS", "torchscript": "PT", "pt2": "PT2", "pte": "PTE"}


def format_color(fmt: ModelFormat | str) -> str:
    return FORMAT_COLORS.get(ModelFormat(fmt).value, "#888888")


def format_pixmap(fmt: ModelFormat | str, size: int = 16, ratio: float = 2.0) -> QPixmap:
    fmt = ModelFormat(fmt)
    pm = QPixmap(int(size * ratio), int(size * ratio))
    pm.setDevicePixelRatio(ratio)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    rect = QRectF(0.5, 0.5, size - 1, size - 1)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(format_color(fmt)))
    p.drawRoundedRect(rect, size * 0.22, size * 0.22)
    tag = FORMAT_TAGS.get(fmt.value, fmt.value[:2].upper())
    font = QFont()
    font.setBold(True)
    font.setPixelSize(max(5, int(size * 0.62)))
    while font.pixelSize() > 5 and QFontMetricsF(font).horizontalAdvance(tag) > size * 0.84:
        font.setPixelSize(font.pixelSize() - 1)  # long tags (ONNX, ORT) shrink to fit
    p.setFont(font)
    p.setPen(QColor("white"))
    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, tag)
    p.end()
    return pm


@functools.cache
def format_icon(fmt: ModelFormat | str) -> QIcon:
    icon = QIcon()
    for size in (16, 24, 32, 48):
        icon.addPixmap(format_pixmap(fmt, size))
    return icon
