"""Guards against broken Qt bindings: PySide6 6.12.0 released one reference to None on every
QGraphicsItem.setPos() call; on Python 3.11 that frees None after enough chart updates and kills the app."""

from __future__ import annotations

import sys


def test_setpos_keeps_none_alive(qapp) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QGraphicsTextItem

    item = QGraphicsTextItem("x")
    before = sys.getrefcount(None)
    for _ in range(2000):
        item.setPos(1.0, 2.0)
        item.setPos(QPointF(3.0, 4.0))
    assert sys.getrefcount(None) > before - 100, "this PySide6 releases references to None in setPos()"


def test_live_chart_survives_many_updates(qapp) -> None:  # type: ignore[no-untyped-def]
    """What crashed the studio: a live chart redrawn many times (labels repositioned on each redraw)."""
    from edgestudio.gui.charts import LiveLatencyChart

    chart = LiveLatencyChart()
    chart.show()
    chart.start("job", "test")
    before = sys.getrefcount(None)
    for i in range(300):
        chart.add_samples("job", [(i, 1.0 + (i % 7) * 0.1)])
        chart._redraw.flush()  # type: ignore[attr-defined]
        qapp.processEvents()
    assert chart.points == 300
    assert sys.getrefcount(None) > before - 100  # holding more references is fine; releasing them is the bug
